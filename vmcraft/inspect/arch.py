"""A guest's architecture, from the ELF header of its own programs.

libguestfs runs file(1) on the first of ``/bin/bash``, ``/bin/ls``, ``/bin/echo``,
``/bin/rm``, ``/bin/sh`` that is a regular file (following symlinks inside the guest), and
turns file's description of the machine into an architecture name. The same answer is read
here straight from the header: ``EI_CLASS``, ``EI_DATA``, ``e_type`` and ``e_machine``, as
the System V gABI lays them out.
"""

from __future__ import annotations

import logging
import struct

from vmcraft.guest.files import GuestTree
from vmcraft.inspect.guestfiles import read_file_head

log = logging.getLogger(__name__)

ARCH_BINARIES = ("/bin/bash", "/bin/ls", "/bin/echo", "/bin/rm", "/bin/sh")
"""Programs whose header tells the architecture, in the order libguestfs tries them."""

ELF_MAGIC = b"\x7fELF"
EI_CLASS = 4
EI_DATA = 5
ELFCLASS32 = 1
ELFCLASS64 = 2
ELFDATA2LSB = 1
ELFDATA2MSB = 2
E_TYPE_OFFSET = 16  # e_type then e_machine, both 16-bit in the file's byte order
ELF_HEADER_PREFIX = 20

ET_REL = 1
ET_EXEC = 2
ET_DYN = 3
PROGRAM_TYPES = (ET_REL, ET_EXEC, ET_DYN)
"""Object types file(1) calls relocatable, executable or shared object; libguestfs takes
only those (a core file, say, does not tell the architecture)."""

EM_SPARC = 2
EM_386 = 3
EM_68K = 4
EM_486 = 6
EM_MIPS = 8
EM_PARISC = 15
EM_SPARC32PLUS = 18
EM_PPC = 20
EM_PPC64 = 21
EM_S390 = 22
EM_ARM = 40
EM_SPARCV9 = 43
EM_IA_64 = 50
EM_X86_64 = 62
EM_AARCH64 = 183
EM_RISCV = 243
EM_LOONGARCH = 258

_FIXED_NAMES = {
    EM_386: "i386",
    EM_486: "i386",
    EM_X86_64: "x86_64",  # also the 32-bit x32 ABI
    EM_SPARC32PLUS: "sparc",
    EM_SPARCV9: "sparc64",
    EM_IA_64: "ia64",
    EM_PPC: "ppc",
    EM_ARM: "arm",
    EM_AARCH64: "aarch64",
    # NB: libguestfs maps only the machines above and hands file(1)'s own description
    # through for the rest; these are the names file 5.44 prints for them.
    EM_SPARC: "SPARC",
    EM_68K: "Motorola m68k",
    EM_MIPS: "MIPS",
    EM_PARISC: "PA-RISC",
    EM_LOONGARCH: "LoongArch",
}


def elf_architecture(header: bytes) -> str | None:
    """The libguestfs architecture name of an ELF program, from its first bytes.

    Args:
        header: At least the first 20 bytes of the file.

    Returns:
        ``x86_64``, ``i386``, ``aarch64``, ``arm``, ``ppc64le``, ``s390x``, ``riscv64``...;
        ``unknown`` for an ELF program of a machine libguestfs has no name for; None when
        the bytes are not an ELF relocatable, executable or shared object.
    """
    if len(header) < ELF_HEADER_PREFIX or not header.startswith(ELF_MAGIC):
        return None
    elf_class, elf_data = header[EI_CLASS], header[EI_DATA]
    if elf_class not in (ELFCLASS32, ELFCLASS64):
        return None
    if elf_data not in (ELFDATA2LSB, ELFDATA2MSB):
        return None

    order = "<" if elf_data == ELFDATA2LSB else ">"
    e_type, e_machine = struct.unpack_from(f"{order}HH", header, E_TYPE_OFFSET)
    if e_type not in PROGRAM_TYPES:
        return None

    return _machine_name(e_machine, elf_class == ELFCLASS64, elf_data == ELFDATA2LSB)


def _machine_name(e_machine: int, is_64bit: bool, is_little_endian: bool) -> str:
    if e_machine in _FIXED_NAMES:
        return _FIXED_NAMES[e_machine]
    if e_machine == EM_PPC64:
        return "ppc64le" if is_little_endian else "ppc64"
    if e_machine == EM_S390:
        return "s390x" if is_64bit else "s390"
    if e_machine == EM_RISCV:
        return "riscv64" if is_64bit else "riscv32"

    log.debug("no architecture name for ELF machine %d", e_machine)
    return "unknown"


def guest_architecture(tree: GuestTree) -> str:
    """The architecture of the guest mounted as ``tree``, or ``unknown``.

    The first of :data:`ARCH_BINARIES` that is an ELF program decides; a file that is not
    one (a shell script, a core dump) is passed over, as libguestfs does.
    """
    for path in ARCH_BINARIES:
        header = read_file_head(tree, path, ELF_HEADER_PREFIX)
        if header is None:
            continue

        arch = elf_architecture(header)
        if arch is not None:
            return arch
        log.debug("%s is not an ELF program; trying the next one", path)
    return "unknown"
