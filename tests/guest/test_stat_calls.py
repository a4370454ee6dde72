"""stat, statns, lstat, lstatns, the list forms, the is_* type tests and is_zero.

A copy of mbr_guest gets, on each of its ext4, xfs, btrfs and ntfs filesystems, a folder of
files, links, FIFOs, sockets and device nodes made by the test through its own kernel (or
ntfs-3g) mount. The expected stat results are what the kernel reports for them through a
fresh read-only mount of the test's own, never what VMCraft reports; the field names and
their order are spelled out here from guestfs(3).

Host tools: cp, losetup, mount, umount, ntfs-3g.
"""

from __future__ import annotations

import os
import stat
import time
import tracemalloc
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from guests import Guest
from metadata_support import (
    MBR_FILESYSTEMS,
    POSIX_FILESYSTEMS,
    Hostile,
    copy_of,
    guest_path,
    host_state,
    hostile_root,
    kernel_mounted,
    make_canary,
    opened,
    opened_hostile,
    plant_hostile,
)

from vmcraft import VMCraft
from vmcraft.errors import (
    GuestFileError,
    GuestFileNotFoundError,
    GuestPathError,
    SymlinkLoopError,
)

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_tool("ntfs-3g")]

MIB = 1024 * 1024
HUGE = 2 * 1024 * MIB
STATNS_KEYS = [
    "st_dev", "st_ino", "st_mode", "st_nlink", "st_uid", "st_gid", "st_rdev", "st_size",
    "st_blksize", "st_blocks", "st_atime_sec", "st_atime_nsec", "st_mtime_sec",
    "st_mtime_nsec", "st_ctime_sec", "st_ctime_nsec", "st_spare1", "st_spare2", "st_spare3",
    "st_spare4", "st_spare5", "st_spare6",
]  # fmt: skip
STAT_KEYS = [
    "dev", "ino", "mode", "nlink", "uid", "gid", "rdev", "size", "blksize", "blocks",
    "atime", "mtime", "ctime",
]  # fmt: skip
DATA = b"metadata test\n"
ZERO_FILES = {  # name -> (size, offset of a non-zero byte or None)
    "empty": (0, None),
    "zeros": (3 * MIB + 5, None),
    "sparse": (64 * MIB, None),
    "sparse-tail": (8 * MIB, 8 * MIB - 1),
    "nonzero-mid": (3 * MIB, 2 * MIB),
}
SPECIAL = {
    "fifo": (stat.S_IFIFO, 0),
    "sock": (stat.S_IFSOCK, 0),
    "chr": (stat.S_IFCHR, os.makedev(1, 5)),
    "blk": (stat.S_IFBLK, os.makedev(7, 200)),
}
TYPE_CALLS = {
    "is_blockdev": stat.S_IFBLK,
    "is_chardev": stat.S_IFCHR,
    "is_fifo": stat.S_IFIFO,
    "is_socket": stat.S_IFSOCK,
}


@dataclass(frozen=True)
class Planted:
    guest: Guest
    expected: dict[str, dict[str, os.stat_result]]  # fstype -> name -> kernel's lstat


def _plant(root: Path, fstype: str) -> None:
    meta = root / "meta"
    (meta / "sub").mkdir(parents=True)
    (meta / "data").write_bytes(DATA)
    os.chmod(meta / "data", 0o640)
    if fstype != "ntfs":
        os.chown(meta / "data", 1234, 5678)
    os.symlink("data", meta / "link")
    os.symlink("nowhere", meta / "dangling")

    for name, (kind, device) in SPECIAL.items():
        os.mknod(meta / name, kind | 0o600, device)
        os.symlink(name, meta / f"link-{name}")

    for name, (size, nonzero) in ZERO_FILES.items():
        with (meta / name).open("wb") as f:
            if name == "zeros":
                f.write(bytes(size))
            f.truncate(size)
            if nonzero is not None:
                f.seek(nonzero)
                f.write(b"\x01")
    if fstype != "ntfs":
        with (meta / "huge").open("wb") as f:
            f.truncate(HUGE)


def _kernel_view(guest: Guest, fstype: str) -> dict[str, os.stat_result]:
    with kernel_mounted(guest, fstype, read_only=True) as root:
        return {entry.name: os.lstat(entry.path) for entry in os.scandir(root / "meta")}


@pytest.fixture(scope="module")
def planted(mbr_guest: Guest, tmp_path_factory: pytest.TempPathFactory) -> Planted:
    guest = copy_of(mbr_guest, tmp_path_factory.mktemp("stat-calls"))
    for fstype in MBR_FILESYSTEMS:
        with kernel_mounted(guest, fstype) as root:
            _plant(root, fstype)
    expected = {fstype: _kernel_view(guest, fstype) for fstype in MBR_FILESYSTEMS}
    return Planted(guest, expected)


@pytest.fixture(scope="module")
def handle(planted: Planted) -> Iterator[VMCraft]:
    """A read-only handle: nothing it does can change an atime the tests compare."""
    with opened(planted.guest, readonly=True) as g:
        yield g


