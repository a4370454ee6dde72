"""From the device names a guest's fstab uses to the names VMCraft gives the same devices.

A guest names its disks as its own hypervisor showed them (``/dev/vda2`` under KVM,
``/dev/xvda2`` under Xen, ``/dev/hda2`` on old IDE, ``/dev/cciss/c0d0p2`` on HP Smart
Array), by filesystem or partition tags (``UUID=``, ``/dev/disk/by-partuuid/...``), or
through device-mapper (``/dev/mapper/VG-LV``). VMCraft names the same devices as
libguestfs does: ``/dev/sdX``, ``/dev/sdXN`` and ``/dev/VG/LV``. The rules are libguestfs's
(``resolve_fstab_device``): a disk letter is a position among the drives added to the
handle, in order, so ``vdb`` is the second drive whatever its letter on the hypervisor;
a name no rule recognises is kept as written.

Beyond libguestfs: ``/dev/disk/by-label``, ``by-partuuid``, ``by-partlabel`` are resolved
like the matching tags; ``/dev/cciss/cCdDpN`` maps disk D like ``/dev/sdXN`` (libguestfs
keeps it unchanged); a whole-disk name (``/dev/vdb``) maps to that drive when it holds a
filesystem itself.
"""

from __future__ import annotations

import logging
import re
import string
from collections.abc import Mapping
from dataclasses import dataclass

log = logging.getLogger(__name__)

_XDEV = re.compile(r"^/dev/(h|s|v|xv)d([a-z]+)(\d*)$")
_CCISS = re.compile(r"^/dev/cciss/c(\d+)d(\d+)(?:p(\d+))?$")
_BY_ID_OR_PATH = re.compile(r"^/dev/disk/by-(?:id|path)/.*-part(\d+)$")
_FREEBSD_GPT = re.compile(r"^/dev/(?:ada?|vtbd)(\d+)p(\d+)$")
_FREEBSD_MBR = re.compile(r"^/dev/(?:ada?|vtbd)(\d+)s(\d+)([a-z])$")
_NETBSD = re.compile(r"^/dev/[ls]d([0-9])([a-z])$")
_OPENBSD = re.compile(r"^/dev/[sw]d([0-9])([a-z])$")
_HURD = re.compile(r"^/dev/hd(\d+)s(\d+)$")
_PARTITION = re.compile(r"^/dev/sd[a-z]+\d+$")
_UDEV_ESCAPE = re.compile(r"\\x([0-9a-fA-F]{2})")

MAX_GPT_PARTITION = 128
FIRST_BSD_PARTITION = 5
"""BSD disklabel partitions show up on Linux as partitions numbered from 5."""

TAG_KEYS: dict[str, tuple[tuple[str, ...], bool]] = {
    "UUID": (("UUID",), True),
    "LABEL": (("LABEL",), False),
    "PARTUUID": (("PARTUUID", "PART_ENTRY_UUID"), True),
    "PARTLABEL": (("PARTLABEL", "PART_ENTRY_NAME"), False),
}
"""fstab tag → (blkid keys that hold it, whether it compares case-insensitively)."""

BY_TAG_FOLDERS = {
    "/dev/disk/by-uuid/": "UUID",
    "/dev/disk/by-label/": "LABEL",
    "/dev/disk/by-partuuid/": "PARTUUID",
    "/dev/disk/by-partlabel/": "PARTLABEL",
}


@dataclass(frozen=True)
class GuestDevices:
    """The guest's devices as fstab specs are resolved against them.

    Args:
        disks: Whole disks in the order the drives were added (``/dev/sda``, ``/dev/sdb``).
        tags: Every guest device (disks, partitions, LVs) → its blkid tags, upper-case keys.
    """

    disks: tuple[str, ...]
    tags: Mapping[str, Mapping[str, str]]

    def exists(self, name: str) -> bool:
        return name in self.tags

    def is_partition(self, name: str) -> bool:
        return name in self.tags and _PARTITION.match(name) is not None

    def find_tag(self, tag: str, value: str) -> str | None:
        """The first device (in guest order) whose blkid ``tag`` equals ``value``."""
        keys, fold_case = TAG_KEYS[tag]
        wanted = value.lower() if fold_case else value
        for name, tags in self.tags.items():
            for key in keys:
                found = tags.get(key)
                if found is not None and (found.lower() if fold_case else found) == wanted:
                    return name
        return None


def resolve_tag(tag: str, value: str, devices: GuestDevices) -> str | None:
    """``UUID=``, ``LABEL=``, ``PARTUUID=``, ``PARTLABEL=`` → a device, or None.

    An unknown tag, or a value no device has, gives None: libguestfs drops such entries.
    """
    if tag not in TAG_KEYS:
        log.debug("fstab: unknown tag %s=", tag)
        return None
    return devices.find_tag(tag, value)


def drive_index(letters: str) -> int:
    """``a`` → 0, ``z`` → 25, ``aa`` → 26: a disk's position from its letters."""
    index = 0
    for letter in letters:
        index = index * 26 + string.ascii_lowercase.index(letter) + 1
    return index - 1


def resolve_device_path(spec: str, devices: GuestDevices, os_type: str) -> str:
    """A ``/dev/...`` name from fstab → the guest device it means, or ``spec`` unchanged."""
    for rule in _RULES:
        found = rule(spec, devices, os_type)
        if found is not None:
            log.debug("fstab: %s is %s (%s)", spec, found, rule.__name__)
            return found
    return spec


