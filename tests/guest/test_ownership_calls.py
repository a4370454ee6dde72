"""chmod, chown, lchown and utimens, checked on ext4, xfs, btrfs and ntfs.

Each test changes a fresh copy of a prepared mbr_guest through VMCraft, closes the handle,
and reads the result back through a mount of the test's own (kernel, or its own ntfs-3g)
and, for ext4 and xfs, with debugfs and xfs_db. Expected values are the ones asked for,
with the semantics of chmod(2), chown(2) and utimensat(2) that guestfs(3) documents. The
hostile tests aim links at host canaries and check that not even their ctime moved.

Host tools: cp, losetup, mount, umount, ntfs-3g, debugfs, xfs_db, lsattr.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from guests import Guest
from metadata_support import (
    MBR_FILESYSTEMS,
    NTFS_NO_OWNERS,
    POSIX_FILESYSTEMS,
    copy_of,
    debugfs,
    debugfs_time,
    guest_path,
    host_state,
    hostile_root,
    kernel_mounted,
    make_canary,
    opened,
    opened_hostile,
    plant_hostile,
    xfs_db_fields,
)

from vmcraft.errors import (
    GuestFileError,
    GuestFileNotFoundError,
    GuestPathError,
    ReadOnlyError,
    SymlinkLoopError,
)

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_tool("ntfs-3g")]

NS = 10**9
ATIME = (1_000_000_000, 123_456_700)  # whole 100 ns: what NTFS keeps
MTIME = (1_500_000_000, 987_654_300)
PRE_EPOCH = (-100_000_000, 250_000_000)
WITHOUT_NTFS = [
    *POSIX_FILESYSTEMS,
    pytest.param("ntfs", marks=pytest.mark.skip(reason=NTFS_NO_OWNERS)),
]

Prepare = Callable[[], Guest]


def _plant(root: Path) -> None:
    meta = root / "meta"
    (meta / "dir").mkdir(parents=True)
    (meta / "file").write_bytes(b"owned\n")
    (meta / "other").write_bytes(b"other\n")
    os.symlink("file", meta / "link")
    os.symlink("dir", meta / "link-dir")


@pytest.fixture(scope="module")
def prepared_base(mbr_guest: Guest, tmp_path_factory: pytest.TempPathFactory) -> Guest:
    guest = copy_of(mbr_guest, tmp_path_factory.mktemp("ownership-base"))
    for fstype in MBR_FILESYSTEMS:
        with kernel_mounted(guest, fstype) as root:
            _plant(root)
    return guest


@pytest.fixture
def prepare(prepared_base: Guest, writable_copy: Callable[[Guest], Guest]) -> Prepare:
    return lambda: writable_copy(prepared_base)


def meta(fstype: str, name: str) -> str:
    return guest_path(fstype, f"meta/{name}")


def kernel_lstats(guest: Guest, fstype: str) -> dict[str, os.stat_result]:
    with kernel_mounted(guest, fstype, read_only=True) as root:
        return {entry.name: os.lstat(entry.path) for entry in os.scandir(root / "meta")}


# ---------------------------------------------------------------- chmod


@pytest.mark.parametrize("fstype", WITHOUT_NTFS)
def test_chmod_sets_the_mode_of_what_a_link_names(prepare: Prepare, fstype: str) -> None:
    guest = prepare()
    with opened(guest) as g:
        g.chmod(0o4751, meta(fstype, "link"))
        g.chmod(0o700, meta(fstype, "link-dir"))
        g.chmod(stat.S_IFREG | 0o1640, meta(fstype, "other"))  # type bits are ignored

    found = kernel_lstats(guest, fstype)
    assert stat.S_IMODE(found["file"].st_mode) == 0o4751
    assert stat.S_IMODE(found["dir"].st_mode) == 0o700
    assert stat.S_IMODE(found["other"].st_mode) == 0o1640
    assert stat.S_ISLNK(found["link"].st_mode)
    if fstype == "ext4":
        assert "Mode:  04751" in debugfs(guest, "stat /meta/file")
    if fstype == "xfs":
        assert xfs_db_fields(guest, "/meta/file", "core.mode")["core.mode"] == "0104751"


def test_chmod_ignores_the_umask(prepare: Prepare) -> None:
    guest = prepare()
    with opened(guest) as g:
        g.umask(0o077)
        g.chmod(0o666, meta("xfs", "file"))

    assert stat.S_IMODE(kernel_lstats(guest, "xfs")["file"].st_mode) == 0o666


# ---------------------------------------------------------------- chown and lchown


@pytest.mark.parametrize("fstype", WITHOUT_NTFS)
def test_chown_follows_a_link_and_lchown_does_not(prepare: Prepare, fstype: str) -> None:
    guest = prepare()
    with opened(guest) as g:
        g.chown(1234, 5678, meta(fstype, "link"))
        g.lchown(4321, 8765, meta(fstype, "link"))
        g.chown(-1, 42, meta(fstype, "dir"))
        g.lchown(77, -1, meta(fstype, "other"))

    found = kernel_lstats(guest, fstype)
    assert (found["file"].st_uid, found["file"].st_gid) == (1234, 5678)
    assert (found["link"].st_uid, found["link"].st_gid) == (4321, 8765)
    assert (found["dir"].st_uid, found["dir"].st_gid) == (0, 42)
    assert (found["other"].st_uid, found["other"].st_gid) == (77, 0)
    if fstype == "ext4":
        assert "User:  1234   Group:  5678" in debugfs(guest, "stat /meta/file")
    if fstype == "xfs":
        fields = xfs_db_fields(guest, "/meta/file", "core.uid core.gid")
        assert (fields["core.uid"], fields["core.gid"]) == ("1234", "5678")


def test_ntfs_keeps_no_owner_or_mode(prepare: Prepare) -> None:
    """Documents ntfs-3g's behaviour, as libguestfs meets it too: no error, no change."""
    guest = prepare()
    with opened(guest) as g:
        g.chmod(0o600, meta("ntfs", "file"))
        g.chown(1234, 5678, meta("ntfs", "file"))
        g.lchown(1234, 5678, meta("ntfs", "link"))

    found = kernel_lstats(guest, "ntfs")["file"]
    assert (stat.S_IMODE(found.st_mode), found.st_uid, found.st_gid) == (0o777, 0, 0)


