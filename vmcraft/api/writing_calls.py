"""libguestfs's calls that create, fill, copy and move files."""

from __future__ import annotations

from vmcraft.api.files import FileCalls


class WritingCalls(FileCalls):
    """libguestfs's calls that create, fill, copy and move files."""
