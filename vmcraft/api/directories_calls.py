"""libguestfs's directory and link calls: listing, finding, creating, removing, linking.

Each method keeps its libguestfs namesake's name, argument order and return shape
(guestfs(3)) and hands the work to ``vmcraft.guest``; every guest path goes through the
guest's resolver there, and every call that changes something refuses a read-only
filesystem before it touches anything.
"""

from __future__ import annotations

from collections.abc import Sequence

from vmcraft.api.files import FileCalls
from vmcraft.guest import directories, globbing, links, listing
from vmcraft.guest.listing import Dirent


class DirectoryCalls(FileCalls):
    """libguestfs's directory and link calls: listing, finding, creating, removing, linking."""

    def _creation_umask(self) -> int:
        return self._umask

    # ------------------------------------------------------------------ listing

    def ll(self, directory: str) -> str:
        """A guest folder listed as ``ls -la`` does (owners as numbers, times in UTC).

        For people, not for parsing: use :meth:`readdir` or ``lstatnslist`` in programs.
        """
        return listing.ll(self._tree("ll"), directory)

    def ls0(self, dir: str, filename: str) -> None:
        """Write the names in a guest folder to the host file ``filename``, NUL-ended.

        Args:
            dir: Guest folder; ``.`` and ``..`` are left out.
            filename: Host path of the file to write.
        """
        listing.ls0(self._tree("ls0"), dir, filename)

    def find(self, directory: str) -> list[str]:
        """Every name below a guest folder, relative to it, sorted; links are not followed.

        Raises:
            GuestFileNotFoundError: No such folder.
            GuestFileError: ``directory`` is not a folder.
        """
        return listing.find(self._tree("find"), directory)

    def find0(self, directory: str, files: str) -> None:
        """Write what :meth:`find` returns to the host file ``files``, NUL-ended, unsorted."""
        listing.find0(self._tree("find0"), directory, files)

    def readdir(self, dir: str) -> list[Dirent]:
        """The entries of a guest folder, ``.`` and ``..`` included, unsorted.

        Returns:
            Dicts with ``name``, ``ino`` and ``ftyp``: one of ``b c d f l r s`` (block,
            char, folder, FIFO, link, regular, socket), ``u`` (unknown) or ``?``.
        """
        return listing.readdir(self._tree("readdir"), dir)

    # ------------------------------------------------------------------ folders and files

    def mkdir(self, path: str) -> None:
        """Create one guest folder, mode 0755 (0777 less the umask).

        Raises:
            ReadOnlyError: Its filesystem is mounted read-only.
            GuestFileError: Something is there already, or the parent is missing.
        """
        directories.mkdir(self._tree("mkdir"), path, self._creation_umask())

    def mkdir_mode(self, path: str, mode: int) -> None:
        """Create one guest folder with ``mode & ~umask & 01777`` (0755 for 0777)."""
        directories.mkdir_mode(self._tree("mkdir_mode"), path, mode, self._creation_umask())

    def mkdtemp(self, tmpl: str) -> str:
        """Create a new guest folder, mode 0700, named from a template ending in XXXXXX.

        Returns:
            The new folder's guest path: ``tmpl`` with ``XXXXXX`` replaced.
        """
        return directories.mkdtemp(self._tree("mkdtemp"), tmpl)

    def rmdir(self, path: str) -> None:
        """Remove one empty guest folder."""
        directories.rmdir(self._tree("rmdir"), path)

    def rm(self, path: str) -> None:
        """Remove one guest file, or a symlink itself; not a folder.

        Raises:
            GuestFileNotFoundError: Nothing is there.
        """
        directories.rm(self._tree("rm"), path)

    def rm_f(self, path: str) -> None:
        """Remove one guest file or symlink; nothing there is fine; not a folder."""
        directories.rm_f(self._tree("rm_f"), path)

    def rm_rf(self, path: str) -> None:
        """Remove a guest path and all below it, never following a symlink (``rm -rf``).

        Raises:
            GuestFileError: ``path`` is the guest's root, or a removal failed.
            ReadOnlyError: A filesystem involved is read-only; nothing was removed.
        """
        directories.rm_rf(self._tree("rm_rf"), path)

    # ------------------------------------------------------------------ links

    def ln(self, target: str, linkname: str) -> None:
        """Make a hard link ``linkname`` to the guest file ``target``."""
        links.ln(self._tree("ln"), target, linkname)

    def ln_f(self, target: str, linkname: str) -> None:
        """Make a hard link, replacing a non-folder at ``linkname``."""
        links.ln_f(self._tree("ln_f"), target, linkname)

    def ln_s(self, target: str, linkname: str) -> None:
        """Make a symlink ``linkname`` holding the string ``target``, stored as given."""
        links.ln_s(self._tree("ln_s"), target, linkname)

    def ln_sf(self, target: str, linkname: str) -> None:
        """Make a symlink holding ``target``, replacing a non-folder at ``linkname``."""
        links.ln_sf(self._tree("ln_sf"), target, linkname)

    def readlink(self, path: str) -> str:
        """The target string of a guest symlink.

        Raises:
            GuestFileNotFoundError: Nothing is there.
            GuestFileError: It is not a symlink.
        """
        return links.readlink(self._tree("readlink"), path)

    def readlinklist(self, path: str, names: Sequence[str]) -> list[str]:
        """The targets of the symlinks ``names`` in the guest folder ``path``.

        Returns:
            One string a name, in order; ``""`` for a name that is not a readable link.
        """
        return links.readlinklist(self._tree("readlinklist"), path, names)

    def realpath(self, path: str) -> str:
        """The guest path ``path`` names, with ``.``, ``..`` and symlinks resolved inside
        the guest.

        Raises:
            GuestFileNotFoundError: Nothing is there.
        """
        return links.realpath(self._tree("realpath"), path)

    # ------------------------------------------------------------------ patterns

    def glob_expand(self, pattern: str, directoryslash: bool = True) -> list[str]:
        """The guest paths matching a wildcard pattern; ``[]`` when none do.

        Args:
            pattern: Absolute guest path with ``* ? [...]`` and ``{a,b}``.
            directoryslash: End folders' paths with ``/``.
        """
        return globbing.glob_expand(self._tree("glob_expand"), pattern, directoryslash)

    def case_sensitive_path(self, path: str) -> str:
        """A guest path with each component spelt as the guest's folder spells it.

        A missing final component is kept as given; a missing folder before it raises.
        For Windows paths read from the registry, on NTFS.

        Raises:
            GuestFileNotFoundError: A folder on the way is missing.
        """
        return globbing.case_sensitive_path(self._tree("case_sensitive_path"), path)
