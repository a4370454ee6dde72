"""Windows registry hives, PE headers and a Windows guest image for the inspection tests.

Hives are written by hivex's own shell (``hivexsh -w``, Debian's libhivex-bin) from the key
and value specs below. hivex cannot make a hive from nothing, so it starts from an empty
hive written here field by field from the regf layout; a big value that needs ``db``
segments (hivexsh reads lines of about 4 KiB at most) also comes from that small writer.
Expected values come from the specs, which are encoded from the registry's type
definitions, and the tests check the hives with hivexml/hivexget as an independent route.

The PE header is the MS-DOS stub's ``e_lfanew`` (0x3c) pointing at ``PE\\0\\0`` and a COFF
file header, whose ``Machine`` is IMAGE_FILE_MACHINE_I386 0x14c, _AMD64 0x8664 or _ARM64
0xaa64 (Microsoft's PE format specification).

Host tools: hivexsh, sfdisk, losetup, partx, mkntfs, ntfs-3g.
"""

from __future__ import annotations

import struct
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import guests
from guests import FsSpec, Guest, MiB

REQUIRED_TOOLS = ("hivexsh", "sfdisk", "partx", "mkntfs", "ntfs-3g")

# Value types, from the Windows registry's definitions (winnt.h).
REG_SZ, REG_EXPAND_SZ, REG_BINARY, REG_DWORD, REG_MULTI_SZ, REG_QWORD = 1, 2, 3, 4, 7, 11

IMAGE_FILE_MACHINE_I386 = 0x014C
IMAGE_FILE_MACHINE_AMD64 = 0x8664
IMAGE_FILE_MACHINE_ARM64 = 0xAA64

# regf layout.
BASE_BLOCK_SIZE = 4096
HBIN_HEADER_SIZE = 32
HBIN_ALIGNMENT = 4096
NO_CELL = 0xFFFFFFFF
KEY_HIVE_ENTRY, KEY_NO_DELETE, KEY_COMP_NAME = 0x4, 0x8, 0x20
VALUE_COMP_NAME = 0x1
BIG_DATA_SEGMENT_SIZE = 16344


@dataclass(frozen=True)
class RegValue:
    """A value as stored (type and bytes) and as a reader should return it."""

    type: int
    raw: bytes
    expected: object

    def hivexsh(self) -> str:
        """The value in hivexsh's ``setval`` syntax."""
        return f"hex:{self.type}:{self.raw.hex()}"


def sz(text: str, value_type: int = REG_SZ) -> RegValue:
    """REG_SZ (or REG_EXPAND_SZ): UTF-16LE with a terminating NUL, as Windows writes it."""
    return RegValue(value_type, (text + "\0").encode("utf-16-le"), text)


def multi_sz(*texts: str) -> RegValue:
    """REG_MULTI_SZ: each string NUL-terminated, then an empty string ends the list."""
    return RegValue(
        REG_MULTI_SZ, "".join(t + "\0" for t in (*texts, "")).encode("utf-16-le"), list(texts)
    )


def dword(number: int) -> RegValue:
    return RegValue(REG_DWORD, number.to_bytes(4, "little"), number)


def qword(number: int) -> RegValue:
    return RegValue(REG_QWORD, number.to_bytes(8, "little"), number)


def binary(data: bytes) -> RegValue:
    return RegValue(REG_BINARY, data, data)


def mbr_drive(disk_signature: int, partition_offset: int) -> RegValue:
    """A MountedDevices value of an MBR disk: the disk signature, then the byte offset."""
    return binary(struct.pack("<IQ", disk_signature, partition_offset))


def gpt_drive(partition_guid: str) -> RegValue:
    """A MountedDevices value of a GPT disk: ``DMIO:ID:``, then the GUID as Windows stores it."""
    return binary(b"DMIO:ID:" + uuid.UUID(partition_guid).bytes_le)


HiveSpec = Mapping[str, Mapping[str, RegValue]]
"""Key path (backslash-separated, below the root) -> value name -> value."""


# ---------------------------------------------------------------- the hives

DISK_SIGNATURE = 0x4A3B2C1D
DISK_ID = "4a3b2c1d"  # as blkid prints an MBR disk's PTUUID
PARTITION_START = 1 * MiB
GPT_PARTITION_GUID = "6f1e2d3c-4b5a-4978-8a9b-0c1d2e3f4a5b"
UNINSTALL = r"Microsoft\Windows\CurrentVersion\Uninstall"
WOW64_UNINSTALL = r"Wow6432Node\Microsoft\Windows\CurrentVersion\Uninstall"

