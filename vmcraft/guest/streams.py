"""Bytes moved between open files through one 1 MiB buffer, never a whole file in memory.

Uploads, downloads and tree copies of files of any size go through :func:`copy_stream`. A
source's holes (``SEEK_DATA``/``SEEK_HOLE``) are skipped rather than read, and a fresh
regular file keeps them (and all-zero chunks) as holes, so a sparse 2 GiB disk image copies
in moments and stays sparse. A pipe on either side gets or gives every byte in order.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Iterator

from vmcraft.units import MIB

CHUNK_SIZE = MIB  # bytes read and written at a time

_ZEROS = bytes(CHUNK_SIZE)


def copy_stream(
    source: int,
    target: int,
    *,
    start: int = 0,
    length: int | None = None,
    at: int = 0,
    sparse: bool = False,
) -> int:
    """Copy bytes of one open file to another.

    Args:
        source: Descriptor to read; a regular file is read with ``pread`` from ``start``,
            anything else (a pipe) sequentially from where it stands (``start`` must be 0).
        target: Descriptor to write; a regular file or device at offset ``at`` with
            ``pwrite``, anything else sequentially.
        start: First byte of ``source`` to copy.
        length: Bytes to copy; None: up to the end of ``source``.
        at: Offset in ``target`` of the first byte written.
        sparse: ``target`` is a fresh regular file: leave holes where ``source`` has holes
            or zeros, and set its size at the end. Otherwise every byte is written.

    Returns:
        The number of bytes copied.
    """
    buffer = memoryview(bytearray(CHUNK_SIZE))
    writer = _Writer(target, at, sparse)
    if _is_seekable(source):
        end = os.fstat(source).st_size if length is None else start + length
        for position, data in _file_pieces(source, start, end, buffer):
            writer.write(position - start, data)
        total = max(end - start, 0)
    else:
        total = 0
        for position, data in _pipe_pieces(source, length, buffer):
            writer.write(position, data)
            total = position + len(data)

    writer.finish(total)
    return total


def _is_seekable(fd: int) -> bool:
    mode = os.fstat(fd).st_mode
    return stat.S_ISREG(mode) or stat.S_ISBLK(mode)


def _data_extents(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    """The ranges of data (not holes) between ``start`` and ``end``."""
    position = start
    while position < end:
        try:
            data = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # nothing but a hole up to the end of the file
                return
            raise
        if data >= end:
            return

        hole = os.lseek(fd, data, os.SEEK_HOLE)
        yield data, min(hole, end)
        position = hole


def _file_pieces(
    fd: int, start: int, end: int, buffer: memoryview
) -> Iterator[tuple[int, memoryview]]:
    for data_start, data_end in _data_extents(fd, start, end):
        position = data_start
        while position < data_end:
            count = os.preadv(fd, [buffer[: min(CHUNK_SIZE, data_end - position)]], position)
            if count == 0:
                return  # the file shrank while being copied
            yield position, buffer[:count]
            position += count


def _pipe_pieces(
    fd: int, length: int | None, buffer: memoryview
) -> Iterator[tuple[int, memoryview]]:
    position = 0
    while length is None or position < length:
        wanted = CHUNK_SIZE if length is None else min(CHUNK_SIZE, length - position)
        count = os.readv(fd, [buffer[:wanted]])
        if count == 0:
            return
        yield position, buffer[:count]
        position += count


def _is_zero(data: memoryview) -> bool:
    # NB: comparing bytes runs memcmp; comparing a memoryview goes item by item (CPython 3.11).
    zeros = _ZEROS if data.nbytes == CHUNK_SIZE else bytes(data.nbytes)
    return bytes(data) == zeros


class _Writer:
    """Writes pieces at their offsets, filling gaps with zeros or leaving them as holes."""

    def __init__(self, fd: int, at: int, sparse: bool) -> None:
        self.fd = fd
        self.at = at
        self.seekable = _is_seekable(fd)
        self.sparse = sparse and stat.S_ISREG(os.fstat(fd).st_mode)
        self.written = 0  # bytes of the copy written or skipped so far

    def write(self, offset: int, data: memoryview) -> None:
        if self.sparse and _is_zero(data):
            return
        if not self.sparse:
            self._zero_fill(offset)
        self._write_all(offset, data)
        self.written = offset + data.nbytes

    def finish(self, total: int) -> None:
        if self.sparse:
            os.ftruncate(self.fd, self.at + total)
        else:
            self._zero_fill(total)

    def _zero_fill(self, offset: int) -> None:
        while self.written < offset:
            count = min(CHUNK_SIZE, offset - self.written)
            self._write_all(self.written, memoryview(_ZEROS)[:count])
            self.written += count

    def _write_all(self, offset: int, data: memoryview) -> None:
        while data.nbytes:
            if self.seekable:
                count = os.pwrite(self.fd, data, self.at + offset)
            else:
                count = os.write(self.fd, data)
            data = data[count:]
            offset += count
