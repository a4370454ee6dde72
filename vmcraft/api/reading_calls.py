"""libguestfs's reading calls: read_lines, head, tail, grep, checksum, file, du, statvfs."""

from __future__ import annotations

from vmcraft.api.files import FileCalls


class ReadingCalls(FileCalls):
    """libguestfs's reading calls: read_lines, head, tail, grep, checksum, file, du, statvfs."""
