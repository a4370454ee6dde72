"""The handle's writing calls on ext4, xfs, btrfs and NTFS: write_append, touch, truncate,
truncate_size, fill, upload, upload_offset, download and download_offset.

Each test acts through VMCraft on a writable copy of the mbr guest (the four filesystems
mounted together), closes the handle, then judges through another route: a kernel mount
(or a separate ntfs-3g mount) of the partition on a loop device of the test's own, debugfs
for ext4, ntfscat for NTFS. Expected values come from guestfs(3)'s definition of each call
and from POSIX (a new file is 0666 less the umask 022: 0644), never from VMCraft. Owners
and modes are checked where the filesystem keeps them (not on ntfs-3g without a user map).
Files planted beforehand are written through the same kind of independent mount.

Host tools: cp, losetup, mount, umount, ntfs-3g, debugfs, ntfscat.
"""

from __future__ import annotations

import os
import random
import stat
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from guests import Guest
from writing_support import (
    FILESYSTEMS,
    Filesystem,
    data_digest,
    debugfs_stat,
    inside,
    mbr_handle,
    ntfscat,
    plant_file,
    reopened,
)

from vmcraft.errors import (
    GuestFileError,
    GuestFileNotFoundError,
    ReadOnlyError,
)

pytestmark = pytest.mark.requires_root

CopyGuest = Callable[[Guest], Guest]
MIB = 1024 * 1024
OLD_MTIME_NS = 978_307_200_000_000_000  # 2001-01-01, whole seconds: every fs keeps it
PIPE_TIMEOUT_S = 10.0


@pytest.fixture(params=list(FILESYSTEMS))
def fs(request: pytest.FixtureRequest) -> Filesystem:
    return FILESYSTEMS[request.param]


@pytest.fixture
def image(mbr_guest: Guest, writable_copy: CopyGuest) -> Guest:
    return writable_copy(mbr_guest)


def random_bytes(size: int, seed: int = 7) -> bytes:
    return random.Random(seed).randbytes(size)


def file_mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- write_append


def test_write_append_creates_then_appends_in_place(fs: Filesystem, image: Guest) -> None:
    with reopened(image, fs, read_only=False) as root:
        target = inside(root, fs, fs.path("owned.conf"))
        plant_file(target, b"old\n", owner=(1234, 5678), mode=0o640)
        inode = target.stat().st_ino

    with mbr_handle(image.path) as g:
        g.write_append(fs.path("owned.conf"), b"new\n")
        g.mkdir_p(fs.path("w"))
        g.write_append(fs.path("w", "log"), b"one\n")
        g.write_append(fs.path("w", "log"), "two\n")

    with reopened(image, fs) as root:
        target, log = inside(root, fs, fs.path("owned.conf")), inside(root, fs, fs.path("w/log"))
        assert target.read_bytes() == b"old\nnew\n"
        assert target.stat().st_ino == inode
        assert log.read_bytes() == b"one\ntwo\n"
        if fs.posix:
            assert (target.stat().st_uid, target.stat().st_gid, file_mode(target)) == (
                1234, 5678, 0o640,
            )  # fmt: skip
            assert (log.stat().st_uid, log.stat().st_gid, file_mode(log)) == (0, 0, 0o644)


# ---------------------------------------------------------------- touch


def test_touch_creates_an_empty_file_and_sets_times_to_now(fs: Filesystem, image: Guest) -> None:
    with reopened(image, fs, read_only=False) as root:
        plant_file(inside(root, fs, fs.path("old.txt")), b"kept\n", mtime_ns=OLD_MTIME_NS)

    started = time.time_ns()
    with mbr_handle(image.path) as g:
        g.touch(fs.path("old.txt"))
        g.touch(fs.path("new.txt"))

    with reopened(image, fs) as root:
        old, new = inside(root, fs, fs.path("old.txt")), inside(root, fs, fs.path("new.txt"))
        assert old.read_bytes() == b"kept\n"
        assert old.stat().st_mtime_ns >= started - 2 * 10**9
        assert new.read_bytes() == b""
        if fs.posix:
            assert file_mode(new) == 0o644