WINDOWS_10_SOFTWARE: HiveSpec = {
    r"Microsoft\Windows NT\CurrentVersion": {
        "ProductName": sz("Windows 10 Pro"),
        "CurrentMajorVersionNumber": dword(10),
        "CurrentMinorVersionNumber": dword(0),
        "CurrentVersion": sz("6.3"),  # what Windows 10 still writes here
        "CurrentBuildNumber": sz("19045"),
        "CurrentBuild": sz("19045"),
        "InstallationType": sz("Client"),
        "EditionID": sz("Professional"),
        "PathName": sz("%SystemDrive%\\Windows", REG_EXPAND_SZ),
        "InstallTime": qword(133_000_000_000_000_000),
        "DigitalProductId": binary(bytes(range(0xA4, 0xA4 + 48))),
    },
    rf"{UNINSTALL}\7-Zip": {
        "DisplayName": sz("7-Zip 22.01 (x64)"),
        "DisplayVersion": sz("22.01"),
        "Publisher": sz("Igor Pavlov"),
        "InstallLocation": sz("C:\\Program Files\\7-Zip\\"),
        "URLInfoAbout": sz("https://www.7-zip.org/"),
        "NoModify": dword(1),
    },
    rf"{UNINSTALL}\{{90160000-008C-0000-1000-0000000FF1CE}}": {
        "DisplayName": sz("Office 16 Click-to-Run Extensibility Component"),
        "DisplayVersion": sz("16.0.16529.20154"),
        "Publisher": sz("Microsoft Corporation"),
        "InstallLocation": sz("%ProgramFiles%\\Microsoft Office", REG_EXPAND_SZ),
        "Comments": sz("Installed with Office"),
    },
    rf"{UNINSTALL}\KB5005463": {"SystemComponent": dword(1)},  # no DisplayName
    rf"{UNINSTALL}\NotAString": {"DisplayName": dword(7)},  # DisplayName of the wrong type
    rf"{UNINSTALL}\Ünïcode Tööl": {
        "displayname": sz("Ünïcode Tööl 1.0 ☃"),  # value names ignore case
        "Publisher": sz("Société Exemple"),
        "DisplayVersion": dword(1),  # not a string: reads as ""
    },
    rf"{WOW64_UNINSTALL}\Notepad++": {
        "DisplayName": sz("Notepad++ (32-bit x86)"),
        "DisplayVersion": sz("8.5.4"),
        "Publisher": sz("Notepad++ Team"),
        "URLInfoAbout": sz("https://notepad-plus-plus.org/"),
    },
    rf"{WOW64_UNINSTALL}\7-Zip": {"DisplayName": sz("7-Zip 9.20"), "DisplayVersion": sz("9.20")},
}

WINDOWS_10_SYSTEM: HiveSpec = {
    "Select": {
        "Current": dword(1),
        "Default": dword(1),
        "Failed": dword(0),
        "LastKnownGood": dword(2),
    },
    r"ControlSet001\Services\Tcpip\Parameters": {
        "Hostname": sz("WIN10-VMCRAFT"),
        "NV Hostname": sz("WIN10-VMCRAFT"),
        "Domain": sz(""),
    },
    r"ControlSet002\Services\Tcpip\Parameters": {"Hostname": sz("STALE-NAME")},
    "MountedDevices": {
        "\\DosDevices\\C:": mbr_drive(DISK_SIGNATURE, PARTITION_START),
        "\\DosDevices\\D:": gpt_drive(GPT_PARTITION_GUID),
        "\\DosDevices\\E:": mbr_drive(0x11223344, PARTITION_START),  # a disk not attached
        "\\DosDevices\\F:": sz("not a blob"),  # not REG_BINARY
        "\\DosDevices\\Z:": binary("\\??\\IDE#CdRomQEMU_DVD-ROM".encode("utf-16-le")),
        "\\??\\Volume{0a1b2c3d-0000-0000-0000-100000000000}": mbr_drive(
            DISK_SIGNATURE, PARTITION_START
        ),
    },
}

WINDOWS_7_SOFTWARE: HiveSpec = {
    r"Microsoft\Windows NT\CurrentVersion": {
        "ProductName": sz("Windows 7 Professional"),
        "CurrentVersion": sz("6.1"),
        "CurrentBuildNumber": sz("7601"),
        "CSDVersion": sz("Service Pack 1"),
    },
}

TYPED_VALUES: HiveSpec = {
    r"Types\Nested\Deeper": {
        "": sz("the default value"),
        "text": sz("plain text"),
        "expand": sz("%SystemRoot%\\system32", REG_EXPAND_SZ),
        "empty": sz(""),
        "multi": multi_sz("first", "second", "ünïcode"),
        "no strings": multi_sz(),
        "small number": dword(0x12345678),
        "all ones": dword(0xFFFFFFFF),
        "big number": qword(0x0123456789ABCDEF),
        "blob": binary(bytes(range(256)) * 4),
        "tiny blob": binary(b"\x01\x02"),
        "Ünïcode name €": sz("non-Latin-1 name, stored as UTF-16LE"),
    },
}


