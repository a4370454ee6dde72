"""What a guest file is, without opening it: stat results, file types, all-zero content.

The stat calls return dicts shaped as libguestfs's structs (guestfs(3)): ``statns`` with
``st_*`` fields, whole seconds and nanoseconds apart, and six zero spares; the deprecated
``stat`` with plain field names and whole seconds. Every path is resolved inside the guest
first, and the host path that comes out is looked at with lstat(2) only: the host kernel
never follows a link, so a guest's link to a host path describes the guest's own file.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat as st
from collections.abc import Callable, Iterator, Sequence

from vmcraft.errors import SymlinkLoopError
from vmcraft.guest.files import GuestTree, guest_errors, open_regular
from vmcraft.units import MIB

NANOSECONDS = 1_000_000_000
ZERO_CHUNK_SIZE = MIB  # read at a time by is_zero; memory stays at one chunk
MISSING_INODE = -1  # lstatlist's st_ino for a name that cannot be lstat'd (guestfs(3))

_COMMON = ("dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks")
_TIMES = ("atime", "mtime", "ctime")
STAT_KEYS = (*_COMMON, *_TIMES)
"""The deprecated ``stat`` struct's fields, in libguestfs's order."""
STATNS_KEYS = (
    *(f"st_{name}" for name in _COMMON),
    *(f"st_{name}_{unit}" for name in _TIMES for unit in ("sec", "nsec")),
    *(f"st_spare{number}" for number in range(1, 7)),
)
"""The ``statns`` struct's fields, in libguestfs's order."""

_Shape = Callable[[os.stat_result], dict[str, int]]


def statns(tree: GuestTree, path: str) -> dict[str, int]:
    """stat(2) of a guest path, links followed inside the guest (libguestfs ``statns``)."""
    return statns_fields(_lstat(tree, path, follow=True))


def lstatns(tree: GuestTree, path: str) -> dict[str, int]:
    """lstat(2) of a guest path: a final link describes itself (libguestfs ``lstatns``)."""
    return statns_fields(_lstat(tree, path, follow=False))


def stat(tree: GuestTree, path: str) -> dict[str, int]:
    """The deprecated ``stat``: whole-second times, fields named without ``st_``."""
    return stat_fields(_lstat(tree, path, follow=True))


def lstat(tree: GuestTree, path: str) -> dict[str, int]:
    """The deprecated ``lstat``: :func:`stat` of a final link itself."""
    return stat_fields(_lstat(tree, path, follow=False))


def _lstat(tree: GuestTree, path: str, follow: bool) -> os.stat_result:
    host = tree.resolve(path, follow_final=follow)
    with guest_errors("cannot stat", path):
        return os.lstat(host)


def statns_fields(result: os.stat_result) -> dict[str, int]:
    """A stat result as libguestfs's ``statns`` struct."""
    values = [getattr(result, f"st_{name}") for name in _COMMON]
    for name in _TIMES:
        values += divmod(getattr(result, f"st_{name}_ns"), NANOSECONDS)
    values += [0] * 6
    return dict(zip(STATNS_KEYS, values, strict=True))


def stat_fields(result: os.stat_result) -> dict[str, int]:
    """A stat result as libguestfs's deprecated ``stat`` struct."""
    values = [getattr(result, f"st_{name}") for name in _COMMON]
    # Floor division: the kernel's tv_sec of a time before 1970 is rounded down too.
    values += [getattr(result, f"st_{name}_ns") // NANOSECONDS for name in _TIMES]
    return dict(zip(STAT_KEYS, values, strict=True))


def lstatnslist(tree: GuestTree, path: str, names: Sequence[str]) -> list[dict[str, int]]:
    """:func:`lstatns` of each name in a guest folder, one result per name, in order.

    A name that does not exist or cannot be lstat'd gets a result whose ``st_ino`` is -1
    and whose other fields are 0 (libguestfs ``lstatnslist``).
    """
    _check_folder(tree, path)
    return [_or_missing(tree, path, name, statns_fields, STATNS_KEYS) for name in names]


def lstatlist(tree: GuestTree, path: str, names: Sequence[str]) -> list[dict[str, int]]:
    """The deprecated ``lstatlist``: :func:`lstatnslist` in the ``stat`` shape."""
    _check_folder(tree, path)
    return [_or_missing(tree, path, name, stat_fields, STAT_KEYS) for name in names]


def _check_folder(tree: GuestTree, path: str) -> None:
    host = tree.resolve(path)
    with guest_errors("cannot list", path):
        if not st.S_ISDIR(os.lstat(host).st_mode):
            raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))


