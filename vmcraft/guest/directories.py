"""Creating and removing guest folders and files: libguestfs's ``mkdir``, ``mkdir_mode``,
``mkdtemp``, ``rmdir``, ``rm``, ``rm_f`` and ``rm_rf``.

A guest is untrusted: every call resolves its path inside the guest, a final symlink is
never followed (``rm`` of a link removes the link), and refuses a read-only filesystem
before it touches anything. ``rm_rf`` removes a tree through folder file descriptors,
opening each subfolder with ``O_NOFOLLOW`` relative to its parent, so a link to a host
folder inside the tree is unlinked and never entered, whatever happens meanwhile.
"""

from __future__ import annotations

import os
import secrets
import stat
import string
from dataclasses import dataclass

from vmcraft.errors import GuestFileError, GuestPathError
from vmcraft.guest.files import GuestTree, guest_errors
from vmcraft.guest.paths import check_guest_path, host_to_guest
from vmcraft.mounts import mounts_below

DEFAULT_UMASK = 0o022  # libguestfs's default (its ``umask`` call)
MKDIR_MODE = 0o777  # what mkdir(1) and libguestfs's mkdir ask for, before the umask
MKDIR_MODE_BITS = 0o1777  # mkdir(2) on Linux keeps the sticky bit, drops set-id bits
TEMP_MODE = 0o700  # mkdtemp(3)
TEMPLATE_SUFFIX = "XXXXXX"
TEMP_ATTEMPTS = 100  # names tried before mkdtemp gives up
_TEMP_ALPHABET = string.ascii_letters + string.digits
_FOLDER_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC


def mkdir(tree: GuestTree, path: str, umask: int = DEFAULT_UMASK) -> None:
    """Create one guest folder, mode 0777 less the umask (libguestfs ``mkdir``)."""
    mkdir_mode(tree, path, MKDIR_MODE, umask)


def mkdir_mode(tree: GuestTree, path: str, mode: int, umask: int = DEFAULT_UMASK) -> None:
    """Create one guest folder with ``mode & ~umask & 01777`` (libguestfs ``mkdir_mode``).

    The mode is set explicitly, so the calling process's umask plays no part; a set-group-ID
    bit inherited from the parent folder is kept, as mkdir(2) keeps it.
    """
    action = "cannot create folder"
    if mode < 0:
        raise GuestFileError(f"{action} {path}: mode {mode} is negative")
    host = tree.writable(action, path, follow_final=False)

    with guest_errors(action, path):
        os.mkdir(host, TEMP_MODE)
        _set_folder_mode(host, mode & ~umask & MKDIR_MODE_BITS)


def _set_folder_mode(host: str, mode: int) -> None:
    fd = os.open(host, _FOLDER_FLAGS)
    try:
        inherited = os.fstat(fd).st_mode & stat.S_ISGID
        os.fchmod(fd, mode | inherited)
    finally:
        os.close(fd)


def mkdtemp(tree: GuestTree, tmpl: str) -> str:
    """Create a new guest folder, mode 0700, from a template ending in ``XXXXXX``.

    Returns:
        The guest path of the folder: the template with ``XXXXXX`` replaced.

    Raises:
        GuestPathError: The template is not an absolute path ending in ``XXXXXX``.
    """
    action = "cannot create a temporary folder from"
    check_guest_path(tmpl)
    if not tmpl.endswith(TEMPLATE_SUFFIX):
        raise GuestPathError(f"{action} {tmpl}: the template must end with {TEMPLATE_SUFFIX}")
    stem = tmpl.removesuffix(TEMPLATE_SUFFIX)

    for _ in range(TEMP_ATTEMPTS):
        candidate = stem + "".join(secrets.choice(_TEMP_ALPHABET) for _ in TEMPLATE_SUFFIX)
        if _make_temp_folder(tree, action, candidate):
            return candidate
    raise GuestFileError(f"{action} {tmpl}: {TEMP_ATTEMPTS} names were all taken")


def _make_temp_folder(tree: GuestTree, action: str, candidate: str) -> bool:
    host = tree.writable(action, candidate, follow_final=False)
    with guest_errors(action, candidate):
        try:
            os.mkdir(host, TEMP_MODE)
        except FileExistsError:
            return False
        _set_folder_mode(host, TEMP_MODE)
    return True


def rmdir(tree: GuestTree, path: str) -> None:
    """Remove one empty guest folder (libguestfs ``rmdir``); a symlink is not a folder."""
    action = "cannot remove folder"
    host = tree.writable(action, path, follow_final=False)
    _refuse_root(tree, action, path, host)
    with guest_errors(action, path):
        os.rmdir(host)


def rm(tree: GuestTree, path: str) -> None:
    """Remove one guest file, or a symlink itself (libguestfs ``rm``); not a folder."""
    _remove_file(tree, path, missing_ok=False)


