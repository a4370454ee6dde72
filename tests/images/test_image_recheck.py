"""An image swapped for an unsafe one between add_drive_opts and launch is refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from vmcraft import VMCraft
from vmcraft.errors import ImageFormatError, UnsafeImageError

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_tool("qemu-img")]


def _qcow2(path: Path, *extra: str) -> None:
    argv = ["qemu-img", "create", "-q", "-f", "qcow2", *extra, str(path), "1M"]
    subprocess.run(argv, check=True)


def test_backing_file_planted_after_probe_is_refused_at_launch(tmp_path: Path) -> None:
    image = tmp_path / "disk.qcow2"
    _qcow2(image)
    with VMCraft(attach_attempts=1) as g:
        g.add_drive_opts(str(image))
        image.unlink()
        _qcow2(image, "-u", "-b", "/etc/hostname", "-F", "raw")

        with pytest.raises(UnsafeImageError, match="/etc/hostname"):
            g.launch()


def test_format_changed_after_probe_is_refused_at_launch(tmp_path: Path) -> None:
    image = tmp_path / "disk.qcow2"
    _qcow2(image)
    with VMCraft(attach_attempts=1) as g:
        g.add_drive_opts(str(image))
        image.write_bytes(b"\0" * 1024 * 1024)

        with pytest.raises(ImageFormatError, match="now says raw"):
            g.launch()
