"""Partition tables read straight from a disk's first and last sectors.

Inspection has to know a guest's partitions before anything is mounted, and asking a host tool
(sfdisk, parted) for them costs a process per disk, ties the answer to that tool's version and
turns a damaged table into an opaque exit status. MBR (with its chain of extended boot records)
and GPT are small fixed formats, so they are parsed here in Python: a hostile or corrupt table
is refused with a reason that names the disk, and a damaged primary GPT falls back to its
backup as firmware would.

Numbers follow Linux's naming, so that partition 5 here is ``/dev/sda5`` in the guest.
"""

from __future__ import annotations

import logging
import os
import struct
import uuid
import zlib
from dataclasses import dataclass

from vmcraft.errors import VolumeError
from vmcraft.units import MIB, SECTOR_SIZE

log = logging.getLogger(__name__)

_BOOT_SIGNATURE = b"\x55\xaa"
_BOOT_SIGNATURE_OFFSET = 510
_DISK_SIGNATURE_OFFSET = 440
_MBR_ENTRIES_OFFSET = 446
_MBR_ENTRY = struct.Struct("<B3sB3sII")
_MBR_ACTIVE = 0x80
_PROTECTIVE_TYPE = 0xEE
_EXTENDED_TYPES = frozenset({0x05, 0x0F, 0x85})
_FIRST_LOGICAL_NUMBER = 5
_MAX_EBR_CHAIN = 128

# A FAT or NTFS boot sector ends in 0x55AA too; these marks tell it from an MBR.
_FILESYSTEM_MARKS = ((0x36, b"FAT"), (0x52, b"FAT32"), (0x03, b"NTFS    "))

_GPT_SIGNATURE = b"EFI PART"
_GPT_HEADER = struct.Struct("<8sIIIIQQQQ16sQIII")
_GPT_HEADER_CRC_OFFSET = 16
_GPT_ENTRY = struct.Struct("<16s16sQQQ72s")
_GPT_LEGACY_BIOS_BOOTABLE = 1 << 2
_GPT_MAX_ENTRY_ARRAY = MIB
_PRIMARY_GPT_LBA = 1


@dataclass(frozen=True)
class Partition:
    """One partition as the table describes it.

    Attributes:
        number: Linux's number: MBR primaries 1-4 by slot, logical partitions from 5 in chain
            order; GPT entry index + 1, empty entries leaving gaps.
        start: Byte offset from the start of the disk.
        size: Length in bytes (for an extended container, the whole container).
        type: MBR type as two lower-case hex digits (``"83"``); GPT type GUID, upper-case.
        uuid: GPT unique partition GUID, upper-case; None for MBR.
        name: GPT partition name; None for MBR.
        bootable: MBR active flag, or the GPT legacy BIOS bootable attribute.
        extended: True for an MBR extended container itself.
    """

    number: int
    start: int
    size: int
    type: str
    uuid: str | None
    name: str | None
    bootable: bool
    extended: bool = False


@dataclass(frozen=True)
class PartitionTable:
    """A disk's partition table.

    Attributes:
        kind: ``"msdos"`` or ``"gpt"``, parted's names for them.
        partitions: Every partition sorted by number, MBR extended containers included.
        disk_id: MBR disk signature as 8 lower-case hex digits, or the GPT disk GUID.
    """

    kind: str
    partitions: tuple[Partition, ...]
    disk_id: str


@dataclass(frozen=True)
class _Disk:
    path: str
    fd: int
    size: int

    @property
    def sectors(self) -> int:
        return self.size // SECTOR_SIZE

    def read(self, lba: int, count: int = 1) -> bytes:
        data = os.pread(self.fd, count * SECTOR_SIZE, lba * SECTOR_SIZE)
        if len(data) < count * SECTOR_SIZE:
            raise VolumeError(f"cannot read sector {lba} of {self.path}: past the end of the disk")
        return data


@dataclass(frozen=True)
class _MbrEntry:
    status: int
    type: int
    start_lba: int
    sectors: int


