"""Guest device names, and the map from them to what the host kernel can use.

The user sees devices as libguestfs names them (``/dev/sda``, ``/dev/sda5``, ``/dev/VG/LV``)
whatever backend carries them; the host's own node for the same device (``/dev/loop3p1``,
``/dev/nbd0p1``) is accepted as an alias so that older scripts keep working.
"""

from __future__ import annotations

import os
import re
import string
from dataclasses import dataclass

from vmcraft.errors import DeviceNotFoundError

_PARTITION_NAME = re.compile(r"^(/dev/sd[a-z]+)(\d+)$")


def drive_name(index: int) -> str:
    """The guest name of drive ``index``: sda..sdz, then sdaa, sdab, ... as Linux counts."""
    letters = ""
    n = index + 1
    while n:
        n, rem = divmod(n - 1, 26)
        letters = string.ascii_lowercase[rem] + letters
    return f"/dev/sd{letters}"


def split_partition_name(name: str) -> tuple[str, int] | None:
    """Split ``/dev/sda5`` into (``/dev/sda``, 5); None if it names no partition."""
    match = _PARTITION_NAME.match(name)
    if not match:
        return None
    return match.group(1), int(match.group(2))


@dataclass
class GuestDevice:
    """One block device of the guest and where the host can reach it.

    ``host_path`` is empty for a device that cannot be mapped on this host; ``unmapped_reason``
    says why (a striped LV without device-mapper, say).
    """

    name: str
    host_path: str
    kind: str  # "disk", "partition" or "lv"
    size: int
    readonly: bool
    disk: str | None = None
    partnum: int | None = None
    part_type: str | None = None
    extended: bool = False
    unmapped_reason: str | None = None


class DeviceMap:
    """Every guest device of a handle, found by guest name or by host alias."""

    def __init__(self) -> None:
        self._by_name: dict[str, GuestDevice] = {}
        self._by_host: dict[str, GuestDevice] = {}

    def add(self, device: GuestDevice) -> None:
        self._by_name[device.name] = device
        if device.host_path:
            self._by_host[device.host_path] = device
            self._by_host[os.path.realpath(device.host_path)] = device

    def remove_if(self, kind: str) -> None:
        """Forget every device of one kind (LVs, before they are scanned again)."""
        for name in [n for n, d in self._by_name.items() if d.kind == kind]:
            device = self._by_name.pop(name)
            self._by_host = {h: d for h, d in self._by_host.items() if d is not device}

    def find(self, name: str) -> GuestDevice:
        """Look a device up by guest name, ``/dev/mapper/VG-LV`` or host path.

        Raises:
            DeviceNotFoundError: Nothing of this guest has that name.
        """
        device = self._by_name.get(name) or self._by_host.get(name)
        if device is None and name.startswith("/dev/mapper/"):
            device = self._by_name.get(_mapper_to_lv(name))
        if device is None and os.path.exists(name):
            device = self._by_host.get(os.path.realpath(name))
        if device is None:
            raise DeviceNotFoundError(f"{name}: no such device in this guest")
        return device

    def of_kind(self, kind: str) -> list[GuestDevice]:
        return sorted((d for d in self._by_name.values() if d.kind == kind), key=_sort_key)

    def all(self) -> list[GuestDevice]:
        return sorted(self._by_name.values(), key=_sort_key)


def _sort_key(device: GuestDevice) -> tuple[int, str, int]:
    disk = device.disk or device.name
    return (len(disk), disk, device.partnum or 0)


def _mapper_to_lv(name: str) -> str:
    # device-mapper doubles a dash inside VG and LV names: vg--a-lv--b is vg-a/lv-b.
    base = name.removeprefix("/dev/mapper/")
    parts = re.split(r"(?<!-)-(?!-)", base, maxsplit=1)
    if len(parts) != 2:
        return name
    vg, lv = (p.replace("--", "-") for p in parts)
    return f"/dev/{vg}/{lv}"
