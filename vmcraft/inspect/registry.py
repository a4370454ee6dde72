"""A read-only reader of Windows registry hive files (the regf format).

Windows inspection needs a handful of keys from a guest's SOFTWARE and SYSTEM hives; this
reads them in Python, with no host tool and no third-party parser.

A hive starts with a 4096-byte base block (signature ``regf``, the root key's cell offset
at byte 36). Hive bins (``hbin``) follow, each a 32-byte header and then cells. A cell is a
signed 32-bit size, negative while the cell is allocated, and its record: ``nk`` a key,
``vk`` a value, ``lf``/``lh``/``li``/``ri`` a list of subkeys, ``db`` the segments of a big
value, ``sk`` a security descriptor (not read here); a value list is a bare array of
offsets. Offsets inside the hive count from the first hive bin.

The hive is untrusted guest data. Every read is checked against the file's bounds: a
record that cannot be read raises :class:`HiveError`, while listing a key's subkeys or
values skips the broken entries with a warning and returns the rest. Walking the key tree
always ends: a key never lists itself or one of its ancestors as a subkey.
"""

from __future__ import annotations

import logging
import os
import stat
import struct
from collections.abc import Sequence

from vmcraft.errors import InspectionError

log = logging.getLogger(__name__)

BASE_BLOCK_SIZE = 4096
ROOT_CELL_OFFSET = 36  # in the base block
REGF_SIGNATURE = b"regf"
SUPPORTED_MAJOR_VERSION = 1
NO_CELL = 0xFFFFFFFF  # an offset field that points nowhere

MAX_HIVE_SIZE = 1024 * 1024 * 1024  # Windows' own biggest hives are a few hundred MiB
MAX_VALUE_SIZE = 16 * 1024 * 1024  # more is corruption, or a few cells reused to blow up

# nk (key) record: field offsets from the start of the record, after the cell size.
NK_FLAGS = 2
NK_SUBKEY_LIST = 28
NK_VALUE_COUNT = 36
NK_VALUE_LIST = 40
NK_NAME_LENGTH = 72
NK_NAME = 76
KEY_COMP_NAME = 0x20  # the key name is stored in Latin-1, not UTF-16LE

# vk (value) record.
VK_NAME_LENGTH = 2
VK_DATA_SIZE = 4
VK_FLAGS = 16
VK_NAME = 20
VALUE_COMP_NAME = 0x1  # the value name is stored in Latin-1, not UTF-16LE
DATA_INLINE = 0x80000000  # set in the data size: the data sits in the offset field

BIG_DATA_SEGMENT_SIZE = 16344  # most data one cell holds; bigger values use db segments

REG_SZ = 1
REG_EXPAND_SZ = 2
REG_BINARY = 3
REG_DWORD = 4
REG_DWORD_BIG_ENDIAN = 5
REG_LINK = 6
REG_MULTI_SZ = 7
REG_QWORD = 11
STRING_TYPES = frozenset({REG_SZ, REG_EXPAND_SZ, REG_LINK})

RegistryData = str | list[str] | int | bytes
"""A value's data by type: text, a list of texts, a number, or raw bytes for the rest."""


class HiveError(InspectionError):
    """A hive file cannot be opened, or a record in it is corrupt."""


