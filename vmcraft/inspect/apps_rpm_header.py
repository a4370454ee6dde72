"""RPM headers, the binary records the RPM database keeps for each installed package.

A header as the database stores it is two big-endian 32-bit counts, ``il`` index entries
and ``dl`` bytes of data, then the ``il`` entries of 16 bytes each (tag, type, offset into
the data, count), then the data. In a package file the same header follows an 8-byte
intro of magic ``8e ad e8 01`` and four reserved bytes, which is skipped when present.
Strings are NUL-terminated; an ``I18NSTRING`` holds one string per language, the first for
the C locale; an ``INT32`` is big-endian.

The record is what libguestfs gets from librpm: name, epoch, version, release, arch, URL,
summary and description. libguestfs fills neither the publisher (``VENDOR``) nor the source
package (``SOURCERPM``) for RPM guests, so neither is read here.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from vmcraft.inspect.apps_base import Application, application

RPMTAG_NAME = 1000
RPMTAG_VERSION = 1001
RPMTAG_RELEASE = 1002
RPMTAG_EPOCH = 1003
RPMTAG_SUMMARY = 1004
RPMTAG_DESCRIPTION = 1005
RPMTAG_URL = 1020
RPMTAG_ARCH = 1022
_WANTED_TAGS = frozenset(
    {
        RPMTAG_NAME,
        RPMTAG_VERSION,
        RPMTAG_RELEASE,
        RPMTAG_EPOCH,
        RPMTAG_SUMMARY,
        RPMTAG_DESCRIPTION,
        RPMTAG_URL,
        RPMTAG_ARCH,
    }
)

RPM_INT32_TYPE = 4
RPM_STRING_TYPE = 6
RPM_STRING_ARRAY_TYPE = 8
RPM_I18NSTRING_TYPE = 9
RPM_MAX_TYPE = 9
_STRING_TYPES = (RPM_STRING_TYPE, RPM_STRING_ARRAY_TYPE, RPM_I18NSTRING_TYPE)

HEADER_MAGIC = bytes.fromhex("8eade801")
HEADER_INTRO_SIZE = 8  # magic and 4 reserved bytes, in package files only
MAX_INDEX_ENTRIES = 0xFFFF  # rpm refuses headers with more
MAX_DATA_SIZE = 256 * 1024 * 1024  # ...or with a larger data store

_COUNTS = struct.Struct(">II")
_ENTRY = struct.Struct(">iIiI")
_INT32 = struct.Struct(">i")


class HeaderError(ValueError):
    """An RPM header that cannot be decoded."""


@dataclass(frozen=True)
class _Entry:
    type: int
    offset: int
    count: int


def read_header(blob: bytes) -> Application:
    """The app2 record of one package from its header, as libguestfs builds it.

    Raises:
        HeaderError: The header is truncated, inconsistent, or has no name.
    """
    entries, store = _index(blob)
    name = _string(entries, store, RPMTAG_NAME)
    if not name:
        raise HeaderError("the header has no package name")

    return application(
        name,
        epoch=_int32(entries, store, RPMTAG_EPOCH),
        version=_string(entries, store, RPMTAG_VERSION),
        release=_string(entries, store, RPMTAG_RELEASE),
        arch=_string(entries, store, RPMTAG_ARCH),
        url=_string(entries, store, RPMTAG_URL),
        summary=_string(entries, store, RPMTAG_SUMMARY),
        description=_string(entries, store, RPMTAG_DESCRIPTION),
    )


def _index(blob: bytes) -> tuple[dict[int, _Entry], bytes]:
    if blob.startswith(HEADER_MAGIC):
        blob = blob[HEADER_INTRO_SIZE:]
    if len(blob) < _COUNTS.size:
        raise HeaderError(f"{len(blob)} bytes are too few for a header")

    index_entries, data_size = _COUNTS.unpack_from(blob)
    if not 1 <= index_entries <= MAX_INDEX_ENTRIES or data_size > MAX_DATA_SIZE:
        raise HeaderError(f"implausible sizes: {index_entries} entries, {data_size} bytes")
    store_start = _COUNTS.size + index_entries * _ENTRY.size
    if len(blob) < store_start + data_size:
        raise HeaderError(f"truncated: {len(blob)} of {store_start + data_size} bytes")

    entries = {}
    for tag, kind, offset, count in _ENTRY.iter_unpack(blob[_COUNTS.size : store_start]):
        if kind > RPM_MAX_TYPE or not 0 <= offset <= data_size:
            raise HeaderError(f"tag {tag}: type {kind} or offset {offset} out of range")
        if tag in _WANTED_TAGS:
            # A tag added after installation comes later and wins, as in rpm.
            entries[tag] = _Entry(kind, offset, count)
    return entries, blob[store_start : store_start + data_size]


def _string(entries: dict[int, _Entry], store: bytes, tag: int) -> str:
    entry = entries.get(tag)
    if entry is None:
        return ""
    if entry.type not in _STRING_TYPES:
        raise HeaderError(f"tag {tag} has type {entry.type}, not a string")

    end = store.find(b"\0", entry.offset)
    if end < 0:
        raise HeaderError(f"the string of tag {tag} runs past the data")
    return store[entry.offset : end].decode("utf-8", errors="replace")


def _int32(entries: dict[int, _Entry], store: bytes, tag: int) -> int:
    entry = entries.get(tag)
    if entry is None:
        return 0
    if entry.type != RPM_INT32_TYPE or entry.count < 1:
        raise HeaderError(f"tag {tag} has type {entry.type}, not a number")
    if entry.offset + _INT32.size > len(store):
        raise HeaderError(f"the number of tag {tag} runs past the data")
    value: int = _INT32.unpack_from(store, entry.offset)[0]
    return value
