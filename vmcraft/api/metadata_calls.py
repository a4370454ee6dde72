"""libguestfs's metadata calls: stat, ownership, modes, times, xattrs, file types."""

from __future__ import annotations

from vmcraft.api.files import FileCalls


class MetadataCalls(FileCalls):
    """libguestfs's metadata calls: stat, ownership, modes, times, xattrs, file types."""
