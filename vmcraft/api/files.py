"""File calls of the handle, each going through the guest-path resolver."""

from __future__ import annotations

import os
import stat

from vmcraft.api.base import HandleBase
from vmcraft.guest import metadata
from vmcraft.guest.files import GuestTree


class FileCalls(HandleBase):
    """The first of libguestfs's file calls: reading, writing, listing."""

    def _tree(self, call: str) -> GuestTree:
        self._require_ready(call)
        return GuestTree(self._root, self._root_mounted, self._readonly_at)

    def _root_mounted(self) -> bool:
        with self._mount_lock:
            return any(m.mountpoint == "/" for m in self._mounts)

    def _readonly_at(self, host_path: str) -> bool:
        with self._mount_lock:
            holders = [
                m for m in self._mounts
                if host_path == m.mounted.target
                or host_path.startswith(m.mounted.target.rstrip("/") + os.sep)
            ]  # fmt: skip
        if not holders:
            return True
        deepest = max(holders, key=lambda m: len(m.mounted.target))
        return deepest.mounted.readonly

    def exists(self, path: str) -> bool:
        """Whether anything is at a guest path; a final symlink, dangling or not, counts.

        Raises:
            SymlinkLoopError: A folder on the way is a link that loops.
        """
        return metadata.exists(self._tree("exists"), path)

    def is_file(self, path: str, followsymlinks: bool = False) -> bool:
        """Whether a guest path is a regular file (a link to one only with followsymlinks).

        Raises:
            SymlinkLoopError: The path loops (a final link only with followsymlinks).
        """
        return metadata.has_type(self._tree("is_file"), path, stat.S_IFREG, followsymlinks)

    def is_dir(self, path: str, followsymlinks: bool = False) -> bool:
        """Whether a guest path is a folder (a link to one only with followsymlinks).

        Raises:
            SymlinkLoopError: The path loops (a final link only with followsymlinks).
        """
        return metadata.has_type(self._tree("is_dir"), path, stat.S_IFDIR, followsymlinks)

    def cat(self, path: str) -> str:
        """A guest file's content as text.

        Raises:
            GuestFileNotFoundError: No such file.
        """
        return self._tree("cat").cat(path)

    def read_file(self, path: str) -> bytes:
        """A guest file's content as bytes."""
        return self._tree("read_file").read_file(path)

    def write(self, path: str, content: bytes | str) -> None:
        """Create or replace a guest file atomically, keeping an old file's mode and owner.

        Raises:
            ReadOnlyError: The file's filesystem is mounted read-only.
        """
        self._tree("write").write(path, content)

    def ls(self, directory: str) -> list[str]:
        """The names in a guest folder, sorted."""
        return self._tree("ls").ls(directory)

    def mkdir_p(self, path: str) -> None:
        """Create a guest folder and any missing parents."""
        self._tree("mkdir_p").mkdir_p(path)
