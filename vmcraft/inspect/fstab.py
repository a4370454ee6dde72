"""The guest's ``/etc/fstab``: which of its filesystems mounts where.

Parsing follows fstab(5): ``#`` comments and blank lines are skipped, fields are separated
by blanks, and a space, tab, newline or backslash inside a field is written as an octal
escape (``\\040``). A malformed line is skipped on its own (with a warning) instead of
making the whole file unreadable, so a damaged fstab still yields what it can.

Which entries count, and how each device spec becomes a guest device, are libguestfs's
rules (its ``check_fstab``): floppies and CD-ROMs, mountpoints under ``/dev``, ``/proc``,
``/sys``, ``/selinux`` and ``/media``, and specs that name no block device (``tmpfs``,
``proc``, ``server:/export``, a bind mount's folder) are left out; ``UUID=``, ``LABEL=``,
``PARTUUID=`` and ``PARTLABEL=`` must name a device of this guest or the entry is dropped;
``/dev/...`` names are translated by :mod:`vmcraft.inspect.fstab_devices`; a btrfs entry
with ``subvol=`` names that subvolume, as ``btrfsvol:DEVICE/SUBVOL``. Swap entries are kept
(libguestfs lists them among a root's filesystems) but never get a mountpoint.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from vmcraft.inspect.fstab_devices import GuestDevices, resolve_device_path, resolve_tag
from vmcraft.inspect.release import shell_unquote
from vmcraft.mountables import BTRFSVOL_PREFIX, btrfsvol

log = logging.getLogger(__name__)

MIN_FIELDS = 3  # spec, mountpoint, type; options, dump and pass may be left out
MAX_FIELDS = 6

_OCTAL_ESCAPE = re.compile(r"\\([0-3][0-7]{2})")
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_REMOVABLE_DEVICE = re.compile(r"^/dev/(fd|cd)\d")
_OPENBSD_DUID = re.compile(r"^[0-9a-f]{16}\.[a-z]")

IGNORED_SPECS = frozenset({"/dev/floppy", "/dev/cdrom"})
IGNORED_MOUNT_TREES = ("/dev", "/media", "/proc", "/selinux", "/sys")
"""Mountpoints that hold no guest data: libguestfs skips them and everything below."""

PSEUDO_TYPES = frozenset(
    {
        "autofs", "binfmt_misc", "bpf", "cgroup", "cgroup2", "configfs", "debugfs",
        "devpts", "devtmpfs", "efivarfs", "fusectl", "hugetlbfs", "mqueue", "none",
        "overlay", "proc", "pstore", "ramfs", "rpc_pipefs", "securityfs", "sysfs",
        "tmpfs", "tracefs", "usbfs",
    }
)  # fmt: skip
NETWORK_TYPES = frozenset(
    {
        "9p", "ceph", "cifs", "davfs", "fuse.sshfs", "glusterfs", "ncpfs", "nfs", "nfs4",
        "smb3", "smbfs", "sshfs",
    }
)  # fmt: skip
BIND_OPTIONS = frozenset({"bind", "rbind"})
BSD_TYPES = frozenset({"freebsd", "netbsd", "openbsd"})


@dataclass(frozen=True)
class FstabEntry:
    """One line of fstab, with its octal escapes decoded."""

    spec: str
    mountpoint: str
    vfstype: str
    options: tuple[str, ...]

    def option(self, name: str) -> str | None:
        """The value of ``name=value`` among the options (``""`` for a bare flag)."""
        for option in self.options:
            key, sep, value = option.partition("=")
            if key == name:
                return value if sep else ""
        return None


@dataclass(frozen=True)
class FstabMount:
    """An fstab entry resolved to what libguestfs calls a mountable."""

    mountable: str
    mountpoint: str
    vfstype: str


def unescape_field(field: str) -> str:
    """Decode fstab's octal escapes: ``\\040`` is a space, ``\\134`` a backslash."""
    return _OCTAL_ESCAPE.sub(lambda match: chr(int(match[1], 8)), field)


def canonical_mountpoint(path: str) -> str:
    """Collapse repeated slashes and drop a trailing one: ``///usr//local/`` → ``/usr/local``."""
    if not path.startswith("/"):
        return path
    canonical = re.sub(r"/+", "/", path)
    return canonical.rstrip("/") or "/"


def parse_fstab(text: str) -> list[FstabEntry]:
    """Every well-formed entry of an fstab file, in file order."""
    entries = []
    for number, line in enumerate(text.split("\n"), start=1):
        entry = _parse_line(line, number)
        if entry is not None:
            entries.append(entry)
    return entries


