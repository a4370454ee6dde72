"""Device calls of the handle: listing devices, partitions, filesystems and LVM."""

from __future__ import annotations

import functools
import logging
from typing import Any

from vmcraft.api.base import HandleBase
from vmcraft.cache import TTLCache
from vmcraft.errors import DeviceNotFoundError, FilesystemError
from vmcraft.filesystems.btrfs import list_subvolumes
from vmcraft.filesystems.probe import BLKID_TTL_S, BlkidCache
from vmcraft.mountables import btrfsvol, split_btrfsvol
from vmcraft.units import SECTOR_SIZE
from vmcraft.volumes.devices import GuestDevice
from vmcraft.volumes.disk import MappedDisk
from vmcraft.volumes.lvm import LvmMapping
from vmcraft.volumes.partitions import read_partition_table

log = logging.getLogger(__name__)

PARTITION_TTL_S = 60.0
EXTENDED_PARTITION_SIZE = 2 * SECTOR_SIZE
"""NB: Linux (block/partitions/msdos.c) gives an extended partition's node two sectors only,
room for a boot loader and none for a filesystem; libguestfs reports that size."""
_CONTAINER_TYPES = ("crypto_LUKS",)


class DeviceCalls(HandleBase):
    """libguestfs's device calls: ``list_devices``, ``list_filesystems``, ``blkid``..."""

    def __init__(
        self, partition_ttl_s: float = PARTITION_TTL_S, blkid_ttl_s: float = BLKID_TTL_S
    ) -> None:
        super().__init__()
        self._disks: dict[str, MappedDisk] = {}
        self._lvm: LvmMapping | None = None
        self._blkid = BlkidCache(blkid_ttl_s)
        self._partition_cache: TTLCache[str, list[str]] = TTLCache(partition_ttl_s)
        self._subvolume_cache: TTLCache[str, list[str]] = TTLCache(partition_ttl_s)

    def list_devices(self) -> list[str]:
        """The guest's whole disks: ``["/dev/sda", "/dev/sdb"]``."""
        self._require_ready("list_devices")
        return [d.name for d in self._devices.of_kind("disk")]

    def list_partitions(self, use_cache: bool = True) -> list[str]:
        """Every partition of every disk, extended containers included, in disk order."""
        self._require_ready("list_partitions")
        names: list[str] = []
        for disk in self._disks.values():
            names += self._partition_cache.get_or_compute(
                disk.name, functools.partial(_read_partition_names, disk), use_cache
            )
        return names

    def part_to_dev(self, partition: str) -> str:
        """The disk a partition is on: ``/dev/sda1`` → ``/dev/sda``."""
        return self._partition(partition, "part_to_dev").disk or ""

    def part_to_partnum(self, partition: str) -> int:
        """A partition's number: ``/dev/sda5`` → 5."""
        return self._partition(partition, "part_to_partnum").partnum or 0

    def _partition(self, name: str, call: str) -> GuestDevice:
        self._require_ready(call)
        device = self._device(name)
        if device.kind != "partition":
            raise DeviceNotFoundError(f"{call}: {name} is not a partition")
        return device

    def list_filesystems(self) -> dict[str, str]:
        """Every device that may hold a filesystem, mapped to its type.

        Like libguestfs: partitioned disks, extended partitions, LVM PVs and other
        container members are left out; swap is ``"swap"``; an unrecognised device is
        ``"unknown"``; a btrfs's subvolumes other than its default one follow it as
        ``btrfsvol:DEVICE/PATH`` (listing them mounts the btrfs read-only for a moment).
        """
        self._require_ready("list_filesystems")
        found: dict[str, str] = {}
        for device in self._devices.all():
            if device.extended or self._is_partitioned(device):
                continue
            fstype = self._fstype_or_unknown(device)
            if fstype.endswith("_member") or fstype in _CONTAINER_TYPES:
                continue
            found[device.name] = fstype
            if fstype == "btrfs":
                found |= dict.fromkeys(self._subvolumes(device), "btrfs")
        return found

    def _subvolumes(self, device: GuestDevice) -> list[str]:
        """``btrfsvol:`` names of a btrfs's subvolumes other than the default, cached."""

        def compute() -> list[str]:
            try:
                paths = list_subvolumes(device.host_path, self._workdir, device.name)
            except FilesystemError as e:
                log.warning("list_filesystems leaves out the subvolumes of %s: %s", device.name, e)
                return []
            return [btrfsvol(device.name, path) for path in paths]

        return self._subvolume_cache.get_or_compute(device.host_path, compute)

    def _is_partitioned(self, device: GuestDevice) -> bool:
        disk = self._disks.get(device.name)
        return device.kind == "disk" and disk is not None and disk.table is not None

    def _fstype_or_unknown(self, device: GuestDevice) -> str:
        if not device.host_path:
            return "unknown"
        return self._blkid.probe(device.host_path).get("TYPE") or "unknown"

    def pvs(self) -> list[str]:
        """The guest devices that are LVM physical volumes."""
        self._require_ready("pvs")
        return [pv.name for pv in self._lvm.pvs] if self._lvm else []

    def vgs(self) -> list[str]:
        """The guest's volume group names."""
        self._require_ready("vgs")
        return sorted({vg.name for vg in self._lvm.volume_groups}) if self._lvm else []

    def lvs(self) -> list[str]:
        """The guest's logical volumes as ``/dev/VG/LV``."""
        self._require_ready("lvs")
        return [d.name for d in self._devices.of_kind("lv")]

    def blkid(self, device: str, use_cache: bool = True) -> dict[str, str]:
        """blkid's tags for a device (TYPE, UUID, LABEL, PART_ENTRY_*, ...), cached.

        As in libguestfs, ``DEVNAME`` is the device's guest name (``/dev/sda1``, never a
        host alias); a device holding nothing blkid knows gives ``{}``.

        Raises:
            DeviceNotFoundError: ``device`` is not one of the guest's.
        """
        self._require_ready("blkid")
        found = self._device(device)
        if not found.host_path:
            raise DeviceNotFoundError(f"blkid: {device}: {found.unmapped_reason}")
        tags = self._blkid.probe(found.host_path, use_cache)
        return {"DEVNAME": found.name, **tags} if tags else tags

    def vfs_type(self, mountable: str) -> str:
        """The filesystem type of a device or ``btrfsvol:`` subvolume, or ``""``."""
        return self._mountable_tags(mountable).get("TYPE", "")

    def vfs_label(self, mountable: str) -> str:
        """The filesystem label of a device or ``btrfsvol:`` subvolume, or ``""``."""
        return self._mountable_tags(mountable).get("LABEL", "")

    def vfs_uuid(self, mountable: str) -> str:
        """The filesystem UUID of a device or ``btrfsvol:`` subvolume, or ``""``."""
        return self._mountable_tags(mountable).get("UUID", "")

    def _mountable_tags(self, mountable: str) -> dict[str, str]:
        # A subvolume shares its filesystem's type, label and UUID, as in libguestfs.
        self._require_ready("vfs_type")
        device, _ = split_btrfsvol(mountable, (d.name for d in self._devices.all()))
        return self.blkid(device)

    def blockdev_getsize64(self, device: str) -> int:
        """A guest device's size in bytes; an MBR extended partition's is 1024, as in Linux.

        Raises:
            DeviceNotFoundError: ``device`` is not one of the guest's.
        """
        self._require_ready("blockdev_getsize64")
        found = self._device(device)
        if found.extended:
            return min(found.size, EXTENDED_PARTITION_SIZE)
        return found.size

    def invalidate_partition_cache(self, device: str | None = None) -> None:
        """Forget cached partitions and blkid results of ``device`` (None: of every device).

        A disk's name drops what was cached for its partitions too.
        """
        if device is None:
            self._partition_cache.invalidate()
            self._subvolume_cache.invalidate()
            self._blkid.invalidate()
            return
        found = self._device(device)
        disk = found.disk or found.name
        self._partition_cache.invalidate(lambda key: key == disk)
        related = [d.host_path for d in self._devices.all() if d is found or d.disk == found.name]
        self._blkid.invalidate(related)
        self._subvolume_cache.invalidate(lambda key: key in related)

    def get_cache_stats(self) -> dict[str, Any]:
        """Hits, misses and invalidations of the partition and blkid caches, and their TTLs."""
        return {
            "partitions": {
                **self._partition_cache.stats.as_dict(),
                "ttl_s": self._partition_cache.ttl_s,
            },
            "blkid": {**self._blkid.cache.stats.as_dict(), "ttl_s": self._blkid.cache.ttl_s},
        }


def _read_partition_names(disk: MappedDisk) -> list[str]:
    table = read_partition_table(disk.host_path)
    if table is None:
        return []
    return [f"{disk.name}{p.number}" for p in table.partitions]
