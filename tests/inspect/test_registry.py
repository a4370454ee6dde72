"""The regf reader against hives written by hivex, read back independently with hivexml.

The hives come from ``hivexsh -w`` (windows_guests.py); every key and value the reader
finds is compared with what hivexml prints for the same file, and typed data with the
values the specs encoded. Corrupt hives are made by cutting or overwriting those files at
offsets taken from the regf layout: reading them may raise only ``HiveError`` and must end.
"""

from __future__ import annotations

import base64
import contextlib
import os
import random
import struct
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from windows_guests import (
    TYPED_VALUES,
    WINDOWS_7_SOFTWARE,
    WINDOWS_10_SOFTWARE,
    WINDOWS_10_SYSTEM,
    HiveSpec,
    big_value_hive,
    build_hive,
)

from vmcraft.errors import InspectionError
from vmcraft.inspect.registry import Hive, HiveError, Key

pytestmark = pytest.mark.requires_tool("hivexsh", "-f", "/dev/null")

SPECS = {
    "SOFTWARE": WINDOWS_10_SOFTWARE,
    "SYSTEM": WINDOWS_10_SYSTEM,
    "WIN7": WINDOWS_7_SOFTWARE,
    "TYPED": TYPED_VALUES,
}
BASE_BLOCK = 4096
NK_SUBKEY_LIST = 28  # field offsets inside an nk record, after the cell's size
NK_VALUE_LIST = 40
VK_DATA_SIZE = 4


@pytest.fixture(scope="module")
def hives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("hives")
    return {
        name: build_hive(folder / name, spec, folder / "scratch") for name, spec in SPECS.items()
    }


# ---------------------------------------------------------------- independent route


def hivexml(path: Path) -> ET.Element:
    """hivexml's view of a hive: the root <node> element."""
    xml = subprocess.run(["hivexml", str(path)], capture_output=True, check=True, timeout=60)
    root = ET.fromstring(xml.stdout).find("node")
    assert root is not None
    return root


def xml_tree(node: ET.Element) -> dict[str, Any]:
    values = {v.get("key", ""): xml_value(v) for v in node.findall("value")}
    children = [xml_tree(child) for child in node.findall("node")]
    return {"name": node.get("name"), "values": values, "children": children}


def xml_value(value: ET.Element) -> object:
    kind, text = value.get("type"), value.get("value", "")
    if kind in ("string", "expand"):
        return text
    if kind == "string-list":
        strings = [s.text or "" for s in value.findall("string")]
        while strings and strings[-1] == "":  # hivexml prints the list's empty terminator
            strings.pop()
        return strings
    if kind in ("int32", "int64"):
        bits = 32 if kind == "int32" else 64
        return int(text) % (1 << bits)  # hivexml prints them signed
    assert value.get("encoding") == "base64", kind
    return base64.b64decode(text)


def reader_tree(key: Key) -> dict[str, Any]:
    values = {v.name: v.data() for v in key.values()}
    children = [reader_tree(child) for child in key.subkeys()]
    return {"name": key.name, "values": values, "children": children}


# ---------------------------------------------------------------- well-formed hives


@pytest.mark.parametrize("name", SPECS)
def test_reader_agrees_with_hivexml(hives: dict[str, Path], name: str) -> None:
    path = hives[name]

    assert reader_tree(Hive.open(str(path)).root()) == xml_tree(hivexml(path))


@pytest.mark.parametrize("name", SPECS)
def test_values_decode_as_their_types_define(hives: dict[str, Path], name: str) -> None:
    hive = Hive.open(str(hives[name]))

    for key_path, values in SPECS[name].items():
        key = hive.find_key(key_path)
        assert key is not None, key_path
        for value_name, value in values.items():
            assert key.value(value_name) == value.expected, (key_path, value_name)


def test_lookups_ignore_case_and_missing_names_give_none(hives: dict[str, Path]) -> None:
    hive = Hive.open(str(hives["TYPED"]))
    deeper = hive.find_key(r"TYPES\nested\DeEpEr")

    assert deeper is not None and deeper.name == "Deeper"
    assert hive.find_key(["types", "NESTED"]) is not None
    assert deeper.value("SMALL NUMBER") == 0x12345678
    assert deeper.value("ünïcode NAME €") == "non-Latin-1 name, stored as UTF-16LE"
    assert deeper.value("no such value") is None
    assert deeper.subkey("no such key") is None
    assert hive.find_key(r"Types\Missing\Deeper") is None


def test_big_value_is_assembled_from_its_segments(tmp_path: Path) -> None:
    data = random.Random(4).randbytes(40_000)  # three segments of at most 16344 bytes
    path = tmp_path / "big.hive"
    path.write_bytes(big_value_hive("Big", data))

    assert xml_tree(hivexml(path))["values"] == {"Big": data}
    assert Hive.open(str(path)).root().value("big") == data


# ---------------------------------------------------------------- corrupt hives


def walk_tolerantly(key: Key, found: list[str]) -> None:
    """Read everything reachable, as inspection would; only HiveError may stop a value."""
    found.append(key.name)
    for value in key.values():
        with contextlib.suppress(HiveError):
            value.data()
    for child in key.subkeys():
        walk_tolerantly(child, found)


def read_everything(data: bytes) -> list[str]:
    try:
        root = Hive(data, "corrupt").root()
    except HiveError:
        return []
    found: list[str] = []
    walk_tolerantly(root, found)
    return found


