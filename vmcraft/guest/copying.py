"""The guest file calls that copy and move: cp, cp_a, cp_r, mv, rename, copy_in, copy_out.

Each keeps the name, argument order and meaning of its libguestfs namesake (guestfs(3)):
``cp``, ``cp_a``, ``cp_r`` and ``mv`` act as ``cp``, ``cp -a``, ``cp -rP`` and ``mv`` do
(a destination that is a folder receives the source under its own name); ``rename`` is
rename(2), with no fallback across filesystems; ``copy_in`` and ``copy_out`` copy a tree
into or out of the guest as tar would, numeric owners, modes, times, xattrs and hard links
kept. Guest paths go through the resolver; below them the trees are walked by
:class:`~vmcraft.guest.tree_copy.TreeCopy`, which never follows a symlink, so a guest's
link to a host path is copied as a link. Host paths are the caller's and used as given.
"""

from __future__ import annotations

import errno
import os
import posixpath
import shutil
import stat

from vmcraft.errors import GuestFileError, GuestPathError
from vmcraft.guest.files import GuestTree, guest_errors
from vmcraft.guest.tree_copy import ARCHIVE, PLAIN, TO_HOST, CopyRules, TreeCopy


def cp(tree: GuestTree, src: str, dest: str) -> None:
    """Copy a regular file (a final symlink followed inside the guest), as ``cp``.

    An existing destination file is rewritten in place, keeping its owner and mode; a new
    one gets the source's permission bits less 022.
    """
    _copy_within(tree, src, dest, PLAIN, follow_src=True)


def cp_a(tree: GuestTree, src: str, dest: str) -> None:
    """Copy a file or tree keeping owners, modes, times, xattrs and links, as ``cp -a``."""
    _copy_within(tree, src, dest, ARCHIVE, follow_src=False)


def cp_r(tree: GuestTree, src: str, dest: str) -> None:
    """Copy a file or tree, symlinks as symlinks, keeping no metadata, as ``cp -rP``."""
    _copy_within(tree, src, dest, PLAIN, follow_src=False)


def mv(tree: GuestTree, src: str, dest: str) -> None:
    """Move a file or tree (a final symlink itself), as ``mv``.

    Across filesystems the source is copied as by ``cp -a``, then removed.
    """
    source = tree.writable("cannot move", src, follow_final=False)
    parent, name = _destination(tree, "cannot move", src, dest, follow_final=False)
    target = os.path.join(parent, name)
    _refuse_into_itself(source, target, src, dest, "cannot move")

    with guest_errors("cannot move", src):
        try:
            os.rename(source, target)
        except OSError as e:
            if e.errno != errno.EXDEV:
                raise
            _move_across(source, parent, name, src)


def rename(tree: GuestTree, oldpath: str, newpath: str) -> None:
    """Rename a file on the same filesystem, as rename(2); symlinks are not followed.

    Raises:
        GuestFileError: The two paths lie on different filesystems, among others.
    """
    old = tree.writable("cannot rename", oldpath, follow_final=False)
    new = tree.writable("cannot rename", newpath, follow_final=False)
    with guest_errors("cannot rename", oldpath):
        os.rename(old, new)


def copy_in(tree: GuestTree, localpath: str, remotedir: str) -> None:
    """Copy a host file or tree into an existing guest folder, as tar would.

    A symlink at ``localpath`` or below is copied as a symlink. Owners are kept as numeric
    uid and gid, with modes, times, extended attributes and hard links.
    """
    target = tree.writable("cannot copy in", remotedir)
    _require_folder(target, remotedir, "cannot copy in")
    parent, name = os.path.split(os.path.abspath(localpath))
    if not name:
        raise GuestFileError(f"cannot copy in {localpath}: the host's root is not copied")
    _copy(parent, target, name, localpath, rules=ARCHIVE, action="cannot copy in",
          source_name=name)  # fmt: skip