# ---------------------------------------------------------------- building hives


def build_hive(path: Path, spec: HiveSpec, scratch: Path) -> Path:
    """Write the hive of ``spec`` at ``path`` with ``hivexsh -w``, starting from empty."""
    scratch.mkdir(parents=True, exist_ok=True)
    empty = scratch / f"{path.name}.empty"
    empty.write_bytes(empty_hive())

    script = scratch / f"{path.name}.hivexsh"
    script.write_text("\n".join([*_hivexsh_commands(spec), f"commit {path}", ""]))
    guests.run(["hivexsh", "-w", "-f", str(script), str(empty)])
    return path


def _hivexsh_commands(spec: HiveSpec) -> list[str]:
    commands, made = [], {""}
    for key_path, values in spec.items():
        names = key_path.split("\\")
        for depth in range(1, len(names) + 1):
            parent, here = "\\".join(names[: depth - 1]), "\\".join(names[:depth])
            if here not in made:
                commands += [_cd(parent), f"add {names[depth - 1]}"]
                made.add(here)
        commands += [_cd(key_path), f"setval {len(values)}"]
        for name, value in values.items():
            commands += [name or "@", value.hivexsh()]
    return commands


def _cd(key_path: str) -> str:
    # NB: hivexsh 1.3.23 wants a space after a lone "\" (its readline would join lines).
    return f"cd \\{key_path}" if key_path else "cd \\ "