class Hive:
    """One registry hive, read whole into memory.

    Args:
        data: The hive file's bytes.
        name: What error messages call the hive (its path in the guest, say).

    Raises:
        HiveError: The bytes do not start with a regf base block of version 1.
    """

    def __init__(self, data: bytes, name: str = "hive") -> None:
        self.name = name
        self._data = data
        self._root_offset = _root_offset(data, name)

    @classmethod
    def open(cls, path: str, name: str | None = None) -> Hive:
        """Read the hive file at a host path; a symlink, device or FIFO is refused.

        Raises:
            HiveError: The file cannot be read, is not a regular file, is too large or
                is not a hive.
        """
        label = name or path
        try:
            data = _read_regular_file(path, label)
        except OSError as e:
            raise HiveError(f"cannot read hive {label}: {e.strerror or e}") from e
        return cls(data, label)

    def root(self) -> Key:
        """The hive's root key.

        Raises:
            HiveError: The root key's record is corrupt.
        """
        return Key(self, self._root_offset, frozenset())

    def find_key(self, path: str | Sequence[str]) -> Key | None:
        """The key at a backslash-separated path below the root, matched case-insensitively.

        Raises:
            HiveError: The root key's record is corrupt.
        """
        names = path.split("\\") if isinstance(path, str) else path
        key: Key | None = self.root()
        for name in filter(None, names):
            key = key.subkey(name) if key is not None else None
        return key

    def cell(self, offset: int, what: str) -> bytes:
        """The record in the allocated cell at a hive offset, without the size field."""
        start = BASE_BLOCK_SIZE + offset
        if offset == NO_CELL or offset % 8 or start + 4 > len(self._data):
            raise HiveError(f"{self.name}: {what} at 0x{offset:x} is outside the hive")

        (size,) = struct.unpack_from("<i", self._data, start)
        if size >= 0:
            raise HiveError(f"{self.name}: {what} at 0x{offset:x} is in a free cell")
        if -size < 4 or start - size > len(self._data):
            raise HiveError(f"{self.name}: {what} at 0x{offset:x} runs past the hive's end")
        return self._data[start + 4 : start - size]


def _read_regular_file(path: str, label: str) -> bytes:
    # NB: O_NONBLOCK, so that a FIFO planted by the guest does not block the open.
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise HiveError(f"cannot read hive {label}: not a regular file")
        if st.st_size > MAX_HIVE_SIZE:
            raise HiveError(f"cannot read hive {label}: {st.st_size} bytes is too large")
        with open(fd, "rb", closefd=False) as f:
            return f.read(MAX_HIVE_SIZE + 1)
    finally:
        os.close(fd)


def _root_offset(data: bytes, name: str) -> int:
    if len(data) < BASE_BLOCK_SIZE or not data.startswith(REGF_SIGNATURE):
        raise HiveError(f"{name}: not a registry hive (no regf base block)")

    major, minor = struct.unpack_from("<II", data, 20)
    if major != SUPPORTED_MAJOR_VERSION:
        raise HiveError(f"{name}: unsupported hive format version {major}.{minor}")
    root: int = struct.unpack_from("<I", data, ROOT_CELL_OFFSET)[0]
    return root


