"""The records of a Berkeley DB hash database, read in Python.

RPM up to 4.15 (RHEL 7 and 8, SLES 12...) keeps its package headers in ``Packages``, a
Berkeley DB 4.x/5.x hash database. The layout read here:

- Page 0 is the metadata page. The magic ``0x061561`` at byte 12 tells the byte order of
  every number in the file; then come the hash version at 16, the page size at 20, the
  encryption algorithm at 24, the page type (8) at 25, the flags at 26 (bit 0: pages carry
  checksums), the last page number at 32, the highest bucket at 72 and, at 96, 32 "spares"
  that place buckets: bucket ``b`` starts at page ``b + spares[ceil(log2(b + 1))]``.
- Every other page starts with a 26-byte header (32 bytes with checksums): its own number
  at 8, the next page of its chain at 16, its entry count at 20, its high free offset at 22
  and its type at 25.
- A hash page (type 13, or 2 in old files) holds an array of 16-bit offsets after the
  header, one per item, key and data items alternating. An item runs from its offset up
  to the previous item's offset (the first up to the page end) and starts with its kind:
  1, the bytes follow; 3, they are on a chain of overflow pages, whose first page number
  is at byte 4 of the item and total length at byte 8.
- An overflow page (type 7) holds its share of the bytes after the header, as many as its
  high free offset says.

Each bucket's chain of pages is walked from the metadata, so pages left over from freed or
reused space are never mistaken for records. Damage (a truncated file, a page of the wrong
type, a broken overflow chain) costs the records it touches, is reported through a
callback, and the walk goes on with the next bucket.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

HASH_MAGIC = 0x061561
HASH_VERSIONS = (7, 8, 9)  # Berkeley DB 3.3 to 6: the page layout read here is the same
P_HASH_UNSORTED = 2
P_OVERFLOW = 7
P_HASHMETA = 8
P_HASH = 13
H_KEYDATA = 1
H_OFFPAGE = 3
DBMETA_CHKSUM = 0x01
NO_PAGE = 0  # PGNO_INVALID: the end of a chain

PAGE_HEADER_SIZE = 26
CHECKSUM_PAGE_HEADER_SIZE = 32
META_SIZE = 512
SPARES = 32
MIN_PAGE_SIZE = 512
MAX_PAGE_SIZE = 64 * 1024

_META_FIELDS = "2I3B5xI36xI"  # from byte 16: version ... flags, last page, highest bucket
_PAGE_HEADER = "8xI4xIHHxB"  # pgno, next, entries, high free offset, type
_OFFPAGE = "4xII"  # overflow page, total length

ReadAt = Callable[[int, int], bytes]
"""Reads ``size`` bytes at ``offset`` of the database file (fewer at its end)."""

Note = Callable[[str], None]
"""Receives the description of each piece of damage met."""


class BerkeleyDBError(ValueError):
    """A file that is not a Berkeley DB hash database this reader understands."""


@dataclass(frozen=True)
class HashMeta:
    """What the metadata page says about the layout of a hash database."""

    order: str  # struct byte order: "<" or ">"
    page_size: int
    header_size: int
    last_page: int
    max_bucket: int
    spares: tuple[int, ...]

    def bucket_page(self, bucket: int) -> int:
        """The first page of a bucket's chain."""
        return bucket + self.spares[bucket.bit_length()]


@dataclass(frozen=True)
class _PageHeader:
    pgno: int
    next: int
    entries: int
    high_free: int
    type: int


def read_meta(page: bytes) -> HashMeta:
    """Decode the metadata page (the first :data:`META_SIZE` bytes of the file).

    Raises:
        BerkeleyDBError: The file is not a hash database of a supported version.
    """
    if len(page) < META_SIZE:
        raise BerkeleyDBError(f"{len(page)} bytes are too few for a Berkeley DB file")
    order = next((o for o in "<>" if _u32(page, 12, o) == HASH_MAGIC), None)
    if order is None:
        raise BerkeleyDBError("no Berkeley DB hash magic number")

    fields = struct.unpack_from(order + _META_FIELDS, page, 16)
    version, page_size, encryption, kind, flags, last, max_bucket = fields
    _check_meta(version, page_size, encryption, kind, max_bucket)
    spares = struct.unpack_from(f"{order}{SPARES}I", page, 96)
    header_size = CHECKSUM_PAGE_HEADER_SIZE if flags & DBMETA_CHKSUM else PAGE_HEADER_SIZE
    return HashMeta(order, page_size, header_size, last, max_bucket, spares)


def _u32(data: bytes, offset: int, order: str) -> int:
    value: int = struct.unpack_from(order + "I", data, offset)[0]
    return value


