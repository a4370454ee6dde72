"""Tolerant reads of a guest's files for inspection.

Inspection looks at files a guest may have broken in any way: a release file that is a
symlink loop, a folder where a file should be, a hostname file of 3 GB. None of that may
stop inspection, so these helpers answer "no such file" (``None`` or ``False``) instead of
raising, and log a warning when the cause is more than a plain absence.

The type tests mirror libguestfs's ``is_file``/``is_dir``: they do not follow a symlink in
the last component unless asked to, while the folders above it are always resolved inside
the guest.
"""

from __future__ import annotations

import logging
import os
import stat

from vmcraft.errors import GuestFileError
from vmcraft.guest.files import GuestTree

log = logging.getLogger(__name__)

MAX_SMALL_FILE_SIZE = 2 * 1024 * 1024
"""Largest configuration or release file read whole; bigger ones are ignored."""


def _warn_unreadable(path: str, error: BaseException) -> None:
    log.warning("inspection skips %s: %s", path, error)
    log.debug("cannot use %s", path, exc_info=error)


def _stat(tree: GuestTree, path: str, follow: bool) -> os.stat_result | None:
    try:
        host = tree.resolve(path, follow_final=follow)
        return os.stat(host) if follow else os.lstat(host)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except (GuestFileError, OSError) as e:
        _warn_unreadable(path, e)
        return None


def is_file(tree: GuestTree, path: str, follow: bool = True) -> bool:
    """Whether ``path`` is a regular file (after its final symlink, if ``follow``)."""
    st = _stat(tree, path, follow)
    return st is not None and stat.S_ISREG(st.st_mode)


def is_dir(tree: GuestTree, path: str, follow: bool = False) -> bool:
    """Whether ``path`` is a folder (after its final symlink, if ``follow``)."""
    st = _stat(tree, path, follow)
    return st is not None and stat.S_ISDIR(st.st_mode)


def read_link(tree: GuestTree, path: str) -> str | None:
    """The target of the symlink ``path`` as stored, or None when it is no symlink."""
    st = _stat(tree, path, follow=False)
    if st is None or not stat.S_ISLNK(st.st_mode):
        return None

    try:
        return os.readlink(tree.resolve(path, follow_final=False))
    except OSError as e:
        _warn_unreadable(path, e)
        return None


def read_small_file(tree: GuestTree, path: str) -> str | None:
    """The text of a small regular file, or None when it is missing, odd or too large.

    Bytes that are not UTF-8 become U+FFFD, so a corrupt file still yields what it can.
    """
    st = _stat(tree, path, follow=True)
    if st is None:
        return None
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_SMALL_FILE_SIZE:
        log.warning("inspection skips %s: not a regular file or too large", path)
        return None

    try:
        data = tree.read_file(path)
    except (GuestFileError, OSError) as e:
        _warn_unreadable(path, e)
        return None
    return data.decode("utf-8", errors="replace")


def read_file_head(tree: GuestTree, path: str, size: int) -> bytes | None:
    """The first ``size`` bytes (or fewer) of a regular file, or None when unreadable."""
    if not is_file(tree, path):
        return None

    try:
        with open(tree.resolve(path), "rb") as f:
            return f.read(size)
    except (GuestFileError, OSError) as e:
        _warn_unreadable(path, e)
        return None