def _mapper_name(spec: str, devices: GuestDevices, os_type: str) -> str | None:
    """``/dev/mapper/VG-LV``: device-mapper doubles every dash inside VG and LV names."""
    if not spec.startswith("/dev/mapper/"):
        return None
    name = spec.removeprefix("/dev/mapper/")
    for match in re.finditer(r"(?<!-)-(?!-)", name):
        vg = name[: match.start()].replace("--", "-")
        lv = name[match.end() :].replace("--", "-")
        candidate = f"/dev/{vg}/{lv}"
        if vg and lv and devices.exists(candidate):
            return candidate
    return None


def _by_tag_folder(spec: str, devices: GuestDevices, os_type: str) -> str | None:
    """``/dev/disk/by-uuid/U`` and its siblings, which udev names after the tags."""
    for folder, tag in BY_TAG_FOLDERS.items():
        if spec.startswith(folder):
            value = _UDEV_ESCAPE.sub(lambda m: chr(int(m[1], 16)), spec.removeprefix(folder))
            return devices.find_tag(tag, value)
    return None


def _xdev(spec: str, devices: GuestDevices, os_type: str) -> str | None:
    """``/dev/hda2``, ``/dev/sda2``, ``/dev/vda2``, ``/dev/xvda2``: by the disk's position."""
    match = _XDEV.match(spec)
    if match is None:
        return None
    return _disk_partition(drive_index(match[2]), match[3], devices)


def _cciss(spec: str, devices: GuestDevices, os_type: str) -> str | None:
    """``/dev/cciss/c0d1p2``: disk 1 of the Smart Array controller, partition 2."""
    match = _CCISS.match(spec)
    if match is None:
        return None
    return _disk_partition(int(match[2]), match[3] or "", devices)


def _by_id_or_path(spec: str, devices: GuestDevices, os_type: str) -> str | None:
    """``/dev/disk/by-id/...-partN``: the disk's identity is lost; right on one-disk guests."""
    match = _BY_ID_OR_PATH.match(spec)
    if match is None or len(devices.disks) != 1:
        return None
    return _disk_partition(0, match[1], devices)


def _freebsd(spec: str, devices: GuestDevices, os_type: str) -> str | None:
    """FreeBSD's ``ada0p2`` (GPT) and ``ada0s1a`` (an MBR slice's disklabel partitions)."""
    match = _FREEBSD_GPT.match(spec)
    if match is not None:
        partition = int(match[2])
        return _bsd_disk(int(match[1]), partition) if partition <= MAX_GPT_PARTITION else None

    match = _FREEBSD_MBR.match(spec)
    if match is None or int(match[2]) != 1:
        return None  # NB: libguestfs maps only the first slice, as here
    letter = _letter_number(match[3])
    letter = letter - 1 if letter > 2 else letter  # "c" is the whole slice
    return _bsd_label_partition(int(match[1]), letter, 25)


def _netbsd(spec: str, devices: GuestDevices, os_type: str) -> str | None:
    match = _NETBSD.match(spec)
    if os_type != "netbsd" or match is None:
        return None
    letter = _letter_number(match[2])
    letter = letter - 2 if letter > 3 else letter  # "c" is the label, "d" the disk
    return _bsd_label_partition(int(match[1]), letter, 24)


def _openbsd(spec: str, devices: GuestDevices, os_type: str) -> str | None:
    match = _OPENBSD.match(spec)
    if os_type != "openbsd" or match is None:
        return None
    letter = _letter_number(match[2])
    letter = letter - 1 if letter > 2 else letter  # "c" is the whole disk
    return _bsd_label_partition(int(match[1]), letter, 15)


def _hurd(spec: str, devices: GuestDevices, os_type: str) -> str | None:
    """The Hurd's ``/dev/hd0s1``: disk 0, partition 1."""
    match = _HURD.match(spec)
    if match is None:
        return None
    return _disk_partition(int(match[1]), match[2], devices)


def _letter_number(letter: str) -> int:
    return ord(letter) - ord("a")


def _bsd_label_partition(disk: int, letter: int, partitions: int) -> str | None:
    """A disklabel partition (counted from 0) as Linux numbers it, from 5 on."""
    if not 0 <= letter < partitions:
        return None
    return _bsd_disk(disk, letter + FIRST_BSD_PARTITION)


def _bsd_disk(disk: int, partition: int) -> str | None:
    # NB: no check that the partition exists: libguestfs trusts the BSD name.
    if not 0 <= disk < len(string.ascii_lowercase):
        return None
    return f"/dev/sd{string.ascii_lowercase[disk]}{partition}"


def _disk_partition(index: int, partition: str, devices: GuestDevices) -> str | None:
    if not 0 <= index < len(devices.disks):
        return None
    name = devices.disks[index] + partition
    if partition and devices.is_partition(name):
        return name
    if not partition and devices.exists(name):
        return name
    return None


_RULES = (
    _mapper_name,
    _xdev,
    _cciss,
    _by_id_or_path,
    _by_tag_folder,
    _freebsd,
    _netbsd,
    _openbsd,
    _hurd,
)
"""The rules in libguestfs's order. Their patterns do not overlap: a name one of them
recognises but cannot resolve stays as written, as in libguestfs."""
