"""The handle's folder calls on real ext4, xfs, btrfs and NTFS.

Each test plants a known tree in a copy of the mbr guest through a mount of its own, runs
the calls through the handle, closes it, and reads the result back the same independent
way: a kernel mount of the partition's loop device (ext4, xfs, btrfs) or the test's own
ntfs-3g mount (NTFS, which this kernel cannot mount). Expected values come from the planted
tree, POSIX and guestfs(3) (mkdir: 0777 & ~022 = 0755; mkdtemp: 0700), never from VMCraft.

Host tools: cp, losetup, mount, umount, ntfs-3g.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from directory_helpers import (
    DEVICES,
    FILE_CONTENT,
    POSIX,
    WORK,
    fs_view,
    image_state,
    listing,
    mode_of,
    opened,
    plant,
)
from guests import Guest

from vmcraft import VMCraft
from vmcraft.errors import GuestFileError, GuestFileNotFoundError, GuestPathError, ReadOnlyError

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_tool("ntfs-3g", "--version")]

CopyGuest = Callable[[Guest], Guest]
DEEP_LEVELS = 1100  # deeper than Python's recursion limit (1000) and a 1024-fd limit
EXT4_ROOT_INODE = 2  # EXT4_ROOT_INO, the inode of every ext4 root folder


@pytest.fixture(params=list(DEVICES))
def fs(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def planted(mbr_guest: Guest, writable_copy: CopyGuest, fs: str) -> Guest:
    copy = writable_copy(mbr_guest)
    with fs_view(copy, fs, read_only=False) as root:
        plant(root / "work", fs)
    return copy


# ---------------------------------------------------------------- listing


def test_find_lists_every_name_below_sorted_without_following_links(
    planted: Guest, fs: str, tmp_path: Path
) -> None:
    expected = ["dangling", "empty", "file.txt", "full", "full/file.txt", "full/link"]
    expected += ["full/sub", "full/sub/deep.txt", "link"]
    if fs in POSIX:
        expected += ["fifo", "setgid"]
    out = tmp_path / "find0.out"

    with opened(planted.path, readonly=True) as g:
        found = g.find(WORK[fs])
        g.find0(WORK[fs], str(out))
        assert g.find(WORK[fs] + "/full/sub") == ["deep.txt"]

    assert found == sorted(expected)
    raw = out.read_bytes()
    assert raw.endswith(b"\0")
    assert sorted(raw[:-1].decode().split("\0")) == sorted(expected)


def test_ls0_writes_the_names_nul_ended(planted: Guest, fs: str, tmp_path: Path) -> None:
    out = tmp_path / "ls0.out"
    with opened(planted.path, readonly=True) as g:
        g.ls0(WORK[fs] + "/full", str(out))
        g.ls0(WORK[fs] + "/empty", str(tmp_path / "empty.out"))

    assert out.read_bytes() == b"file.txt\0link\0sub\0"
    assert (tmp_path / "empty.out").read_bytes() == b""


def test_readdir_gives_names_inodes_and_types(planted: Guest, fs: str) -> None:
    letters = {"empty": "d", "full": "d", "file.txt": "r", "link": "l", "dangling": "l"}
    if fs in POSIX:
        letters |= {"fifo": "f", "setgid": "d"}

    with opened(planted.path, readonly=True) as g:
        entries = g.readdir(WORK[fs])

    with fs_view(planted, fs) as root:
        work = root / "work"
        inodes = {name: (work / name).lstat().st_ino for name in letters}
        inodes |= {".": work.lstat().st_ino, "..": root.lstat().st_ino}
    assert sorted(e["name"] for e in entries) == sorted([*letters, ".", ".."])
    for entry in entries:
        assert entry["ino"] == inodes[entry["name"]], entry
        assert entry["ftyp"] == letters.get(entry["name"], "d"), entry


def test_readdir_gives_a_mountpoint_the_inode_below_the_mount(mbr_guest: Guest) -> None:
    # libguestfs 1.48's answer is d_ino: "boot" in / is the xfs folder under the mount, not
    # the ext4 root (inode 2), and a filesystem's root lists itself as "..".
    with opened(mbr_guest.path, readonly=True) as g:
        top = {e["name"]: e["ino"] for e in g.readdir("/")}
        boot = {e["name"]: e["ino"] for e in g.readdir("/boot")}

    with fs_view(mbr_guest, "xfs") as root:
        below = {name: (root / name).lstat().st_ino for name in ("boot", "home", "srv")}
    assert {name: top[name] for name in below} == below
    assert boot["."] == boot[".."] == EXT4_ROOT_INODE


def test_ll_lists_like_ls_la(planted: Guest, fs: str) -> None:
    with opened(planted.path, readonly=True) as g:
        text = g.ll(WORK[fs])

    lines = text.splitlines()
    assert lines[0].startswith("total ")
    by_name = {line.split()[-1]: line for line in lines[1:] if " -> " not in line}
    by_name |= {line.split(" -> ")[0].split()[-1]: line for line in lines[1:] if " -> " in line}
    assert {".", "..", "empty", "full", "file.txt", "link", "dangling"} <= set(by_name)
    assert by_name["link"].endswith(" link -> file.txt")
    assert by_name["link"].startswith("l")
    assert by_name["empty"].startswith("d")
    assert str(len(FILE_CONTENT)) in by_name["file.txt"].split()
    if fs in POSIX:
        assert by_name["file.txt"].startswith("-rw-r----- 1 0 0 ")
        assert by_name["fifo"].startswith("p")
        assert by_name["setgid"].startswith("drwxrwsr-x")


def test_listing_a_file_or_missing_folder_fails_clearly(planted: Guest, fs: str) -> None:
    with opened(planted.path, readonly=True) as g:
        for call in (g.find, g.readdir, g.ll):
            with pytest.raises(GuestFileError, match="not a directory"):
                call(WORK[fs] + "/file.txt")
            with pytest.raises(GuestFileNotFoundError, match="/no-such"):
                call(WORK[fs] + "/no-such")


# ---------------------------------------------------------------- mkdir, mkdtemp


def test_mkdir_and_mkdir_mode_set_the_mode_whatever_the_callers_umask(
    planted: Guest, fs: str
) -> None:
    work = WORK[fs]
    with opened(planted.path) as g:
        old_umask = os.umask(0o077)
        try:
            g.mkdir(work + "/made")
            g.mkdir_mode(work + "/sticky", 0o7777)  # & ~022 & 01777 = 01755
            g.mkdir_mode(work + "/private", 0o700)
        finally:
            os.umask(old_umask)
        if fs in POSIX:
            g.mkdir(work + "/setgid/child")

    with fs_view(planted, fs) as root:
        for name in ("made", "sticky", "private"):
            assert (root / "work" / name).is_dir()
        if fs in POSIX:
            assert oct(mode_of(root / "work" / "made")) == oct(0o755)
            assert oct(mode_of(root / "work" / "sticky")) == oct(0o1755)
            assert oct(mode_of(root / "work" / "private")) == oct(0o700)
            assert oct(mode_of(root / "work" / "setgid" / "child")) == oct(0o2755)
            assert (root / "work" / "made").stat().st_uid == 0


def test_mkdir_follows_the_handles_umask(mbr_guest: Guest, writable_copy: CopyGuest) -> None:
    copy = writable_copy(mbr_guest)
    with opened(copy.path) as g:
        assert g.umask(0o077) == 0o022
        g.mkdir("/private")
        g.mkdir_mode("/group", 0o775)
        g.umask(0o002)
        g.mkdir("/shared")

    with fs_view(copy, "xfs") as root:
        assert oct(mode_of(root / "private")) == oct(0o700)
        assert oct(mode_of(root / "group")) == oct(0o700)
        assert oct(mode_of(root / "shared")) == oct(0o775)


def test_mkdir_refuses_what_mkdir_2_refuses(planted: Guest, fs: str) -> None:
    work = WORK[fs]
    with opened(planted.path) as g:
        with pytest.raises(GuestFileError, match="exists"):
            g.mkdir(work + "/full")
        with pytest.raises(GuestFileError, match="exists"):
            g.mkdir(work + "/dangling")  # not the link's target
        with pytest.raises(GuestFileNotFoundError):
            g.mkdir(work + "/no/such/parent")
        with pytest.raises(GuestFileError, match="negative"):
            g.mkdir_mode(work + "/negative", -1)

    with fs_view(planted, fs) as root:
        assert not (root / "work" / "no-such-target").exists()
        assert not (root / "work" / "negative").exists()


def test_mkdtemp_makes_private_unique_folders(planted: Guest, fs: str) -> None:
    template = WORK[fs] + "/tmpXXXXXX"
    with opened(planted.path) as g:
        made = {g.mkdtemp(template) for _ in range(3)}
        with pytest.raises(GuestPathError, match="XXXXXX"):
            g.mkdtemp(WORK[fs] + "/tmpXXXX")
        with pytest.raises(GuestPathError):
            g.mkdtemp("tmpXXXXXX")

    assert len(made) == 3
    with fs_view(planted, fs) as root:
        for path in made:
            name = path.removeprefix(WORK[fs] + "/")
            assert name.startswith("tmp") and len(name) == len("tmpXXXXXX") and "X" * 6 not in name
            assert (root / "work" / name).is_dir()
            if fs in POSIX:
                assert oct(mode_of(root / "work" / name)) == oct(0o700)


# ---------------------------------------------------------------- rmdir, rm, rm_f


def test_rmdir_removes_only_an_empty_folder(planted: Guest, fs: str) -> None:
    work = WORK[fs]
    with opened(planted.path) as g:
        g.rmdir(work + "/empty")
        with pytest.raises(GuestFileError, match="not empty"):
            g.rmdir(work + "/full")
        with pytest.raises(GuestFileError, match="Not a directory"):
            g.rmdir(work + "/link")
        with pytest.raises(GuestFileError, match="root"):
            g.rmdir("/")

    with fs_view(planted, fs) as root:
        assert not (root / "work" / "empty").exists()
        assert (root / "work" / "full" / "sub" / "deep.txt").read_bytes() == FILE_CONTENT
        assert (root / "work" / "link").is_symlink()


def test_rm_removes_files_and_links_not_their_targets(planted: Guest, fs: str) -> None:
    work = WORK[fs]
    with opened(planted.path) as g:
        g.rm(work + "/link")
        g.rm(work + "/dangling")
        g.rm(work + "/full/file.txt")
        with pytest.raises(GuestFileError, match="directory"):
            g.rm(work + "/empty")
        with pytest.raises(GuestFileNotFoundError):
            g.rm(work + "/no-such")

    with fs_view(planted, fs) as root:
        assert (root / "work" / "file.txt").read_bytes() == FILE_CONTENT
        assert not os.path.lexists(root / "work" / "link")
        assert not os.path.lexists(root / "work" / "dangling")
        assert listing(root / "work" / "full") == ["link", "sub"]


def test_rm_f_ignores_only_what_is_not_there(planted: Guest, fs: str) -> None:
    work = WORK[fs]
    with opened(planted.path) as g:
        g.rm_f(work + "/file.txt")
        g.rm_f(work + "/file.txt")
        g.rm_f(work + "/no/such/file")
        g.rm_f(work + "/full/file.txt/below-a-file")
        with pytest.raises(GuestFileError, match="directory"):
            g.rm_f(work + "/empty")

    with fs_view(planted, fs) as root:
        assert not (root / "work" / "file.txt").exists()
        assert (root / "work" / "empty").is_dir()


# ---------------------------------------------------------------- rm_rf


def test_rm_rf_removes_a_tree_and_accepts_a_missing_path(planted: Guest, fs: str) -> None:
    work = WORK[fs]
    with opened(planted.path) as g:
        g.rm_rf(work + "/full")
        g.rm_rf(work + "/link")
        g.rm_rf(work + "/no-such")
        g.rm_rf(work + "/file.txt/below-a-file")

    with fs_view(planted, fs) as root:
        names = listing(root / "work")
        assert "full" not in names and "link" not in names
        assert (root / "work" / "file.txt").read_bytes() == FILE_CONTENT


def test_rm_rf_removes_a_tree_deeper_than_python_recursion_and_the_fd_limit(
    mbr_guest: Guest, writable_copy: CopyGuest
) -> None:
    depth = DEEP_LEVELS
    copy = writable_copy(mbr_guest)
    with fs_view(copy, "xfs", read_only=False) as root:
        bottom = root / "deep"
        bottom.mkdir()
        for _ in range(depth):  # Path.mkdir(parents=True) recurses: too deep for it
            bottom = bottom / "d"
            bottom.mkdir()
        (bottom / "file").write_bytes(FILE_CONTENT)
        os.symlink("/", bottom / "root-link")

    with opened(copy.path) as g:
        assert len(g.find("/deep")) == depth + 2
        g.rm_rf("/deep")

    with fs_view(copy, "xfs") as root:
        assert not (root / "deep").exists()
        assert (root / "etc" / "hostname").read_bytes() == b"mbr-guest\n"


@pytest.mark.parametrize("path", ["/", "//", "/.", "/..", "/etc/..", "/srv/win/../.."])
def test_rm_rf_refuses_the_guest_root(
    mbr_guest: Guest, writable_copy: CopyGuest, path: str
) -> None:
    copy = writable_copy(mbr_guest)
    with opened(copy.path) as g:
        with pytest.raises(GuestFileError, match="root"):
            g.rm_rf(path)
        assert g.ls("/etc") == ["fstab", "hostname", "os-release"]


def test_rm_rf_empties_a_mounted_filesystem_but_cannot_remove_its_mountpoint(
    mbr_guest: Guest, writable_copy: CopyGuest
) -> None:
    copy = writable_copy(mbr_guest)
    with opened(copy.path) as g:
        with pytest.raises(GuestFileError, match="/home"):
            g.rm_rf("/home")
        assert g.is_dir("/home")
        assert g.ls("/home") == []


def test_rm_rf_refuses_a_tree_holding_a_read_only_mount_before_removing_anything(
    mbr_guest: Guest, writable_copy: CopyGuest
) -> None:
    copy = writable_copy(mbr_guest)
    with VMCraft() as g:
        g.add_drive_opts(str(copy.path), format="raw", readonly=False)
        g.launch()
        g.mount("/dev/sda2", "/")
        g.mkdir_p("/tree/inner")
        g.write("/tree/file", b"x")
        g.mount_ro("/dev/sda1", "/tree/inner")
        with pytest.raises(ReadOnlyError, match="/tree/inner"):
            g.rm_rf("/tree")
        assert g.ls("/tree") == ["file", "inner"]


# ---------------------------------------------------------------- read-only handle


def test_changes_on_a_read_only_handle_are_refused_before_anything_happens(
    mbr_guest: Guest,
) -> None:
    before = image_state(mbr_guest.path)
    with opened(mbr_guest.path, readonly=True) as g:
        for fs, work in WORK.items():
            calls: dict[str, Callable[[], object]] = {
                "mkdir": lambda w=work: g.mkdir(w),
                "mkdir_mode": lambda w=work: g.mkdir_mode(w, 0o700),
                "mkdtemp": lambda w=work: g.mkdtemp(w + "XXXXXX"),
                "rmdir": lambda w=work: g.rmdir(w),
                "rm": lambda w=work: g.rm(w),
                "rm_f": lambda w=work: g.rm_f(w),
                "rm_rf": lambda w=work: g.rm_rf(w),
            }
            for name, call in calls.items():
                with pytest.raises(ReadOnlyError, match="read-only"):
                    call()
                assert not g.exists(work), (fs, name)
    assert image_state(mbr_guest.path) == before
