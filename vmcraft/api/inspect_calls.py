"""Inspection calls of the handle: libguestfs's ``inspect_*`` over VMCraft's inspect layer."""

from __future__ import annotations

from vmcraft.api.devices import DeviceCalls
from vmcraft.api.files import FileCalls
from vmcraft.api.mounting import MountCalls


class InspectCalls(DeviceCalls, MountCalls, FileCalls):
    """libguestfs's ``inspect_os`` and ``inspect_get_*`` calls."""
