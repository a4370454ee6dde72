"""The handle's copy and move calls on ext4, xfs, btrfs and NTFS: cp, cp_a, cp_r, mv,
rename, copy_in and copy_out (a hostile guest: test_hostile_writes.py).

A tree with owners, modes, nanosecond times, an xattr, hard links, a FIFO, a sparse file
and symlinks aiming at host canaries is planted through an independent mount of the
partition (or on the host, for copy_in). After VMCraft copied it and the handle is closed,
source and copy are compared as an independent mount shows them, so what "kept" means
comes from the source itself, never from VMCraft. The semantics are those of guestfs(3):
``cp -a``, ``cp -rP``, ``cp``, ``mv``, rename(2), and tar-like copy_in/copy_out (numeric
owners). Each filesystem also copies to the next one (ext4 -> xfs -> btrfs -> NTFS ->
ext4), so every pair of drivers meets once. NTFS keeps no POSIX owners or modes.

Host tools: cp, losetup, mount, umount, ntfs-3g, debugfs.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from functools import partial
from pathlib import Path

import pytest
from guests import Guest
from writing_support import (
    FILESYSTEMS,
    TREE_FILE,
    Canary,
    Filesystem,
    assert_archive_copy,
    debugfs_stat,
    files_under,
    inside,
    make_canary,
    mbr_handle,
    plant_file,
    plant_tree,
    reopened,
    snapshot,
)

from vmcraft.errors import GuestFileError, GuestFileNotFoundError, ReadOnlyError

pytestmark = pytest.mark.requires_root

CopyGuest = Callable[[Guest], Guest]
NEXT = {"ext4": "xfs", "xfs": "btrfs", "btrfs": "ntfs", "ntfs": "ext4"}
UMASK = 0o022


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Canary:
    return make_canary(tmp_path_factory.mktemp("host-canary"))


@pytest.fixture(params=list(FILESYSTEMS))
def fs(request: pytest.FixtureRequest) -> Filesystem:
    return FILESYSTEMS[request.param]


@pytest.fixture
def image(mbr_guest: Guest, writable_copy: CopyGuest) -> Guest:
    return writable_copy(mbr_guest)


@pytest.fixture
def planted(fs: Filesystem, image: Guest, canary: Canary) -> Guest:
    """The image with the tree planted at ``tree`` on the filesystem under test."""
    with reopened(image, fs, read_only=False) as root:
        plant_tree(inside(root, fs, fs.path("tree")), canary, posix=fs.posix)
    return image


def assert_canary_untouched(canary: Canary, before: object, *copies: Path) -> None:
    assert canary.state() == before
    secrets = {canary.file.read_bytes(), canary.inner.read_bytes()}
    for top in copies:
        assert not any(p.read_bytes() in secrets for p in files_under(top))


# ---------------------------------------------------------------- cp_a


def test_cp_a_keeps_everything_within_and_across_filesystems(
    fs: Filesystem, planted: Guest, canary: Canary
) -> None:
    other = FILESYSTEMS[NEXT[fs.fstype]]
    before = canary.state()

    with mbr_handle(planted.path) as g:
        g.cp_a(fs.path("tree"), fs.path("copy"))
        g.mkdir_p(other.path("into"))
        g.cp_a(fs.path("tree"), other.path("into"))  # an existing folder: into it

    with reopened(planted, fs) as root:
        source = snapshot(inside(root, fs, fs.path("tree")))
        assert_archive_copy(source, snapshot(inside(root, fs, fs.path("copy"))), posix=fs.posix)
        assert_canary_untouched(canary, before, inside(root, fs, fs.path("copy")))
    with reopened(planted, other) as root:
        across = snapshot(inside(root, other, other.path("into", "tree")))
        assert_archive_copy(source, across, posix=other.posix)


def test_cp_a_is_seen_by_debugfs(image: Guest, canary: Canary) -> None:
    fs = FILESYSTEMS["ext4"]
    with reopened(image, fs, read_only=False) as root:
        plant_tree(inside(root, fs, fs.path("tree")), canary, posix=True)
    planted = image

    with mbr_handle(planted.path) as g:
        g.cp_a(fs.path("tree"), fs.path("copy"))

    assert debugfs_stat(planted, fs, "/copy/file.txt") | {"Size": ""} == {
        "Type": "regular", "Mode": "0640", "User": "1234", "Group": "5678", "Size": "",
        "Links": "2",
    }  # fmt: skip
    assert debugfs_stat(planted, fs, "/copy/sub")["Mode"] == "0750"
    assert debugfs_stat(planted, fs, "/copy/abs-link")["Type"] == "symlink"


# ---------------------------------------------------------------- cp_r, cp


def test_cp_r_copies_links_as_links_and_keeps_no_metadata(
    fs: Filesystem, planted: Guest, canary: Canary
) -> None:
    before = canary.state()
    with mbr_handle(planted.path) as g:
        g.cp_r(fs.path("tree"), fs.path("plain"))

    with reopened(planted, fs) as root:
        source = snapshot(inside(root, fs, fs.path("tree")))
        copy = snapshot(inside(root, fs, fs.path("plain")))
        assert_canary_untouched(canary, before, inside(root, fs, fs.path("plain")))
    assert sorted(copy.entries) == sorted(source.entries)
    assert copy.hard_links == frozenset()  # cp -r does not keep them
    for name, want in source.entries.items():
        got = copy.entries[name]
        assert (got.kind, got.content) == (want.kind, want.content), name
        assert got.xattrs == (), name
        if fs.posix and got.kind != stat.S_IFLNK:
            assert (got.uid, got.gid) == (0, 0), name
            assert got.mode == want.mode & 0o777 & ~UMASK, name
    assert copy.entries["file.txt"].mtime_ns != source.entries["file.txt"].mtime_ns


def test_cp_copies_one_file(fs: Filesystem, planted: Guest) -> None:
    with reopened(planted, fs, read_only=False) as root:
        kept = inside(root, fs, fs.path("kept.txt"))
        plant_file(kept, b"to be overwritten, a longer old content\n", owner=(42, 43), mode=0o600)
        kept_inode = kept.stat().st_ino

    with mbr_handle(planted.path) as g:
        g.cp(fs.path("tree", "file.txt"), fs.path("new.txt"))
        g.cp(fs.path("tree", "rel-link"), fs.path("via-link.txt"))  # followed inside the guest
        g.mkdir_p(fs.path("folder"))
        g.cp(fs.path("tree", "file.txt"), fs.path("folder"))
        g.cp(fs.path("tree", "file.txt"), fs.path("kept.txt"))
        with pytest.raises(GuestFileError, match="not a regular file"):
            g.cp(fs.path("tree", "sub"), fs.path("folder"))
        with pytest.raises(GuestFileError, match="same file"):
            g.cp(fs.path("tree", "file.txt"), fs.path("tree", "sub", "hard"))
        with pytest.raises(GuestFileNotFoundError):
            g.cp(fs.path("tree", "abs-link"), fs.path("canary.txt"))  # no such guest path

    with reopened(planted, fs) as root:
        for name in ("new.txt", "via-link.txt", "folder/file.txt", "kept.txt", "tree/file.txt"):
            assert inside(root, fs, fs.path(name)).read_bytes() == TREE_FILE, name
        kept = inside(root, fs, fs.path("kept.txt"))
        assert kept.stat().st_ino == kept_inode  # rewritten in place, as cp does
        assert not inside(root, fs, fs.path("canary.txt")).exists()
        if fs.posix:
            assert stat.S_IMODE(inside(root, fs, fs.path("new.txt")).stat().st_mode) == 0o640
            assert (kept.stat().st_uid, kept.stat().st_gid) == (42, 43)
            assert stat.S_IMODE(kept.stat().st_mode) == 0o600


# ---------------------------------------------------------------- mv, rename


def test_mv_and_rename(fs: Filesystem, planted: Guest, canary: Canary) -> None:
    other = FILESYSTEMS[NEXT[fs.fstype]]
    before = canary.state()
    with reopened(planted, fs) as root:
        tree = inside(root, fs, fs.path("tree"))
        sub_before = snapshot(tree / "sub")
        inode = (tree / "file.txt").stat().st_ino

    with mbr_handle(planted.path) as g:
        g.mv(fs.path("tree", "file.txt"), fs.path("moved.txt"))
        g.rename(fs.path("moved.txt"), fs.path("renamed.txt"))
        g.mv(fs.path("tree", "abs-link"), fs.path("moved-link"))  # the link itself
        g.mv(fs.path("tree", "sub"), other.path("sub-moved"))  # copied, then removed
        with pytest.raises(GuestFileError, match="cross-device"):
            g.rename(fs.path("renamed.txt"), other.path("renamed.txt"))
        with pytest.raises(GuestFileError, match="inside"):
            g.mv(fs.path("tree"), fs.path("tree", "deeper"))

    with reopened(planted, fs) as root:
        assert inside(root, fs, fs.path("renamed.txt")).stat().st_ino == inode
        assert os.readlink(inside(root, fs, fs.path("moved-link"))) == str(canary.file)
        assert sorted(os.listdir(inside(root, fs, fs.path("tree")))) == [
            name for name in ("dir-link", "fifo", "rel-link", "sparse.bin", "up-link")
            if fs.posix or name != "fifo"
        ]  # fmt: skip
    with reopened(planted, other) as root:
        assert not inside(root, other, other.path("renamed.txt")).exists()
        moved = snapshot(inside(root, other, other.path("sub-moved")))
    sub_before.entries.pop("hard")  # its other name, file.txt, stayed behind
    moved.entries.pop("hard")
    assert_archive_copy(sub_before, moved, posix=fs.posix and other.posix)
    assert canary.state() == before


# ---------------------------------------------------------------- copy_in, copy_out


def test_copy_in_keeps_everything(
    fs: Filesystem, image: Guest, canary: Canary, tmp_path: Path
) -> None:
    host_tree = tmp_path / "host-tree"
    plant_tree(host_tree, canary, posix=True)
    before = canary.state()

    with mbr_handle(image.path) as g:
        g.mkdir_p(fs.path("incoming"))
        g.copy_in(str(host_tree), fs.path("incoming"))
        with pytest.raises(GuestFileError, match="not a directory"):
            g.copy_in(str(host_tree), fs.path("incoming", "host-tree", "file.txt"))
        with pytest.raises(GuestFileNotFoundError):
            g.copy_in(str(host_tree), fs.path("no-such-folder"))

    with reopened(image, fs) as root:
        copied = inside(root, fs, fs.path("incoming", "host-tree"))
        assert_archive_copy(snapshot(host_tree), snapshot(copied), posix=fs.posix)
        assert_canary_untouched(canary, before, copied)


def test_copy_out_keeps_everything_but_device_nodes(
    fs: Filesystem, planted: Guest, canary: Canary, tmp_path: Path
) -> None:
    if fs.posix:
        with reopened(planted, fs, read_only=False) as root:
            os.mknod(inside(root, fs, fs.path("tree", "null")), stat.S_IFCHR | 0o666, 0x103)
    out = tmp_path / "out"
    out.mkdir()
    before = canary.state()

    with mbr_handle(planted.path) as g:
        g.copy_out(fs.path("tree"), str(out))
        g.copy_out(fs.path("tree", "rel-link"), str(out))  # followed inside the guest
        if fs.posix:
            with pytest.raises(GuestFileError, match="not a file or directory"):
                g.copy_out(fs.path("tree", "fifo"), str(out))

    with reopened(planted, fs) as root:
        source = snapshot(inside(root, fs, fs.path("tree")))
    source.entries.pop("null", None)  # skipped: it would open the host's /dev/null
    assert_archive_copy(source, snapshot(out / "tree"), posix=fs.posix)
    assert (out / "rel-link").read_bytes() == TREE_FILE
    assert sorted(os.listdir(out)) == ["rel-link", "tree"]
    assert_canary_untouched(canary, before, out)


def test_copy_out_never_writes_through_host_links(
    mbr_guest: Guest, writable_copy: CopyGuest, canary: Canary, tmp_path: Path
) -> None:
    ext4 = FILESYSTEMS["ext4"]
    image = writable_copy(mbr_guest)
    with reopened(image, ext4, read_only=False) as root:
        plant_tree(inside(root, ext4, ext4.path("tree")), canary, posix=True)
    first, second = tmp_path / "first", tmp_path / "second"
    (first / "tree").mkdir(parents=True)
    (first / "tree" / "file.txt").symlink_to(canary.file)
    second.mkdir()
    (second / "tree").symlink_to(canary.folder)
    before = canary.state()

    with mbr_handle(image.path) as g:
        g.copy_out(ext4.path("tree"), str(first))
        with pytest.raises(GuestFileError, match="in the way"):
            g.copy_out(ext4.path("tree"), str(second))

    assert (first / "tree" / "file.txt").read_bytes() == TREE_FILE
    assert not (first / "tree" / "file.txt").is_symlink()
    assert os.readlink(second / "tree") == str(canary.folder)
    assert canary.state() == before


# ---------------------------------------------------------------- refusals


def test_copies_refuse_to_go_inside_themselves(image: Guest, canary: Canary) -> None:
    fs = FILESYSTEMS["xfs"]
    with reopened(image, fs, read_only=False) as root:
        plant_tree(inside(root, fs, fs.path("tree")), canary, posix=True)

    with mbr_handle(image.path) as g:
        for call in (g.cp_a, g.cp_r, g.mv):
            with pytest.raises(GuestFileError, match="inside"):
                call(fs.path("tree"), fs.path("tree", "sub"))
        assert g.ls(fs.path("tree", "sub")) == ["hard", "setuid"]


def test_read_only_handle_refuses_copies_into_the_guest(mbr_guest: Guest, tmp_path: Path) -> None:
    xfs = FILESYSTEMS["xfs"]
    with mbr_handle(mbr_guest.path, readonly=True) as g:
        calls: list[Callable[[], None]] = [
            partial(g.cp, "/etc/hostname", "/etc/hostname2"),
            partial(g.cp_a, "/etc", "/etc2"),
            partial(g.cp_r, "/etc", "/etc2"),
            partial(g.mv, "/etc/hostname", "/hostname"),
            partial(g.rename, "/etc/hostname", "/hostname"),
            partial(g.copy_in, str(tmp_path), "/etc"),
        ]
        for call in calls:
            with pytest.raises(ReadOnlyError, match="read-only"):
                call()
        g.copy_out(xfs.path("etc"), str(tmp_path))  # reading is fine

    files = mbr_guest.filesystems[xfs.device].files
    assert (tmp_path / "etc" / "hostname").read_bytes() == files["/etc/hostname"]
