"""Read LVM2 labels and volume-group metadata straight from the devices.

Asking lvm2 costs about 40 ms a command and scans devices by the host's rules. VMCraft only
needs to list a guest's PVs, VGs and LVs and to map a linear LV to a byte range on its PV, so
this module reads the on-disk structures itself, from exactly the devices it is given:

- the label sector (``LABELONE``, in one of the first four sectors) with the PV header: PV
  uuid, device size, and lists of data areas and metadata areas;
- each metadata area's header sector, whose first raw location points at the committed
  metadata text inside the area's circular buffer;
- that text, in lvm's configuration syntax, which describes the whole VG.

Every checksum lvm keeps is verified. No host tools; nothing is written.
"""

from __future__ import annotations

import logging
import os
import struct
import zlib
from dataclasses import dataclass

from vmcraft.errors import VolumeError
from vmcraft.units import MIB, SECTOR_SIZE
from vmcraft.volumes.lvm_config import ConfigFormatError as _FormatError
from vmcraft.volumes.lvm_config import Section as _Section
from vmcraft.volumes.lvm_config import parse_config

log = logging.getLogger(__name__)

LABEL_ID = b"LABELONE"
LABEL_TYPE = b"LVM2 001"
LABEL_SCAN_SECTORS = 4
MDA_MAGIC = b" LVM2 x[5A%r0N*>"
MDA_VERSION = 1
MDA_HEADER_SIZE = 512
CRC_INITIAL = 0xF597A6CF
RAW_LOCN_IGNORED = 0x1
MAX_METADATA_BYTES = 64 * MIB
"""Refuse metadata text larger than this: lvm's own areas hold a few MiB at most."""

_LABEL_HEADER = struct.Struct("<8sQII8s")  # id, sector, crc, pv_header offset, type
_LABEL_CRC_START = 20  # the label crc covers the sector from its offset field on
_PV_HEADER = struct.Struct("<32sQ")  # uuid, device size
_DISK_LOCN = struct.Struct("<QQ")  # offset, size
_MDA_HEADER = struct.Struct("<I16sIQQ")  # checksum, magic, version, start, size
_RAW_LOCN = struct.Struct("<QQII")  # offset, size, checksum, flags
_UUID_GROUPS = (6, 4, 4, 4, 4, 4, 6)


@dataclass(frozen=True)
class PhysicalVolume:
    """A PV: its label, and where its extents start as its VG's metadata says."""

    device: str
    uuid: str
    size: int
    pe_start: int
    pe_count: int
    vg_name: str | None


@dataclass(frozen=True)
class StripeArea:
    """Where one stripe of a segment starts: a PV and a physical extent on it."""

    pv_uuid: str
    pv_start_extent: int


@dataclass(frozen=True)
class Segment:
    """A run of an LV's extents, of one type; ``stripes`` is empty for types without any."""

    start_extent: int
    extent_count: int
    type: str
    stripes: tuple[StripeArea, ...]


@dataclass(frozen=True)
class LogicalVolume:
    """An LV as the VG metadata describes it; hidden sub-LVs have ``visible`` false."""

    name: str
    vg_name: str
    uuid: str
    size: int
    segments: tuple[Segment, ...]
    status: tuple[str, ...]
    visible: bool

    @property
    def is_linear(self) -> bool:
        """Whether the LV is one contiguous run of extents on one PV."""
        if len(self.segments) != 1:
            return False

        segment = self.segments[0]
        return segment.type == "striped" and len(segment.stripes) == 1


