"""Which program mounts which filesystem on this host.

The kernel's driver is used wherever ``/proc/filesystems`` lists the type; otherwise a FUSE
driver runs as a child process. FAT without the kernel's vfat is readable through fusefat
only: its writes corrupt the allocation table, so a writable FAT mount is refused.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from vmcraft.command import which
from vmcraft.errors import DriverMissingError

FAT_TYPES = ("vfat", "msdos", "fat", "fat16", "fat32")


@dataclass(frozen=True)
class Driver:
    """How to mount one filesystem type: ``kernel``, or a FUSE program's argv builder name."""

    fstype: str
    program: str  # "mount" for the kernel's driver, else the FUSE program
    fuse: bool
    writable: bool = True
    clean_exits: tuple[int, ...] = (0,)


@functools.cache
def kernel_filesystems() -> frozenset[str]:
    """The filesystem types the running kernel can mount (including ``fuseblk``)."""
    with open("/proc/filesystems") as f:
        return frozenset(line.split()[-1] for line in f if line.strip())


_FUSE_DRIVERS: dict[str, tuple[str, ...]] = {
    "ntfs": ("ntfs-3g",),
    "exfat": ("mount.exfat-fuse",),
    "vfat": ("fusefat",),
    "ext2": ("fuse2fs",),
    "ext3": ("fuse2fs",),
    "ext4": ("fuse2fs",),
}


def _fuse_driver(fstype: str, program: str) -> Driver:
    if program == "fusefat":
        # NB: fusefat 0.1a writes the FAT back when it exits; on a read-only device that
        # fails and it exits 255 although nothing went wrong.
        return Driver(fstype, program, fuse=True, writable=False, clean_exits=(0, 255))
    return Driver(fstype, program, fuse=True)


def _kernel_name(fstype: str) -> str:
    return "vfat" if fstype in FAT_TYPES else fstype


def choose_driver(fstype: str, readonly: bool) -> Driver:
    """Pick the driver for ``fstype``.

    Raises:
        DriverMissingError: Nothing on this host can mount it as asked.
    """
    name = _kernel_name(fstype)
    if name in kernel_filesystems() and name != "fuseblk":
        return Driver(name, "mount", fuse=False)

    candidates = _FUSE_DRIVERS.get(name, ())
    for program in candidates:
        if which(program):
            driver = _fuse_driver(name, program)
            if not readonly and not driver.writable:
                raise DriverMissingError(
                    f"read-write needs the kernel's vfat driver, which this host lacks "
                    f"({program} can only read {fstype} safely)"
                )
            return driver

    wanted = f" (install {' or '.join(candidates)})" if candidates else ""
    raise DriverMissingError(f"this host has no driver for {fstype}{wanted}")
