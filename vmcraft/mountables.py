"""Mountable names: a guest device, or a btrfs subvolume on one (libguestfs's ``btrfsvol:``).

libguestfs names a btrfs subvolume ``btrfsvol:/dev/sda2/@home`` wherever it takes or returns
something mountable (``mount``, ``vfs_type``, ``inspect_get_mountpoints``), so that one string
says both which device to mount and which subvolume to show. Every layer that meets such a
name splits it here, the same way.
"""

from __future__ import annotations

from collections.abc import Iterable

BTRFSVOL_PREFIX = "btrfsvol:"


def btrfsvol(device: str, subvolume: str) -> str:
    """libguestfs's name for a btrfs subvolume: ``btrfsvol:/dev/sda2/@home``.

    The subvolume is kept as fstab spells it: ``subvol=/@home`` gives ``.../sda2//@home``,
    as it does in libguestfs, so that both tools name a guest's mountpoints alike.
    """
    return f"{BTRFSVOL_PREFIX}{device}/{subvolume}"


def split_btrfsvol(mountable: str, devices: Iterable[str]) -> tuple[str, str | None]:
    """``btrfsvol:/dev/sda2/@home`` → (``/dev/sda2``, ``@home``); a device → (device, None).

    Args:
        mountable: A device name or a ``btrfsvol:`` name.
        devices: The guest's device names, to tell ``/dev/VG/LV/SUBVOL`` apart.
    """
    if not mountable.startswith(BTRFSVOL_PREFIX):
        return mountable, None
    rest = mountable.removeprefix(BTRFSVOL_PREFIX)
    owners = [d for d in devices if rest.startswith(d + "/")]
    if not owners:
        return rest, None
    device = max(owners, key=len)
    return device, rest[len(device) + 1 :]