@dataclass(frozen=True)
class _GptHeader:
    lba: int
    disk_guid: str
    entries_lba: int
    entry_count: int
    entry_size: int
    entries_crc: int

    @property
    def array_size(self) -> int:
        return self.entry_count * self.entry_size

    @property
    def array_sectors(self) -> int:
        return -(-self.array_size // SECTOR_SIZE)


def read_partition_table(path: str) -> PartitionTable | None:
    """Read the MBR or GPT partition table of a disk image or block device.

    Args:
        path: A raw disk image or a block device, opened read-only.

    Returns:
        The table, or None when the disk has none: no 0x55AA signature, a FAT or NTFS boot
        sector on the whole disk, or an MBR whose entries are not plausible.

    Raises:
        VolumeError: The disk cannot be read, both GPT copies are corrupt, or an extended
            partition's chain of boot records loops, runs too long or leaves the disk.
    """
    try:
        with open(path, "rb", buffering=0) as f:
            disk = _Disk(path, f.fileno(), f.seek(0, os.SEEK_END))
            return _read_table(disk)
    except OSError as e:
        raise VolumeError(f"cannot read partition table of {path}: {e.strerror or e}") from e


def find_partition(table: PartitionTable, number: int) -> Partition:
    """Return the partition with Linux number ``number``.

    Args:
        table: A table from :func:`read_partition_table`.
        number: The partition's number, as in ``/dev/sda<number>``.

    Returns:
        The partition.

    Raises:
        VolumeError: The table has no partition of that number.
    """
    for partition in table.partitions:
        if partition.number == number:
            return partition

    raise VolumeError(f"no partition {number} in {table.kind} table of disk {table.disk_id}")


def _read_table(disk: _Disk) -> PartitionTable | None:
    if disk.size < SECTOR_SIZE:
        return None

    mbr = disk.read(0)
    if not _has_boot_signature(mbr) or _is_filesystem_boot_sector(mbr):
        return None

    entries = _mbr_entries(mbr)
    if not all(_is_plausible(entry, disk.sectors) for entry in entries):
        return None

    if any(entry.type == _PROTECTIVE_TYPE for entry in entries):
        return _read_gpt(disk)
    return _read_msdos(disk, mbr, entries)


def _has_boot_signature(sector: bytes) -> bool:
    end = _BOOT_SIGNATURE_OFFSET + len(_BOOT_SIGNATURE)
    return sector[_BOOT_SIGNATURE_OFFSET:end] == _BOOT_SIGNATURE


def _is_filesystem_boot_sector(sector: bytes) -> bool:
    return any(sector[offset : offset + len(mark)] == mark for offset, mark in _FILESYSTEM_MARKS)


def _mbr_entries(sector: bytes) -> list[_MbrEntry]:
    entries = []
    for slot in range(4):
        offset = _MBR_ENTRIES_OFFSET + slot * _MBR_ENTRY.size
        status, _, type_, _, start_lba, sectors = _MBR_ENTRY.unpack_from(sector, offset)
        entries.append(_MbrEntry(status, type_, start_lba, sectors))
    return entries


def _is_plausible(entry: _MbrEntry, disk_sectors: int) -> bool:
    if entry.status not in (0x00, _MBR_ACTIVE):
        return False

    if entry.type == 0:
        return True
    if entry.sectors == 0 or entry.start_lba == 0:
        return False

    # The protective entry may claim 0xFFFFFFFF sectors whatever the disk's size.
    return entry.type == _PROTECTIVE_TYPE or entry.start_lba + entry.sectors <= disk_sectors


def _read_msdos(disk: _Disk, mbr: bytes, entries: list[_MbrEntry]) -> PartitionTable:
    partitions = [
        _mbr_partition(entry, slot + 1, 0) for slot, entry in enumerate(entries) if entry.type != 0
    ]

    logicals: list[Partition] = []
    for entry in entries:
        if entry.type in _EXTENDED_TYPES:
            logicals += _read_logicals(disk, entry, _FIRST_LOGICAL_NUMBER + len(logicals))

    (signature,) = struct.unpack_from("<I", mbr, _DISK_SIGNATURE_OFFSET)
    ordered = sorted(partitions + logicals, key=lambda p: p.number)
    return PartitionTable("msdos", tuple(ordered), f"{signature:08x}")


def _mbr_partition(entry: _MbrEntry, number: int, base_lba: int) -> Partition:
    return Partition(
        number=number,
        start=(base_lba + entry.start_lba) * SECTOR_SIZE,
        size=entry.sectors * SECTOR_SIZE,
        type=f"{entry.type:02x}",
        uuid=None,
        name=None,
        bootable=entry.status == _MBR_ACTIVE,
        extended=entry.type in _EXTENDED_TYPES,
    )


def _read_logicals(disk: _Disk, container: _MbrEntry, first_number: int) -> list[Partition]:
    """Follow one extended partition's chain of EBRs, numbering its logical partitions."""
    logicals: list[Partition] = []
    visited: set[int] = set()
    ebr_lba: int | None = container.start_lba

    while ebr_lba is not None:
        _check_chain_link(disk, ebr_lba, visited)
        visited.add(ebr_lba)

        ebr = disk.read(ebr_lba)
        if not _has_boot_signature(ebr):
            log.warning(
                "EBR at sector %d of %s has no 0x55AA signature: chain ends", ebr_lba, disk.path
            )
            break

        data, link = _mbr_entries(ebr)[:2]
        if data.type != 0 and data.sectors != 0 and data.type not in _EXTENDED_TYPES:
            logicals.append(_mbr_partition(data, first_number + len(logicals), ebr_lba))

        # NB: the link is relative to the extended container, the logical to its own EBR.
        is_link = link.type in _EXTENDED_TYPES and link.sectors != 0
        ebr_lba = container.start_lba + link.start_lba if is_link else None

    return logicals


def _check_chain_link(disk: _Disk, ebr_lba: int, visited: set[int]) -> None:
    problem = None
    if ebr_lba in visited:
        problem = f"EBR chain loops back to sector {ebr_lba}"
    elif len(visited) >= _MAX_EBR_CHAIN:
        problem = f"EBR chain longer than {_MAX_EBR_CHAIN} links"
    elif ebr_lba >= disk.sectors:
        problem = f"EBR at sector {ebr_lba} lies past the end of the disk"

    if problem is not None:
        raise VolumeError(f"corrupt extended partition on {disk.path}: {problem}")


def _read_gpt(disk: _Disk) -> PartitionTable:
    try:
        header, entries = _read_gpt_copy(disk, _PRIMARY_GPT_LBA)
    except VolumeError as primary_error:
        header, entries = _read_gpt_backup(disk, primary_error)

    partitions = _gpt_partitions(disk, header, entries)
    return PartitionTable("gpt", partitions, header.disk_guid)


def _read_gpt_backup(disk: _Disk, primary_error: VolumeError) -> tuple[_GptHeader, bytes]:
    backup_lba = disk.sectors - 1
    log.warning(
        "primary GPT header of %s is unusable (%s): reading the backup at LBA %d",
        disk.path,
        primary_error,
        backup_lba,
    )

    try:
        return _read_gpt_copy(disk, backup_lba)
    except VolumeError as e:
        raise VolumeError(
            f"corrupt GPT on {disk.path}: {primary_error} and no valid backup header"
            f" (backup at LBA {backup_lba}: {e})"
        ) from e


def _read_gpt_copy(disk: _Disk, lba: int) -> tuple[_GptHeader, bytes]:
    """Read and check one copy of the GPT; a VolumeError carries the bare reason."""
    if lba < _PRIMARY_GPT_LBA or lba >= disk.sectors:
        raise VolumeError(f"LBA {lba} lies outside the disk")

    header = _parse_gpt_header(disk.read(lba), lba)
    if header.entries_lba + header.array_sectors > disk.sectors:
        raise VolumeError("partition entry array lies past the end of the disk")

    array = disk.read(header.entries_lba, header.array_sectors)[: header.array_size]
    if zlib.crc32(array) != header.entries_crc:
        raise VolumeError("partition entry array CRC mismatch")
    return header, array


def _parse_gpt_header(sector: bytes, lba: int) -> _GptHeader:
    fields = _GPT_HEADER.unpack_from(sector)
    signature, _, header_size, header_crc, _, my_lba = fields[:6]
    if signature != _GPT_SIGNATURE:
        raise VolumeError('no "EFI PART" signature')
    if not _GPT_HEADER.size <= header_size <= SECTOR_SIZE:
        raise VolumeError(f"header size {header_size} out of range")

    crc_end = _GPT_HEADER_CRC_OFFSET + 4
    zeroed = sector[:_GPT_HEADER_CRC_OFFSET] + bytes(4) + sector[crc_end:header_size]
    if zlib.crc32(zeroed) != header_crc:
        raise VolumeError("header CRC mismatch")
    if my_lba != lba:
        raise VolumeError(f"header found at LBA {lba} claims to be at LBA {my_lba}")

    disk_guid, entries_lba, entry_count, entry_size, entries_crc = fields[9:]
    header = _GptHeader(lba, _guid(disk_guid), entries_lba, entry_count, entry_size, entries_crc)
    _check_entry_geometry(header)
    return header


def _check_entry_geometry(header: _GptHeader) -> None:
    size = header.entry_size
    if size < _GPT_ENTRY.size or size & (size - 1):
        raise VolumeError(f"partition entry size {size} is not 128 times a power of two")
    if header.array_size > _GPT_MAX_ENTRY_ARRAY:
        raise VolumeError(f"partition entry array of {header.array_size} bytes is too large")
    if header.entries_lba <= _PRIMARY_GPT_LBA:
        raise VolumeError(f"partition entry array at LBA {header.entries_lba} overlaps the MBR")


def _gpt_partitions(disk: _Disk, header: _GptHeader, array: bytes) -> tuple[Partition, ...]:
    partitions = []
    for index in range(header.entry_count):
        offset = index * header.entry_size
        entry = array[offset : offset + _GPT_ENTRY.size]
        if entry[:16] != bytes(16):
            partitions.append(_gpt_partition(disk, entry, index + 1))
    return tuple(partitions)


def _gpt_partition(disk: _Disk, entry: bytes, number: int) -> Partition:
    type_guid, unique_guid, first_lba, last_lba, attributes, name = _GPT_ENTRY.unpack(entry)
    if last_lba < first_lba:
        raise VolumeError(
            f"corrupt GPT on {disk.path}: partition {number} ends at LBA {last_lba}"
            f" before it starts at LBA {first_lba}"
        )

    return Partition(
        number=number,
        start=first_lba * SECTOR_SIZE,
        size=(last_lba - first_lba + 1) * SECTOR_SIZE,
        type=_guid(type_guid),
        uuid=_guid(unique_guid),
        name=name.decode("utf-16-le", errors="replace").split("\0", 1)[0],
        bootable=bool(attributes & _GPT_LEGACY_BIOS_BOOTABLE),
    )


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw)).upper()
