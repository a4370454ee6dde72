"""libguestfs's calls that create, fill, copy and move files.

The handle only translates: the work is in :mod:`vmcraft.guest.writing` (files written in
place or streamed) and :mod:`vmcraft.guest.copying` (trees copied and moved), which keep
libguestfs's names and argument order. Every call that changes the guest refuses a
read-only mount (``ReadOnlyError``) before it touches anything. Host paths (``filename``,
``localpath``, ``localdir``) are the caller's own and are used as given.
"""

from __future__ import annotations

from vmcraft.api.files import FileCalls
from vmcraft.guest import copying, writing


class WritingCalls(FileCalls):
    """libguestfs's calls that create, fill, copy and move files."""

    def write_append(self, path: str, content: bytes | str) -> None:
        """Append to a guest file, creating it (mode 0644) if missing.

        Raises:
            ReadOnlyError: The file's filesystem is mounted read-only.
            GuestFileError: Something other than a regular file is there.
        """
        writing.write_append(self._tree("write_append"), path, content)

    def touch(self, path: str) -> None:
        """Set a guest file's times to now, or create it empty; regular files only."""
        writing.touch(self._tree("touch"), path)

    def truncate(self, path: str) -> None:
        """Truncate an existing guest file to zero bytes."""
        writing.truncate(self._tree("truncate"), path)

    def truncate_size(self, path: str, size: int) -> None:
        """Truncate an existing guest file to ``size`` bytes, or extend it with a hole.

        Raises:
            GuestFileNotFoundError: The file does not exist.
        """
        writing.truncate_size(self._tree("truncate_size"), path, size)

    def fill(self, c: int, len: int, path: str) -> None:
        """Create or overwrite a guest file with ``len`` bytes of value ``c``.

        Args:
            c: The byte value, 0 to 255.
            len: The number of bytes.
            path: The guest file.
        """
        writing.fill(self._tree("fill"), c, len, path)

    def upload(self, filename: str, remotefilename: str) -> None:
        """Copy a host file (or named pipe) into the guest, replacing the target atomically.

        An existing target keeps its owner and mode; a new one gets mode 0644.
        """
        writing.upload(self._tree("upload"), filename, remotefilename)

    def download(self, remotefilename: str, filename: str) -> None:
        """Copy a guest file to a host file (or named pipe)."""
        writing.download(self._tree("download"), remotefilename, filename)

    def upload_offset(self, filename: str, remotefilename: str, offset: int) -> None:
        """Write a host file's bytes over a guest file from ``offset`` on, in place."""
        writing.upload_offset(self._tree("upload_offset"), filename, remotefilename, offset)

    def download_offset(self, remotefilename: str, filename: str, offset: int, size: int) -> None:
        """Copy ``size`` bytes of a guest file from ``offset`` on to a host file.

        Raises:
            GuestFileError: The range does not lie within the file.
        """
        tree = self._tree("download_offset")
        writing.download_offset(tree, remotefilename, filename, offset, size)

    def cp(self, src: str, dest: str) -> None:
        """Copy a guest file to a file or into a folder, as ``cp``."""
        copying.cp(self._tree("cp"), src, dest)

    def cp_a(self, src: str, dest: str) -> None:
        """Copy a guest file or tree keeping owners, modes, times, xattrs and links (``cp -a``).

        Symlinks are copied as symlinks, never followed.
        """
        copying.cp_a(self._tree("cp_a"), src, dest)

    def cp_r(self, src: str, dest: str) -> None:
        """Copy a guest file or tree without its metadata, symlinks as symlinks (``cp -rP``)."""
        copying.cp_r(self._tree("cp_r"), src, dest)

    def mv(self, src: str, dest: str) -> None:
        """Move a guest file or tree to a path or into a folder, across filesystems too."""
        copying.mv(self._tree("mv"), src, dest)

    def rename(self, oldpath: str, newpath: str) -> None:
        """Rename a guest file within its filesystem (rename(2), no copying fallback).

        Raises:
            GuestFileError: The paths lie on different filesystems, among other causes.
        """
        copying.rename(self._tree("rename"), oldpath, newpath)

    def copy_in(self, localpath: str, remotedir: str) -> None:
        """Copy a host file or tree into an existing guest folder.

        Numeric owners, modes, times, xattrs, hard links and symlinks (as symlinks) are kept.
        """
        copying.copy_in(self._tree("copy_in"), localpath, remotedir)

    def copy_out(self, remotepath: str, localdir: str) -> None:
        """Copy a guest file or tree into an existing host folder.

        Numeric owners, modes, times, xattrs, hard links and symlinks (as symlinks, never
        followed) are kept; device nodes are skipped.
        """
        copying.copy_out(self._tree("copy_out"), remotepath, localdir)
