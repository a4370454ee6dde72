"""mknod, mknod_b, mknod_c, mkfifo and umask, on ext4, xfs, btrfs and ntfs.

Nodes made through VMCraft are read back after the handle is closed, through the test's
own mount (kernel, or its own ntfs-3g) and, for ext4, debugfs. The modes expected are those
asked for less the umask (guestfs(3): "the mode actually set is affected by the umask",
default 022). A guest's device node must stay harmless on the host: every guest mount is
``nodev``, so opening one through the handle's mount fails.

Host tools: cp, losetup, mount, umount, ntfs-3g, debugfs.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable
from pathlib import Path

import guests
import pytest
from guests import Guest
from metadata_support import (
    MBR_FILESYSTEMS,
    debugfs,
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
    ReadOnlyError,
    SymlinkLoopError,
)

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_tool("ntfs-3g")]

# name -> (what the call is given, what the guest should then hold: type, mode, rdev)
MADE = {
    "blk": (stat.S_IFBLK, 0o660, (7, 200), 0o640),
    "chr": (stat.S_IFCHR, 0o666, (1, 5), 0o644),
    "fifo": (stat.S_IFIFO, 0o666, (0, 0), 0o644),
    "sock": (stat.S_IFSOCK, 0o777, (0, 0), 0o755),
    "plain": (0, 0o4755, (0, 0), 0o4755),
}
CopyGuest = Callable[[Guest], Guest]
NTFS_MODES = "ntfs-3g without 'permissions' shows every mode as 0777"


def make_all(g: VMCraft, fstype: str) -> None:
    g.mknod_b(0o660, 7, 200, guest_path(fstype, "blk"))
    g.mknod_c(0o666, 1, 5, guest_path(fstype, "chr"))
    g.mkfifo(0o666, guest_path(fstype, "fifo"))
    g.mknod(stat.S_IFSOCK | 0o777, 0, 0, guest_path(fstype, "sock"))
    g.mknod(0o4755, 0, 0, guest_path(fstype, "plain"))  # no type bits: a regular file


def host_path(g: VMCraft, path: str) -> str:
    """Where the handle's own mount shows a guest path (white-box: for the nodev check)."""
    return g._tree("test").resolve(path, follow_final=False)


# ---------------------------------------------------------------- making nodes


@pytest.mark.parametrize("fstype", MBR_FILESYSTEMS)
def test_nodes_are_made_with_type_device_and_umasked_mode(
    mbr_guest: Guest, writable_copy: CopyGuest, fstype: str
) -> None:
    guest = writable_copy(mbr_guest)
    with opened(guest) as g:
        make_all(g, fstype)
        assert g.is_blockdev(guest_path(fstype, "blk"))
        assert g.is_chardev(guest_path(fstype, "chr"))
        assert g.is_fifo(guest_path(fstype, "fifo"))
        assert g.is_socket(guest_path(fstype, "sock"))
        assert g.is_file(guest_path(fstype, "plain"))

    with kernel_mounted(guest, fstype, read_only=True) as root:
        found = {name: os.lstat(root / name) for name in MADE}
    for name, (kind, _, device, mode) in MADE.items():
        assert stat.S_IFMT(found[name].st_mode) == (kind or stat.S_IFREG), name
        assert (os.major(found[name].st_rdev), os.minor(found[name].st_rdev)) == device, name
        shown = 0o777 if fstype == "ntfs" else mode
        assert stat.S_IMODE(found[name].st_mode) == shown, (name, NTFS_MODES)
    if fstype == "ext4":
        text = debugfs(guest, "stat /blk")
        assert "Type: block special" in text and "Mode:  0640" in text
        assert re.search(r"Device major/minor number: 0?7:200\b", text)


