"""libguestfs's reading calls: read_lines, head, tail, grep, checksum, file, du, statvfs.

The handle only translates: each call resolves nothing itself and hands the guest's tree
to :mod:`vmcraft.guest.reading`, which keeps libguestfs's names, argument order and return
shapes. libguestfs's optional arguments are keywords here.
"""

from __future__ import annotations

from vmcraft.api.files import FileCalls
from vmcraft.errors import DeviceNotFoundError
from vmcraft.guest import reading
from vmcraft.volumes.devices import GuestDevice


class ReadingCalls(FileCalls):
    """libguestfs's reading calls: read_lines, head, tail, grep, checksum, file, du, statvfs."""

    def read_lines(self, path: str) -> list[str]:
        """A guest file's lines, without their LF or CRLF.

        Raises:
            GuestFileNotFoundError: No such file.
            GuestFileError: It is not a regular file.
        """
        return reading.read_lines(self._tree("read_lines"), path)

    def head(self, path: str) -> list[str]:
        """The first 10 lines of a guest file."""
        return reading.head(self._tree("head"), path)

    def head_n(self, nrlines: int, path: str) -> list[str]:
        """The first lines of a guest file, as ``head -n nrlines``.

        Args:
            nrlines: Positive: that many lines. Negative: all but the last ``-nrlines``.
            path: The guest file.
        """
        return reading.head_n(self._tree("head_n"), nrlines, path)

    def tail(self, path: str) -> list[str]:
        """The last 10 lines of a guest file."""
        return reading.tail(self._tree("tail"), path)

    def tail_n(self, nrlines: int, path: str) -> list[str]:
        """The last lines of a guest file, as ``tail -n nrlines``.

        Args:
            nrlines: Positive: the last that many lines. Negative: from line ``-nrlines``
                (counting from 1) to the end, as ``tail -n +N``.
            path: The guest file.
        """
        return reading.tail_n(self._tree("tail_n"), nrlines, path)

    def grep(
        self,
        regex: str,
        path: str,
        *,
        extended: bool = False,
        fixed: bool = False,
        insensitive: bool = False,
        compressed: bool = False,
    ) -> list[str]:
        """The lines of a guest file that match a regex, as ``grep``.

        Args:
            regex: A basic regex (each line of it one pattern).
            path: The guest file.
            extended: An extended regex (``grep -E``).
            fixed: A plain string (``grep -F``).
            insensitive: Ignore ASCII case (``grep -i``).
            compressed: Look inside gzip, bzip2 or xz data (``zgrep``).

        Raises:
            GuestFileError: The regex is invalid, or ``extended`` and ``fixed`` are both set.
        """
        return reading.grep(
            self._tree("grep"),
            regex,
            path,
            extended=extended,
            fixed=fixed,
            insensitive=insensitive,
            compressed=compressed,
        )

    def checksum(self, csumtype: str, path: str) -> str:
        """The checksum of a guest file.

        Args:
            csumtype: crc (POSIX ``cksum``, in decimal), md5, sha1, sha224, sha256, sha384
                or sha512 (lowercase hex).
            path: The guest file.
        """
        return reading.checksum(self._tree("checksum"), csumtype, path)

    def checksums_out(self, csumtype: str, directory: str, sumsfile: str) -> None:
        """Write the checksums of the regular files below a guest folder to a host file.

        Args:
            csumtype: As for :meth:`checksum`.
            directory: The guest folder.
            sumsfile: The host file to write, in ``md5sum`` (or ``cksum``) format.
        """
        reading.checksums_out(self._tree("checksums_out"), csumtype, directory, sumsfile)

    def file(self, path: str) -> str:
        """What a guest path is: ``directory``, ``symbolic link``, or ``file``'s description.

        As in libguestfs, a name of one of the guest's devices (``/dev/sda1``,
        ``/dev/vg0/root``) describes what the device holds, and needs no mount.

        Raises:
            DeviceNotFoundError: ``path`` names a guest device this host cannot map.
        """
        self._require_ready("file")
        device = self._guest_device_named(path)
        if device is None:
            return reading.file(self._tree("file"), path)
        if not device.host_path:
            raise DeviceNotFoundError(f"file: {path}: {device.unmapped_reason}")
        return reading.device_file(device.host_path, path)

    def _guest_device_named(self, name: str) -> GuestDevice | None:
        # A guest's own /dev/null stays a path; so does a host path such as /dev/loop0.
        if not name.startswith("/dev/"):
            return None
        try:
            device = self._device(name)
        except DeviceNotFoundError:
            return None
        return device if name == device.name or name.startswith("/dev/mapper/") else None

    def filesize(self, path: str) -> int:
        """The size in bytes of a guest file."""
        return reading.filesize(self._tree("filesize"), path)

    def du(self, path: str) -> int:
        """Disk space used by a guest path and everything below it, in KiB (``du -s``)."""
        return reading.du(self._tree("du"), path)

    def statvfs(self, path: str) -> dict[str, int]:
        """Statistics of the filesystem holding a guest path, keyed as statvfs(3) without f_."""
        return reading.statvfs(self._tree("statvfs"), path)
