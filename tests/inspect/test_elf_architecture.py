"""Architecture from hand-built ELF headers, named as libguestfs names it.

Machine numbers and header layout come from the System V gABI (``e_machine`` values from
its registry: EM_386 3, EM_PPC64 21, EM_S390 22, EM_ARM 40, EM_X86_64 62, EM_AARCH64 183,
EM_RISCV 243); the names are those of libguestfs's ``file_architecture`` documentation
(i386 for every 32-bit x86, ppc64/ppc64le by byte order, s390x for 64-bit S/390, riscv64).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from planted_guests import (
    ELFCLASS32,
    ELFCLASS64,
    ELFDATA2LSB,
    ELFDATA2MSB,
    EM_386,
    EM_AARCH64,
    EM_ARM,
    EM_PPC64,
    EM_RISCV,
    EM_S390,
    EM_X86_64,
    ET_CORE,
    ET_EXEC,
    X86_64_PROGRAM,
    elf_header,
    plant,
)

from vmcraft.inspect import elf_architecture, guest_architecture

EM_UNNAMED = 0x1234  # no machine has this number


@pytest.mark.parametrize(
    ("elf_class", "elf_data", "machine", "expected"),
    [
        pytest.param(ELFCLASS64, ELFDATA2LSB, EM_X86_64, "x86_64", id="x86_64"),
        pytest.param(ELFCLASS32, ELFDATA2LSB, EM_386, "i386", id="i686"),
        pytest.param(ELFCLASS64, ELFDATA2LSB, EM_AARCH64, "aarch64", id="aarch64"),
        pytest.param(ELFCLASS32, ELFDATA2LSB, EM_ARM, "arm", id="armv7"),
        pytest.param(ELFCLASS64, ELFDATA2LSB, EM_PPC64, "ppc64le", id="ppc64le"),
        pytest.param(ELFCLASS64, ELFDATA2MSB, EM_PPC64, "ppc64", id="ppc64"),
        pytest.param(ELFCLASS64, ELFDATA2MSB, EM_S390, "s390x", id="s390x"),
        pytest.param(ELFCLASS32, ELFDATA2MSB, EM_S390, "s390", id="s390"),
        pytest.param(ELFCLASS64, ELFDATA2LSB, EM_RISCV, "riscv64", id="riscv64"),
        pytest.param(ELFCLASS64, ELFDATA2LSB, EM_UNNAMED, "unknown", id="unnamed-machine"),
    ],
)
def test_elf_machine_names(elf_class: int, elf_data: int, machine: int, expected: str) -> None:
    assert elf_architecture(elf_header(elf_class, elf_data, machine)) == expected


def test_executable_and_shared_object_both_count() -> None:
    executable = elf_header(ELFCLASS32, ELFDATA2LSB, EM_386, ET_EXEC)

    assert elf_architecture(executable) == "i386"


@pytest.mark.parametrize(
    "header",
    [
        pytest.param(b"#!/bin/sh\nexec busybox sh\n", id="script"),
        pytest.param(b"", id="empty"),
        pytest.param(X86_64_PROGRAM[:19], id="truncated"),
        pytest.param(elf_header(ELFCLASS64, ELFDATA2LSB, EM_X86_64, ET_CORE), id="core-dump"),
        pytest.param(b"\x7fELF\x03" + X86_64_PROGRAM[5:], id="bad-class"),
        pytest.param(b"\x7fELF\x02\x00" + X86_64_PROGRAM[6:], id="bad-byte-order"),
    ],
)
def test_not_an_elf_program(header: bytes) -> None:
    assert elf_architecture(header) is None


def test_guest_architecture_passes_over_a_script(tmp_path: Path) -> None:
    s390x = elf_header(ELFCLASS64, ELFDATA2MSB, EM_S390)
    tree = plant(tmp_path, {"/bin/bash": b"#!/bin/sh\n", "/bin/ls": s390x})

    assert guest_architecture(tree) == "s390x"


def test_guest_architecture_follows_links_inside_the_guest(tmp_path: Path) -> None:
    riscv = elf_header(ELFCLASS64, ELFDATA2LSB, EM_RISCV)
    tree = plant(
        tmp_path,
        {"/usr/bin/bash": riscv},
        symlinks={"/bin": "usr/bin", "/usr/bin/sh": "/usr/bin/bash"},
    )

    assert guest_architecture(tree) == "riscv64"


def test_guest_architecture_prefers_bash_over_ls(tmp_path: Path) -> None:
    i686 = elf_header(ELFCLASS32, ELFDATA2LSB, EM_386)
    tree = plant(tmp_path, {"/bin/bash": i686, "/bin/ls": X86_64_PROGRAM})

    assert guest_architecture(tree) == "i386"


def test_guest_without_programs_is_unknown(tmp_path: Path) -> None:
    tree = plant(tmp_path, {"/usr/bin/ls": X86_64_PROGRAM}, folders=("/bin",))

    assert guest_architecture(tree) == "unknown"
