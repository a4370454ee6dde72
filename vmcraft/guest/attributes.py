"""ext2-style file attributes (``lsattr``/``chattr`` letters) of guest files.

libguestfs's ``get_e2attrs`` and ``set_e2attrs`` run lsattr and chattr; here the same flags
are read and written with the ioctls those tools use, FS_IOC_GETFLAGS and FS_IOC_SETFLAGS,
on a file descriptor opened with ``O_NOFOLLOW`` after the path was resolved inside the
guest. Only regular files and folders are opened, as e2fsprogs does: opening a guest's
device node or FIFO is never attempted. ext2/3/4 know every letter; xfs and btrfs keep a
few of them; other filesystems refuse the ioctl, which is reported as an error.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import struct
import sys
from collections.abc import Iterator

from vmcraft.errors import GuestArgumentError, GuestFileError
from vmcraft.guest.files import GuestTree, guest_errors

# NB: the x86 and arm encoding of _IOR/_IOW: direction in bits 30-31, size in bits 16-29.
_IOC_WRITE, _IOC_READ = 1, 2
_ARGUMENT_SIZE = struct.calcsize("l")  # the ioctls are declared with a long
FS_IOC_GETFLAGS = _IOC_READ << 30 | _ARGUMENT_SIZE << 16 | ord("f") << 8 | 1
FS_IOC_SETFLAGS = _IOC_WRITE << 30 | _ARGUMENT_SIZE << 16 | ord("f") << 8 | 2
_FLAG_SIZE = 4  # the kernel reads and writes an int, whatever the declaration says

E2_ATTRIBUTES = (
    ("s", 0x00000001),  # FS_SECRM_FL: zero the blocks on deletion
    ("u", 0x00000002),  # FS_UNRM_FL: keep the content for undeletion
    ("S", 0x00000008),  # FS_SYNC_FL: synchronous updates
    ("D", 0x00010000),  # FS_DIRSYNC_FL: synchronous folder updates
    ("i", 0x00000010),  # FS_IMMUTABLE_FL
    ("a", 0x00000020),  # FS_APPEND_FL: append only
    ("d", 0x00000040),  # FS_NODUMP_FL: not for dump(8)
    ("A", 0x00000080),  # FS_NOATIME_FL
    ("c", 0x00000004),  # FS_COMPR_FL: compressed
    ("E", 0x00000800),  # FS_ENCRYPT_FL: encrypted
    ("j", 0x00004000),  # FS_JOURNAL_DATA_FL: data journaling
    ("I", 0x00001000),  # FS_INDEX_FL: hashed folder index
    ("t", 0x00008000),  # FS_NOTAIL_FL: no tail merging
    ("T", 0x00020000),  # FS_TOPDIR_FL: top of a folder hierarchy
    ("e", 0x00080000),  # FS_EXTENT_FL: extents
    ("C", 0x00800000),  # FS_NOCOW_FL: no copy on write
    ("x", 0x02000000),  # FS_DAX_FL: direct access
    ("F", 0x40000000),  # FS_CASEFOLD_FL: case-insensitive folder
    ("N", 0x10000000),  # FS_INLINE_DATA_FL: data inside the inode
    ("P", 0x20000000),  # FS_PROJINHERIT_FL: project id inheritance
    ("V", 0x00100000),  # FS_VERITY_FL: fs-verity
    ("m", 0x00000400),  # FS_NOCOMP_FL: never compressed
)
"""lsattr's letters in the order it prints them (e2fsprogs 1.47), with their kernel flags."""

READ_ONLY_LETTERS = "EINV"
"""Letters that chattr(1) shows but cannot set or clear."""

_BITS = dict(E2_ATTRIBUTES)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_NO_FLAGS_ERRNOS = (errno.ENOTTY, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOSYS)


def get_e2attrs(tree: GuestTree, file: str) -> str:
    """The attribute letters set on a guest file, in byte order (``"Ade"``, ``"ei"``).

    libguestfs 1.48 takes lsattr's letters without dashes and sorts them (qsort of chars),
    so upper case comes first. A final link is not followed: like lsattr, this refuses
    anything but a regular file or a folder.

    Raises:
        GuestFileError: Not a regular file or folder, or its filesystem has no such flags.
    """
    action = "cannot get attributes of"
    host = tree.resolve(file, follow_final=False)
    with guest_errors(action, file), _opened(host, action, file) as fd:
        flags = _get_flags(fd, action, file)
    return "".join(sorted(letter for letter, bit in E2_ATTRIBUTES if flags & bit))


def set_e2attrs(tree: GuestTree, file: str, attrs: str, clear: bool = False) -> None:
    """Set (or with ``clear``, clear) attribute letters; the others stay as they are.

    Raises:
        GuestFileError: An unknown or read-only letter, not a regular file or folder, or
            the filesystem refused the change.
    """
    action = "cannot set attributes of"
    bits = _letters_to_bits(attrs, action, file)
    host = tree.writable(action, file, follow_final=False)

    with guest_errors(action, file), _opened(host, action, file) as fd:
        old = _get_flags(fd, action, file)
        new = old & ~bits if clear else old | bits
        if new != old:
            _set_flags(fd, new, action, file)


def _letters_to_bits(attrs: str, action: str, file: str) -> int:
    bits = 0
    for letter in attrs:
        if letter not in _BITS:
            raise GuestArgumentError(f"{action} {file}: unknown attribute {letter!r}")
        if letter in READ_ONLY_LETTERS:
            raise GuestArgumentError(f"{action} {file}: attribute {letter!r} cannot be changed")
        bits |= _BITS[letter]
    return bits


@contextlib.contextmanager
def _opened(host: str, action: str, file: str) -> Iterator[int]:
    """A regular file or folder opened without following a link, checked to be the one
    lstat'd, so that no device node or FIFO of the guest is ever opened."""
    checked = os.lstat(host)
    if not (stat.S_ISREG(checked.st_mode) or stat.S_ISDIR(checked.st_mode)):
        raise GuestFileError(f"{action} {file}: not a regular file or folder")

    fd = os.open(host, _OPEN_FLAGS)
    try:
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
            raise GuestFileError(f"{action} {file}: changed while being opened")
        yield fd
    finally:
        os.close(fd)


def _get_flags(fd: int, action: str, file: str) -> int:
    buffer = bytearray(_ARGUMENT_SIZE)
    _ioctl(fd, FS_IOC_GETFLAGS, buffer, action, file)
    return int.from_bytes(buffer[:_FLAG_SIZE], sys.byteorder)


def _set_flags(fd: int, flags: int, action: str, file: str) -> None:
    buffer = bytearray(_ARGUMENT_SIZE)
    buffer[:_FLAG_SIZE] = flags.to_bytes(_FLAG_SIZE, sys.byteorder)
    _ioctl(fd, FS_IOC_SETFLAGS, buffer, action, file)


def _ioctl(fd: int, request: int, buffer: bytearray, action: str, file: str) -> None:
    try:
        fcntl.ioctl(fd, request, buffer)
    except OSError as e:
        if e.errno in _NO_FLAGS_ERRNOS:
            raise GuestFileError(
                f"{action} {file}: its filesystem has no ext2-style file attributes"
            ) from e
        raise
