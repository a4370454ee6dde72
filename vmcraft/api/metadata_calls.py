"""libguestfs's metadata calls: stat, ownership, modes, times, xattrs, file types.

Each method keeps its libguestfs namesake's name, argument order and return shape
(guestfs(3)) and hands the work to ``vmcraft.guest``'s metadata, ownership, xattrs,
attributes and nodes modules, which reach the guest only through its ``GuestTree``.
"""

from __future__ import annotations

import stat as st
from collections.abc import Sequence

from vmcraft.api.files import FileCalls
from vmcraft.guest import attributes, metadata, nodes, ownership, xattrs
from vmcraft.guest.xattrs import XAttr


class MetadataCalls(FileCalls):
    """libguestfs's metadata calls: stat, ownership, modes, times, xattrs, file types."""

    # ---------------------------------------------------------------- stat

    def statns(self, path: str) -> dict[str, int]:
        """stat(2) of a guest path, following links inside the guest.

        Returns:
            libguestfs's ``statns`` fields: ``st_dev``, ``st_ino``, ``st_mode``...
            ``st_atime_sec``, ``st_atime_nsec``..., ``st_spare1``..``st_spare6`` (0).

        Raises:
            GuestFileNotFoundError: Nothing is there.
            SymlinkLoopError: The path loops.
        """
        return metadata.statns(self._tree("statns"), path)

    def lstatns(self, path: str) -> dict[str, int]:
        """Like :meth:`statns`, but a final symlink describes itself."""
        return metadata.lstatns(self._tree("lstatns"), path)

    def stat(self, path: str) -> dict[str, int]:
        """Deprecated :meth:`statns`: ``dev``, ``ino``... ``atime`` in whole seconds."""
        return metadata.stat(self._tree("stat"), path)

    def lstat(self, path: str) -> dict[str, int]:
        """Deprecated :meth:`lstatns`, in :meth:`stat`'s shape."""
        return metadata.lstat(self._tree("lstat"), path)

    def lstatnslist(self, path: str, names: Sequence[str]) -> list[dict[str, int]]:
        """:meth:`lstatns` of each name in a guest folder.

        Returns:
            One dict per name, in order; ``st_ino`` is -1 (the rest 0) for a name that
            does not exist or cannot be lstat'd.

        Raises:
            GuestFileError: ``path`` is not a folder.
        """
        return metadata.lstatnslist(self._tree("lstatnslist"), path, names)

    def lstatlist(self, path: str, names: Sequence[str]) -> list[dict[str, int]]:
        """Deprecated :meth:`lstatnslist`, in :meth:`stat`'s shape (``ino`` -1 if missing)."""
        return metadata.lstatlist(self._tree("lstatlist"), path, names)

    # ---------------------------------------------------------------- file types

    def is_symlink(self, path: str) -> bool:
        """Whether a guest path is a symbolic link (False if nothing is there)."""
        return metadata.has_type(self._tree("is_symlink"), path, st.S_IFLNK)

    def is_blockdev(self, path: str, followsymlinks: bool = False) -> bool:
        """Whether a guest path is a block device node (of the guest's, never the host's).

        Args:
            followsymlinks: A link (or chain of links) ending at one counts too.
        """
        return metadata.has_type(self._tree("is_blockdev"), path, st.S_IFBLK, followsymlinks)

    def is_chardev(self, path: str, followsymlinks: bool = False) -> bool:
        """Whether a guest path is a character device node; see :meth:`is_blockdev`."""
        return metadata.has_type(self._tree("is_chardev"), path, st.S_IFCHR, followsymlinks)

    def is_fifo(self, path: str, followsymlinks: bool = False) -> bool:
        """Whether a guest path is a FIFO; see :meth:`is_blockdev`."""
        return metadata.has_type(self._tree("is_fifo"), path, st.S_IFIFO, followsymlinks)

    def is_socket(self, path: str, followsymlinks: bool = False) -> bool:
        """Whether a guest path is a Unix socket; see :meth:`is_blockdev`."""
        return metadata.has_type(self._tree("is_socket"), path, st.S_IFSOCK, followsymlinks)

    def is_zero(self, path: str) -> bool:
        """Whether a guest file is empty or all zero bytes (streamed, holes skipped).

        Raises:
            GuestFileNotFoundError: No such file.
            GuestFileError: Not a regular file.
        """
        return metadata.is_zero(self._tree("is_zero"), path)

    # ---------------------------------------------------------------- owners and times

    def chmod(self, mode: int, path: str) -> None:
        """Set a guest file's permission bits (no umask, as chmod(2)), following links.

        Raises:
            ReadOnlyError: Its filesystem is mounted read-only.
        """
        ownership.chmod(self._tree("chmod"), mode, path)

    def chown(self, owner: int, group: int, path: str) -> None:
        """Set a guest file's numeric owner and group (-1 keeps one), following links."""
        ownership.chown(self._tree("chown"), owner, group, path)

    def lchown(self, owner: int, group: int, path: str) -> None:
        """Like :meth:`chown`, but a final symlink is changed itself."""
        ownership.lchown(self._tree("lchown"), owner, group, path)

    def utimens(self, path: str, atsecs: int, atnsecs: int, mtsecs: int, mtnsecs: int) -> None:
        """Set access and modification times; a final symlink gets them itself.

        Args:
            atnsecs: Nanoseconds, or -1 (now) or -2 (leave the atime as it is).
            mtnsecs: Likewise for the mtime.
        """
        ownership.utimens(self._tree("utimens"), path, (atsecs, atnsecs), (mtsecs, mtnsecs))

    # ---------------------------------------------------------------- extended attributes

    def getxattrs(self, path: str) -> list[XAttr]:
        """A guest file's extended attributes: ``{"attrname": str, "attrval": bytes}``."""
        return xattrs.getxattrs(self._tree("getxattrs"), path)

    def lgetxattrs(self, path: str) -> list[XAttr]:
        """Like :meth:`getxattrs`, but of a final symlink itself."""
        return xattrs.getxattrs(self._tree("lgetxattrs"), path, follow=False)

    def setxattr(self, xattr: str, val: bytes | str, vallen: int, path: str) -> None:
        """Set extended attribute ``xattr`` to the first ``vallen`` bytes of ``val``."""
        xattrs.setxattr(self._tree("setxattr"), xattr, val, vallen, path)

    def lsetxattr(self, xattr: str, val: bytes | str, vallen: int, path: str) -> None:
        """Like :meth:`setxattr`, but on a final symlink itself."""
        xattrs.setxattr(self._tree("lsetxattr"), xattr, val, vallen, path, follow=False)

    def removexattr(self, xattr: str, path: str) -> None:
        """Remove extended attribute ``xattr`` of a guest file."""
        xattrs.removexattr(self._tree("removexattr"), xattr, path)

    def lremovexattr(self, xattr: str, path: str) -> None:
        """Like :meth:`removexattr`, but of a final symlink itself."""
        xattrs.removexattr(self._tree("lremovexattr"), xattr, path, follow=False)

    # ---------------------------------------------------------------- ext2 attributes

    def get_e2attrs(self, file: str) -> str:
        """The lsattr letters set on a guest file or folder, sorted (``""`` when none).

        Raises:
            GuestFileError: A symlink or special file, or a filesystem without such flags.
        """
        return attributes.get_e2attrs(self._tree("get_e2attrs"), file)

    def set_e2attrs(self, file: str, attrs: str, clear: bool = False) -> None:
        """Set the chattr letters ``attrs`` on a guest file, or clear them with ``clear``."""
        attributes.set_e2attrs(self._tree("set_e2attrs"), file, attrs, clear)

    # ---------------------------------------------------------------- umask and nodes

    def umask(self, mask: int) -> int:
        """Set the umask the handle applies to what it creates; returns the previous one.

        Raises:
            GuestFileError: ``mask`` is outside 0..0o777.
        """
        previous = self.get_umask()
        self._umask = nodes.check_umask(mask)
        return previous

    def get_umask(self) -> int:
        """The handle's umask (0o022 until :meth:`umask` changes it)."""
        return self._umask

    def mknod(self, mode: int, devmajor: int, devminor: int, path: str) -> None:
        """Make a device node, FIFO or socket (type bits in ``mode``), less the umask.

        Raises:
            GuestFileError: A bad mode, or ``path`` exists (a symlink there is not followed).
        """
        nodes.mknod(self._tree("mknod"), mode, devmajor, devminor, path, umask=self.get_umask())

    def mknod_b(self, mode: int, devmajor: int, devminor: int, path: str) -> None:
        """Make a block device node; ``mode`` holds permission bits only."""
        self._mknod_typed("mknod_b", st.S_IFBLK, mode, path, (devmajor, devminor))

    def mknod_c(self, mode: int, devmajor: int, devminor: int, path: str) -> None:
        """Make a character device node; ``mode`` holds permission bits only."""
        self._mknod_typed("mknod_c", st.S_IFCHR, mode, path, (devmajor, devminor))

    def mkfifo(self, mode: int, path: str) -> None:
        """Make a FIFO; ``mode`` holds permission bits only."""
        self._mknod_typed("mkfifo", st.S_IFIFO, mode, path, (0, 0))

    def _mknod_typed(
        self, call: str, kind: int, mode: int, path: str, device: tuple[int, int]
    ) -> None:
        umask = self.get_umask()
        nodes.mknod_typed(self._tree(call), kind, mode, path, device=device, umask=umask)
