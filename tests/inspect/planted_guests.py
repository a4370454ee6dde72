"""Helpers for the inspection tests: guest roots planted in a folder, and ELF headers.

A guest here is a host folder used as the guest's ``/``: the tests write the files an
installed distribution would have (release files, hostname, a program header) and read
them back through the same :class:`GuestTree` the library uses on a mounted image.

ELF headers are built field by field from the System V gABI's ``Elf32_Ehdr`` and
``Elf64_Ehdr`` layouts, so that the expected architectures come from the specification
and not from the code under test.
"""

from __future__ import annotations

import dataclasses
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vmcraft.guest.files import GuestTree
from vmcraft.inspect import OsIdentity

ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2
EV_CURRENT = 1
ET_EXEC = 2
ET_DYN = 3
ET_CORE = 4

EM_386 = 3
EM_PPC64 = 21
EM_S390 = 22
EM_ARM = 40
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243

FSTAB = "/dev/sda1 / ext4 defaults 0 1\n"


def elf_header(elf_class: int, elf_data: int, machine: int, elf_type: int = ET_DYN) -> bytes:
    """A complete ELF file header (52 or 64 bytes) with no program or section headers."""
    order = "<" if elf_data == ELFDATA2LSB else ">"
    ident = b"\x7fELF" + bytes([elf_class, elf_data, EV_CURRENT]) + bytes(9)

    if elf_class == ELFCLASS64:
        # e_type e_machine e_version e_entry e_phoff e_shoff e_flags e_ehsize
        # e_phentsize e_phnum e_shentsize e_shnum e_shstrndx
        rest = struct.pack(
            f"{order}HHIQQQIHHHHHH", elf_type, machine, EV_CURRENT, 0, 0, 0, 0, 64, 56, 0, 64, 0, 0
        )
    else:
        rest = struct.pack(
            f"{order}HHIIIIIHHHHHH", elf_type, machine, EV_CURRENT, 0, 0, 0, 0, 52, 32, 0, 40, 0, 0
        )
    return ident + rest


X86_64_PROGRAM = elf_header(ELFCLASS64, ELFDATA2LSB, EM_X86_64)


def plant(
    root: Path,
    files: Mapping[str, str | bytes] = {},
    symlinks: Mapping[str, str] = {},
    folders: tuple[str, ...] = (),
) -> GuestTree:
    """Write guest files, symlinks (guest path -> target as stored) and folders under
    ``root``, and return the tree that reads them as a mounted guest."""
    for folder in folders:
        (root / folder.lstrip("/")).mkdir(parents=True, exist_ok=True)
    for path, content in files.items():
        host = root / path.lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        data = content.encode() if isinstance(content, str) else content
        host.write_bytes(data)
    for path, target in symlinks.items():
        host = root / path.lstrip("/")
        host.parent.mkdir(parents=True, exist_ok=True)
        host.symlink_to(target)
    return tree_of(root)


def plant_linux(
    root: Path,
    files: Mapping[str, str | bytes] = {},
    symlinks: Mapping[str, str] = {},
) -> GuestTree:
    """A minimal Linux root (``/etc/fstab``, an x86-64 ``/bin/ls``) plus the given files."""
    base: dict[str, str | bytes] = {"/etc/fstab": FSTAB, "/bin/ls": X86_64_PROGRAM}
    return plant(root, {**base, **files}, symlinks)


def tree_of(root: Path) -> GuestTree:
    return GuestTree(str(root), lambda: True, lambda path: False)


FEDORA_38_OS_RELEASE = """\
NAME="Fedora Linux"
VERSION="38 (Server Edition)"
ID=fedora
VERSION_ID=38
PLATFORM_ID="platform:f38"
PRETTY_NAME="Fedora Linux 38 (Server Edition)"
ANSI_COLOR="0;38;2;60;110;180"
CPE_NAME="cpe:/o:fedoraproject:fedora:38"
VARIANT="Server Edition"
VARIANT_ID=server
"""

DEBIAN_12_OS_RELEASE = """\
PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"
NAME="Debian GNU/Linux"
VERSION_ID="12"
VERSION="12 (bookworm)"
VERSION_CODENAME=bookworm
ID=debian
"""

UNKNOWN_LINUX = OsIdentity(
    type="linux",
    distro="unknown",
    product_name="unknown",
    product_variant="unknown",
    major_version=0,
    minor_version=0,
    arch="x86_64",
    hostname="unknown",
    build_id="unknown",
    osinfo="unknown",
    package_format="unknown",
    package_management="unknown",
)
"""An x86-64 Linux about which nothing else is known, in libguestfs's terms."""


def linux(**fields: Any) -> OsIdentity:
    """:data:`UNKNOWN_LINUX` with the given fields known."""
    return dataclasses.replace(UNKNOWN_LINUX, **fields)


def guest_os(os_type: str, distro: str, **fields: Any) -> OsIdentity:
    """An x86-64 OS of another type (``freebsd``, ``hurd``...) with the given fields known."""
    return dataclasses.replace(UNKNOWN_LINUX, type=os_type, distro=distro, **fields)


DEB_APT = {"package_format": "deb", "package_management": "apt"}
RPM_DNF = {"package_format": "rpm", "package_management": "dnf"}
RPM_YUM = {"package_format": "rpm", "package_management": "yum"}
RPM_ZYPPER = {"package_format": "rpm", "package_management": "zypper"}