@pytest.mark.parametrize("fstype", MBR_FILESYSTEMS)
def test_guest_device_nodes_cannot_be_opened_on_the_host(
    mbr_guest: Guest, writable_copy: CopyGuest, fstype: str
) -> None:
    with opened(writable_copy(mbr_guest)) as g:
        make_all(g, fstype)
        mountpoint = host_path(g, MBR_FILESYSTEMS[fstype][1]) if fstype != "xfs" else g._root
        options = [e.options for e in guests.read_mountinfo() if e.mountpoint == mountpoint]
        assert "nodev" in options[-1].split(",")

        for name in ("blk", "chr"):
            with pytest.raises(OSError) as caught:
                os.close(os.open(host_path(g, guest_path(fstype, name)), os.O_RDONLY))
            assert caught.value.errno in (errno.EACCES, errno.EPERM), name
            with pytest.raises(GuestFileError):
                g.read_file(guest_path(fstype, name))
            with pytest.raises(GuestFileError, match="not a regular file"):
                g.is_zero(guest_path(fstype, name))  # never even opened


def test_umask_is_remembered_and_applied(mbr_guest: Guest, writable_copy: CopyGuest) -> None:
    guest = writable_copy(mbr_guest)
    with opened(guest) as g:
        assert g.get_umask() == 0o022
        assert g.umask(0o077) == 0o022
        g.mkfifo(0o666, "/etc/private-fifo")
        assert g.umask(0) == 0o077
        g.mknod_c(0o666, 1, 3, "/etc/open-null")
        assert g.get_umask() == 0
        for bad in (-1, 0o1000):
            with pytest.raises(GuestFileError, match="umask"):
                g.umask(bad)
        assert g.get_umask() == 0

    with kernel_mounted(guest, "xfs", read_only=True) as root:
        assert stat.S_IMODE(os.lstat(root / "etc/private-fifo").st_mode) == 0o600
        assert stat.S_IMODE(os.lstat(root / "etc/open-null").st_mode) == 0o666


# ---------------------------------------------------------------- refusals


def test_mknod_refusals(mbr_guest: Guest, writable_copy: CopyGuest) -> None:
    with opened(writable_copy(mbr_guest)) as g:
        with pytest.raises(GuestFileError, match="exists"):
            g.mkfifo(0o644, "/etc/hostname")
        with pytest.raises(GuestFileError, match="not permission bits"):
            g.mknod_b(stat.S_IFBLK | 0o600, 7, 0, "/etc/b")
        with pytest.raises(GuestFileError, match="not a node type"):
            g.mknod(stat.S_IFDIR | 0o755, 0, 0, "/etc/d")
        with pytest.raises(GuestFileError, match="out of range"):
            g.mknod_c(0o600, -1, 0, "/etc/c")
        with pytest.raises(GuestFileNotFoundError):
            g.mkfifo(0o644, "/no/such/folder/fifo")

        g.umount("/home")
        g.mount_ro("/dev/sda5", "/home")
        with pytest.raises(ReadOnlyError):
            g.mkfifo(0o644, "/home/fifo")
        assert not g.exists("/home/fifo")
        for name in ("b", "d", "c"):
            assert not g.exists(f"/etc/{name}")


# ---------------------------------------------------------------- hostile links


def test_nodes_land_in_the_guest_never_on_the_host(hostile_guest: Guest, tmp_path: Path) -> None:
    hostile = plant_hostile(hostile_guest, tmp_path)
    watched = (hostile.canary, hostile.canary_dir, hostile.lone)
    before = {path: make_canary(path) for path in watched}
    inside_dir = f"/abs{hostile.canary_dir}"

    with opened_hostile(hostile.guest) as g:
        g.mkfifo(0o644, "/etc/canary-dir-link/fifo")
        g.mknod_c(0o600, 1, 5, f"{inside_dir}/chr")
        g.mknod_b(0o600, 7, 0, f"/up{hostile.canary_dir}/blk")
        for path in ("/etc/lone-link", "/etc/canary-link"):
            with pytest.raises(GuestFileError, match="exists"):
                g.mkfifo(0o644, path)  # the link is there; it is not followed
        with pytest.raises(SymlinkLoopError):
            g.mkfifo(0o644, "/loop1/fifo")

    assert {path: host_state(path) for path in watched} == before
    with hostile_root(hostile) as root:
        own = root / str(hostile.canary_dir).lstrip("/")
        assert sorted(os.listdir(own)) == ["blk", "chr", "fifo"]
        assert stat.S_ISLNK(os.lstat(root / "etc/lone-link").st_mode)
