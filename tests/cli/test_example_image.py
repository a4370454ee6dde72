"""The README's main job: build the example guest with its script, then look inside it.

This is what a new user runs first, so it is run here the same way: the real script, the
real image it makes, and the same three subcommands, in-process.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import skip_unless_root, skip_unless_tools

from vmcraft.cli.main import main

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "build-example-image.sh"
BUILD_TOOLS = ("sfdisk", "losetup", "partx", "pvcreate", "lvcreate", "mkfs.ext4", "qemu-img")

pytestmark = pytest.mark.requires_root


@pytest.fixture(scope="module")
def example_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    skip_unless_root()
    skip_unless_tools(*BUILD_TOOLS)
    image = tmp_path_factory.mktemp("example") / "guest.qcow2"
    subprocess.run([str(SCRIPT), str(image)], check=True, capture_output=True)
    return image


def test_the_example_guest_as_the_readme_shows_it(
    example_image: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = str(example_image)

    assert main(["filesystems", "-a", image, "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["logical_volumes"] == ["/dev/example/home", "/dev/example/root"]

    mounts = ["-m", "/dev/example/root:/", "-m", "/dev/sda1:/boot"]
    assert main(["cat", "-a", image, *mounts, "/etc/hostname"]) == 0
    assert capsys.readouterr().out == "example.vmcraft\n"

    assert main(["inspect", "-a", image]) == 0
    [system] = json.loads(capsys.readouterr().out)["operatingsystems"]
    assert system["root"] == "/dev/example/root"
    assert (system["distro"], system["major_version"], system["osinfo"]) == (
        "debian",
        12,
        "debian12",
    )
    assert system["mountpoints"] == {
        "/": "/dev/example/root",
        "/boot": "/dev/sda1",
        "/home": "/dev/example/home",
    }
    assert [app["name"] for app in system["applications"]] == ["base-files"]
