"""Tests for the pure-Python partition table reader.

Every image is built in ``tmp_path`` by the tools a user has (truncate, sfdisk, mkfs.vfat);
damage is done by writing bytes at offsets the MBR and GPT specifications define. Expected
values come from the layouts written here, and once from ``sfdisk --json`` as a second route.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from vmcraft.errors import VolumeError
from vmcraft.volumes.partitions import (
    Partition,
    PartitionTable,
    find_partition,
    read_partition_table,
)

SECTOR = 512
DISK_SIZE = "64M"
DISK_SECTORS = 64 * 1024 * 1024 // SECTOR
TOOL_ENV = {**os.environ, "LC_ALL": "C"}

# number, start sector, sectors, MBR type, bootable; slot 4 is the extended container.
DOS_ID = "1234abcd"
DOS_LAYOUT = [
    (1, 2048, 8192, "83", True),
    (2, 10240, 8192, "8e", False),
    (3, 18432, 8192, "07", False),
    (4, 26624, 104448, "05", False),
    (5, 28672, 8192, "83", False),
    (6, 38912, 8192, "0c", False),
    (7, 49152, 16384, "82", False),
]

# GUIDs of the UEFI specification and the Discoverable Partitions Specification.
ESP_TYPE = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX_FS_TYPE = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
LINUX_LVM_TYPE = "E6D6D379-F507-44C2-A23C-238F2A3DF928"

# number, start sector, sectors, type GUID, unique GUID, name, legacy BIOS bootable; no slot 2.
GPT_ID = "6E4B1F2A-93C5-4D7E-8A10-2B3C4D5E6F70"
GPT_LAYOUT = [
    (1, 2048, 4096, ESP_TYPE, "11111111-2222-4333-8444-555555555501", "EFI System", True),
    (3, 8192, 16384, LINUX_FS_TYPE, "11111111-2222-4333-8444-555555555503", "données", False),
    (4, 24576, 32768, LINUX_LVM_TYPE, "11111111-2222-4333-8444-555555555504", "lvm", False),
]

MBR_ENTRY = struct.Struct("<B3sB3sII")


def _run(argv: list[str], stdin: str | None = None) -> str:
    result = subprocess.run(
        argv, input=stdin, env=TOOL_ENV, capture_output=True, text=True, check=True, timeout=60
    )
    return result.stdout


def _tool_runs(argv: list[str]) -> bool:
    if shutil.which(argv[0]) is None:
        return False

    try:
        _run(argv)
    except (OSError, subprocess.SubprocessError):
        return False
    return True


@pytest.fixture(scope="session")
def sfdisk() -> str:
    """Skip unless sfdisk runs on this host."""
    if not _tool_runs(["sfdisk", "--version"]):
        pytest.skip("sfdisk is not installed or does not run")
    return "sfdisk"


@pytest.fixture(scope="session")
def mkfs_vfat() -> str:
    """Skip unless mkfs.vfat runs on this host."""
    if not _tool_runs(["mkfs.vfat", "--help"]):
        pytest.skip("mkfs.vfat is not installed or does not run")
    return "mkfs.vfat"


def _blank_image(tmp_path: Path) -> Path:
    image = tmp_path / "disk.img"
    _run(["truncate", "-s", DISK_SIZE, str(image)])
    return image


def _write_table(image: Path, script: str) -> None:
    _run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(image)], stdin=script)


def _partitioned_image(tmp_path: Path, script: str) -> Path:
    image = _blank_image(tmp_path)
    _write_table(image, script)
    return image


def _dos_script(image: Path, extended_type: str = "05") -> str:
    lines = ["label: dos", f"label-id: 0x{DOS_ID}"]
    for number, start, sectors, type_, bootable in DOS_LAYOUT:
        written_type = extended_type if number == 4 else type_
        flag = ", bootable" if bootable else ""
        lines.append(f"{image}{number} : start={start}, size={sectors}, type={written_type}{flag}")
    return "\n".join(lines) + "\n"


def _gpt_script(image: Path) -> str:
    lines = ["label: gpt", f"label-id: {GPT_ID}"]
    for number, start, sectors, type_, guid, name, bootable in GPT_LAYOUT:
        attrs = ', attrs="LegacyBIOSBootable"' if bootable else ""
        lines.append(
            f"{image}{number} : start={start}, size={sectors}, type={type_}, uuid={guid},"
            f' name="{name}"{attrs}'
        )
    return "\n".join(lines) + "\n"


def _expected_dos(extended_type: str = "05") -> PartitionTable:
    partitions = tuple(
        Partition(
            number=number,
            start=start * SECTOR,
            size=sectors * SECTOR,
            type=extended_type if number == 4 else type_,
            uuid=None,
            name=None,
            bootable=bootable,
            extended=number == 4,
        )
        for number, start, sectors, type_, bootable in DOS_LAYOUT
    )
    return PartitionTable("msdos", partitions, DOS_ID)


def _expected_gpt() -> PartitionTable:
    partitions = tuple(
        Partition(number, start * SECTOR, sectors * SECTOR, type_, guid, name, bootable)
        for number, start, sectors, type_, guid, name, bootable in GPT_LAYOUT
    )
    return PartitionTable("gpt", partitions, GPT_ID)


def _sfdisk_json(image: Path) -> dict[str, Any]:
    table: dict[str, Any] = json.loads(_run(["sfdisk", "--json", str(image)]))["partitiontable"]
    return table


def _node_number(image: Path, node: str) -> int:
    return int(node.removeprefix(str(image)))


def _write_at(image: Path, offset: int, data: bytes) -> None:
    with image.open("r+b") as f:
        f.seek(offset)
        f.write(data)


def _ebr(logical: tuple[int, int] | None, link: tuple[int, int] | None) -> bytes:
    """An EBR: a logical (start relative to this EBR, sectors) and a link to the next EBR."""
    sector = bytearray(SECTOR)
    if logical is not None:
        MBR_ENTRY.pack_into(sector, 446, 0, bytes(3), 0x83, bytes(3), *logical)
    if link is not None:
        MBR_ENTRY.pack_into(sector, 462, 0, bytes(3), 0x05, bytes(3), *link)
    sector[510:512] = b"\x55\xaa"
    return bytes(sector)


def _extended_only_image(tmp_path: Path) -> Path:
    script = "label: dos\nlabel-id: 0x0badcafe\nstart=2048, size=65536, type=05\n"
    return _partitioned_image(tmp_path, script)


@pytest.mark.parametrize("extended_type", ["05", "0f", "85"])
def test_msdos_primaries_and_logicals(sfdisk: str, tmp_path: Path, extended_type: str) -> None:
    image = _blank_image(tmp_path)
    _write_table(image, _dos_script(image, extended_type))

    table = read_partition_table(str(image))

    assert table == _expected_dos(extended_type)


def test_msdos_agrees_with_sfdisk_json(sfdisk: str, tmp_path: Path) -> None:
    image = _blank_image(tmp_path)
    _write_table(image, _dos_script(image))
    reference = _sfdisk_json(image)

    table = read_partition_table(str(image))

    assert table is not None
    # NB: sfdisk 2.38 names the MBR label "dos" where parted says "msdos".
    assert (table.kind, f"0x{table.disk_id}") == ("msdos", reference["id"])
    assert reference["label"] == "dos"
    assert len(table.partitions) == len(reference["partitions"])
    for partition, entry in zip(table.partitions, reference["partitions"], strict=True):
        assert partition.number == _node_number(image, entry["node"])
        assert (partition.start, partition.size) == (
            entry["start"] * SECTOR,
            entry["size"] * SECTOR,
        )
        assert int(partition.type, 16) == int(entry["type"], 16)
        assert partition.bootable == entry.get("bootable", False)


def test_gpt_named_partitions(sfdisk: str, tmp_path: Path) -> None:
    image = _blank_image(tmp_path)
    _write_table(image, _gpt_script(image))

    table = read_partition_table(str(image))

    assert table == _expected_gpt()


def test_gpt_agrees_with_sfdisk_json(sfdisk: str, tmp_path: Path) -> None:
    image = _blank_image(tmp_path)
    _write_table(image, _gpt_script(image))
    reference = _sfdisk_json(image)

    table = read_partition_table(str(image))

    assert table is not None
    assert (table.kind, table.disk_id) == (reference["label"], reference["id"])
    for partition, entry in zip(table.partitions, reference["partitions"], strict=True):
        assert partition.number == _node_number(image, entry["node"])
        assert (partition.start, partition.size) == (
            entry["start"] * SECTOR,
            entry["size"] * SECTOR,
        )
        assert (partition.type, partition.uuid) == (entry["type"], entry["uuid"])
        assert partition.name == entry["name"]
        assert partition.bootable == ("LegacyBIOSBootable" in entry.get("attrs", ""))


def test_empty_msdos_label_is_a_table(sfdisk: str, tmp_path: Path) -> None:
    image = _partitioned_image(tmp_path, "label: dos\nlabel-id: 0x00c0ffee\n")

    assert read_partition_table(str(image)) == PartitionTable("msdos", (), "00c0ffee")


def test_zeroed_disk_has_no_table(tmp_path: Path) -> None:
    image = _blank_image(tmp_path)

    assert read_partition_table(str(image)) is None


@pytest.mark.parametrize("fat_bits", ["16", "32"])
def test_whole_disk_vfat_has_no_table(mkfs_vfat: str, tmp_path: Path, fat_bits: str) -> None:
    image = _blank_image(tmp_path)
    _run([mkfs_vfat, "-F", fat_bits, str(image)])

    assert read_partition_table(str(image)) is None


def test_ntfs_boot_sector_mark_means_no_table(tmp_path: Path) -> None:
    image = _blank_image(tmp_path)
    _write_at(image, 3, b"NTFS    ")
    _write_at(image, 510, b"\x55\xaa")

    assert read_partition_table(str(image)) is None


@pytest.mark.parametrize(
    ("status", "type_", "start", "sectors"),
    [
        (0x12, 0x83, 2048, 2048),  # status byte neither 0x00 nor 0x80
        (0x00, 0x83, 2048, 0),  # a typed entry of no size
        (0x80, 0x83, 2048, DISK_SECTORS),  # runs past the end of the disk
    ],
)
def test_implausible_mbr_means_no_table(
    tmp_path: Path, status: int, type_: int, start: int, sectors: int
) -> None:
    image = _blank_image(tmp_path)
    _write_at(image, 446, MBR_ENTRY.pack(status, bytes(3), type_, bytes(3), start, sectors))
    _write_at(image, 510, b"\x55\xaa")

    assert read_partition_table(str(image)) is None


def test_gpt_corrupt_primary_header_uses_backup(
    sfdisk: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = _blank_image(tmp_path)
    _write_table(image, _gpt_script(image))
    _write_at(image, 1 * SECTOR + 24, b"\xff\xff\xff\xff")

    with caplog.at_level(logging.WARNING, logger="vmcraft.volumes.partitions"):
        table = read_partition_table(str(image))

    assert table == _expected_gpt()
    assert "header CRC mismatch" in caplog.text


def test_gpt_corrupt_primary_entries_use_backup(sfdisk: str, tmp_path: Path) -> None:
    image = _blank_image(tmp_path)
    _write_table(image, _gpt_script(image))
    _write_at(image, 2 * SECTOR + 56, "bad".encode("utf-16-le"))

    assert read_partition_table(str(image)) == _expected_gpt()


def test_gpt_both_headers_corrupt(sfdisk: str, tmp_path: Path) -> None:
    image = _blank_image(tmp_path)
    _write_table(image, _gpt_script(image))
    _write_at(image, 1 * SECTOR + 24, b"\xff\xff\xff\xff")
    _write_at(image, (DISK_SECTORS - 1) * SECTOR + 24, b"\xff\xff\xff\xff")

    with pytest.raises(VolumeError, match=r"corrupt GPT on .*disk\.img: header CRC mismatch"):
        read_partition_table(str(image))


def test_ebr_chain_loop(sfdisk: str, tmp_path: Path) -> None:
    image = _extended_only_image(tmp_path)
    _write_at(image, 2048 * SECTOR, _ebr((2048, 2048), (8192, 4096)))
    _write_at(image, (2048 + 8192) * SECTOR, _ebr((2048, 2048), (0, 4096)))

    with pytest.raises(VolumeError, match="EBR chain loops back to sector 2048"):
        read_partition_table(str(image))


def _write_ebr_chain(image: Path, links: int) -> None:
    """Write ``links`` EBRs 16 sectors apart from sector 2048, each with an 8-sector logical."""
    for index in range(links):
        link = (16 * (index + 1), 16) if index + 1 < links else None
        _write_at(image, (2048 + 16 * index) * SECTOR, _ebr((8, 8), link))


def test_ebr_chain_of_128_links_is_read(sfdisk: str, tmp_path: Path) -> None:
    image = _extended_only_image(tmp_path)
    _write_ebr_chain(image, 128)

    table = read_partition_table(str(image))

    assert table is not None
    logicals = table.partitions[1:]
    assert [p.number for p in logicals] == list(range(5, 5 + 128))
    assert logicals[-1].start == (2048 + 16 * 127 + 8) * SECTOR
    assert logicals[-1].size == 8 * SECTOR


def test_ebr_chain_too_long(sfdisk: str, tmp_path: Path) -> None:
    image = _extended_only_image(tmp_path)
    _write_ebr_chain(image, 129)

    with pytest.raises(VolumeError, match="EBR chain longer than 128 links"):
        read_partition_table(str(image))


def test_ebr_without_signature_ends_chain(
    sfdisk: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = _extended_only_image(tmp_path)
    _write_at(image, 2048 * SECTOR, _ebr((2048, 2048), (8192, 4096)))

    with caplog.at_level(logging.WARNING, logger="vmcraft.volumes.partitions"):
        table = read_partition_table(str(image))

    assert table is not None
    assert [p.number for p in table.partitions] == [1, 5]
    assert "no 0x55AA signature" in caplog.text


def test_find_partition(sfdisk: str, tmp_path: Path) -> None:
    image = _blank_image(tmp_path)
    _write_table(image, _dos_script(image))
    table = read_partition_table(str(image))
    assert table is not None

    assert find_partition(table, 6).start == 38912 * SECTOR
    with pytest.raises(VolumeError, match="no partition 8 in msdos table"):
        find_partition(table, 8)


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "absent.img"

    with pytest.raises(VolumeError, match=r"cannot read partition table of .*absent\.img"):
        read_partition_table(str(missing))
