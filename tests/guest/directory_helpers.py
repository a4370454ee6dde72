"""Helpers for the folder, link and glob call tests: the mbr guest's four writable
filesystems opened through the handle, and the same filesystems seen without VMCraft.

``fs_view`` is the independent route every test reads its results back through: a kernel
mount of the partition's loop device for ext4, xfs and btrfs, and the test's own ntfs-3g
for NTFS, which this kernel cannot mount.

Host tools: losetup, mount, umount, ntfs-3g (through guests.py).
"""

from __future__ import annotations

import contextlib
import itertools
import os
import stat
from collections.abc import Iterator
from pathlib import Path

import guests
from guest_edits import partition_mounted
from guests import Guest

from vmcraft import VMCraft

DEVICES = {"ext4": "/dev/sda1", "xfs": "/dev/sda2", "btrfs": "/dev/sda5", "ntfs": "/dev/sda7"}
GUEST_MOUNTS = (("/dev/sda2", "/"), ("/dev/sda1", "/boot"), ("/dev/sda5", "/home"))
NTFS_MOUNT = ("/dev/sda7", "/srv/win")
WORK = {"ext4": "/boot/work", "xfs": "/work", "btrfs": "/home/work", "ntfs": "/srv/win/work"}
POSIX = ("ext4", "xfs", "btrfs")  # keep modes, FIFOs; ntfs-3g without a user map does not
FILE_CONTENT = b"planted\n"

_counter = itertools.count()


@contextlib.contextmanager
def opened(image: Path, *, readonly: bool = False) -> Iterator[VMCraft]:
    """A handle on the mbr guest with its four writable filesystems mounted."""
    with VMCraft() as g:
        g.add_drive_opts(str(image), format="raw", readonly=readonly)
        g.launch()
        for device, mountpoint in (*GUEST_MOUNTS, NTFS_MOUNT):
            g.mount(device, mountpoint)
        yield g


@contextlib.contextmanager
def fs_view(guest: Guest, fs: str, *, read_only: bool = True) -> Iterator[Path]:
    """One filesystem of the guest, mounted by the test itself, not by VMCraft."""
    if fs != "ntfs":
        with partition_mounted(guest, DEVICES[fs], read_only=read_only) as root:
            yield root
        return

    start, size = guest.partitions[DEVICES[fs]]
    mountpoint = guest.path.parent / f"ntfs-view-{next(_counter)}"
    argv = ["ntfs-3g", "-o", "no_detach" + (",ro" if read_only else "")]
    log = guest.path.parent / "ntfs-3g.log"
    with (
        guests.loop_device(guest.path, read_only=read_only, offset=start, size=size) as loop,
        guests.fuse_mounted([*argv, loop, str(mountpoint)], mountpoint, log) as root,
    ):
        yield root
    mountpoint.rmdir()


def plant(work: Path, fs: str) -> None:
    """The tree every test starts from, below a filesystem's /work."""
    (work / "full" / "sub").mkdir(parents=True)
    (work / "empty").mkdir()
    (work / "file.txt").write_bytes(FILE_CONTENT)
    (work / "full" / "file.txt").write_bytes(FILE_CONTENT)
    (work / "full" / "sub" / "deep.txt").write_bytes(FILE_CONTENT)
    os.symlink("file.txt", work / "link")
    os.symlink("no-such-target", work / "dangling")
    os.symlink("../file.txt", work / "full" / "link")
    if fs in POSIX:
        os.chmod(work / "file.txt", 0o640)
        os.mkfifo(work / "fifo")
        (work / "setgid").mkdir()
        os.chmod(work / "setgid", 0o2775)


def listing(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


def image_state(image: Path) -> tuple[int, int, int]:
    """Size, allocated blocks and modification time: any write through a loop changes one."""
    st = image.stat()
    return st.st_size, st.st_blocks, st.st_mtime_ns


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


@contextlib.contextmanager
def hostile_handle(image: Path, *, readonly: bool = False) -> Iterator[VMCraft]:
    """A handle on the hostile guest with its root filesystem mounted on /."""
    with VMCraft() as g:
        g.add_drive_opts(str(image), format="raw", readonly=readonly)
        g.launch()
        g.mount("/dev/sda1", "/")
        yield g
