"""The guest file calls that write: append, touch, truncate, fill, upload and download.

Each call keeps the name, argument order and meaning of its libguestfs namesake
(guestfs(3)). Guest paths go through the guest-path resolver, and every call that changes
the guest asks ``GuestTree.writable`` first, so a read-only mount is refused before anything
is touched. A guest file is opened only once it is known to be a regular file (checked with
lstat, opened with O_NOFOLLOW and checked again with fstat), so a guest's device node never
opens a host device and its FIFO never blocks a call. Host paths (upload sources, download
targets) are the caller's own and are used as given; they may be pipes.

``upload`` replaces its target atomically, as ``GuestTree.write`` does: a temporary file in
the same guest folder, renamed over the old one, which keeps the old file's owner and mode.
Data moves in 1 MiB chunks (see :mod:`vmcraft.guest.streams`), never a whole file at once.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
from collections.abc import Iterator

from vmcraft.errors import GuestArgumentError, GuestFileError, GuestFileNotFoundError
from vmcraft.guest.files import (
    NEW_FILE_MODE,
    GuestTree,
    guest_errors,
    open_regular,
    replace_file,
)
from vmcraft.guest.streams import CHUNK_SIZE, copy_stream

_WRITE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_NOCTTY | os.O_CLOEXEC


def write_append(tree: GuestTree, path: str, content: bytes | str) -> None:
    """Append to a guest file, creating it if missing (libguestfs ``write_append``)."""
    host = tree.writable("cannot append to", path)
    data = content.encode() if isinstance(content, str) else content

    with guest_errors("cannot append to", path), _opened(host, path, "cannot append to") as fd:
        os.lseek(fd, 0, os.SEEK_END)
        view = memoryview(data)
        while view.nbytes:
            view = view[os.write(fd, view) :]


def touch(tree: GuestTree, path: str) -> None:
    """Set a guest file's times to now, or create it empty (libguestfs ``touch``).

    Only regular files: a directory, a symlink (not followed) or a special file is refused.
    """
    host = tree.writable("cannot touch", path, follow_final=False)
    with guest_errors("cannot touch", path), _opened(host, path, "cannot touch") as fd:
        os.utime(fd)


def truncate(tree: GuestTree, path: str) -> None:
    """Truncate an existing guest file to zero bytes (libguestfs ``truncate``)."""
    truncate_size(tree, path, 0)


def truncate_size(tree: GuestTree, path: str, size: int) -> None:
    """Truncate or extend (with a hole) an existing guest file (libguestfs ``truncate_size``).

    Raises:
        GuestFileNotFoundError: The file does not exist.
    """
    _require_not_negative("cannot truncate", path, size=size)
    host = tree.writable("cannot truncate", path)

    opened = _opened(host, path, "cannot truncate", create=False)
    with guest_errors("cannot truncate", path), opened as fd:
        os.ftruncate(fd, size)


def fill(tree: GuestTree, c: int, len: int, path: str) -> None:
    """Create or overwrite a guest file with ``len`` bytes of value ``c`` (0 to 255).

    Raises:
        GuestFileError: ``c`` is not a byte value or ``len`` is negative.
    """
    if not 0 <= c <= 255:
        raise GuestArgumentError(f"cannot fill {path}: byte value {c} is not in 0..255")
    _require_not_negative("cannot fill", path, len=len)
    host = tree.writable("cannot fill", path)

    chunk = bytes([c]) * min(len, CHUNK_SIZE)
    with guest_errors("cannot fill", path), _opened(host, path, "cannot fill") as fd:
        os.ftruncate(fd, 0)
        written = 0
        while written < len:
            written += os.write(fd, memoryview(chunk)[: len - written])


def upload(tree: GuestTree, filename: str, remotefilename: str) -> None:
    """Copy a host file (or pipe) into the guest, replacing the target atomically.

    A symlink at ``remotefilename`` is followed inside the guest; the file it names is
    replaced, keeping its owner and mode. A new file gets mode 0644.
    """
    action = "cannot upload to"
    host = tree.writable(action, remotefilename)
    with guest_errors(action, remotefilename):
        old = _regular_or_none(host, remotefilename, action)

    with _host_source(filename) as source, guest_errors(action, remotefilename):
        replace_file(host, functools.partial(copy_stream, source, sparse=True), old)


def upload_offset(tree: GuestTree, filename: str, remotefilename: str, offset: int) -> None:
    """Write a host file's bytes into a guest file from ``offset`` on, in place.

    The rest of the guest file is kept; a missing file is created with a hole before
    ``offset`` (libguestfs ``upload_offset``).
    """
    action = "cannot upload to"
    _require_not_negative(action, remotefilename, offset=offset)
    host = tree.writable(action, remotefilename)

    with (
        _host_source(filename) as source,
        guest_errors(action, remotefilename),
        _opened(host, remotefilename, action) as target,
    ):
        copy_stream(source, target, at=offset)


def download(tree: GuestTree, remotefilename: str, filename: str) -> None:
    """Copy a guest file to a host file (or pipe), holes kept as holes in a host file."""
    action = "cannot download"
    host = tree.resolve(remotefilename)
    with (
        _guest_source(host, remotefilename, action) as source,
        _host_target(filename) as target,
        guest_errors(action, remotefilename),
    ):
        copy_stream(source, target, sparse=_is_regular(target))


def download_offset(
    tree: GuestTree, remotefilename: str, filename: str, offset: int, size: int
) -> None:
    """Copy ``size`` bytes of a guest file from ``offset`` on to a host file.

    Raises:
        GuestFileError: The range does not lie within the file.
    """
    action = "cannot download"
    _require_not_negative(action, remotefilename, offset=offset, size=size)
    host = tree.resolve(remotefilename)

    with _guest_source(host, remotefilename, action) as source:
        length = os.fstat(source).st_size
        if offset + size > length:
            raise GuestFileError(
                f"{action} {remotefilename}: bytes {offset}..{offset + size} lie beyond "
                f"its end ({length} bytes)"
            )
        with _host_target(filename) as target, guest_errors(action, remotefilename):
            copy_stream(source, target, start=offset, length=size, sparse=_is_regular(target))


def _require_not_negative(action: str, path: str, **values: int) -> None:
    for name, value in values.items():
        if value < 0:
            raise GuestArgumentError(f"{action} {path}: {name} {value} is negative")


def _regular_or_none(host: str, path: str, action: str) -> os.stat_result | None:
    try:
        found = os.lstat(host)
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(found.st_mode):
        raise GuestFileError(f"{action} {path}: not a regular file")
    return found


@contextlib.contextmanager
def _opened(host: str, path: str, action: str, *, create: bool = True) -> Iterator[int]:
    """A guest file opened for writing in place: a regular file, or a new one (mode 0644).

    Raises:
        GuestFileNotFoundError: It is missing and ``create`` is False.
        GuestFileError: Something other than a regular file is there.
    """
    old = _regular_or_none(host, path, action)
    if old is None and not create:
        raise GuestFileNotFoundError(f"{action} {path}: no such file")

    if old is None:
        fd = os.open(host, _WRITE_FLAGS | os.O_CREAT | os.O_EXCL, NEW_FILE_MODE)
        with _closing_on_error(fd):
            os.fchmod(fd, NEW_FILE_MODE)  # whatever the host's umask
    else:
        fd = os.open(host, _WRITE_FLAGS | os.O_NONBLOCK)
        with _closing_on_error(fd):
            _require_same(fd, old, path, action)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _closing_on_error(fd: int) -> Iterator[None]:
    try:
        yield
    except BaseException:
        os.close(fd)
        raise


def _require_same(fd: int, checked: os.stat_result, path: str, action: str) -> None:
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
        raise GuestFileError(f"{action} {path}: changed while being opened")


@contextlib.contextmanager
def _guest_source(host: str, path: str, action: str) -> Iterator[int]:
    with guest_errors(action, path):
        fd = open_regular(host, action, path)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _host_source(filename: str) -> Iterator[int]:
    with guest_errors("cannot read host file", filename):
        fd = os.open(filename, os.O_RDONLY | os.O_CLOEXEC)
    try:
        yield fd
    finally:
        os.close(fd)


@contextlib.contextmanager
def _host_target(filename: str) -> Iterator[int]:
    with guest_errors("cannot write host file", filename):
        fd = os.open(filename, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o666)
    try:
        yield fd
    finally:
        os.close(fd)


def _is_regular(fd: int) -> bool:
    return stat.S_ISREG(os.fstat(fd).st_mode)