# ---------------------------------------------------------------- utimens


@pytest.mark.parametrize("fstype", MBR_FILESYSTEMS)
def test_utimens_sets_both_times_to_the_nanosecond(prepare: Prepare, fstype: str) -> None:
    guest = prepare()
    with opened(guest) as g:
        g.utimens(meta(fstype, "file"), *ATIME, *MTIME)
        g.utimens(meta(fstype, "link"), *MTIME, *ATIME)  # the link itself

    found = kernel_lstats(guest, fstype)
    assert (found["file"].st_atime_ns, found["file"].st_mtime_ns) == (
        ATIME[0] * NS + ATIME[1],
        MTIME[0] * NS + MTIME[1],
    )
    assert found["link"].st_mtime_ns == ATIME[0] * NS + ATIME[1]
    if fstype == "ext4":
        text = debugfs(guest, "stat /meta/file")
        assert (debugfs_time(text, "atime"), debugfs_time(text, "mtime")) == (ATIME, MTIME)
    if fstype == "xfs":
        fields = xfs_db_fields(guest, "/meta/file", "core.atime.nsec core.mtime.nsec")
        assert fields == {"core.atime.nsec": str(ATIME[1]), "core.mtime.nsec": str(MTIME[1])}


@pytest.mark.parametrize("fstype", POSIX_FILESYSTEMS)
def test_utimens_takes_odd_nanoseconds_and_times_before_1970(prepare: Prepare, fstype: str) -> None:
    guest = prepare()
    with opened(guest) as g:
        g.utimens(meta(fstype, "file"), *PRE_EPOCH, 7, 999_999_999)
        seen = g.statns(meta(fstype, "file")), g.stat(meta(fstype, "file"))

    found = kernel_lstats(guest, fstype)["file"]
    assert found.st_atime_ns == PRE_EPOCH[0] * NS + PRE_EPOCH[1]
    assert found.st_mtime_ns == 7 * NS + 999_999_999
    assert (seen[0]["st_atime_sec"], seen[0]["st_atime_nsec"]) == PRE_EPOCH
    assert seen[1]["atime"] == PRE_EPOCH[0]  # rounded down, as tv_sec
    if fstype == "ext4":
        assert debugfs_time(debugfs(guest, "stat /meta/file"), "atime") == PRE_EPOCH


@pytest.mark.parametrize("fstype", MBR_FILESYSTEMS)
def test_utimens_now_and_omit(prepare: Prepare, fstype: str) -> None:
    guest = prepare()
    with opened(guest) as g:
        g.utimens(meta(fstype, "file"), *ATIME, *MTIME)
        g.utimens(meta(fstype, "other"), *ATIME, *MTIME)
        before = time.time_ns()
        g.utimens(meta(fstype, "file"), 99, -2, 99, -1)  # atime kept, mtime now
        after = time.time_ns()
        changed = g.statns(meta(fstype, "other"))["st_ctime_nsec"]
        g.utimens(meta(fstype, "other"), 5, -2, 5, -2)  # nothing at all
        assert g.statns(meta(fstype, "other"))["st_ctime_nsec"] == changed

    found = kernel_lstats(guest, fstype)
    assert found["file"].st_atime_ns == ATIME[0] * NS + ATIME[1]
    assert before - 100 <= found["file"].st_mtime_ns <= after  # NTFS keeps 100 ns steps
    assert found["other"].st_mtime_ns == MTIME[0] * NS + MTIME[1]


