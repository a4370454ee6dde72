"""Guest links: libguestfs's ``ln``, ``ln_s``, ``ln_f``, ``ln_sf``, ``readlink``,
``readlinklist`` and ``realpath``.

A symlink's target is data: ``ln_s("/etc/shadow", "/x")`` stores that string in the guest
and resolves nothing, so no host file is ever looked at; when the guest later follows it,
the resolver takes it to the guest's own ``/etc/shadow``. Link names and hard-link targets
are resolved inside the guest with the final component not followed, as link(2),
symlink(2) and readlink(2) treat it. ``ln_f`` and ``ln_sf`` make the new link under a
temporary name and rename it over the old one, so the name is never missing.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import secrets
import stat
from collections.abc import Callable, Sequence

from vmcraft.errors import GuestFileError, GuestPathError
from vmcraft.guest.files import GuestTree, guest_errors
from vmcraft.guest.paths import host_to_guest

TEMP_LINK_PREFIX = ".vmcraft-link-"


def ln(tree: GuestTree, target: str, linkname: str) -> None:
    """Make a hard link ``linkname`` to the guest file ``target`` (libguestfs ``ln``).

    A symlink as ``target`` gets the hard link itself (``ln -P``). Where ``linkname`` is a
    folder (not a link to one), the link goes inside it, named as ``target`` is (``ln``).
    """
    _link(tree, target, linkname, _hard_link_maker(tree, target), replace=False)


def ln_f(tree: GuestTree, target: str, linkname: str) -> None:
    """Like :func:`ln`, replacing whatever non-folder is at ``linkname`` (``ln -f``)."""
    _link(tree, target, linkname, _hard_link_maker(tree, target), replace=True)


def ln_s(tree: GuestTree, target: str, linkname: str) -> None:
    """Make a symlink ``linkname`` whose target is the string ``target`` (libguestfs ``ln_s``).

    ``target`` is stored as given, never resolved; it need not exist.
    """
    _link(tree, target, linkname, _symlink_maker(target), replace=False)


def ln_sf(tree: GuestTree, target: str, linkname: str) -> None:
    """Like :func:`ln_s`, replacing whatever non-folder is at ``linkname`` (``ln -sf``)."""
    _link(tree, target, linkname, _symlink_maker(target), replace=True)


def _symlink_maker(target: str) -> Callable[[str], None]:
    if not isinstance(target, str) or not target or "\0" in target:
        raise GuestPathError(f"symlink target {target!r} must be a non-empty string without NUL")
    return lambda host: os.symlink(target, host)


def _hard_link_maker(tree: GuestTree, target: str) -> Callable[[str], None]:
    source = tree.resolve(target, follow_final=False)
    return lambda host: os.link(source, host, follow_symlinks=False)


def _link(
    tree: GuestTree, target: str, linkname: str, make: Callable[[str], None], replace: bool
) -> None:
    action = f"cannot link {target} as"
    guest_path, host = _link_location(tree, action, target, linkname)
    with guest_errors(action, guest_path):
        if replace:
            _replace_with_link(host, guest_path, make)
        else:
            make(host)


def _link_location(tree: GuestTree, action: str, target: str, linkname: str) -> tuple[str, str]:
    """Where the new link goes: ``linkname``, or inside it if it is a real folder."""
    host = tree.writable(action, linkname, follow_final=False)
    with guest_errors(action, linkname):
        existing = _lstat_or_none(host)
    if existing is None or not stat.S_ISDIR(existing.st_mode):
        return linkname, host

    name = posixpath.basename(target.rstrip("/"))
    if name in ("", ".", ".."):
        raise GuestFileError(f"{action} {linkname}: it is a directory")
    inside = f"{linkname.rstrip('/')}/{name}"
    return inside, tree.writable(action, inside, follow_final=False)


def _replace_with_link(host: str, guest_path: str, make: Callable[[str], None]) -> None:
    existing = _lstat_or_none(host)
    if existing is not None and stat.S_ISDIR(existing.st_mode):
        raise GuestFileError(f"cannot replace {guest_path}: it is a directory")

    temp = os.path.join(os.path.dirname(host), TEMP_LINK_PREFIX + secrets.token_hex(8))
    make(temp)
    try:
        if existing is not None and _same_file(existing, os.lstat(temp)):
            os.unlink(temp)  # rename(2) between two links to one inode does nothing
        else:
            os.rename(temp, host)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)
        raise


def _same_file(a: os.stat_result, b: os.stat_result) -> bool:
    return (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)


def _lstat_or_none(host: str) -> os.stat_result | None:
    try:
        return os.lstat(host)
    except FileNotFoundError:
        return None


def readlink(tree: GuestTree, path: str) -> str:
    """The target string of a guest symlink, as stored (libguestfs ``readlink``).

    Raises:
        GuestFileNotFoundError: Nothing is there.
        GuestFileError: It is not a symlink.
    """
    host = tree.resolve(path, follow_final=False)
    with guest_errors("cannot read link", path):
        if not stat.S_ISLNK(os.lstat(host).st_mode):
            raise GuestFileError(f"cannot read link {path}: not a symbolic link")
        return os.readlink(host)


def readlinklist(tree: GuestTree, path: str, names: Sequence[str]) -> list[str]:
    """The targets of the symlinks ``names`` in the guest folder ``path``, in order.

    As in libguestfs, a name that cannot be read as a link (missing, not a link, bad)
    gives ``""`` and the others are still read.
    """
    tree.resolve(path)
    folder = path.rstrip("/")
    return [_target_or_empty(tree, f"{folder}/{name}") for name in names]


def _target_or_empty(tree: GuestTree, path: str) -> str:
    try:
        host = tree.resolve(path, follow_final=False)
        return os.readlink(host)
    except (OSError, GuestPathError):
        return ""


def realpath(tree: GuestTree, path: str) -> str:
    """The guest path that ``path`` names, without ``.``, ``..`` or symlinks in it.

    Symlinks are resolved inside the guest: whatever a link says, the result is a guest
    path (``/up/../../..`` gives ``/``).

    Raises:
        GuestFileNotFoundError: Nothing is at the resolved path.
    """
    host = tree.resolve(path)
    with guest_errors("cannot resolve", path):
        os.lstat(host)
    return host_to_guest(tree.root, host)