@dataclass(frozen=True)
class VolumeGroup:
    """A VG from its newest metadata, with those of its PVs that were found."""

    name: str
    uuid: str
    extent_size: int
    seqno: int
    pvs: tuple[PhysicalVolume, ...]
    lvs: tuple[LogicalVolume, ...]

    def pv_by_uuid(self, uuid: str) -> PhysicalVolume:
        """Find one of the VG's PVs that was read.

        Args:
            uuid: The PV uuid, dashed or not.

        Returns:
            The PV.

        Raises:
            VolumeError: No PV of this VG with that uuid was among the devices read.
        """
        wanted = uuid.replace("-", "")
        for pv in self.pvs:
            if pv.uuid.replace("-", "") == wanted:
                return pv

        raise VolumeError(f"VG {self.name} has no PV {uuid} among the devices read")

    def linear_extent(self, lv: LogicalVolume) -> tuple[PhysicalVolume, int, int]:
        """Map a linear LV to the bytes that hold it.

        Args:
            lv: One of this VG's LVs.

        Returns:
            The PV, the byte offset of the LV on the PV's device, and the LV's length in bytes.

        Raises:
            VolumeError: The LV is not linear (the message says why) or its PV was not read.
        """
        where = f"LV {lv.vg_name}/{lv.name}"
        if lv.vg_name != self.name:
            raise VolumeError(f"{where} is not in VG {self.name}")
        if len(lv.segments) != 1:
            raise VolumeError(f"{where} has {len(lv.segments)} segments")

        segment = lv.segments[0]
        if segment.type != "striped":
            raise VolumeError(f"{where} is {segment.type}")
        if len(segment.stripes) != 1:
            pvs = len({area.pv_uuid for area in segment.stripes})
            how = (
                f"striped over {pvs} PVs"
                if pvs > 1
                else f"striped {len(segment.stripes)} ways on one PV"
            )
            raise VolumeError(f"{where} is {how}")

        area = segment.stripes[0]
        pv = self.pv_by_uuid(area.pv_uuid)
        offset = pv.pe_start + area.pv_start_extent * self.extent_size
        return pv, offset, segment.extent_count * self.extent_size


@dataclass(frozen=True)
class _Label:
    uuid: str
    size: int
    data_areas: tuple[tuple[int, int], ...]
    metadata_areas: tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class _Metadata:
    """The parsed committed metadata of one VG, as one device holds it."""

    vg_name: str
    vg_uuid: str
    seqno: int
    section: _Section


def read_pv_label(device: str) -> PhysicalVolume | None:
    """Read the LVM2 label of one device, and its VG metadata if it holds any.

    A PV without a metadata area of its own reads as an orphan (``vg_name`` None) even when
    another PV's metadata lists it; :func:`read_volume_groups` sees the whole VG.

    Args:
        device: A block device or image file.

    Returns:
        The PV, or None if the device has no LVM2 label.

    Raises:
        VolumeError: The device cannot be read, or its label or metadata is corrupt.
    """
    label, metadata = _read_device(device)
    if label is None:
        return None
    if metadata is None:
        pe_start = label.data_areas[0][0] if label.data_areas else 0
        return PhysicalVolume(device, label.uuid, label.size, pe_start, 0, None)

    try:
        for pv in _parse_pvs(metadata.section, {label.uuid: (device, label)}, []):
            return pv
    except _FormatError as e:
        raise VolumeError(f"corrupt LVM metadata on {device}: {e}") from e

    cause = f"VG {metadata.vg_name} does not list PV {label.uuid}"
    raise VolumeError(f"corrupt LVM metadata on {device}: {cause}")


def read_volume_groups(devices: list[str]) -> list[VolumeGroup]:
    """Assemble the VGs whose PVs are among the given devices, reading nothing else.

    Each VG comes from the newest metadata (highest seqno) among its PVs. A VG some of whose
    PVs were not given is still returned, with the PVs that were found.

    Args:
        devices: Block devices or image files; those without an LVM2 label are skipped.

    Returns:
        The VGs, sorted by name.

    Raises:
        VolumeError: A device cannot be read, holds corrupt LVM data, or has the same PV
            uuid as another device.
    """
    labels: dict[str, tuple[str, _Label]] = {}
    newest: dict[str, tuple[str, _Metadata]] = {}
    for device in dict.fromkeys(devices):
        label, metadata = _read_device(device)
        if label is None:
            log.debug("%s has no LVM2 label", device)
            continue

        if label.uuid in labels:
            other = labels[label.uuid][0]
            raise VolumeError(f"PV {label.uuid} is on both {other} and {device}")
        labels[label.uuid] = (device, label)

        if metadata is not None:
            known = newest.get(metadata.vg_uuid)
            if known is None or metadata.seqno > known[1].seqno:
                newest[metadata.vg_uuid] = (device, metadata)

    groups = [_assemble(device, metadata, labels) for device, metadata in newest.values()]
    return sorted(groups, key=lambda vg: (vg.name, vg.uuid))


def _assemble(
    device: str, metadata: _Metadata, labels: dict[str, tuple[str, _Label]]
) -> VolumeGroup:
    section = metadata.section
    missing: list[str] = []
    try:
        extent_size = section.integer("extent_size") * SECTOR_SIZE
        pvs = _parse_pvs(section, labels, missing)
        lvs = _parse_lvs(section, metadata.vg_name, extent_size)
    except _FormatError as e:
        raise VolumeError(f"corrupt LVM metadata on {device}: {e}") from e

    if missing:
        log.warning("VG %s: PVs not among the devices read: %s", metadata.vg_name, missing)

    return VolumeGroup(
        metadata.vg_name, metadata.vg_uuid, extent_size, metadata.seqno, pvs, tuple(lvs)
    )