def meta(fstype: str, name: str) -> str:
    return guest_path(fstype, f"meta/{name}")


def expected_statns(result: os.stat_result) -> dict[str, int]:
    """guestfs(3)'s statns of a kernel lstat; st_dev is the mount's, so it is left out."""
    fields = {
        "st_ino": result.st_ino, "st_mode": result.st_mode, "st_nlink": result.st_nlink,
        "st_uid": result.st_uid, "st_gid": result.st_gid, "st_rdev": result.st_rdev,
        "st_size": result.st_size, "st_blksize": result.st_blksize,
        "st_blocks": result.st_blocks,
    }  # fmt: skip
    for name in ("atime", "mtime", "ctime"):
        ns = getattr(result, f"st_{name}_ns")
        fields[f"st_{name}_sec"], fields[f"st_{name}_nsec"] = ns // 10**9, ns % 10**9
    return fields | {f"st_spare{n}": 0 for n in range(1, 7)}


def without_dev(fields: dict[str, int]) -> dict[str, int]:
    return {key: value for key, value in fields.items() if key not in ("st_dev", "dev")}


# ---------------------------------------------------------------- stat and lstat


@pytest.mark.parametrize("fstype", MBR_FILESYSTEMS)
def test_lstatns_matches_the_kernels_lstat(planted: Planted, handle: VMCraft, fstype: str) -> None:
    devices = set()
    for name, result in planted.expected[fstype].items():
        found = handle.lstatns(meta(fstype, name))

        assert list(found) == STATNS_KEYS, name
        assert without_dev(found) == expected_statns(result), name
        devices.add(found["st_dev"])
    assert len(devices) == 1  # one filesystem


@pytest.mark.parametrize("fstype", MBR_FILESYSTEMS)
def test_statns_follows_links_inside_the_guest(
    planted: Planted, handle: VMCraft, fstype: str
) -> None:
    expected = planted.expected[fstype]

    assert without_dev(handle.statns(meta(fstype, "link"))) == expected_statns(expected["data"])
    for name in SPECIAL:
        found = handle.statns(meta(fstype, f"link-{name}"))
        assert without_dev(found) == expected_statns(expected[name]), name
    assert stat.S_ISLNK(handle.lstatns(meta(fstype, "link"))["st_mode"])
    assert handle.lstatns(meta(fstype, "link"))["st_size"] == len("data")


@pytest.mark.parametrize("fstype", MBR_FILESYSTEMS)
def test_deprecated_stat_has_whole_seconds(planted: Planted, handle: VMCraft, fstype: str) -> None:
    data = planted.expected[fstype]["data"]

    for call, path in ((handle.stat, meta(fstype, "link")), (handle.lstat, meta(fstype, "data"))):
        found = call(path)
        assert list(found) == STAT_KEYS
        assert found["ino"] == data.st_ino
        assert (found["mode"], found["uid"], found["gid"], found["size"]) == (
            data.st_mode,
            data.st_uid,
            data.st_gid,
            data.st_size,
        )
        assert found["mtime"] == data.st_mtime_ns // 10**9
        assert found["atime"] == data.st_atime_ns // 10**9
    assert stat.S_ISLNK(handle.lstat(meta(fstype, "link"))["mode"])


def test_posix_owner_and_mode_come_through(planted: Planted, handle: VMCraft) -> None:
    for fstype in POSIX_FILESYSTEMS:
        found = handle.statns(meta(fstype, "data"))
        assert (found["st_uid"], found["st_gid"]) == (1234, 5678)
        assert stat.S_IMODE(found["st_mode"]) == 0o640
        assert found["st_size"] == len(DATA)


@pytest.mark.parametrize("call", ["stat", "statns"])
def test_stat_of_nothing_raises_file_not_found(handle: VMCraft, call: str) -> None:
    for path in (meta("ext4", "nope"), meta("xfs", "dangling"), "/no/such/file"):
        with pytest.raises(GuestFileNotFoundError, match=path) as caught:
            getattr(handle, call)(path)
        assert isinstance(caught.value, FileNotFoundError)

    assert stat.S_ISLNK(handle.lstatns(meta("xfs", "dangling"))["st_mode"])
    with pytest.raises(GuestFileError, match="/etc/hostname/x"):
        getattr(handle, call)("/etc/hostname/x")
    with pytest.raises(GuestPathError):
        getattr(handle, call)("etc/hostname")


# ---------------------------------------------------------------- list forms


@pytest.mark.parametrize("fstype", MBR_FILESYSTEMS)
def test_lstatnslist_gives_one_result_per_name(
    planted: Planted, handle: VMCraft, fstype: str
) -> None:
    expected = planted.expected[fstype]
    names = ["data", "nope", "link", "", "sub", "fifo", "sub/../data", "dangling/x"]

    found = handle.lstatnslist(guest_path(fstype, "meta"), names)
    old = handle.lstatlist(guest_path(fstype, "meta"), names)

    assert len(found) == len(old) == len(names)
    for name, entry, old_entry in zip(names, found, old, strict=True):
        assert list(entry) == STATNS_KEYS and list(old_entry) == STAT_KEYS
        if name in ("nope", "", "dangling/x"):
            assert entry == dict.fromkeys(STATNS_KEYS, 0) | {"st_ino": -1}, name
            assert old_entry == dict.fromkeys(STAT_KEYS, 0) | {"ino": -1}, name
        else:
            result = expected[name.removeprefix("sub/../")]
            assert without_dev(entry) == expected_statns(result), name
            assert old_entry["ino"] == result.st_ino
    assert stat.S_ISLNK(found[2]["st_mode"])


