"""Copying a tree of files without ever following a symlink, for cp, mv and copy_in/out.

A guest's tree may hold links to host paths, device nodes and FIFOs, and so may a host
tree copied in. Every entry is reached through an open descriptor of its folder and
opened with O_NOFOLLOW, so a link is copied as a link, nothing outside the two trees is
read or written, and a FIFO or device node is recreated, never opened. Folders are walked
with an explicit stack rather than recursion, so a deeply nested guest tree cannot exhaust
Python's stack. The rules say what a copy keeps: ``cp -a`` and the tar-like copy_in and
copy_out keep owners (numeric), modes, times, extended attributes and hard links; plain
``cp`` and ``cp -r`` keep none of them.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import posixpath
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from vmcraft.errors import GuestFileError
from vmcraft.guest.files import guest_errors
from vmcraft.guest.streams import copy_stream

log = logging.getLogger(__name__)

UMASK = 0o022  # what a copy without kept modes takes off, as libguestfs's daemon does

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
_REWRITE_FLAGS = os.O_WRONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
# Metadata a target filesystem may refuse: the copy goes on without it, as cp -a does.
_TOLERATED = {errno.ENOTSUP, errno.EOPNOTSUPP, errno.EPERM, errno.EACCES, errno.EINVAL}
_TOLERATED_XATTR = _TOLERATED | {errno.ENODATA, errno.E2BIG, errno.ERANGE}


@dataclass(frozen=True)
class CopyRules:
    """What a copy keeps besides contents and symlinks (always copied as symlinks)."""

    owner: bool  # numeric uid and gid
    mode: bool  # all mode bits; else new entries get the source's rwx bits less UMASK
    times: bool  # access and modification times, to the nanosecond
    xattrs: bool
    hard_links: bool  # entries that share an inode in the source share one in the copy
    device_nodes: bool  # recreate block and character devices; else skip them
    replace: bool  # a file in the way is replaced; else a regular one is rewritten in place


ARCHIVE = CopyRules(True, True, True, True, True, True, True)
"""``cp -a`` inside the guest, and ``copy_in`` into it."""

TO_HOST = replace(ARCHIVE, device_nodes=False)
"""``copy_out``: a guest's device node would give access to the host's device."""

PLAIN = CopyRules(False, False, False, False, False, True, False)
"""``cp`` and ``cp -rP``."""


@dataclass
class _Folder:
    """A source folder being copied, with its target and the names still to copy."""

    source: int
    target: int
    target_path: str  # host path of the target folder, for hard links
    items: Iterator[tuple[str, str, str]]  # (source name, target name, path for messages)
    st: os.stat_result | None  # the source folder's, applied when done; None: the top
    label: str
    created: bool


class TreeCopy:
    """One copy of a file or folder, with everything below it.

    Args:
        rules: What to keep.
        action: Start of error messages, as ``cannot copy``.
    """

    def __init__(self, rules: CopyRules, action: str) -> None:
        self.rules = rules
        self.action = action
        self._copies: dict[tuple[int, int], str] = {}  # source inode -> first copy's path
        self._lost: list[str] = []

    def run(
        self, source_parent: str, source_name: str, target_parent: str, target_name: str,
        label: str,
    ) -> None:  # fmt: skip
        """Copy ``source_parent/source_name`` to ``target_parent/target_name``.

        The two parents are host paths opened as they are; below them nothing is followed.
        ``label`` names the source in error messages.
        """
        with guest_errors(self.action, label):
            top = self._top(source_parent, source_name, target_parent, target_name, label)
        stack = [top]
        try:
            while stack:
                self._step(stack)
        finally:
            for folder in reversed(stack):
                _close(folder)
        if self._lost:
            count, example = len(self._lost), self._lost[0]
            log.warning("copy of %s: %d attributes not kept, such as %s", label, count, example)

    def _top(
        self, source_parent: str, source_name: str, target_parent: str, target_name: str,
        label: str,
    ) -> _Folder:  # fmt: skip
        with contextlib.ExitStack() as undo:
            source = os.open(source_parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            undo.callback(os.close, source)
            target = os.open(target_parent, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
            undo.pop_all()
        items = iter([(source_name, target_name, label)])
        return _Folder(source, target, target_parent, items, None, label, False)

    def _step(self, stack: list[_Folder]) -> None:
        folder = stack[-1]
        item = next(folder.items, None)
        if item is None:
            stack.pop()
            with guest_errors(self.action, folder.label):
                self._finish(folder)
            return

        with guest_errors(self.action, item[2]):
            child = self._copy_entry(folder, *item)
        if child is not None:
            stack.append(child)

    def _copy_entry(self, folder: _Folder, name: str, new_name: str, label: str) -> _Folder | None:
        st = os.stat(name, dir_fd=folder.source, follow_symlinks=False)
        if stat.S_ISDIR(st.st_mode):
            return self._enter(folder, name, new_name, label, st)
        if self._link_again(folder, new_name, label, st):
            return None

        if stat.S_ISREG(st.st_mode):
            self._copy_file(folder, name, new_name, label, st)
        elif stat.S_ISLNK(st.st_mode):
            self._copy_symlink(folder, name, new_name, label, st)
        elif self.rules.device_nodes or not (stat.S_ISBLK(st.st_mode) or stat.S_ISCHR(st.st_mode)):
            self._copy_special(folder, name, new_name, label, st)
        else:
            log.warning("%s: device node skipped, as it would reach a host device", label)
            return None

        if self.rules.hard_links and st.st_nlink > 1:
            self._copies[(st.st_dev, st.st_ino)] = os.path.join(folder.target_path, new_name)
        return None

    def _clear(self, folder: _Folder, new_name: str, label: str, st: os.stat_result) -> bool:
        """Make room for a non-folder; True when a regular file is left to rewrite in place."""
        old = _lstat_at(folder.target, new_name)
        if old is None:
            return False
        _refuse_same(old, st, self.action, label)
        if stat.S_ISDIR(old.st_mode):
            raise GuestFileError(f"{self.action} {label}: a directory is in the way")
        if self.rules.replace or not (stat.S_ISREG(old.st_mode) and stat.S_ISREG(st.st_mode)):
            os.unlink(new_name, dir_fd=folder.target)
            return False
        return True

    def _enter(
        self, folder: _Folder, name: str, new_name: str, label: str, st: os.stat_result
    ) -> _Folder:
        old = _lstat_at(folder.target, new_name)
        if old is not None:
            _refuse_same(old, st, self.action, label)
            if not stat.S_ISDIR(old.st_mode):
                raise GuestFileError(f"{self.action} {label}: a non-directory is in the way")
        else:
            os.mkdir(new_name, 0o700, dir_fd=folder.target)

        with contextlib.ExitStack() as undo:
            source = self._open_checked(folder.source, name, _DIR_FLAGS, st, label)
            undo.callback(os.close, source)
            target = os.open(new_name, _DIR_FLAGS, dir_fd=folder.target)
            undo.callback(os.close, target)
            names = sorted(os.listdir(source))
            undo.pop_all()
        items = iter([(n, n, posixpath.join(label, n)) for n in names])
        path = os.path.join(folder.target_path, new_name)
        return _Folder(source, target, path, items, st, label, old is None)

    def _finish(self, folder: _Folder) -> None:
        try:
            if folder.st is not None:
                self._keep_metadata(folder.target, folder.source, folder.st, folder.label,
                                    folder.created)  # fmt: skip
        finally:
            _close(folder)

    def _copy_file(
        self, folder: _Folder, name: str, new_name: str, label: str, st: os.stat_result
    ) -> None:
        rewrite = self._clear(folder, new_name, label, st)
        with contextlib.ExitStack() as stack:
            source = self._open_checked(folder.source, name, _READ_FLAGS, st, label)
            stack.callback(os.close, source)
            flags = _REWRITE_FLAGS if rewrite else _CREATE_FLAGS
            target = os.open(new_name, flags, 0o600, dir_fd=folder.target)
            stack.callback(os.close, target)

            if rewrite:
                _require_regular(target, self.action, label)
                os.ftruncate(target, 0)
            copy_stream(source, target, sparse=True)
            self._keep_metadata(target, source, st, label, not rewrite)

    def _copy_symlink(
        self, folder: _Folder, name: str, new_name: str, label: str, st: os.stat_result
    ) -> None:
        link_target = os.readlink(name, dir_fd=folder.source)
        self._clear(folder, new_name, label, st)
        os.symlink(link_target, new_name, dir_fd=folder.target)
        self._keep_entry_metadata(folder, name, new_name, label, st)

    def _copy_special(
        self, folder: _Folder, name: str, new_name: str, label: str, st: os.stat_result
    ) -> None:
        """Recreate a FIFO, socket or device node; it is never opened."""
        self._clear(folder, new_name, label, st)
        os.mknod(new_name, stat.S_IFMT(st.st_mode) | 0o600, st.st_rdev, dir_fd=folder.target)
        self._keep_entry_metadata(folder, name, new_name, label, st)
        # After chown, which clears the set-user-ID and set-group-ID bits. The name is what
        # mknod just made, not a symlink (chmod cannot refuse to follow one on Linux).
        os.chmod(new_name, self._mode(st, created=True), dir_fd=folder.target)

    def _link_again(self, folder: _Folder, new_name: str, label: str, st: os.stat_result) -> bool:
        first = self._copies.get((st.st_dev, st.st_ino))
        if first is None:
            return False
        self._clear(folder, new_name, label, st)
        os.link(first, new_name, dst_dir_fd=folder.target, follow_symlinks=False)
        return True

    def _open_checked(self, folder: int, name: str, flags: int, st: os.stat_result,
                      label: str) -> int:  # fmt: skip
        """Open an entry by name, making sure it is the one stat'ed (not swapped meanwhile)."""
        fd = os.open(name, flags, dir_fd=folder)
        opened = os.fstat(fd)
        if (opened.st_dev, opened.st_ino) != (st.st_dev, st.st_ino):
            os.close(fd)
            raise GuestFileError(f"{self.action} {label}: changed while being copied")
        return fd

    def _mode(self, st: os.stat_result, created: bool) -> int:
        if self.rules.mode or not created:
            return stat.S_IMODE(st.st_mode)
        return stat.S_IMODE(st.st_mode) & 0o777 & ~UMASK

    def _keep_metadata(
        self, target: int, source: int, st: os.stat_result, label: str, created: bool
    ) -> None:
        """Owner, mode, xattrs and times of an open file or folder."""
        if self.rules.owner:
            self._tolerate(label, "owner", os.fchown, target, st.st_uid, st.st_gid)
        if self.rules.mode or created:
            # After chown, which clears the set-user-ID and set-group-ID bits.
            os.fchmod(target, self._mode(st, created))
        if self.rules.xattrs:
            self._copy_xattrs(source, target, label)
        if self.rules.times:
            os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))

    def _keep_entry_metadata(
        self, folder: _Folder, name: str, new_name: str, label: str, st: os.stat_result
    ) -> None:
        """Owner, xattrs and times of a symlink or special file, by name, never followed."""
        target = {"dir_fd": folder.target, "follow_symlinks": False}
        if self.rules.owner:
            self._tolerate(label, "owner", os.chown, new_name, st.st_uid, st.st_gid, **target)
        if self.rules.xattrs:
            self._copy_xattrs(_fd_path(folder.source, name), _fd_path(folder.target, new_name),
                              label)  # fmt: skip
        if self.rules.times:
            times = (st.st_atime_ns, st.st_mtime_ns)
            self._tolerate(label, "times", os.utime, new_name, ns=times, **target)

    def _copy_xattrs(self, source: int | str, target: int | str, label: str) -> None:
        # Descriptors follow nothing; /proc/self/fd/N/name paths are read without following.
        follow = isinstance(source, int)
        try:
            names = os.listxattr(source, follow_symlinks=follow)
        except OSError as e:
            if e.errno not in _TOLERATED_XATTR:
                raise
            return
        for name in names:
            try:
                value = os.getxattr(source, name, follow_symlinks=follow)
                os.setxattr(target, name, value, follow_symlinks=follow)
            except OSError as e:
                if e.errno not in _TOLERATED_XATTR:
                    raise
                self._lose(label, f"extended attribute {name}", e)

    def _tolerate(
        self, label: str, what: str, call: Callable[..., object], *args: object, **kw: object
    ) -> None:
        try:
            call(*args, **kw)
        except OSError as e:
            if e.errno not in _TOLERATED:
                raise
            self._lose(label, what, e)

    def _lose(self, label: str, what: str, error: OSError) -> None:
        self._lost.append(f"{what} of {label} ({error.strerror})")
        log.debug("%s %s: %s not kept", self.action, label, what, exc_info=True)


def _lstat_at(folder: int, name: str) -> os.stat_result | None:
    try:
        return os.stat(name, dir_fd=folder, follow_symlinks=False)
    except FileNotFoundError:
        return None


def _refuse_same(old: os.stat_result, st: os.stat_result, action: str, label: str) -> None:
    if (old.st_dev, old.st_ino) == (st.st_dev, st.st_ino):
        raise GuestFileError(f"{action} {label}: source and destination are the same file")


def _require_regular(fd: int, action: str, label: str) -> None:
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        raise GuestFileError(f"{action} {label}: the destination is not a regular file")


def _fd_path(folder: int, name: str) -> str:
    return f"/proc/self/fd/{folder}/{name}"


def _close(folder: _Folder) -> None:
    for fd in {folder.source, folder.target}:
        with contextlib.suppress(OSError):
            os.close(fd)
