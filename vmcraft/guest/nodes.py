"""Special files made in the guest: device nodes, FIFOs and sockets (mknod, mkfifo).

A device node made here names a device for the guest's kernel, not the host's: every guest
filesystem is mounted ``nodev``, so the host refuses to open it, and the calls that read
guest files never open anything but regular files. The permission bits are those asked
for less the handle's umask, as libguestfs's mknod applies its daemon's umask.
"""

from __future__ import annotations

import os
import stat

from vmcraft.errors import GuestArgumentError
from vmcraft.guest.files import GuestTree, guest_errors

UMASK_BITS = 0o777
_DEVICE_LIMIT = 1 << 32  # major and minor are unsigned ints for makedev(3)
_NODE_TYPES = (0, stat.S_IFREG, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFSOCK)


def check_umask(mask: int) -> int:
    """A umask checked to hold only permission bits.

    Raises:
        GuestFileError: It does not.
    """
    if not 0 <= mask <= UMASK_BITS:
        raise GuestArgumentError(f"cannot set umask {mask:#o}: it must be within 0..0o777")
    return mask


def mknod(
    tree: GuestTree, mode: int, devmajor: int, devminor: int, path: str, *, umask: int
) -> None:
    """Make a block or character device, FIFO, socket or (no type bits) empty file.

    Args:
        mode: File type bits (``stat.S_IFBLK``...) or'ed with permission bits.
        devmajor: Major device number, for devices only.
        devminor: Minor device number, for devices only.
        umask: Permission bits to leave out.

    Raises:
        GuestFileError: A bad mode or device number, or the path exists (even as a link).
    """
    action = "cannot make node"
    _check_node(mode, devmajor, devminor, action, path)
    host = tree.writable(action, path, follow_final=False)
    permissions = stat.S_IMODE(mode) & ~umask

    with guest_errors(action, path):
        os.mknod(host, stat.S_IFMT(mode) | permissions, os.makedev(devmajor, devminor))
        # The host process's umask applied too: set the guest's answer exactly.
        os.chmod(host, permissions, follow_symlinks=False)


def mknod_typed(
    tree: GuestTree, kind: int, mode: int, path: str, *, device: tuple[int, int], umask: int
) -> None:
    """:func:`mknod` of one type (``mknod_b``, ``mknod_c``, ``mkfifo``).

    Raises:
        GuestFileError: ``mode`` holds more than permission bits.
    """
    if stat.S_IFMT(mode) or mode < 0:
        raise GuestArgumentError(f"cannot make node {path}: mode {mode:#o} is not permission bits")
    mknod(tree, kind | mode, *device, path, umask=umask)


def _check_node(mode: int, devmajor: int, devminor: int, action: str, path: str) -> None:
    if mode < 0 or stat.S_IFMT(mode) not in _NODE_TYPES:
        raise GuestArgumentError(f"{action} {path}: mode {mode:#o} is not a node type")
    if not (0 <= devmajor < _DEVICE_LIMIT and 0 <= devminor < _DEVICE_LIMIT):
        raise GuestArgumentError(f"{action} {path}: device {devmajor}:{devminor} is out of range")