class Key:
    """One registry key (an ``nk`` record).

    Args:
        hive: The hive holding it.
        offset: Its cell offset.
        ancestors: Cell offsets of the keys above it, which it may not list as subkeys.

    Raises:
        HiveError: The record is not a readable key.
    """

    def __init__(self, hive: Hive, offset: int, ancestors: frozenset[int]) -> None:
        record = hive.cell(offset, "key")
        if record[:2] != b"nk" or len(record) < NK_NAME:
            raise HiveError(f"{hive.name}: cell 0x{offset:x} is not a key record")

        self.hive = hive
        self.offset = offset
        self._ancestors = ancestors
        (flags,) = struct.unpack_from("<H", record, NK_FLAGS)
        self.name = _record_name(record, NK_NAME_LENGTH, NK_NAME, flags & KEY_COMP_NAME)
        (self._subkey_list,) = struct.unpack_from("<I", record, NK_SUBKEY_LIST)
        self._value_count, self._value_list = struct.unpack_from("<II", record, NK_VALUE_COUNT)

    def subkeys(self) -> list[Key]:
        """The readable subkeys, in the order the hive lists them."""
        if self._subkey_list == NO_CELL:
            return []

        lineage = self._ancestors | {self.offset}
        seen = set(lineage)
        keys, broken = [], 0
        for offset in _subkey_offsets(self.hive, self.name, self._subkey_list):
            if offset in seen:
                log.debug("%s: key %s lists 0x%x again", self.hive.name, self.name, offset)
                continue
            seen.add(offset)
            try:
                keys.append(Key(self.hive, offset, lineage))
            except HiveError as e:
                broken += 1
                log.debug("skipping a subkey of %s: %s", self.name, e)
        _warn_skipped(self.hive, self.name, broken, "subkeys")
        return keys

    def subkey(self, name: str) -> Key | None:
        """The subkey of that name, compared case-insensitively as Windows does."""
        wanted = name.lower()
        return next((k for k in self.subkeys() if k.name.lower() == wanted), None)

    def values(self) -> list[Value]:
        """The readable values, in the order the hive lists them."""
        if self._value_count == 0 or self._value_list == NO_CELL:
            return []
        try:
            offsets = self._value_offsets()
        except HiveError as e:
            log.warning("cannot list the values of %s in %s: %s", self.name, self.hive.name, e)
            return []

        values, broken = [], 0
        for offset in offsets:
            try:
                values.append(Value(self.hive, offset))
            except HiveError as e:
                broken += 1
                log.debug("skipping a value of %s: %s", self.name, e)
        _warn_skipped(self.hive, self.name, broken, "values")
        return values

    def value(self, name: str) -> RegistryData | None:
        """The data of the named value (``""``: the default one), or None if it is missing.

        Names are compared case-insensitively, as Windows does.

        Raises:
            HiveError: The value exists but its data is corrupt.
        """
        wanted = name.lower()
        found = next((v for v in self.values() if v.name.lower() == wanted), None)
        return None if found is None else found.data()

    def _value_offsets(self) -> list[int]:
        cell = self.hive.cell(self._value_list, "value list")
        count = min(self._value_count, len(cell) // 4)
        if count < self._value_count:
            log.warning("%s: the value list of key %s is cut short", self.hive.name, self.name)
        return list(struct.unpack_from(f"<{count}I", cell))

    def __repr__(self) -> str:
        return f"Key({self.name!r}, 0x{self.offset:x})"


def _subkey_offsets(hive: Hive, key_name: str, offset: int) -> list[int]:
    # A leaf list (lf, lh, li), or an ri index of leaf lists: never an index of indexes.
    try:
        signature, entries = _list_entries(hive, offset, (b"lf", b"lh", b"li", b"ri"))
    except HiveError as e:
        log.warning("cannot list the subkeys of %s: %s", key_name, e)
        return []
    if signature != b"ri":
        return entries

    offsets = []
    for leaf in dict.fromkeys(entries):  # each leaf list once
        try:
            offsets += _list_entries(hive, leaf, (b"lf", b"lh", b"li"))[1]
        except HiveError as e:
            log.warning("skipping part of the subkeys of %s: %s", key_name, e)
    return offsets


def _list_entries(hive: Hive, offset: int, kinds: tuple[bytes, ...]) -> tuple[bytes, list[int]]:
    cell = hive.cell(offset, "subkey list")
    signature = cell[:2]
    if signature not in kinds or len(cell) < 4:
        raise HiveError(f"{hive.name}: cell 0x{offset:x} is not a subkey list")

    stride = 8 if signature in (b"lf", b"lh") else 4  # lf, lh: a name hash after each
    (count,) = struct.unpack_from("<H", cell, 2)
    if count > (len(cell) - 4) // stride:
        log.warning("%s: subkey list 0x%x is cut short", hive.name, offset)
        count = (len(cell) - 4) // stride
    return signature, [struct.unpack_from("<I", cell, 4 + i * stride)[0] for i in range(count)]


class Value:
    """One registry value (a ``vk`` record); its data is read when asked for."""

    def __init__(self, hive: Hive, offset: int) -> None:
        record = hive.cell(offset, "value")
        if record[:2] != b"vk" or len(record) < VK_NAME:
            raise HiveError(f"{hive.name}: cell 0x{offset:x} is not a value record")

        self.hive = hive
        self.offset = offset
        self._size, self._data_offset, self.type = struct.unpack_from("<III", record, VK_DATA_SIZE)
        (flags,) = struct.unpack_from("<H", record, VK_FLAGS)
        self.name = _record_name(record, VK_NAME_LENGTH, VK_NAME, flags & VALUE_COMP_NAME)

    def raw(self) -> bytes:
        """The data's bytes as stored.

        Raises:
            HiveError: The data is corrupt or implausibly large.
        """
        if self._size & DATA_INLINE:
            size = self._size & ~DATA_INLINE
            if size > 4:
                raise HiveError(f"{self.hive.name}: value {self.name!r} has a bad inline size")
            return struct.pack("<I", self._data_offset)[:size]

        if self._size == 0:
            return b""
        if self._size > MAX_VALUE_SIZE:
            raise HiveError(f"{self.hive.name}: value {self.name!r} claims {self._size} bytes")
        cell = self.hive.cell(self._data_offset, f"data of value {self.name!r}")
        if len(cell) >= self._size:
            return cell[: self._size]
        if self._size > BIG_DATA_SEGMENT_SIZE and cell[:2] == b"db":
            return self._big_data(cell)
        raise HiveError(f"{self.hive.name}: the data of value {self.name!r} is cut short")

    def data(self) -> RegistryData:
        """The data decoded by type: see :func:`decode_data`.

        Raises:
            HiveError: The data is corrupt, or too short for its type.
        """
        return decode_data(self.type, self.raw(), f"{self.hive.name}: value {self.name!r}")

    def _big_data(self, header: bytes) -> bytes:
        if len(header) < 8:
            raise HiveError(f"{self.hive.name}: value {self.name!r} has a bad db record")
        count, segment_list = struct.unpack_from("<HI", header, 2)
        offsets = self.hive.cell(segment_list, f"segments of value {self.name!r}")
        if count * 4 > len(offsets):
            raise HiveError(f"{self.hive.name}: value {self.name!r} lost its segment list")

        chunks, total = [], 0
        for (offset,) in struct.iter_unpack("<I", offsets[: count * 4]):
            segment = self.hive.cell(offset, f"a segment of value {self.name!r}")
            chunk = segment[: min(BIG_DATA_SEGMENT_SIZE, self._size - total)]
            chunks.append(chunk)
            total += len(chunk)
            if total >= self._size:
                return b"".join(chunks)
        raise HiveError(f"{self.hive.name}: the segments of value {self.name!r} are cut short")


def decode_data(value_type: int, raw: bytes, what: str = "value") -> RegistryData:
    """Decode value data by its registry type.

    Returns:
        ``str`` for REG_SZ, REG_EXPAND_SZ and REG_LINK (UTF-16LE up to the first NUL);
        ``list[str]`` for REG_MULTI_SZ; ``int`` for REG_DWORD (either byte order) and
        REG_QWORD; the raw bytes for every other type.

    Raises:
        HiveError: A number is shorter than its type.
    """
    if value_type in STRING_TYPES:
        return _utf16(raw).split("\0", 1)[0]
    if value_type == REG_MULTI_SZ:
        strings = _utf16(raw).split("\0")
        return strings[: strings.index("")] if "" in strings else strings
    if value_type in (REG_DWORD, REG_DWORD_BIG_ENDIAN, REG_QWORD):
        size = 8 if value_type == REG_QWORD else 4
        if len(raw) < size:
            raise HiveError(f"{what}: {len(raw)} bytes is too short for its type")
        if value_type == REG_DWORD_BIG_ENDIAN:
            return int.from_bytes(raw[:size], "big")
        return int.from_bytes(raw[:size], "little")
    return raw


def _utf16(raw: bytes) -> str:
    return raw[: len(raw) & ~1].decode("utf-16-le", errors="replace")


def _record_name(record: bytes, length_at: int, name_at: int, latin1: int) -> str:
    (length,) = struct.unpack_from("<H", record, length_at)
    name = record[name_at : name_at + length]
    return name.decode("latin-1") if latin1 else _utf16(name)


def _warn_skipped(hive: Hive, key_name: str, broken: int, what: str) -> None:
    if broken:
        log.warning("%s: skipped %d unreadable %s of key %s", hive.name, broken, what, key_name)
