"""Files inside the mounted guest, reached only through the guest-path resolver."""

from __future__ import annotations

import contextlib
import errno
import functools
import logging
import os
import stat
import tempfile
from collections.abc import Callable, Iterator

from vmcraft.errors import (
    GuestFileError,
    GuestFileNotFoundError,
    ReadOnlyError,
    SymlinkLoopError,
)
from vmcraft.guest.paths import check_guest_path, resolve_guest_path

log = logging.getLogger(__name__)

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


@contextlib.contextmanager
def guest_errors(action: str, path: str) -> Iterator[None]:
    """Turn an OSError into the guest error a caller expects, naming the guest path."""
    try:
        yield
    except FileNotFoundError as e:
        raise GuestFileNotFoundError(f"{action} {path}: no such file or directory") from e
    except OSError as e:
        if e.errno == errno.EROFS:
            raise ReadOnlyError(f"{action} {path}: the filesystem is read-only") from e
        raise GuestFileError(f"{action} {path}: {e.strerror or e}") from e


class GuestTree:
    """The guest's files, as mounted under ``root``.

    Args:
        root: Host folder where the guest's ``/`` is mounted.
        is_mounted: Tells whether anything is mounted at ``/`` yet.
        readonly_at: Tells whether the mount holding a host path is read-only, so that a
            write is refused before anything is touched.
    """

    def __init__(
        self, root: str, is_mounted: Callable[[], bool], readonly_at: Callable[[str], bool]
    ) -> None:
        self.root = root
        self._is_mounted = is_mounted
        self._readonly_at = readonly_at

    def resolve(
        self, path: str, follow_final: bool = True, *, slash_names_folder: bool = True
    ) -> str:
        """The host path of a guest path, resolved inside the guest."""
        check_guest_path(path)
        if not self._is_mounted():
            raise GuestFileError(f"cannot reach {path}: no filesystem is mounted on /")
        return resolve_guest_path(
            self.root, path, follow_final, slash_names_folder=slash_names_folder
        )

    def writable(self, action: str, path: str, follow_final: bool = True) -> str:
        """Resolve a path that is about to change, refusing it on a read-only mount.

        A trailing ``/`` is ignored here: ``rm_rf("/link/")`` removes the link, never the
        folder it points to.

        Raises:
            ReadOnlyError: The filesystem holding the path is mounted read-only.
        """
        host = self.resolve(path, follow_final, slash_names_folder=False)
        if self._readonly_at(host):
            raise ReadOnlyError(f"{action} {path}: the filesystem is mounted read-only")
        return host

    def is_dir(self, path: str, follow: bool = True) -> bool:
        """Whether a guest path is a folder; one that loops is not (for glob's marks).

        The handle's ``is_dir`` is :func:`vmcraft.guest.metadata.has_type`, which reports
        a loop as libguestfs does.
        """
        try:
            st = os.lstat(self.resolve(path, follow_final=follow))
        except (FileNotFoundError, NotADirectoryError, SymlinkLoopError):
            return False
        return stat.S_ISDIR(st.st_mode)

    def read_file(self, path: str) -> bytes:
        host = self.resolve(path)
        with guest_errors("cannot read", path):
            return _read_regular_file(host, path)

    def cat(self, path: str) -> str:
        return self.read_file(path).decode("utf-8", errors="surrogateescape")

    def ls(self, directory: str) -> list[str]:
        host = self.resolve(directory)
        with guest_errors("cannot list", directory):
            return sorted(os.listdir(host))

    def write(self, path: str, content: bytes | str) -> None:
        """Replace a file's content atomically: write a sibling, then rename it over."""
        host = self.writable("cannot write", path)
        data = content.encode() if isinstance(content, str) else content

        with guest_errors("cannot write", path):
            old = _lstat_or_none(host)
            if old is not None and not stat.S_ISREG(old.st_mode):
                raise GuestFileError(f"cannot write {path}: not a regular file")
            replace_file(host, functools.partial(_write_all, data=data), old)

    def mkdir_p(self, path: str) -> None:
        """Create a folder and its missing parents, each resolved inside the guest."""
        self.writable("cannot create folder", path)
        current = "/"
        for name in [c for c in path.split("/") if c]:
            current = os.path.join(current, name)
            host = self.resolve(current)
            with guest_errors("cannot create folder", current):
                try:
                    os.mkdir(host, 0o755)
                except FileExistsError:
                    if not os.path.isdir(host):
                        raise GuestFileError(
                            f"cannot create folder {current}: a file is in the way"
                        ) from None


def _read_regular_file(host: str, path: str) -> bytes:
    with open(open_regular(host, "cannot read", path), "rb") as f:
        return f.read()


def _lstat_or_none(host: str) -> os.stat_result | None:
    try:
        return os.lstat(host)
    except FileNotFoundError:
        return None


NEW_FILE_MODE = 0o644
"""0666 less the 022 umask that libguestfs's daemon runs with."""

_NAME_ROOM = 200
"""Characters of a name kept in its temporary sibling's name (NAME_MAX is 255)."""


def replace_file(host: str, fill: Callable[[int], object], old: os.stat_result | None) -> None:
    """Replace ``host`` atomically: ``fill`` a sibling temporary file, then rename it over.

    A crash leaves either the old file or the new one, never half of it. The new file takes
    the old one's owner and mode, or :data:`NEW_FILE_MODE` when there was none.
    """
    folder, name = os.path.split(host)
    fd, temp = tempfile.mkstemp(prefix=f".{name[:_NAME_ROOM]}.", suffix=".vmcraft", dir=folder)
    try:
        try:
            fill(fd)
            os.fsync(fd)
            _keep_owner_and_mode(fd, old)
        finally:
            os.close(fd)
        os.rename(temp, host)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _keep_owner_and_mode(fd: int, old: os.stat_result | None) -> None:
    if old is None:
        os.fchmod(fd, NEW_FILE_MODE)
        return
    # chown first: it clears the set-user-ID and set-group-ID bits.
    os.fchown(fd, old.st_uid, old.st_gid)
    os.fchmod(fd, stat.S_IMODE(old.st_mode))


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def open_regular(host: str, action: str, path: str) -> int:
    """Open a regular file for reading, checked before it is opened.

    A guest's device node would open the host's device and a FIFO would block, so the type
    is checked first, and the file opened must be the file checked.

    Raises:
        GuestFileError: Not a regular file, or replaced while being opened.
    """
    checked = os.lstat(host)
    if not stat.S_ISREG(checked.st_mode):
        raise GuestFileError(f"{action} {path}: not a regular file")

    fd = os.open(host, _OPEN_FLAGS)
    opened = os.fstat(fd)
    if (opened.st_dev, opened.st_ino) != (checked.st_dev, checked.st_ino):
        os.close(fd)
        raise GuestFileError(f"{action} {path}: changed while being opened")
    os.set_blocking(fd, True)
    return fd