def _check_meta(version: int, page_size: int, encryption: int, kind: int, buckets: int) -> None:
    if version not in HASH_VERSIONS:
        raise BerkeleyDBError(f"hash version {version} is not supported")
    if kind != P_HASHMETA:
        raise BerkeleyDBError(f"page 0 has type {kind}, not a hash metadata page")
    if encryption:
        raise BerkeleyDBError("the database is encrypted")
    if page_size.bit_count() != 1 or not MIN_PAGE_SIZE <= page_size <= MAX_PAGE_SIZE:
        raise BerkeleyDBError(f"implausible page size {page_size}")
    if buckets.bit_length() >= SPARES:
        raise BerkeleyDBError(f"implausible highest bucket {buckets}")


class HashDatabase:
    """A Berkeley DB hash database, read page by page.

    Args:
        read_at: Reads bytes of the database file.
        file_size: Size of the file in bytes.

    Raises:
        BerkeleyDBError: The file is not a hash database this reader understands.
    """

    def __init__(self, read_at: ReadAt, file_size: int) -> None:
        self.meta = read_meta(read_at(0, META_SIZE))
        self._read_at = read_at
        self._file_size = file_size

    def records(self, note: Note) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, data) pair, bucket by bucket; damage goes to ``note``."""
        meta = self.meta
        expected = (meta.last_page + 1) * meta.page_size
        if self._file_size < expected:
            note(f"truncated to {self._file_size} of {expected} bytes")

        seen: set[int] = set()
        for bucket in range(meta.max_bucket + 1):
            yield from self._bucket(meta.bucket_page(bucket), seen, note)

    def _page(self, pgno: int) -> tuple[bytes, _PageHeader] | None:
        size = self.meta.page_size
        if pgno > self.meta.last_page or (pgno + 1) * size > self._file_size:
            return None
        page = self._read_at(pgno * size, size)
        if len(page) < size:
            return None
        fields = struct.unpack_from(self.meta.order + _PAGE_HEADER, page)
        return page, _PageHeader(*fields)

    def _bucket(self, first: int, seen: set[int], note: Note) -> Iterator[tuple[bytes, bytes]]:
        pgno = first
        while pgno != NO_PAGE:
            if pgno in seen:
                note(f"page {pgno} is linked twice")
                return
            seen.add(pgno)
            read = self._page(pgno)
            if read is None:
                note(f"page {pgno} is missing")
                return

            page, header = read
            if pgno == first and header.pgno == NO_PAGE and header.type == 0:
                return  # a bucket whose page was never written: empty
            if header.type not in (P_HASH, P_HASH_UNSORTED) or header.pgno != pgno:
                note(f"page {pgno} is not a hash page (type {header.type})")
                return
            yield from self._pairs(page, header, note)
            pgno = header.next

    def _pairs(self, page: bytes, header: _PageHeader, note: Note) -> Iterator[tuple[bytes, bytes]]:
        start = self.meta.header_size
        if start + 2 * header.entries > len(page) or header.entries % 2:
            note(f"page {header.pgno} has an impossible entry count {header.entries}")
            return

        offsets = struct.unpack_from(f"{self.meta.order}{header.entries}H", page, start)
        for index in range(0, header.entries, 2):
            key = self._item(page, offsets, index, note)
            data = self._item(page, offsets, index + 1, note)
            if key is not None and data is not None:
                yield key, data

    def _item(self, page: bytes, offsets: tuple[int, ...], index: int, note: Note) -> bytes | None:
        begin = offsets[index]
        end = offsets[index - 1] if index else len(page)
        if not self.meta.header_size + 2 * len(offsets) <= begin < end <= len(page):
            note(f"an item of a hash page lies out of bounds ({begin}-{end})")
            return None

        kind = page[begin]
        if kind == H_KEYDATA:
            return page[begin + 1 : end]
        if kind == H_OFFPAGE and end - begin >= struct.calcsize(_OFFPAGE):
            pgno, length = struct.unpack_from(self.meta.order + _OFFPAGE, page, begin)
            return self._overflow(pgno, length, note)
        note(f"a hash item of kind {kind} is not supported")
        return None

    def _overflow(self, first: int, length: int, note: Note) -> bytes | None:
        parts: list[bytes] = []
        got = 0
        pgno = first
        seen: set[int] = set()
        while pgno != NO_PAGE and got <= length and pgno not in seen:
            seen.add(pgno)
            read = self._page(pgno)
            if read is None or read[1].type != P_OVERFLOW or read[1].pgno != pgno:
                break
            page, header = read
            parts.append(page[self.meta.header_size : self.meta.header_size + header.high_free])
            got += len(parts[-1])
            pgno = header.next

        if pgno != NO_PAGE or got != length:
            note(f"the overflow chain from page {first} is broken ({got} of {length} bytes)")
            return None
        return b"".join(parts)