def test_touch_refuses_a_folder_and_a_symlink(fs: Filesystem, image: Guest) -> None:
    with reopened(image, fs, read_only=False) as root:
        plant_file(inside(root, fs, fs.path("target.txt")), b"t\n", mtime_ns=OLD_MTIME_NS)
        inside(root, fs, fs.path("link")).symlink_to("target.txt")

    with mbr_handle(image.path) as g:
        g.mkdir_p(fs.path("folder"))
        for path in (fs.path("folder"), fs.path("link")):
            with pytest.raises(GuestFileError, match="not a regular file"):
                g.touch(path)

    with reopened(image, fs) as root:
        assert inside(root, fs, fs.path("target.txt")).stat().st_mtime_ns == OLD_MTIME_NS
        assert inside(root, fs, fs.path("link")).is_symlink()


# ---------------------------------------------------------------- truncate, truncate_size


def test_truncate_size_shrinks_and_extends_with_a_hole(fs: Filesystem, image: Guest) -> None:
    data = random_bytes(100_000)
    with reopened(image, fs, read_only=False) as root:
        for name in ("shrink.bin", "grow.bin", "empty.bin"):
            plant_file(inside(root, fs, fs.path(name)), data)

    with mbr_handle(image.path) as g:
        g.truncate_size(fs.path("shrink.bin"), 10)
        g.truncate_size(fs.path("grow.bin"), 64 * MIB)
        g.truncate(fs.path("empty.bin"))
        for call in (g.truncate, lambda path: g.truncate_size(path, 5)):
            with pytest.raises(GuestFileNotFoundError, match=r"missing\.txt") as caught:
                call(fs.path("missing.txt"))
            assert isinstance(caught.value, FileNotFoundError)
        with pytest.raises(GuestFileError, match="negative"):
            g.truncate_size(fs.path("shrink.bin"), -1)

    with reopened(image, fs) as root:
        assert inside(root, fs, fs.path("shrink.bin")).read_bytes() == data[:10]
        assert inside(root, fs, fs.path("empty.bin")).stat().st_size == 0
        assert not inside(root, fs, fs.path("missing.txt")).exists()
        grown = inside(root, fs, fs.path("grow.bin"))
        assert grown.stat().st_size == 64 * MIB
        assert grown.stat().st_blocks * 512 < 8 * MIB  # a hole, not 64 MiB of zeros
        with grown.open("rb") as f:
            assert f.read(len(data)) == data
            f.seek(32 * MIB)
            assert f.read(4096) == bytes(4096)


# ---------------------------------------------------------------- fill


def test_fill_writes_len_bytes_of_c(fs: Filesystem, image: Guest) -> None:
    with reopened(image, fs, read_only=False) as root:
        plant_file(inside(root, fs, fs.path("long.bin")), random_bytes(5 * MIB))

    length = 3 * MIB + 5  # spans several 1 MiB chunks and a partial one
    with mbr_handle(image.path) as g:
        g.fill(0x5A, length, fs.path("new.bin"))
        g.fill(0, 10, fs.path("long.bin"))
        with pytest.raises(GuestFileError, match="256"):
            g.fill(256, 1, fs.path("bad.bin"))
        with pytest.raises(GuestFileError, match="negative"):
            g.fill(1, -1, fs.path("bad.bin"))

    with reopened(image, fs) as root:
        assert inside(root, fs, fs.path("new.bin")).read_bytes() == b"\x5a" * length
        assert inside(root, fs, fs.path("long.bin")).read_bytes() == bytes(10)
        assert not inside(root, fs, fs.path("bad.bin")).exists()
        if fs.posix:
            assert file_mode(inside(root, fs, fs.path("new.bin"))) == 0o644


# ---------------------------------------------------------------- upload