class CellWriter:
    """A hive with a single hive bin, written cell by cell from the regf layout.

    Offsets count from the start of the hive bins, as in the hive itself.
    """

    def __init__(self) -> None:
        self.cells = bytearray()

    def add(self, record: bytes) -> int:
        """Append an allocated cell holding ``record``; return its offset."""
        offset = HBIN_HEADER_SIZE + len(self.cells)
        size = -(-(4 + len(record)) // 8) * 8
        self.cells += struct.pack("<i", -size) + record + bytes(size - 4 - len(record))
        return offset

    def patch(self, offset: int, field: int, fmt: str, *values: int) -> None:
        """Overwrite a field of the record in the cell at ``offset``."""
        struct.pack_into(fmt, self.cells, offset - HBIN_HEADER_SIZE + 4 + field, *values)

    def image(self, root: int, minor_version: int) -> bytes:
        """The whole hive file: base block, then one hive bin ending in a free cell."""
        used = HBIN_HEADER_SIZE + len(self.cells)
        size = -(-used // HBIN_ALIGNMENT) * HBIN_ALIGNMENT
        free = size - used
        hbin = b"hbin" + struct.pack("<II", 0, size) + bytes(HBIN_HEADER_SIZE - 12)
        tail = struct.pack("<i", free) + bytes(free - 4) if free else b""
        return _base_block(root, size, minor_version) + hbin + bytes(self.cells) + tail


def _base_block(root: int, hbins_size: int, minor_version: int) -> bytes:
    # signature, sequence numbers, timestamp, version 1.minor, primary file, direct memory
    # load, root cell, size of the hive bins, clustering factor; then the XOR checksum.
    block = bytearray(BASE_BLOCK_SIZE)
    fields = (b"regf", 1, 1, 0, 1, minor_version, 0, 1, root, hbins_size, 1)
    struct.pack_into("<4sIIQIIIIIII", block, 0, *fields)
    checksum = 0
    for (word,) in struct.iter_unpack("<I", block[:508]):
        checksum ^= word
    struct.pack_into("<I", block, 508, checksum)
    return bytes(block)


def nk_record(
    name: str, *, value_count: int = 0, value_list: int = NO_CELL, sk: int = NO_CELL
) -> bytes:
    """A root key record (nk) with a Latin-1 name and no subkeys."""
    encoded = name.encode("latin-1")
    flags = KEY_HIVE_ENTRY | KEY_NO_DELETE | KEY_COMP_NAME
    # flags, timestamp, access bits, parent, subkeys, volatile subkeys, their lists,
    # values, value list, security, class, four maxima, work var, name and class lengths
    counts = (0, 0, 0, 0, NO_CELL, NO_CELL, value_count, value_list, sk, NO_CELL, 0, 0, 0, 0, 0)
    return b"nk" + struct.pack("<HQ15IHH", flags, 0, *counts, len(encoded), 0) + encoded


def _security_cell(writer: CellWriter) -> int:
    # A self-relative security descriptor with nothing in it; the list links to itself.
    descriptor = struct.pack("<BBHIIII", 1, 0, 0x8000, 0, 0, 0, 0)
    offset = writer.add(
        b"sk" + bytes(2) + struct.pack("<IIII", 0, 0, 1, len(descriptor)) + descriptor
    )
    writer.patch(offset, 4, "<II", offset, offset)
    return offset


def empty_hive(minor_version: int = 3) -> bytes:
    """A hive holding only its root key ``ROOT``, which hivex can then fill."""
    writer = CellWriter()
    root = writer.add(nk_record("ROOT"))
    writer.patch(root, 44, "<I", _security_cell(writer))
    return writer.image(root, minor_version)


def big_value_hive(name: str, data: bytes) -> bytes:
    """A hive whose root key has one REG_BINARY value stored in big-data segments.

    A ``db`` record counts the segments and points at their offset list; each segment
    cell holds up to 16344 bytes (regf 1.4 and later).
    """
    writer = CellWriter()
    root = writer.add(nk_record("ROOT"))
    sk = _security_cell(writer)
    chunks = [
        data[i : i + BIG_DATA_SEGMENT_SIZE] for i in range(0, len(data), BIG_DATA_SEGMENT_SIZE)
    ]
    segments = [writer.add(chunk) for chunk in chunks]
    segment_list = writer.add(struct.pack(f"<{len(segments)}I", *segments))
    big_data = writer.add(b"db" + struct.pack("<HI", len(segments), segment_list))

    encoded = name.encode("latin-1")
    vk = struct.pack("<HIIIHH", len(encoded), len(data), big_data, REG_BINARY, VALUE_COMP_NAME, 0)
    value_list = writer.add(struct.pack("<I", writer.add(b"vk" + vk + encoded)))
    writer.patch(root, 36, "<III", 1, value_list, sk)
    return writer.image(root, minor_version=5)


# ---------------------------------------------------------------- PE programs and the image


def pe_program(machine: int) -> bytes:
    """The start of a PE program: MZ header, e_lfanew, PE signature, COFF file header."""
    pe_offset = 0x80
    mz = b"MZ" + bytes(0x3C - 2) + struct.pack("<I", pe_offset) + bytes(pe_offset - 0x40)
    optional_magic = 0x10B if machine == IMAGE_FILE_MACHINE_I386 else 0x20B  # PE32 / PE32+
    # Machine, sections, timestamp, symbol table, symbols, optional header size, flags
    coff = struct.pack("<HHIIIHH", machine, 0, 0, 0, 0, 0xF0, 0x22)
    return mz + b"PE\0\0" + coff + struct.pack("<H", optional_magic) + bytes(0xEE)


PARTITION_SIZE = 16 * MiB
IMAGE_SIZE = PARTITION_START + PARTITION_SIZE + MiB


def windows_files(scratch: Path) -> dict[str, bytes]:
    """The files of a Windows 10 x64 system root, hives built with hivexsh."""
    software = build_hive(scratch / "SOFTWARE", WINDOWS_10_SOFTWARE, scratch)
    system = build_hive(scratch / "SYSTEM", WINDOWS_10_SYSTEM, scratch)
    return {
        "/Windows/System32/config/SOFTWARE": software.read_bytes(),
        "/Windows/System32/config/SYSTEM": system.read_bytes(),
        "/Windows/System32/cmd.exe": pe_program(IMAGE_FILE_MACHINE_AMD64),
        "/Windows/win.ini": b"; for 16-bit app support\r\n",
        "/Program Files/7-Zip/7z.exe": pe_program(IMAGE_FILE_MACHINE_AMD64),
    }


def build_windows_guest(workdir: Path) -> Guest:
    """An MBR disk (signature 0x4a3b2c1d) whose sda1 is an NTFS holding a Windows 10 root."""
    scratch = workdir / "scratch-windows"
    spec = FsSpec("/dev/sda1", "ntfs", "Windows", None, files=windows_files(scratch))
    image = workdir / "windows.raw"
    guests.run(["truncate", "--size", str(IMAGE_SIZE), str(image)])
    table = (
        f"label: dos\nlabel-id: 0x{DISK_SIGNATURE:08x}\nunit: sectors\n"
        f"start={PARTITION_START // 512}, size={PARTITION_SIZE // 512}, type=7\n"
    )
    guests.run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(image)], input=table.encode()
    )

    with guests.loop_device(image, partitions=True) as loop:
        guests.run(["mkntfs", "-Q", "-F", "-q", "-L", spec.label or "", f"{loop}p1"])
        mountpoint = scratch / "mnt"
        argv = ["ntfs-3g", "-o", "no_detach", f"{loop}p1", str(mountpoint)]
        with guests.fuse_mounted(argv, mountpoint, scratch / "ntfs-3g.log") as root:
            guests.populate(root, spec)

    return Guest(
        path=image,
        format="raw",
        table="msdos",
        partitions={"/dev/sda1": (PARTITION_START, PARTITION_SIZE)},
        filesystems={"/dev/sda1": spec},
        volume_groups={},
        mountpoints={"/": "/dev/sda1"},
        size=IMAGE_SIZE,
    )
