"""The ``vmcraft`` command line, run in-process on real guest images."""

from __future__ import annotations

import json
from pathlib import Path

import guests
import pytest
from conftest import skip_unless_tools
from guests import Guest, MiB

from vmcraft.cli.main import main


def test_filesystems_json_lists_the_guest(
    gpt_lvm_guest: Guest, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["filesystems", "-a", str(gpt_lvm_guest.path), "--json"]) == 0

    report = json.loads(capsys.readouterr().out)
    assert report["devices"] == ["/dev/sda"]
    assert report["partitions"] == sorted(gpt_lvm_guest.partitions)
    listed = {fs["device"]: fs for fs in report["filesystems"]}
    for device, spec in gpt_lvm_guest.filesystems.items():
        if spec.fstype == "LVM2_member":
            assert device not in listed
            continue
        assert listed[device]["type"] == spec.fstype
        assert listed[device]["label"] == (spec.label or "")


def test_cat_mounts_parents_first_and_prints_the_file(
    gpt_lvm_guest: Guest, capsys: pytest.CaptureFixture[str]
) -> None:
    root = gpt_lvm_guest.filesystems[gpt_lvm_guest.mountpoints["/"]]
    argv = [
        "cat", "-a", str(gpt_lvm_guest.path),
        "-m", f"{gpt_lvm_guest.mountpoints['/boot']}:/boot",
        "-m", f"{gpt_lvm_guest.mountpoints['/']}:/",
        "/etc/hostname",
    ]  # fmt: skip

    assert main(argv) == 0

    assert capsys.readouterr().out.encode() == root.files["/etc/hostname"]


def test_ls_lists_a_guest_folder(gpt_lvm_guest: Guest, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["ls", "-a", str(gpt_lvm_guest.path), "-m", gpt_lvm_guest.mountpoints["/"], "/etc"]

    assert main(argv) == 0

    assert "hostname" in capsys.readouterr().out.split()


@pytest.mark.parametrize(
    "argv",
    [
        ["filesystems", "-a", "/nonexistent/disk.img"],
        ["cat", "-a", "/nonexistent/disk.img", "-m", "/dev/sda1", "/etc/hostname"],
    ],
)
def test_a_library_error_is_one_line_and_exit_1(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 1

    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["vmcraft: cannot open image /nonexistent/disk.img: no such file"]


def test_a_missing_guest_file_fails_cleanly(
    gpt_lvm_guest: Guest, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["cat", "-a", str(gpt_lvm_guest.path), "-m", gpt_lvm_guest.mountpoints["/"], "/nope"]

    assert main(argv) == 1

    assert "/nope" in capsys.readouterr().err


def test_filesystems_lists_btrfs_subvolumes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    skip_unless_tools("mkfs.btrfs", "btrfs")
    image = tmp_path / "btrfs.raw"
    guests.run(["truncate", "--size", str(128 * MiB), str(image)])
    with guests.loop_device(image) as device:
        guests.run(["mkfs.btrfs", "-q", "-f", "-L", "pool", device])
        with guests.mounted(device, tmp_path / "top") as top:
            guests.run(["btrfs", "-q", "subvolume", "create", str(top / "@home")])

    assert main(["filesystems", "-a", str(image), "--json"]) == 0

    rows = json.loads(capsys.readouterr().out)["filesystems"]
    assert [(r["device"], r["type"], r["label"], r["size"]) for r in rows] == [
        ("/dev/sda", "btrfs", "pool", 128 * MiB),
        ("btrfsvol:/dev/sda/@home", "btrfs", "pool", 128 * MiB),
    ]