def _parse_pvs(
    vg: _Section, labels: dict[str, tuple[str, _Label]], missing: list[str]
) -> tuple[PhysicalVolume, ...]:
    pvs = []
    for entry in vg.child("physical_volumes").sections.values():
        uuid = _dashed_uuid(entry.text("id"))
        if uuid not in labels:
            missing.append(uuid)
            continue

        device, label = labels[uuid]
        pe_start = entry.integer("pe_start") * SECTOR_SIZE
        pe_count = entry.integer("pe_count")
        pvs.append(PhysicalVolume(device, uuid, label.size, pe_start, pe_count, vg.name))

    return tuple(pvs)


def _parse_lvs(vg: _Section, vg_name: str, extent_size: int) -> list[LogicalVolume]:
    pv_uuids = {
        key: _dashed_uuid(entry.text("id"))
        for key, entry in vg.child("physical_volumes").sections.items()
    }
    lv_sections = vg.sections.get("logical_volumes")
    entries = lv_sections.sections.values() if lv_sections else ()

    lvs = []
    for entry in entries:
        count = entry.integer("segment_count")
        segments = [
            _parse_segment(entry.child(f"segment{i}"), pv_uuids) for i in range(1, count + 1)
        ]
        segments.sort(key=lambda segment: segment.start_extent)
        size = sum(segment.extent_count for segment in segments) * extent_size
        status = entry.strings("status")
        uuid = _dashed_uuid(entry.text("id"))
        lvs.append(
            LogicalVolume(
                entry.name, vg_name, uuid, size, tuple(segments), status, "VISIBLE" in status
            )
        )

    return lvs


def _parse_segment(entry: _Section, pv_uuids: dict[str, str]) -> Segment:
    items = entry.items("stripes") if "stripes" in entry.values else []
    if len(items) % 2:
        raise _FormatError(f"{entry.path}: stripes are not (PV, extent) pairs")

    stripes = []
    for name, start in zip(items[::2], items[1::2], strict=True):
        if not isinstance(name, str) or not isinstance(start, int):
            raise _FormatError(f"{entry.path}: stripes are not (PV, extent) pairs")
        if name not in pv_uuids:
            raise _FormatError(f"{entry.path}: stripe on unknown PV {name}")
        stripes.append(StripeArea(pv_uuids[name], start))

    return Segment(
        entry.integer("start_extent"),
        entry.integer("extent_count"),
        entry.text("type"),
        tuple(stripes),
    )


# -- bytes on the device ---------------------------------------------------------------------


def _read_device(device: str) -> tuple[_Label | None, _Metadata | None]:
    try:
        fd = os.open(device, os.O_RDONLY | os.O_CLOEXEC)
        try:
            label = _read_label(fd)
            return label, _read_metadata(fd, device, label) if label else None
        finally:
            os.close(fd)
    except _FormatError as e:
        raise VolumeError(f"corrupt LVM metadata on {device}: {e}") from e
    except OSError as e:
        raise VolumeError(f"cannot read {device}: {e.strerror}") from e


def _lvm_crc(data: bytes, initial: int = CRC_INITIAL) -> int:
    # NB: lvm's calc_crc is the reflected CRC-32 of zlib without the inversions at both ends.
    return zlib.crc32(data, initial ^ 0xFFFFFFFF) ^ 0xFFFFFFFF


def _pread_exact(fd: int, offset: int, length: int) -> bytes:
    data = os.pread(fd, length, offset)
    if len(data) != length:
        raise _FormatError(f"{length} bytes at offset {offset} lie past the end of the device")
    return data


