"""Is a filesystem a Windows system root, and which Windows is it.

The answers follow libguestfs's Windows inspection. A system root is the first of
``/windows``, ``/winnt``, ``/win32``, ``/win``, ``/reactos`` (or a path named in
``/boot.ini``) that holds a folder ``system32/config`` and a file ``system32/cmd.exe``.
Guests are NTFS, mounted case-sensitively here, so every path is matched case-insensitively
and reported as the guest spells it. The architecture comes from cmd.exe's PE header; the
rest from the SOFTWARE and SYSTEM hives (:mod:`vmcraft.inspect.registry`): the product and
its version under ``Microsoft\\Windows NT\\CurrentVersion``, the current control set from
``Select``, the hostname from ``Services\\Tcpip\\Parameters`` and drive letters from
``MountedDevices``. As libguestfs does, nothing is read from the registry unless both
hives exist.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import re
import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vmcraft.errors import GuestFileError
from vmcraft.guest.files import GuestTree
from vmcraft.inspect.guestfiles import is_dir, is_file, read_file_head, read_small_file
from vmcraft.inspect.registry import (
    REG_BINARY,
    REG_DWORD,
    REG_DWORD_BIG_ENDIAN,
    STRING_TYPES,
    Hive,
    HiveError,
    Key,
    Value,
)

log = logging.getLogger(__name__)

UNKNOWN = "unknown"

SYSTEMROOT_NAMES = ("windows", "winnt", "win32", "win", "reactos")
"""Where libguestfs looks for a system root, in its order, before reading boot.ini."""

_BOOT_INI_SYSTEM = re.compile(
    r"^(?:multi|scsi)\([0-9]+\)disk\([0-9]+\)rdisk\([0-9]+\)partition\([0-9]+\)([^=]+)="
)
_BOOT_INI_OS_LINES = ("multi(", "scsi(")

PE_HEAD_SIZE = 4096  # cmd.exe's PE header sits well inside its first page
E_LFANEW = 0x3C  # in the MZ header: where the PE header starts
PE_SIGNATURE = b"PE\0\0"
IMAGE_FILE_MACHINES = {0x014C: "i386", 0x8664: "x86_64", 0xAA64: "aarch64", 0x01C4: "arm"}

CURRENT_VERSION_KEY = ("Microsoft", "Windows NT", "CurrentVersion")
_VERSION = re.compile(r"([0-9]+)\.([0-9]+)")
_MAJOR_ONLY = re.compile(r"([0-9]+)")

DOS_DEVICES = "\\dosdevices\\"  # "\DosDevices\C:", compared lowercased
MBR_BLOB_SIZE = 12  # disk signature (u32 LE), then partition byte offset (u64 LE)
GPT_BLOB_PREFIX = b"DMIO:ID:"  # then the partition's GUID, as Windows stores a GUID
GPT_BLOB_SIZE = 24


@dataclass(frozen=True)
class WindowsIdentity:
    """One Windows installation as libguestfs's ``inspect_get_*`` calls describe it.

    Strings are ``unknown`` and versions 0 where nothing was found; the hive paths and the
    control set are None where libguestfs has none (its calls then fail).
    """

    systemroot: str
    arch: str = UNKNOWN
    product_name: str = UNKNOWN
    product_variant: str = UNKNOWN
    major_version: int = 0
    minor_version: int = 0
    build_id: str = UNKNOWN
    hostname: str = UNKNOWN
    current_control_set: str | None = None
    software_hive: str | None = None
    system_hive: str | None = None
    drive_mappings: dict[str, str] = field(default_factory=dict)


def is_windows_root(tree: GuestTree) -> str | None:
    """The system root of the Windows mounted as ``tree``, as the guest spells it.

    Returns:
        ``/Windows``, ``/WINNT``... or None when the filesystem holds no system root.
    """
    for name in SYSTEMROOT_NAMES:
        path = match_path_case(tree, "/" + name)
        if path is not None and _is_systemroot(tree, path):
            return path
    return _systemroot_from_boot_ini(tree)


def match_path_case(tree: GuestTree, path: str, within: str = "/") -> str | None:
    """The guest's own spelling of ``path`` (below ``within``), ignoring case, or None.

    An exact match wins over one that differs in case only.
    """
    current = within.rstrip("/")
    for wanted in filter(None, path.split("/")):
        try:
            entries = tree.ls(current or "/")
        except (GuestFileError, OSError):
            return None
        found = wanted if wanted in entries else _first_nocase(entries, wanted)
        if found is None:
            return None
        current = f"{current}/{found}"
    return current or "/"


def _first_nocase(entries: list[str], wanted: str) -> str | None:
    return next((entry for entry in entries if entry.lower() == wanted.lower()), None)


def _is_systemroot(tree: GuestTree, systemroot: str) -> bool:
    system32 = match_path_case(tree, "system32", systemroot)
    if system32 is None or not is_dir(tree, system32):
        return False
    config = match_path_case(tree, "config", system32)
    cmd_exe = match_path_case(tree, "cmd.exe", system32)
    return (
        config is not None
        and is_dir(tree, config)
        and cmd_exe is not None
        and is_file(tree, cmd_exe, follow=False)
    )


def _systemroot_from_boot_ini(tree: GuestTree) -> str | None:
    boot_ini = match_path_case(tree, "/boot.ini")
    text = read_small_file(tree, boot_ini) if boot_ini is not None else None
    if text is None:
        return None

    lines = text.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.startswith("[operating systems]")), None
    )
    if start is None:
        return None
    for line in itertools.takewhile(lambda x: x.startswith(_BOOT_INI_OS_LINES), lines[start + 1 :]):
        found = _BOOT_INI_SYSTEM.match(line)
        path = match_path_case(tree, found[1].replace("\\", "/")) if found else None
        if path is not None and _is_systemroot(tree, path):
            return path
    return None


def read_windows_identity(
    tree: GuestTree,
    systemroot: str,
    partitions: Mapping[str, tuple[str, int]] | None = None,
    gpt_guids: Mapping[str, str] | None = None,
) -> WindowsIdentity:
    """Describe the Windows whose system root :func:`is_windows_root` found.

    A hive that is missing, unreadable or corrupt costs only the fields read from it (with
    a warning); this never raises for what the guest holds.

    Args:
        tree: The guest's filesystem holding the system root.
        systemroot: The system root, e.g. ``/Windows``.
        partitions: The partitions of MBR disks, guest device -> (disk identifier as hex,
            e.g. ``7e570001`` as blkid's PTUUID, start in bytes), in device order.
        gpt_guids: The partitions of GPT disks, guest device -> partition GUID.

    Returns:
        The identity; drive letters map to the devices of ``partitions``/``gpt_guids``.
    """
    software = _hive_path(tree, systemroot, "software")
    system = _hive_path(tree, systemroot, "system")
    identity = WindowsIdentity(
        systemroot=systemroot,
        arch=_architecture(tree, systemroot),
        software_hive=software,
        system_hive=system,
    )
    if software is None or system is None:
        log.info("%s has no SOFTWARE or no SYSTEM hive; its registry is not read", systemroot)
        return identity

    fields = _software_fields(tree, software)
    fields |= _system_fields(tree, system, partitions or {}, gpt_guids or {})
    return dataclasses.replace(identity, **fields)


def _hive_path(tree: GuestTree, systemroot: str, name: str) -> str | None:
    path = match_path_case(tree, f"system32/config/{name}", systemroot)
    return path if path is not None and is_file(tree, path, follow=False) else None


def _architecture(tree: GuestTree, systemroot: str) -> str:
    cmd_exe = match_path_case(tree, "system32/cmd.exe", systemroot)
    head = read_file_head(tree, cmd_exe, PE_HEAD_SIZE) if cmd_exe is not None else None
    return pe_architecture(head or b"")


def pe_architecture(head: bytes) -> str:
    """The architecture of a PE program from its first bytes, or ``unknown``.

    The ``Machine`` field of the COFF header, found through the MZ header's ``e_lfanew``:
    ``i386``, ``x86_64``, ``aarch64`` or ``arm``.
    """
    if len(head) < E_LFANEW + 4 or not head.startswith(b"MZ"):
        return UNKNOWN
    (pe_offset,) = struct.unpack_from("<I", head, E_LFANEW)
    if pe_offset + 6 > len(head) or head[pe_offset : pe_offset + 4] != PE_SIGNATURE:
        return UNKNOWN

    (machine,) = struct.unpack_from("<H", head, pe_offset + 4)
    if machine not in IMAGE_FILE_MACHINES:
        log.debug("no architecture name for PE machine 0x%04x", machine)
    return IMAGE_FILE_MACHINES.get(machine, UNKNOWN)


def open_hive_root(tree: GuestTree, path: str) -> Key | None:
    """The root key of the hive at a guest path, or None (with a warning) if unreadable."""
    try:
        return Hive.open(tree.resolve(path), name=path).root()
    except (GuestFileError, HiveError) as e:
        log.warning("inspection skips the hive %s: %s", path, e)
        log.debug("cannot use %s", path, exc_info=e)
        return None


def subkey_at(key: Key | None, *names: str) -> Key | None:
    """The key a path of names below ``key`` leads to, each matched case-insensitively."""
    for name in names:
        key = key.subkey(name) if key is not None else None
    return key


def values_by_name(key: Key, fold_case: bool) -> dict[str, Value]:
    """A key's values by name (lowercased if ``fold_case``); the first of a name wins."""
    values: dict[str, Value] = {}
    for value in key.values():
        values.setdefault(value.name.lower() if fold_case else value.name, value)
    return values


def string_value(value: Value | None) -> str | None:
    """The text of a string value (REG_SZ, REG_EXPAND_SZ, REG_LINK), else None."""
    if value is None or value.type not in STRING_TYPES:
        return None
    data = _data(value)
    return data if isinstance(data, str) else None


def dword_value(value: Value | None) -> int | None:
    """The number of a REG_DWORD value (either byte order), else None."""
    if value is None or value.type not in (REG_DWORD, REG_DWORD_BIG_ENDIAN):
        return None
    data = _data(value)
    return data if isinstance(data, int) else None


def _data(value: Value) -> object:
    try:
        return value.data()
    except HiveError as e:
        log.warning("inspection skips a registry value: %s", e)
        return None


def _software_fields(tree: GuestTree, path: str) -> dict[str, Any]:
    root = open_hive_root(tree, path)
    key = subkey_at(root, *CURRENT_VERSION_KEY)
    if key is None:
        if root is not None:
            log.info("%s has no %s key", path, "\\".join(CURRENT_VERSION_KEY))
        return {}

    values = values_by_name(key, fold_case=False)
    fields: dict[str, Any] = {}
    _set(fields, "product_name", string_value(values.get("ProductName")))

    has_numbers = {"CurrentMajorVersionNumber", "CurrentMinorVersionNumber"} <= values.keys()
    if not has_numbers and "CurrentVersion" not in values:
        # NB: libguestfs stops here too (inspect_fs_windows.ml of 2019 to 2023): a
        # missing version also loses the product variant and the build id.
        return fields
    version = _version(values)
    if version is not None:
        fields["major_version"], fields["minor_version"] = version

    _set(fields, "product_variant", string_value(values.get("InstallationType")))
    _set(fields, "build_id", string_value(values.get("CurrentBuildNumber")))
    return fields


def _version(values: dict[str, Value]) -> tuple[int, int] | None:
    major = dword_value(values.get("CurrentMajorVersionNumber"))
    minor = dword_value(values.get("CurrentMinorVersionNumber"))
    if major is not None and minor is not None:
        return major, minor

    text = string_value(values.get("CurrentVersion")) or ""
    if found := _VERSION.search(text):
        return int(found[1]), int(found[2])
    if found := _MAJOR_ONLY.search(text):
        return int(found[1]), 0
    log.warning("cannot parse the Windows version %r", text)
    return None


def _set(fields: dict[str, Any], name: str, value: object) -> None:
    if value is not None:
        fields[name] = value


def _system_fields(
    tree: GuestTree,
    path: str,
    partitions: Mapping[str, tuple[str, int]],
    gpt_guids: Mapping[str, str],
) -> dict[str, Any]:
    root = open_hive_root(tree, path)
    if root is None:
        return {}

    fields: dict[str, Any] = {"drive_mappings": _drive_mappings(root, partitions, gpt_guids)}
    select = root.subkey("Select")
    current = dword_value(values_by_name(select, True).get("current")) if select else None
    if current is None:
        log.info("%s has no Select\\Current value", path)
        return fields

    control_set = fields["current_control_set"] = f"ControlSet{current:03d}"
    parameters = subkey_at(root, control_set, "Services", "Tcpip", "Parameters")
    if parameters is not None:
        hostname = values_by_name(parameters, fold_case=False).get("Hostname")
        _set(fields, "hostname", string_value(hostname))
    return fields


def _drive_mappings(
    root: Key, partitions: Mapping[str, tuple[str, int]], gpt_guids: Mapping[str, str]
) -> dict[str, str]:
    mounted = root.subkey("MountedDevices")
    mappings: dict[str, str] = {}
    for value in mounted.values() if mounted is not None else []:
        letter = _drive_letter(value.name)
        if letter is None or value.type != REG_BINARY:
            continue
        try:
            blob = value.raw()
        except HiveError as e:
            log.warning("inspection skips drive %s: %s", letter, e)
            continue
        device = _blob_device(blob, partitions, gpt_guids)
        if device is not None:
            mappings[letter] = device
    return mappings


def _drive_letter(name: str) -> str | None:
    # libguestfs's test: a name of at least 14 characters, "\DosDevices\" in any case,
    # an ASCII letter and a colon.
    if len(name) < 14 or name[:12].lower() != DOS_DEVICES or name[13] != ":":
        return None
    letter = name[12]
    return letter if letter.isascii() and letter.isalpha() else None


def _blob_device(
    blob: bytes, partitions: Mapping[str, tuple[str, int]], gpt_guids: Mapping[str, str]
) -> str | None:
    if len(blob) >= GPT_BLOB_SIZE and blob.startswith(GPT_BLOB_PREFIX):
        guid = str(uuid.UUID(bytes_le=blob[8:24]))
        return next((d for d, g in gpt_guids.items() if g.strip("{}").lower() == guid), None)
    if len(blob) != MBR_BLOB_SIZE:
        return None

    signature, offset = struct.unpack("<IQ", blob)
    for device, (disk_id, start) in partitions.items():
        if _disk_signature(disk_id) == signature and start == offset:
            return device
    return None


def _disk_signature(disk_id: str) -> int | None:
    try:
        return int(disk_id.strip().lower().removeprefix("0x"), 16)
    except ValueError:
        log.debug("%r is not an MBR disk identifier", disk_id)
        return None