def test_upload_replaces_atomically_keeping_owner_and_mode(
    fs: Filesystem, image: Guest, tmp_path: Path
) -> None:
    with reopened(image, fs, read_only=False) as root:
        target = inside(root, fs, fs.path("cfg", "owned.conf"))
        plant_file(target, b"old content\n", owner=(1234, 5678), mode=0o640)
        old_inode = target.stat().st_ino
    source = tmp_path / "new.conf"
    source.write_bytes(random_bytes(3 * MIB + 17))

    with mbr_handle(image.path) as g:
        g.upload(str(source), fs.path("cfg", "owned.conf"))
        g.upload(str(source), fs.path("cfg", "new.conf"))
        listing = g.ls(fs.path("cfg"))

    assert listing == ["new.conf", "owned.conf"]  # no temporary file left behind
    with reopened(image, fs) as root:
        target = inside(root, fs, fs.path("cfg", "owned.conf"))
        new = inside(root, fs, fs.path("cfg", "new.conf"))
        assert target.read_bytes() == new.read_bytes() == source.read_bytes()
        assert target.stat().st_ino != old_inode  # a new inode renamed over the old one
        if fs.posix:
            assert (target.stat().st_uid, target.stat().st_gid) == (1234, 5678)
            assert file_mode(target) == 0o640
            assert file_mode(new) == 0o644


def test_upload_from_a_named_pipe_and_its_errors(
    fs: Filesystem, image: Guest, tmp_path: Path
) -> None:
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    payload = random_bytes(2 * MIB + 3)
    writer = threading.Thread(target=lambda: fifo.write_bytes(payload), daemon=True)

    with mbr_handle(image.path) as g:
        writer.start()
        g.upload(str(fifo), fs.path("from-pipe.bin"))
        writer.join(PIPE_TIMEOUT_S)
        g.mkdir_p(fs.path("folder"))
        with pytest.raises(GuestFileError, match="not a regular file"):
            g.upload(str(tmp_path / "pipe"), fs.path("folder"))
        with pytest.raises(FileNotFoundError, match="no-such-host-file"):
            g.upload(str(tmp_path / "no-such-host-file"), fs.path("new"))
        assert g.ls(fs.path("folder")) == []
        assert not g.exists(fs.path("new"))

    with reopened(image, fs) as root:
        assert inside(root, fs, fs.path("from-pipe.bin")).read_bytes() == payload


def test_upload_is_seen_by_the_filesystems_own_tools(image: Guest, tmp_path: Path) -> None:
    ext4, ntfs = FILESYSTEMS["ext4"], FILESYSTEMS["ntfs"]
    source = tmp_path / "payload"
    source.write_bytes(b"payload for the tools\n" * 1000)

    with mbr_handle(image.path) as g:
        g.upload(str(source), ext4.path("payload"))
        g.upload(str(source), ntfs.path("payload"))

    fields = debugfs_stat(image, ext4, "/payload")
    assert fields["Type"] == "regular"
    assert int(fields["Size"]) == source.stat().st_size
    assert (fields["User"], fields["Group"], fields["Mode"]) == ("0", "0", "0644")
    assert ntfscat(image, ntfs, "/payload") == source.read_bytes()


# ---------------------------------------------------------------- upload_offset


def test_upload_offset_overwrites_in_place(fs: Filesystem, image: Guest, tmp_path: Path) -> None:
    with reopened(image, fs, read_only=False) as root:
        plant_file(inside(root, fs, fs.path("digits")), b"0123456789")
    patch = tmp_path / "patch"
    patch.write_bytes(b"abc")

    with mbr_handle(image.path) as g:
        g.upload_offset(str(patch), fs.path("digits"), 4)
        g.upload_offset(str(patch), fs.path("fresh"), 5 * MIB)
        with pytest.raises(GuestFileError, match="negative"):
            g.upload_offset(str(patch), fs.path("digits"), -1)

    with reopened(image, fs) as root:
        assert inside(root, fs, fs.path("digits")).read_bytes() == b"0123abc789"
        fresh = inside(root, fs, fs.path("fresh")).read_bytes()
        assert fresh == bytes(5 * MIB) + b"abc"


# ---------------------------------------------------------------- download, download_offset