def rm_f(tree: GuestTree, path: str) -> None:
    """Like :func:`rm`, but nothing there is fine (libguestfs ``rm_f``, as ``rm -f``)."""
    _remove_file(tree, path, missing_ok=True)


def _remove_file(tree: GuestTree, path: str, missing_ok: bool) -> None:
    action = "cannot remove"
    host = tree.writable(action, path, follow_final=False)
    with guest_errors(action, path):
        try:
            os.unlink(host)
        except (FileNotFoundError, NotADirectoryError):
            # rm -f (coreutils 9.1) ignores both: a file below a non-folder is not there.
            if not missing_ok:
                raise


def rm_rf(tree: GuestTree, path: str) -> None:
    """Remove a guest path and, for a folder, all below it (libguestfs ``rm_rf``).

    As ``rm -rf``: nothing there is fine, and filesystems mounted below are emptied too
    (their mountpoints then cannot go: busy). Symlinks are removed, never followed, the
    final one included. The guest's root cannot be removed, as in libguestfs.

    Raises:
        ReadOnlyError: The path, or a filesystem mounted below it, is read-only; nothing
            was removed.
        GuestFileError: The path names the guest's root, or a removal failed.
    """
    action = "cannot remove"
    host = tree.writable(action, path, follow_final=False)
    _refuse_root(tree, action, path, host)
    with guest_errors(action, path):
        try:
            mode = os.lstat(host).st_mode
        except (FileNotFoundError, NotADirectoryError):
            return

    if not stat.S_ISDIR(mode):
        _remove_file(tree, path, missing_ok=True)
        return
    _refuse_read_only_mounts_below(tree, action, path, host)
    _remove_tree(host, host_to_guest(tree.root, host))


def _refuse_root(tree: GuestTree, action: str, path: str, host: str) -> None:
    if host == tree.root:
        raise GuestFileError(f"{action} {path}: it is the guest's root directory")


def _refuse_read_only_mounts_below(tree: GuestTree, action: str, path: str, host: str) -> None:
    top = os.path.realpath(host)
    for mount in mounts_below(host):
        if mount.target != top:
            below = path.rstrip("/") + "/" + os.path.relpath(mount.target, top)
            tree.writable(action, below, follow_final=False)


@dataclass
class _Folder:
    """A folder being emptied: its files are gone, its subfolders still to do."""

    name: str  # in its parent
    guest_path: str
    identity: tuple[int, int]  # st_dev, st_ino
    subfolders: list[str]


def _remove_tree(host: str, path: str) -> None:
    """Remove a folder and everything below it, depth first, without recursion."""
    with guest_errors("cannot remove", path):
        cursor = _Cursor(os.open(os.path.dirname(host), _FOLDER_FLAGS))
    try:
        top_identity = cursor.identity()
        stack = [cursor.down(os.path.basename(host), path)]
        while stack:
            folder = stack[-1]
            if folder.subfolders:
                name = folder.subfolders.pop()
                stack.append(cursor.down(name, f"{folder.guest_path.rstrip('/')}/{name}"))
                continue

            stack.pop()
            cursor.up_removing(folder, stack[-1].identity if stack else top_identity)
    finally:
        cursor.close()


class _Cursor:
    """The one open folder of a tree removal.

    Going down opens a subfolder by name relative to it with ``O_NOFOLLOW``; going up opens
    ``..`` and checks it is the folder that was left. Only one folder is open at a time, so
    neither the stack nor the fd limit bounds the depth of a guest's tree.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def identity(self) -> tuple[int, int]:
        result = os.fstat(self.fd)
        return result.st_dev, result.st_ino

    def down(self, name: str, guest_path: str) -> _Folder:
        """Enter a subfolder and unlink every non-folder in it."""
        with guest_errors("cannot remove", guest_path):
            child = os.open(name, _FOLDER_FLAGS, dir_fd=self.fd)
            try:
                subfolders = _unlink_files(child)
            except BaseException:
                os.close(child)
                raise
        self._move_to(child)
        return _Folder(name, guest_path, self.identity(), subfolders)

    def up_removing(self, folder: _Folder, parent: tuple[int, int]) -> None:
        """Go up from an emptied folder to its parent, and remove it."""
        with guest_errors("cannot remove", folder.guest_path):
            self._move_to(os.open("..", _FOLDER_FLAGS, dir_fd=self.fd))
            if self.identity() != parent:
                raise GuestFileError(f"cannot remove {folder.guest_path}: it moved meanwhile")
            os.rmdir(folder.name, dir_fd=self.fd)

    def _move_to(self, fd: int) -> None:
        old, self.fd = self.fd, fd
        os.close(old)

    def close(self) -> None:
        os.close(self.fd)


def _unlink_files(fd: int) -> list[str]:
    """Unlink every entry of an open folder that is not a folder; return the folders."""
    folders = []
    with os.scandir(fd) as found:
        for entry in found:
            if entry.is_dir(follow_symlinks=False):
                folders.append(entry.name)
            else:
                os.unlink(entry.name, dir_fd=fd)
    return folders