def test_lstatnslist_needs_a_folder(handle: VMCraft) -> None:
    with pytest.raises(GuestFileError, match="/etc/hostname"):
        handle.lstatnslist("/etc/hostname", ["x"])
    with pytest.raises(GuestFileNotFoundError):
        handle.lstatlist("/no/such/folder", ["x"])
    assert handle.lstatnslist("/etc", []) == []


# ---------------------------------------------------------------- file types


@pytest.mark.parametrize("fstype", MBR_FILESYSTEMS)
def test_type_tests_match_what_was_made(handle: VMCraft, fstype: str) -> None:
    for call, kind in TYPE_CALLS.items():
        test = getattr(handle, call)
        for name, (made, _) in SPECIAL.items():
            link = meta(fstype, f"link-{name}")
            assert test(meta(fstype, name)) is (made == kind), (call, name)
            assert test(link, followsymlinks=True) is (made == kind), (call, link)
            assert test(link) is False, (call, link)
        for name in ("data", "sub", "link", "nope", "dangling"):
            assert test(meta(fstype, name), followsymlinks=True) is False, (call, name)

    for name in ("link", "dangling", *(f"link-{n}" for n in SPECIAL)):
        assert handle.is_symlink(meta(fstype, name)) is True, name
    for name in ("data", "sub", "nope", *SPECIAL):
        assert handle.is_symlink(meta(fstype, name)) is False, name


def test_type_tests_of_a_path_through_a_file_are_false(handle: VMCraft) -> None:
    for call in (*TYPE_CALLS, "is_symlink"):
        assert getattr(handle, call)("/etc/hostname/x") is False


# ---------------------------------------------------------------- is_zero


@pytest.mark.parametrize("fstype", MBR_FILESYSTEMS)
def test_is_zero_reads_what_was_written(handle: VMCraft, fstype: str) -> None:
    for name, (_, nonzero) in ZERO_FILES.items():
        assert handle.is_zero(meta(fstype, name)) is (nonzero is None), name
    assert handle.is_zero(meta(fstype, "data")) is False
    assert handle.is_zero(meta(fstype, "link")) is False  # the file it names

    for name in ("sub", *SPECIAL, "link-fifo"):
        with pytest.raises(GuestFileError, match="not a regular file"):
            handle.is_zero(meta(fstype, name))
    with pytest.raises(GuestFileNotFoundError):
        handle.is_zero(meta(fstype, "nope"))


@pytest.mark.parametrize("fstype", POSIX_FILESYSTEMS)
def test_is_zero_skips_the_holes_of_a_huge_sparse_file(handle: VMCraft, fstype: str) -> None:
    tracemalloc.start()
    started = time.monotonic()
    try:
        assert handle.is_zero(meta(fstype, "huge")) is True
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert time.monotonic() - started < 2.0
    assert peak < 4 * MIB


# ---------------------------------------------------------------- hostile links


@pytest.fixture(scope="module")
def hostile(hostile_guest: Guest, tmp_path_factory: pytest.TempPathFactory) -> Hostile:
    return plant_hostile(hostile_guest, tmp_path_factory.mktemp("stat-hostile"))


def test_links_to_host_paths_describe_the_guests_files(hostile: Hostile) -> None:
    with hostile_root(hostile) as root:
        own = os.lstat(root / str(hostile.canary).lstrip("/"))
    before = make_canary(hostile.canary)  # atime before mtime: a read would move it

    with opened_hostile(hostile.guest, readonly=True) as g:
        for link in hostile.links:
            found = g.statns(link)
            assert (found["st_ino"], found["st_size"]) == (own.st_ino, own.st_size), link
            assert g.is_zero(link) is False
            assert g.is_symlink(link) is (link in ("/etc/canary-link", "/etc/canary-up"))
        assert g.statns(str(hostile.canary))["st_ino"] == own.st_ino

    assert host_state(hostile.canary) == before


def test_link_loops_raise_only_when_followed(hostile: Hostile) -> None:
    with opened_hostile(hostile.guest, readonly=True) as g:
        for path in ("/loop1", "/selfloop"):
            assert g.is_symlink(path) is True
            assert stat.S_ISLNK(g.lstatns(path)["st_mode"])
            assert g.is_fifo(path) is False
            for call in (g.statns, g.stat, g.is_zero, lambda p: g.is_fifo(p, True)):
                with pytest.raises(SymlinkLoopError):
                    call(path)
        assert g.lstatnslist("/", ["loop1", "loop1/x"])[1]["st_ino"] == -1
