"""Large files stream through upload and download with constant memory.

A 2 GiB sparse host file (a few scattered blocks and a 96 MiB dense random region) goes
into a 3 GiB xfs guest built for this module, and back out; a 256 MiB stream comes in
through a named pipe. The process's peak resident memory is reset before each call
(``/proc/self/clear_refs``, 5) and read after it (``VmHWM``), so the figure is the call's
own peak above the memory in use before it, whatever ran earlier in the session. The
figures and times are printed (``pytest -s``) for the issue's note. Contents are compared
by a sha256 that skips holes (see :func:`content_digest`) on the host and, after the handle
is closed, through a kernel mount of the guest image; holes must stay holes on both sides.

Host tools: truncate, mkfs.xfs, losetup, mount, umount.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import guests
import pytest

from vmcraft import VMCraft

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_tool("mkfs.xfs", "-V")]

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
IMAGE_SIZE = 3 * GIB
BIG_SIZE = 2 * GIB
DENSE_OFFSET, DENSE_SIZE = GIB, 96 * MIB  # more than the memory allowed: it must stream
SCATTERED = (0, 12 * KIB, 512 * MIB + 3, BIG_SIZE - 4 * KIB)  # offsets of small writes
PIPE_SIZE = 256 * MIB
RSS_GROWTH_LIMIT = 64 * MIB
WINDOW = 64 * KIB
PIPE_TIMEOUT_S = 60.0


@pytest.fixture(scope="module")
def xfs_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3 GiB sparse raw disk that is one xfs filesystem (guest device /dev/sda)."""
    image = tmp_path_factory.mktemp("large") / "large-xfs.raw"
    guests.run(["truncate", "--size", str(IMAGE_SIZE), str(image)])
    guests.run(["mkfs.xfs", "-q", "-L", "large", str(image)])
    return image


@pytest.fixture(scope="module")
def big_file(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The 2 GiB sparse host file and its content digest."""
    path = tmp_path_factory.mktemp("large-source") / "big.bin"
    rng = random.Random(2024)
    with path.open("wb") as f:
        f.truncate(BIG_SIZE)
        for offset in SCATTERED:
            f.seek(offset)
            f.write(rng.randbytes(4 * KIB))
        f.seek(DENSE_OFFSET)
        for _ in range(DENSE_SIZE // MIB):
            f.write(rng.randbytes(MIB))
    return path, content_digest(path)


def content_digest(path: Path, start: int = 0, length: int | None = None) -> str:
    """A sha256 of a byte range's contents that reads only where data may be.

    The range is cut into 64 KiB windows counted from ``start``; every window that meets
    a data extent is read whole (holes read as zeros) and, unless all zero, hashed with
    its number; the length ends the digest. So two ranges have equal digests exactly when
    their bytes are equal, however their holes lie, and a 2 GiB sparse file hashes in a
    moment instead of seconds.
    """
    digest = hashlib.sha256()
    with path.open("rb") as f:
        fd = f.fileno()
        end = os.fstat(fd).st_size if length is None else start + length
        done = -1  # the last window hashed
        for data, hole in data_extents(fd, start, end):
            first = max((data - start) // WINDOW, done + 1)
            for window in range(first, (hole - start - 1) // WINDOW + 1):
                offset = start + window * WINDOW
                block = os.pread(fd, min(WINDOW, end - offset), offset)
                if block != bytes(len(block)):
                    digest.update(b"%d:" % window + block)
                done = window
    digest.update(b"length:%d" % (end - start))
    return digest.hexdigest()


def data_extents(fd: int, start: int, end: int) -> Iterator[tuple[int, int]]:
    position = start
    while position < end:
        try:
            data = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as e:
            if e.errno == errno.ENXIO:  # only a hole is left
                return
            raise
        if data >= end:
            return
        position = min(os.lseek(fd, data, os.SEEK_HOLE), end)
        yield data, position


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"no {field} in /proc/self/status")


def measured(what: str, call: Callable[[], None]) -> int:
    """Run a call; print and return its peak memory above what was resident before it."""
    Path("/proc/self/clear_refs").write_text("5")  # VmHWM := VmRSS
    before = status_kib("VmRSS")
    started = time.monotonic()
    call()
    elapsed = time.monotonic() - started
    growth = (status_kib("VmHWM") - before) * KIB
    print(f"MEASURED {what}: {elapsed:.2f} s, peak RSS growth {growth / MIB:.1f} MiB")
    return growth


@contextlib.contextmanager
def opened(image: Path) -> Iterator[VMCraft]:
    with VMCraft() as g:
        g.add_drive_opts(str(image), format="raw", readonly=False)
        g.launch()
        g.mount("/dev/sda", "/")
        yield g


@contextlib.contextmanager
def kernel_mounted(image: Path) -> Iterator[Path]:
    mountpoint = image.parent / "own-mount"
    with (
        guests.loop_device(image, read_only=True) as loop,
        guests.mounted(loop, mountpoint, "ro,nouuid") as root,
    ):
        yield root
    mountpoint.rmdir()


def test_2gib_sparse_file_goes_in_and_out_with_constant_memory(
    xfs_image: Path, big_file: tuple[Path, str], tmp_path: Path
) -> None:
    source, digest = big_file
    back, dense = tmp_path / "back.bin", tmp_path / "dense.bin"

    with opened(xfs_image) as g:
        growth = [
            measured("upload 2 GiB sparse", lambda: g.upload(str(source), "/big.bin")),
            measured("download 2 GiB sparse", lambda: g.download("/big.bin", str(back))),
            measured(
                "download_offset 96 MiB dense",
                lambda: g.download_offset("/big.bin", str(dense), DENSE_OFFSET, DENSE_SIZE),
            ),
        ]

    assert max(growth) < RSS_GROWTH_LIMIT
    assert back.stat().st_size == BIG_SIZE
    assert content_digest(back) == digest
    assert content_digest(dense) == content_digest(source, DENSE_OFFSET, DENSE_SIZE)
    assert back.stat().st_blocks * 512 < 2 * DENSE_SIZE  # the holes stayed holes
    with kernel_mounted(xfs_image) as root:
        inside = root / "big.bin"
        assert inside.stat().st_size == BIG_SIZE
        assert inside.stat().st_blocks * 512 < 2 * DENSE_SIZE
        assert content_digest(inside) == digest


def test_a_stream_from_a_named_pipe_goes_in_with_constant_memory(
    xfs_image: Path, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    chunk = random.Random(7).randbytes(MIB)
    expected = hashlib.sha256()
    for _ in range(PIPE_SIZE // MIB):
        expected.update(chunk)

    def feed() -> None:
        with fifo.open("wb") as f:
            for _ in range(PIPE_SIZE // MIB):
                f.write(chunk)

    writer = threading.Thread(target=feed, daemon=True)
    with opened(xfs_image) as g:
        writer.start()
        growth = measured("upload 256 MiB from a pipe", lambda: g.upload(str(fifo), "/piped"))
        writer.join(PIPE_TIMEOUT_S)

    assert growth < RSS_GROWTH_LIMIT
    with kernel_mounted(xfs_image) as root:
        assert (root / "piped").stat().st_size == PIPE_SIZE
        with (root / "piped").open("rb") as f:
            assert hashlib.file_digest(f, "sha256").hexdigest() == expected.hexdigest()
