"""What one mounted filesystem is: an OS root, a ``/usr`` of some root, or anything else.

The tests and their order are libguestfs's (``check_filesystem``): a GRUB ``/boot`` is
ruled out first, then FreeBSD, NetBSD, OpenBSD, Hurd, Minix, Linux and CoreOS roots are
tried, then ``/usr/local``, Linux and CoreOS ``/usr``, ``/var``, a Windows root or data
volume, and finally FreeDOS and MS-DOS. The first test that matches decides, so a Linux
root that happens to hold ``/hurd/console`` is a Hurd root, as it is for libguestfs.

Windows roots are recognised by :mod:`vmcraft.inspect.windows`.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import Enum

from vmcraft.guest.files import GuestTree
from vmcraft.inspect.fstab_devices import GuestDevices
from vmcraft.inspect.guestfiles import is_dir, is_file
from vmcraft.inspect.linux import OsIdentity, is_linux_root, read_identity
from vmcraft.inspect.roots import WindowsFacts
from vmcraft.inspect.unix import (
    blank_identity,
    find_nocase,
    read_coreos_root_identity,
    read_coreos_usr_identity,
    read_dos_identity,
    read_freebsd_identity,
    read_hurd_identity,
    read_linux_usr_identity,
    read_minix_identity,
    read_netbsd_identity,
    read_openbsd_identity,
    with_derived_fields,
)
from vmcraft.inspect.windows import WindowsIdentity, is_windows_root, read_windows_identity
from vmcraft.units import SECTOR_SIZE

log = logging.getLogger(__name__)

GRUB_BOOT_FILES = ("/grub/menu.lst", "/grub/grub.conf", "/grub2/grub.cfg")


class Role(Enum):
    ROOT = "root"
    USR = "usr"
    OTHER = "other"


@dataclass(frozen=True)
class Finding:
    """What a filesystem turned out to be.

    ``fstab_os_type`` is set when the mountpoints come from this filesystem's
    ``/etc/fstab`` (read with that OS type's device rules); ``fixed_mountpoint`` when the
    filesystem says where it goes without an fstab (CoreOS).
    """

    role: Role
    identity: OsIdentity | None = None
    fstab_os_type: str | None = None
    fixed_mountpoint: str | None = None
    windows: WindowsFacts | None = None


OTHER = Finding(Role.OTHER)

Test = Callable[[GuestTree], Finding | None]
"""One of libguestfs's tests: a finding when the filesystem matches, else None."""


@dataclass(frozen=True)
class PartitionIds:
    """What Windows's MountedDevices names partitions by, for its drive letters.

    Args:
        mbr: MBR partitions: device → (disk signature in hex, start in bytes).
        gpt: GPT partitions: device → partition GUID.
    """

    mbr: Mapping[str, tuple[str, int]] = field(default_factory=dict)
    gpt: Mapping[str, str] = field(default_factory=dict)


def partition_ids(devices: GuestDevices) -> PartitionIds:
    """Read the partitions' identities from their blkid tags (``PART_ENTRY_*``)."""
    mbr, gpt = {}, {}
    for name, tags in devices.tags.items():
        scheme, entry_uuid = tags.get("PART_ENTRY_SCHEME"), tags.get("PART_ENTRY_UUID", "")
        offset = tags.get("PART_ENTRY_OFFSET", "")
        if scheme == "gpt" and entry_uuid:
            gpt[name] = entry_uuid
        elif scheme == "dos" and "-" in entry_uuid and offset.isdigit():
            # NB: blkid names an MBR partition "SIGNATURE-NN" (7e570001-05) and counts its
            # offset in 512-byte sectors.
            mbr[name] = (entry_uuid.split("-")[0], int(offset) * SECTOR_SIZE)
    return PartitionIds(mbr, gpt)


def classify(tree: GuestTree, disks: PartitionIds | None = None) -> Finding:
    """Decide what the filesystem mounted as ``tree`` is, and describe it if it is an OS.

    Args:
        tree: The filesystem, mounted.
        disks: The guest's partition identities, for a Windows root's drive letters.
    """
    windows: Test = functools.partial(_windows, disks=disks or PartitionIds())
    tests: tuple[Test, ...] = (*_UNIX_TESTS, windows, _windows_volume, _dos)
    for test in tests:
        finding = test(tree)
        if finding is not None:
            return finding
    return OTHER


def _grub_boot(tree: GuestTree) -> Finding | None:
    if any(is_file(tree, path, follow=False) for path in GRUB_BOOT_FILES):
        return OTHER
    return None


def _has_unix_base(tree: GuestTree) -> bool:
    return is_dir(tree, "/etc") and is_dir(tree, "/bin")


def _has_files(tree: GuestTree, *paths: str) -> bool:
    return all(is_file(tree, path, follow=False) for path in paths)


def _freebsd(tree: GuestTree) -> Finding | None:
    if _has_unix_base(tree) and _has_files(tree, "/etc/freebsd-update.conf", "/etc/fstab"):
        return _root(read_freebsd_identity(tree), "freebsd")
    return None


def _netbsd(tree: GuestTree) -> Finding | None:
    if _has_unix_base(tree) and _has_files(tree, "/netbsd", "/etc/fstab", "/etc/release"):
        return _root(read_netbsd_identity(tree), "netbsd")
    return None


def _openbsd(tree: GuestTree) -> Finding | None:
    if _has_unix_base(tree) and _has_files(tree, "/bsd", "/etc/fstab", "/etc/motd"):
        return _root(read_openbsd_identity(tree), "openbsd")
    return None


def _hurd(tree: GuestTree) -> Finding | None:
    if _has_files(tree, "/hurd/console", "/hurd/hello", "/hurd/null"):
        return _root(read_hurd_identity(tree), "hurd")
    return None


def _minix(tree: GuestTree) -> Finding | None:
    if _has_unix_base(tree) and _has_files(tree, "/service/vm", "/etc/fstab", "/etc/version"):
        # NB: libguestfs reads no fstab for Minix: its device names have no mapping yet.
        return Finding(Role.ROOT, read_minix_identity(tree))
    return None


def _linux(tree: GuestTree) -> Finding | None:
    if is_linux_root(tree):
        return _root(read_identity(tree), "linux")
    return None


def _coreos_root(tree: GuestTree) -> Finding | None:
    folders = ("/etc", "/root", "/home", "/usr")
    if all(is_dir(tree, f) for f in folders) and _has_files(tree, "/etc/coreos/update.conf"):
        return Finding(Role.ROOT, read_coreos_root_identity(tree), fixed_mountpoint="/")
    return None


def _usr_local(tree: GuestTree) -> Finding | None:
    shape = _has_unix_base(tree) and is_dir(tree, "/share")
    if shape and not is_dir(tree, "/local") and not _has_files(tree, "/etc/fstab"):
        return OTHER
    return None


def _linux_usr(tree: GuestTree) -> Finding | None:
    # A real /usr holds no /etc: libguestfs's OCaml daemon (daemon/inspect_fs.ml) asks for
    # /src where its older C code asked for /etc.
    folders = ("/bin", "/local", "/share", "/src")
    if all(is_dir(tree, f) for f in folders) and not _has_files(tree, "/etc/fstab"):
        return Finding(Role.USR, read_linux_usr_identity(tree))
    return None


def _coreos_usr(tree: GuestTree) -> Finding | None:
    folders = ("/bin", "/share", "/local", "/share/coreos")
    if all(is_dir(tree, f) for f in folders):
        return Finding(Role.USR, read_coreos_usr_identity(tree), fixed_mountpoint="/usr")
    return None


def _var(tree: GuestTree) -> Finding | None:
    if all(is_dir(tree, f) for f in ("/log", "/run", "/spool")):
        return OTHER
    return None


def _windows(tree: GuestTree, disks: PartitionIds) -> Finding | None:
    systemroot = is_windows_root(tree)
    if systemroot is None:
        return None
    found = read_windows_identity(tree, systemroot, disks.mbr, disks.gpt)
    return Finding(Role.ROOT, _windows_identity(found), windows=_windows_facts(found))


def _windows_volume(tree: GuestTree) -> Finding | None:
    # A Windows data volume is settled here, so DOS markers copied onto it make no root.
    found = find_nocase(tree, "/System Volume Information")
    if found is not None and is_dir(tree, found):
        return OTHER
    return None


def _dos(tree: GuestTree) -> Finding | None:
    for folder, marker, distro in (
        ("/FDOS", "FREEDOS.BSS", "freedos"),
        ("/DOS", "COMMAND.COM", "msdos"),
    ):
        found = find_nocase(tree, folder)
        if found is None or not is_dir(tree, found):
            continue
        program = find_nocase(tree, f"{found}/{marker}")
        if program is not None and is_file(tree, program, follow=False):
            return Finding(Role.ROOT, read_dos_identity(distro))
    return None


def _root(identity: OsIdentity, fstab_os_type: str) -> Finding:
    return Finding(Role.ROOT, identity, fstab_os_type=fstab_os_type)


_UNIX_TESTS: tuple[Test, ...] = (
    _grub_boot,
    _freebsd,
    _netbsd,
    _openbsd,
    _hurd,
    _minix,
    _linux,
    _coreos_root,
    _usr_local,
    _linux_usr,
    _coreos_usr,
    _var,
)


# ---------------------------------------------------------------- Windows


def _windows_identity(found: WindowsIdentity) -> OsIdentity:
    identity = dataclasses.replace(
        blank_identity("windows", "windows"),
        product_name=found.product_name,
        product_variant=found.product_variant,
        major_version=found.major_version,
        minor_version=found.minor_version,
        arch=found.arch,
        hostname=found.hostname,
        build_id=found.build_id,
    )
    return with_derived_fields(identity, None)


def _windows_facts(found: WindowsIdentity) -> WindowsFacts:
    return WindowsFacts(
        systemroot=found.systemroot,
        current_control_set=found.current_control_set,
        software_hive=found.software_hive,
        system_hive=found.system_hive,
        drive_mappings=dict(found.drive_mappings),
    )