def _or_missing(
    tree: GuestTree, path: str, name: str, shape: _Shape, keys: tuple[str, ...]
) -> dict[str, int]:
    found = _lstat_in(tree, path, name)
    if found is not None:
        return shape(found)
    missing = dict.fromkeys(keys, 0)
    missing[keys[1]] = MISSING_INODE
    return missing


def _lstat_in(tree: GuestTree, path: str, name: str) -> os.stat_result | None:
    if not name:
        return None  # as fstatat(2) of "" without AT_EMPTY_PATH: ENOENT
    try:
        return os.lstat(tree.resolve(posixpath.join(path, name), follow_final=False))
    except (OSError, SymlinkLoopError):
        return None


def has_type(tree: GuestTree, path: str, kind: int, followsymlinks: bool = False) -> bool:
    """Whether a guest path is of a file type (``stat.S_IFBLK``...) (libguestfs ``is_*``).

    A path that names nothing, or goes through something that is not a folder, is not of
    any type: False. Without ``followsymlinks`` a final link is looked at itself.

    Raises:
        SymlinkLoopError: Resolving the path meets a link loop.
    """
    mode = _mode_or_none(tree, path, followsymlinks)
    return mode is not None and st.S_IFMT(mode) == kind


def exists(tree: GuestTree, path: str) -> bool:
    """Whether anything is at a guest path, a dangling symlink too (libguestfs ``exists``).

    As libguestfs 1.48 does, the path is lstat'd: a final link is not followed.

    Raises:
        SymlinkLoopError: Resolving a folder on the way meets a link loop.
    """
    return _mode_or_none(tree, path, follow=False) is not None


def _mode_or_none(tree: GuestTree, path: str, follow: bool) -> int | None:
    host = tree.resolve(path, follow_final=follow)
    with guest_errors("cannot stat", path):
        try:
            return os.lstat(host).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return None


def is_zero(tree: GuestTree, path: str) -> bool:
    """Whether a guest file is empty or holds only zero bytes (libguestfs ``is_zero``).

    The file is streamed one chunk at a time, and holes of a sparse file are skipped
    without reading them.

    Raises:
        GuestFileNotFoundError: No such file.
        GuestFileError: It is not a regular file, or cannot be read.
    """
    host = tree.resolve(path)
    with guest_errors("cannot read", path):
        fd = open_regular(host, "cannot read", path)
        try:
            return all(_zero_between(fd, start, end) for start, end in _data_extents(fd))
        finally:
            os.close(fd)


def _data_extents(fd: int) -> Iterator[tuple[int, int | None]]:
    """The ranges of a file that may hold data; holes in between read as zeros anyway."""
    position = 0
    while True:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:
                return  # only holes from here to the end
            if e.errno in (errno.EINVAL, errno.EOPNOTSUPP):
                yield position, None  # no SEEK_DATA here: read it all
                return
            raise
        position = os.lseek(fd, start, os.SEEK_HOLE)
        yield start, position


def _zero_between(fd: int, start: int, end: int | None) -> bool:
    while end is None or start < end:
        wanted = ZERO_CHUNK_SIZE if end is None else min(ZERO_CHUNK_SIZE, end - start)
        chunk = os.pread(fd, wanted, start)
        if not chunk:
            return True
        if chunk.count(0) != len(chunk):
            return False
        start += len(chunk)
    return True