def copy_out(tree: GuestTree, remotepath: str, localdir: str) -> None:
    """Copy a guest file or tree into an existing host folder, as tar would.

    ``remotepath`` itself is followed inside the guest; below it symlinks are copied as
    symlinks, whatever they point at. Device nodes are skipped (logged): on the host they
    would open the host's devices. Owners are kept as numeric uid and gid, with modes,
    times, extended attributes and hard links.
    """
    source = tree.resolve(remotepath)
    with guest_errors("cannot copy out", remotepath):
        kind = stat.S_IFMT(os.lstat(source).st_mode)
        if kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise GuestFileError(f"cannot copy out {remotepath}: not a file or directory")
    _require_folder(localdir, localdir, "cannot copy out to")

    parent, name = localdir, posixpath.basename(remotepath.rstrip("/"))
    if not name:  # the guest's root: its contents go straight into localdir
        parent, name = os.path.split(os.path.abspath(localdir))
    _copy(source, parent, name, remotepath, rules=TO_HOST, action="cannot copy out")


def _copy_within(
    tree: GuestTree, src: str, dest: str, rules: CopyRules, *, follow_src: bool
) -> None:
    """Copy inside the guest; ``follow_src``: only a regular file, a final link followed."""
    parent, name = _destination(tree, "cannot copy", src, dest, follow_final=True)
    source = tree.resolve(src, follow_final=follow_src)
    if follow_src:
        with guest_errors("cannot copy", src):
            if not stat.S_ISREG(os.lstat(source).st_mode):
                raise GuestFileError(f"cannot copy {src}: not a regular file")

    _refuse_into_itself(source, os.path.join(parent, name), src, dest, "cannot copy")
    _copy(source, parent, name, src, rules=rules, action="cannot copy")


def _destination(
    tree: GuestTree, action: str, src: str, dest: str, *, follow_final: bool
) -> tuple[str, str]:
    """The host folder and name a copy or move of ``src`` to ``dest`` lands at.

    A folder at ``dest`` (followed inside the guest) receives ``src`` under its own name.
    """
    found = tree.writable(action, dest)
    if _is_folder(found):
        name = posixpath.basename(src.rstrip("/"))
        if not name:
            raise GuestPathError(f"{action} {src}: the guest's root has no name to copy as")
        return found, name

    target = found if follow_final else tree.writable(action, dest, follow_final=False)
    parent, name = os.path.split(target)
    if not name:
        raise GuestPathError(f"{action} {src} to {dest}: no name to copy as")
    return parent, name


def _refuse_into_itself(source: str, target: str, src: str, dest: str, action: str) -> None:
    if target == source or target.startswith(source.rstrip("/") + "/"):
        raise GuestFileError(f"{action} {src} to {dest}: that is inside {src} itself")


def _copy(
    source: str,
    target_parent: str,
    target_name: str,
    label: str,
    *,
    rules: CopyRules,
    action: str,
    source_name: str | None = None,
) -> None:
    """Copy ``source`` (or ``source/source_name``) to ``target_parent/target_name``."""
    if source_name is None:
        source, source_name = os.path.split(source)
    TreeCopy(rules, action).run(source, source_name, target_parent, target_name, label)


def _move_across(source: str, parent: str, name: str, src: str) -> None:
    """Copy as ``cp -a`` to another filesystem, then remove the source, as mv does.

    A copy that fails half-way is removed again, unless something was there before it.
    """
    target = os.path.join(parent, name)
    existed = os.path.lexists(target)
    try:
        _copy(source, parent, name, src, rules=ARCHIVE, action="cannot move")
    except BaseException:
        if not existed and os.path.lexists(target):
            _remove(target, src)
        raise
    _remove(source, src)


def _require_folder(host: str, path: str, action: str) -> None:
    with guest_errors(action, path):
        if not stat.S_ISDIR(os.stat(host).st_mode):
            raise GuestFileError(f"{action} {path}: not a directory")


def _remove(host: str, path: str) -> None:
    """Remove what a cross-filesystem move copied, never following a symlink."""
    if not _is_folder(host):
        os.unlink(host)
        return
    if not shutil.rmtree.avoids_symlink_attacks:
        raise GuestFileError(f"cannot move {path}: this platform's rmtree may follow links")
    shutil.rmtree(host)


def _is_folder(host: str) -> bool:
    try:
        return stat.S_ISDIR(os.lstat(host).st_mode)
    except FileNotFoundError:
        return False
