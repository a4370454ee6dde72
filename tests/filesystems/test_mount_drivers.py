"""Which driver mounts what on this host, and the options every guest mount gets.

Expected drivers follow /proc/filesystems, read here independently of the library's cache.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from vmcraft.errors import DriverMissingError, MountError
from vmcraft.filesystems.drivers import choose_driver
from vmcraft.filesystems.mount import build_options

KERNEL = {line.split()[-1] for line in Path("/proc/filesystems").read_text().splitlines()}


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs"])
def test_kernel_types_use_mount(fstype: str) -> None:
    if fstype not in KERNEL:
        pytest.skip(f"this kernel has no {fstype}")
    driver = choose_driver(fstype, readonly=False)
    assert (driver.program, driver.fuse, driver.writable) == ("mount", False, True)


@pytest.mark.skipif("ntfs" in KERNEL or "ntfs3" in KERNEL, reason="kernel has an ntfs driver")
@pytest.mark.requires_tool("ntfs-3g", "--version")
def test_ntfs_uses_ntfs3g_read_write() -> None:
    driver = choose_driver("ntfs", readonly=False)
    assert (driver.program, driver.fuse, driver.writable) == ("ntfs-3g", True, True)


@pytest.mark.skipif("vfat" in KERNEL, reason="kernel has vfat")
@pytest.mark.skipif(shutil.which("fusefat") is None, reason="fusefat is not installed")
@pytest.mark.parametrize("fstype", ["vfat", "msdos", "fat32"])
def test_fat_reads_through_fusefat_and_refuses_writes(fstype: str) -> None:
    driver = choose_driver(fstype, readonly=True)
    assert (driver.fstype, driver.program, driver.fuse) == ("vfat", "fusefat", True)
    assert not driver.writable

    with pytest.raises(DriverMissingError, match="kernel's vfat driver") as failure:
        choose_driver(fstype, readonly=False)
    assert isinstance(failure.value, MountError)


@pytest.mark.parametrize("fstype", ["zfs", "fuseblk", ""])
def test_unknown_types_have_no_driver(fstype: str) -> None:
    with pytest.raises(DriverMissingError, match="no driver"):
        choose_driver(fstype, readonly=True)


def test_every_mount_is_nosuid_nodev() -> None:
    assert build_options([], readonly=False, fstype="ext4") == ["nosuid", "nodev"]
    got = build_options(["suid", "dev", "rw", "noatime"], readonly=True, fstype="ext4")
    assert got == ["ro", "noatime", "nosuid", "nodev"]


def test_read_only_wins_over_rw() -> None:
    assert build_options(["rw"], readonly=True, fstype="btrfs")[0] == "ro"
    assert build_options(["ro"], readonly=False, fstype="btrfs") == ["ro", "nosuid", "nodev"]


def test_xfs_clones_get_nouuid() -> None:
    assert build_options([], readonly=True, fstype="xfs") == ["ro", "nouuid", "nosuid", "nodev"]
    assert build_options(["nouuid"], readonly=False, fstype="xfs").count("nouuid") == 1
