"""Guest paths to host paths, never leaving the guest.

A guest's symlinks are written for the guest's own root: ``/etc/passwd-link -> /etc/shadow``
means the guest's shadow file, and ``../../..`` stops at the guest's ``/``. The host kernel
would follow both out of the mounted tree, so every path is walked here one component at a
time, each symlink read and resolved against the guest root, before the host touches it.
"""

from __future__ import annotations

import errno
import os
import posixpath
import stat

from vmcraft.errors import GuestPathError, SymlinkLoopError

MAX_SYMLINKS = 40
"""Symlinks followed in one resolution before giving up, as Linux does (ELOOP)."""


def check_guest_path(path: str) -> str:
    """Make sure ``path`` is an absolute guest path without NUL bytes.

    Raises:
        GuestPathError: It is not.
    """
    if not isinstance(path, str):
        raise GuestPathError(f"guest path must be a string, not {type(path).__name__}")
    if "\0" in path:
        raise GuestPathError(f"guest path {path!r} contains a NUL byte")
    if not path.startswith("/"):
        raise GuestPathError(f"guest path {path!r} is not absolute")
    return path


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c and c != "."]


def resolve_guest_path(
    root: str, path: str, follow_final: bool = True, *, slash_names_folder: bool = True
) -> str:
    """Map a guest path to the host path under ``root`` that it names inside the guest.

    ``..`` never climbs above the guest's ``/``, and symlinks (absolute or relative) are
    resolved against the guest root. Components that do not exist are kept as they are, so a
    path to a file about to be created resolves too. A path ending in ``/`` or ``/.`` names
    a folder, as in POSIX: its final symlink is followed, and where a non-folder is found
    the host path keeps a trailing ``/``, so that the kernel refuses it (ENOTDIR).

    Args:
        root: Host folder where the guest's ``/`` is mounted.
        path: Absolute guest path.
        follow_final: Follow a symlink in the last component (False for lstat, unlink...).
        slash_names_folder: Give a trailing ``/`` its POSIX meaning (False: ignore it, so
            that a call that changes ``/link/`` changes the link, never what it points to).

    Returns:
        A host path that is ``root`` or lies below it.

    Raises:
        GuestPathError: The path is malformed, or resolving it meets too many symlinks.
    """
    check_guest_path(path)
    resolved: list[str] = []
    pending = _components(path)
    followed = 0
    folder_only = slash_names_folder and bool(pending) and path.endswith(("/", "/."))
    follow_final = follow_final or folder_only

    while pending:
        name = pending.pop(0)
        if name == "..":
            if resolved:
                resolved.pop()
            continue

        host = os.path.join(root, *resolved, name)
        is_final = not pending
        if is_final and not follow_final:
            resolved.append(name)
            break

        target = _link_target(host)
        if target is None:
            resolved.append(name)
            continue

        followed += 1
        if followed > MAX_SYMLINKS:
            raise SymlinkLoopError(
                f"cannot resolve guest path {path}: too many levels of symbolic links"
            ) from OSError(errno.ELOOP, os.strerror(errno.ELOOP))
        if target.startswith("/"):
            resolved = []
        pending = _components(target) + pending

    host = os.path.join(root, *resolved) if resolved else root
    return _as_folder(host) if folder_only else host


def _as_folder(host: str) -> str:
    try:
        st = os.lstat(host)
    except OSError:
        return host  # missing: the call that uses it reports that, or creates a folder
    return host if stat.S_ISDIR(st.st_mode) else host + "/"


def _link_target(host: str) -> str | None:
    try:
        st = os.lstat(host)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISLNK(st.st_mode):
        return None
    return os.readlink(host)


def host_to_guest(root: str, host: str) -> str:
    """The guest path of a host path below ``root`` (for messages and listings)."""
    relative = os.path.relpath(host, root)
    return "/" if relative == "." else posixpath.join("/", relative)
