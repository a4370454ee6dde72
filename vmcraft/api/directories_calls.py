"""libguestfs's directory and link calls: listing, finding, creating, removing, linking."""

from __future__ import annotations

from vmcraft.api.files import FileCalls


class DirectoryCalls(FileCalls):
    """libguestfs's directory and link calls: listing, finding, creating, removing, linking."""