def _parse_line(line: str, number: int) -> FstabEntry | None:
    stripped = line.strip()
    if not stripped or stripped.startswith("#"):
        return None

    fields = stripped.split()
    if not MIN_FIELDS <= len(fields) <= MAX_FIELDS or _CONTROL_CHARACTERS.search(stripped):
        log.warning("fstab line %d is malformed; skipping it: %.80r", number, line)
        return None

    spec, mountpoint, vfstype = (unescape_field(f) for f in fields[:3])
    options = unescape_field(fields[3]) if len(fields) > 3 else "defaults"
    return FstabEntry(spec, mountpoint, vfstype, tuple(o for o in options.split(",") if o))


def resolve_fstab(
    entries: list[FstabEntry], devices: GuestDevices, root: str, os_type: str
) -> list[FstabMount]:
    """Turn fstab entries into the mountables of this guest, as libguestfs does.

    Args:
        entries: The parsed fstab.
        devices: The guest's devices and their blkid tags.
        root: The mountable of the root filesystem the fstab was read from.
        os_type: ``linux``, ``freebsd``... (some device names depend on it).

    Returns:
        One mount per entry that names a guest filesystem, in fstab order; of several
        entries for ``/``, only the first is kept.
    """
    mounts = []
    for entry in entries:
        mount = _resolve_entry(entry, devices, root, os_type)
        if mount is not None:
            mounts.append(mount)
    return _without_duplicate_roots(mounts)


def _resolve_entry(
    entry: FstabEntry, devices: GuestDevices, root: str, os_type: str
) -> FstabMount | None:
    if _is_ignored(entry):
        return None

    mountpoint = canonical_mountpoint(entry.mountpoint)
    if _is_ignored_mountpoint(mountpoint):
        return None

    mountable = _resolve_spec(entry.spec, mountpoint, devices, root, os_type)
    if mountable is None:
        log.debug("fstab: %s names no device of this guest; skipping it", entry.spec)
        return None

    if entry.vfstype == "btrfs":
        mountable = _btrfs_mountable(entry, mountable)
    return FstabMount(mountable, mountpoint, entry.vfstype)


def _is_ignored(entry: FstabEntry) -> bool:
    spec = entry.spec
    if spec in IGNORED_SPECS or _REMOVABLE_DEVICE.match(spec) or spec.startswith("/dev/iso9660/"):
        return True
    if entry.vfstype in PSEUDO_TYPES or entry.vfstype in NETWORK_TYPES:
        return True
    return any(option in BIND_OPTIONS for option in entry.options)


def _is_ignored_mountpoint(mountpoint: str) -> bool:
    return any(
        mountpoint == tree or mountpoint.startswith(tree + "/") for tree in IGNORED_MOUNT_TREES
    )


def _resolve_spec(
    spec: str, mountpoint: str, devices: GuestDevices, root: str, os_type: str
) -> str | None:
    if "=" in spec and not spec.startswith("/"):
        key, _, value = spec.partition("=")
        return resolve_tag(key, shell_unquote(value), devices)
    if spec == "/dev/root" or (os_type in BSD_TYPES and mountpoint == "/"):
        # NB: BSD names do not map simply to Linux ones; the root is the filesystem at hand.
        return root
    if spec.startswith("/dev/"):
        return resolve_device_path(spec, devices, os_type)
    if _OPENBSD_DUID.match(spec):
        # A disklabel UID and a partition letter: assume the first disk, as libguestfs does.
        return resolve_device_path(f"/dev/sd0{spec[17]}", devices, os_type)
    return None


def _btrfs_mountable(entry: FstabEntry, mountable: str) -> str:
    subvolume = entry.option("subvol")
    if not subvolume or mountable.startswith(BTRFSVOL_PREFIX):
        return mountable
    return btrfsvol(mountable, subvolume)


def _without_duplicate_roots(mounts: list[FstabMount]) -> list[FstabMount]:
    roots = [m for m in mounts if m.mountpoint == "/"]
    if len(roots) <= 1:
        return mounts
    if len({m.mountable for m in roots}) > 1:
        described = "; ".join(f"{m.mountable} -> /" for m in roots)
        log.warning("fstab has several different entries for /; using the first: %s", described)
    first = roots[0]
    return [m for m in mounts if m.mountpoint != "/" or m is first]