def test_download_and_download_offset(fs: Filesystem, image: Guest, tmp_path: Path) -> None:
    data = random_bytes(3 * MIB + 11)
    with reopened(image, fs, read_only=False) as root:
        plant_file(inside(root, fs, fs.path("data.bin")), data)
        sparse = inside(root, fs, fs.path("sparse.bin"))
        plant_file(sparse, b"start")
        with sparse.open("r+b") as f:
            f.seek(40 * MIB)
            f.write(b"end")
    whole, part, holes = tmp_path / "whole", tmp_path / "part", tmp_path / "holes"
    part.write_bytes(b"old host content, longer than the part" * 10)

    fifo = tmp_path / "fifo"
    received: list[bytes] = []
    os.mkfifo(fifo)
    reader = threading.Thread(target=lambda: received.append(fifo.read_bytes()), daemon=True)

    with mbr_handle(image.path) as g:
        reader.start()
        g.download(fs.path("data.bin"), str(fifo))
        reader.join(PIPE_TIMEOUT_S)
        g.download(fs.path("data.bin"), str(whole))
        g.download_offset(fs.path("data.bin"), str(part), MIB + 7, 100)
        g.download(fs.path("sparse.bin"), str(holes))
        with pytest.raises(GuestFileError, match="beyond"):
            g.download_offset(fs.path("data.bin"), str(tmp_path / "x"), len(data) - 1, 2)
        with pytest.raises(GuestFileNotFoundError):
            g.download(fs.path("missing"), str(tmp_path / "y"))

    assert received == [data]
    assert whole.read_bytes() == data
    assert part.read_bytes() == data[MIB + 7 : MIB + 107]
    assert holes.stat().st_size == 40 * MIB + 3
    assert holes.stat().st_blocks * 512 < 4 * MIB  # holes stay holes on the host
    with holes.open("rb") as f:
        assert f.read(5) == b"start"
        f.seek(20 * MIB)
        assert f.read(4096) == bytes(4096)
        f.seek(40 * MIB)
        assert f.read() == b"end"


# ---------------------------------------------------------------- special files, read-only


@pytest.mark.parametrize("fstype", ["ext4", "xfs", "btrfs"])
def test_writing_calls_never_open_a_fifo(fstype: str, image: Guest, tmp_path: Path) -> None:
    fs = FILESYSTEMS[fstype]
    with reopened(image, fs, read_only=False) as root:
        os.mkfifo(inside(root, fs, fs.path("fifo")))
    source = tmp_path / "source"
    source.write_bytes(b"x")

    with mbr_handle(image.path) as g:
        calls: list[Callable[[str], None]] = [
            lambda p: g.write_append(p, b"x"),
            g.touch,
            g.truncate,
            lambda p: g.fill(1, 1, p),
            lambda p: g.upload(str(source), p),
            lambda p: g.upload_offset(str(source), p, 0),
            lambda p: g.download(p, str(tmp_path / "out")),
        ]
        for call in calls:
            with pytest.raises(GuestFileError, match="not a regular file"):
                call(fs.path("fifo"))

    with reopened(image, fs) as root:
        assert stat.S_ISFIFO(inside(root, fs, fs.path("fifo")).lstat().st_mode)


def test_read_only_handle_refuses_every_write(mbr_guest: Guest, tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.write_bytes(b"x")
    before = data_digest(mbr_guest.path)

    with mbr_handle(mbr_guest.path, readonly=True) as g:
        for fs in FILESYSTEMS.values():
            existing = next(iter(mbr_guest.filesystems[fs.device].files))
            path = fs.path(existing.lstrip("/"))
            calls: list[Callable[[], None]] = [
                partial(g.write_append, path, b"x"),
                partial(g.touch, path),
                partial(g.truncate, path),
                partial(g.truncate_size, path, 1),
                partial(g.fill, 1, 1, path),
                partial(g.upload, str(source), path),
                partial(g.upload_offset, str(source), path, 0),
            ]
            for call in calls:
                with pytest.raises(ReadOnlyError, match="read-only") as caught:
                    call()
                assert isinstance(caught.value, PermissionError)
            assert g.read_file(path) == mbr_guest.filesystems[fs.device].files[existing]

    assert data_digest(mbr_guest.path) == before