def cell_field(data: bytes | bytearray, cell: int, field: int) -> int:
    value: int = struct.unpack_from("<I", data, BASE_BLOCK + cell + 4 + field)[0]
    return value


@pytest.mark.parametrize(
    "data", [b"", b"regf", b"regf" + bytes(5000), random.Random(1).randbytes(8192)]
)
def test_what_is_not_a_hive_is_refused(data: bytes) -> None:
    with pytest.raises(HiveError) as raised:
        Hive(data, "junk").root()

    assert isinstance(raised.value, InspectionError)
    assert "junk" in str(raised.value)


def test_truncated_hive_gives_what_it_still_holds(hives: dict[str, Path]) -> None:
    data = hives["SOFTWARE"].read_bytes()
    whole = read_everything(data)
    cuts = {size: read_everything(data[:size]) for size in range(BASE_BLOCK, len(data), 256)}

    assert len(whole) == 1 + len(key_paths(WINDOWS_10_SOFTWARE))
    assert cuts[BASE_BLOCK] == []
    assert all(set(found) <= set(whole) for found in cuts.values())
    assert any(0 < len(found) < len(whole) for found in cuts.values())


def key_paths(spec: HiveSpec) -> set[str]:
    """Every key a spec makes, parents included."""
    paths = set()
    for path in spec:
        names = path.split("\\")
        paths |= {"\\".join(names[:depth]) for depth in range(1, len(names) + 1)}
    return paths


@pytest.mark.parametrize("seed", range(60))
def test_garbage_in_a_hive_bin_never_crashes(hives: dict[str, Path], seed: int) -> None:
    data = bytearray(hives["SOFTWARE"].read_bytes())
    rng = random.Random(seed)
    for _ in range(rng.randint(1, 8)):
        start = rng.randrange(BASE_BLOCK, len(data))
        garbage = rng.randbytes(rng.randint(1, 64))[: len(data) - start]
        data[start : start + len(garbage)] = garbage

    read_everything(bytes(data))


def test_a_broken_key_costs_only_itself(hives: dict[str, Path]) -> None:
    data = bytearray(hives["SOFTWARE"].read_bytes())
    seven_zip = Hive(bytes(data)).find_key(r"Microsoft\Windows\CurrentVersion\Uninstall\7-Zip")
    assert seven_zip is not None
    data[BASE_BLOCK + seven_zip.offset + 4 : BASE_BLOCK + seven_zip.offset + 6] = b"XX"

    hive = Hive(bytes(data))
    uninstall = hive.find_key(r"Microsoft\Windows\CurrentVersion\Uninstall")
    assert uninstall is not None
    names = [key.name for key in uninstall.subkeys()]
    assert "7-Zip" not in names and "KB5005463" in names
    version = hive.find_key(r"Microsoft\Windows NT\CurrentVersion")
    assert version is not None and version.value("ProductName") == "Windows 10 Pro"


def test_a_subkey_list_pointing_back_up_ends(hives: dict[str, Path]) -> None:
    data = bytearray(hives["SYSTEM"].read_bytes())
    root = Hive(bytes(data)).root()
    select = root.subkey("Select")
    assert select is not None
    # Every entry of the root's subkey list now names the root itself or Select twice.
    subkey_list = cell_field(data, root.offset, NK_SUBKEY_LIST)
    list_start = BASE_BLOCK + subkey_list + 4
    signature, count = struct.unpack_from("<2sH", data, list_start)
    stride = 8 if signature in (b"lf", b"lh") else 4
    for index in range(count):
        target = root.offset if index % 2 == 0 else select.offset
        struct.pack_into("<I", data, list_start + 4 + index * stride, target)

    names = read_everything(bytes(data))
    assert names.count("Select") == 1 and names[0] == "ROOT"


def test_an_index_of_itself_ends(hives: dict[str, Path]) -> None:
    data = bytearray(hives["SYSTEM"].read_bytes())
    root = Hive(bytes(data)).root()
    subkey_list = cell_field(data, root.offset, NK_SUBKEY_LIST)
    struct.pack_into("<2sHI", data, BASE_BLOCK + subkey_list + 4, b"ri", 1, subkey_list)

    assert Hive(bytes(data)).root().subkeys() == []


def test_a_value_claiming_huge_data_is_an_error(hives: dict[str, Path]) -> None:
    data = bytearray(hives["TYPED"].read_bytes())
    deeper = Hive(bytes(data)).find_key(r"Types\Nested\Deeper")
    assert deeper is not None
    blob = next(v for v in deeper.values() if v.name == "blob")
    struct.pack_into("<I", data, BASE_BLOCK + blob.offset + 4 + VK_DATA_SIZE, 0x7FFFFFF0)

    broken = Hive(bytes(data)).find_key(r"Types\Nested\Deeper")
    assert broken is not None
    with pytest.raises(HiveError, match="blob"):
        broken.value("blob")
    assert broken.value("text") == "plain text"


# ---------------------------------------------------------------- opening files


def test_open_refuses_what_is_not_a_regular_file(hives: dict[str, Path], tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(hives["SYSTEM"])
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)

    for path in (link, fifo, tmp_path, tmp_path / "missing"):
        with pytest.raises(HiveError, match="cannot read hive"):
            Hive.open(str(path))
    assert Hive.open(str(hives["SYSTEM"]), name="/Windows/x").root().name == "ROOT"