def _read_label(fd: int) -> _Label | None:
    head = os.pread(fd, LABEL_SCAN_SECTORS * SECTOR_SIZE, 0)
    for index in range(len(head) // SECTOR_SIZE):
        sector = head[index * SECTOR_SIZE : (index + 1) * SECTOR_SIZE]
        label_id, sector_no, crc, offset, label_type = _LABEL_HEADER.unpack_from(sector)
        if label_id != LABEL_ID or sector_no != index:
            continue

        if _lvm_crc(sector[_LABEL_CRC_START:]) != crc:
            raise _FormatError(f"label in sector {index}: checksum mismatch")
        if label_type != LABEL_TYPE:
            log.debug("label of type %r is not LVM2's", label_type)
            return None
        if not _LABEL_HEADER.size <= offset <= SECTOR_SIZE - _PV_HEADER.size:
            raise _FormatError(f"label in sector {index}: PV header offset {offset}")

        return _parse_pv_header(sector, offset)

    return None


def _parse_pv_header(sector: bytes, offset: int) -> _Label:
    raw_uuid, size = _PV_HEADER.unpack_from(sector, offset)
    position = offset + _PV_HEADER.size
    data_areas, position = _parse_disk_locns(sector, position)
    metadata_areas, _ = _parse_disk_locns(sector, position)
    return _Label(
        _dashed_uuid(raw_uuid.decode("ascii", "replace")), size, data_areas, metadata_areas
    )


def _parse_disk_locns(sector: bytes, position: int) -> tuple[tuple[tuple[int, int], ...], int]:
    areas: list[tuple[int, int]] = []
    while position + _DISK_LOCN.size <= len(sector):
        offset, size = _DISK_LOCN.unpack_from(sector, position)
        position += _DISK_LOCN.size
        if offset == 0:
            return tuple(areas), position
        areas.append((offset, size))

    raise _FormatError("PV header: unterminated list of disk areas")


def _dashed_uuid(uuid: str) -> str:
    plain = uuid.replace("-", "")
    if len(plain) != sum(_UUID_GROUPS) or not plain.isascii() or not plain.isalnum():
        raise _FormatError(f"malformed uuid {uuid!r}")

    parts, start = [], 0
    for width in _UUID_GROUPS:
        parts.append(plain[start : start + width])
        start += width
    return "-".join(parts)


def _read_metadata(fd: int, device: str, label: _Label) -> _Metadata | None:
    found: list[_Metadata] = []
    failures: list[_FormatError] = []
    for mda_offset, mda_size in label.metadata_areas:
        try:
            text = _read_metadata_text(fd, mda_offset, mda_size)
            if text is not None:
                found.append(_parse_metadata(text))
        except _FormatError as e:
            failures.append(e)

    if failures and not found:
        raise failures[0]
    if failures:
        # A PV keeps a second copy at its end precisely so that one bad copy is survivable.
        log.warning("%s: using another copy of the LVM metadata: %s", device, failures[0])
    return max(found, key=lambda metadata: metadata.seqno, default=None)


def _read_metadata_text(fd: int, mda_offset: int, mda_size: int) -> str | None:
    header = _pread_exact(fd, mda_offset, MDA_HEADER_SIZE)
    checksum, magic, version, start, size = _MDA_HEADER.unpack_from(header)
    where = f"metadata area at {mda_offset}"
    if _lvm_crc(header[4:]) != checksum:
        raise _FormatError(f"{where}: header checksum mismatch")
    if magic != MDA_MAGIC or version != MDA_VERSION:
        raise _FormatError(f"{where}: bad magic or version {version}")
    if start != mda_offset or size != mda_size:
        raise _FormatError(f"{where}: header describes {size} bytes at {start}")

    # The first raw location is the committed metadata; the second, lvm's precommit slot.
    offset, length, text_crc, flags = _RAW_LOCN.unpack_from(header, _MDA_HEADER.size)
    if offset == 0 or flags & RAW_LOCN_IGNORED:
        return None

    buffer_size = mda_size - MDA_HEADER_SIZE
    if not MDA_HEADER_SIZE <= offset < mda_size or length > min(buffer_size, MAX_METADATA_BYTES):
        raise _FormatError(f"{where}: text of {length} bytes at {offset} does not fit")

    first = min(length, mda_size - offset)
    text = _pread_exact(fd, mda_offset + offset, first)
    if first < length:
        # The buffer is circular: the text wraps around to just after the header.
        text += _pread_exact(fd, mda_offset + MDA_HEADER_SIZE, length - first)
    if _lvm_crc(text) != text_crc:
        raise _FormatError(f"{where}: checksum mismatch")

    return text.rstrip(b"\0").decode("utf-8", "replace")


def _parse_metadata(text: str) -> _Metadata:
    root = parse_config(text)
    groups = [section for section in root.sections.values() if "seqno" in section.values]
    if len(groups) != 1:
        raise _FormatError(f"{len(groups)} volume groups in one metadata text")

    vg = groups[0]
    return _Metadata(vg.name, _dashed_uuid(vg.text("id")), vg.integer("seqno"), vg)