# ---------------------------------------------------------------- refusals


def test_read_only_filesystems_refuse_before_anything_changes(prepare: Prepare) -> None:
    guest = prepare()
    with opened(guest) as g:
        g.umount("/home")
        g.mount_ro("/dev/sda5", "/home")
        before = g.statns(meta("btrfs", "file"))
        calls = [
            lambda p: g.chmod(0o600, p),
            lambda p: g.chown(1, 1, p),
            lambda p: g.lchown(1, 1, p),
            lambda p: g.utimens(p, *ATIME, *MTIME),
        ]
        for call in calls:
            with pytest.raises(ReadOnlyError, match="read-only") as caught:
                call(meta("btrfs", "link"))
            assert isinstance(caught.value, PermissionError)
        assert g.statns(meta("btrfs", "file")) == before


def test_read_only_handle_refuses(mbr_guest: Guest) -> None:
    with opened(mbr_guest, readonly=True) as g:
        with pytest.raises(ReadOnlyError):
            g.chmod(0o600, "/etc/hostname")
        with pytest.raises(ReadOnlyError):
            g.utimens("/etc/hostname", *ATIME, *MTIME)


def test_bad_arguments_are_refused(mbr_guest: Guest) -> None:
    with opened(mbr_guest, readonly=True) as g:
        with pytest.raises(GuestFileError, match="negative"):
            g.chmod(-1, "/etc/hostname")
        with pytest.raises(GuestFileError, match="-2"):
            g.chown(-2, 0, "/etc/hostname")
        for nsecs in (NS, -3):
            with pytest.raises(GuestFileError, match="out of range"):
                g.utimens("/etc/hostname", 0, nsecs, 0, 0)
        with pytest.raises(GuestPathError):
            g.chmod(0o644, "etc/hostname")


def test_missing_files_raise_file_not_found(prepare: Prepare) -> None:
    with opened(prepare()) as g:
        calls = [
            lambda p: g.chmod(0o600, p),
            lambda p: g.chown(1, 1, p),
            lambda p: g.lchown(1, 1, p),
            lambda p: g.utimens(p, *ATIME, *MTIME),
        ]
        for call in calls:
            with pytest.raises(GuestFileNotFoundError, match="/etc/nope") as caught:
                call("/etc/nope")
            assert isinstance(caught.value, FileNotFoundError)


# ---------------------------------------------------------------- hostile links


def test_links_to_host_paths_change_only_the_guest(hostile_guest: Guest, tmp_path: Path) -> None:
    hostile = plant_hostile(hostile_guest, tmp_path)
    watched = (hostile.canary, hostile.canary_dir, hostile.lone)
    before = {path: make_canary(path) for path in watched}

    with opened_hostile(hostile.guest) as g:
        for number, link in enumerate(hostile.links):
            g.chmod(0o600, link)
            g.chown(1000 + number, 2000 + number, link)
            g.utimens(link, *ATIME, *MTIME)
        g.lchown(7, 8, "/etc/canary-link")
        g.chmod(0o701, "/etc/canary-dir-link")
        g.chown(9, 10, "/etc/canary-dir-link")
        for call in (lambda p: g.chmod(0o600, p), lambda p: g.chown(1, 1, p)):
            with pytest.raises(GuestFileNotFoundError):
                call("/etc/lone-link")
            with pytest.raises(SymlinkLoopError):
                call("/loop1")

    assert {path: host_state(path) for path in watched} == before
    with hostile_root(hostile) as root:
        own = os.lstat(root / str(hostile.canary).lstrip("/"))
        own_dir = os.lstat(root / str(hostile.canary_dir).lstrip("/"))
        link = os.lstat(root / "etc/canary-link")
    last = len(hostile.links) - 1
    assert (stat.S_IMODE(own.st_mode), own.st_uid, own.st_gid) == (0o600, 1000 + last, 2000 + last)
    assert own.st_mtime_ns == MTIME[0] * NS + MTIME[1]
    assert (stat.S_IMODE(own_dir.st_mode), own_dir.st_uid, own_dir.st_gid) == (0o701, 9, 10)
    assert (link.st_uid, link.st_gid, link.st_mtime_ns) == (7, 8, MTIME[0] * NS + MTIME[1])
