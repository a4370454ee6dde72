"""Extended attributes (getxattrs, setxattr, removexattr and their l forms) and the ext2
file attributes (get_e2attrs, set_e2attrs), on ext4, xfs, btrfs and ntfs.

What VMCraft wrote is read back after the handle is closed, through the test's own kernel
mount (os.getxattr, lsattr(1)) or its own ntfs-3g, and with the filesystems' tools: debugfs
``ea_get`` and ``stat`` for ext4, ntfscat for NTFS, which keeps a ``user.*`` attribute as a
named data stream of that name. Attribute letters come from chattr(1).

Host tools: cp, losetup, mount, umount, ntfs-3g, ntfscat, debugfs, lsattr.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import guests
import pytest
from guests import Guest
from metadata_support import (
    MBR_FILESYSTEMS,
    POSIX_FILESYSTEMS,
    copy_of,
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

BINARY = b"\x00\x01binary\xff"
TEXT = "h\u00e9llo w\u00f6rld"
NODUMP_FL, NOATIME_FL, EXTENT_FL = 0x40, 0x80, 0x80000  # linux/fs.h, as debugfs prints
NTFS_LINK_XATTRS = (
    "ntfs-3g 2022.10 keeps no extended attribute on a symlink itself: it refuses user.* "
    "(EPERM) and accepts trusted.* without keeping it"
)

Prepare = Callable[[], Guest]


def _plant(root: Path) -> None:
    meta = root / "meta"
    (meta / "dir").mkdir(parents=True)
    (meta / "file").write_bytes(b"attributes\n")
    os.symlink("file", meta / "link")
    os.mkfifo(meta / "fifo")
    os.mknod(meta / "chr", stat.S_IFCHR | 0o600, os.makedev(1, 5))


@pytest.fixture(scope="module")
def prepared_base(mbr_guest: Guest, tmp_path_factory: pytest.TempPathFactory) -> Guest:
    guest = copy_of(mbr_guest, tmp_path_factory.mktemp("xattr-base"))
    for fstype in MBR_FILESYSTEMS:
        with kernel_mounted(guest, fstype) as root:
            _plant(root)
    return guest


@pytest.fixture
def prepare(prepared_base: Guest, writable_copy: Callable[[Guest], Guest]) -> Prepare:
    return lambda: writable_copy(prepared_base)


def meta(fstype: str, name: str) -> str:
    return guest_path(fstype, f"meta/{name}")


def kernel_xattrs(guest: Guest, fstype: str, name: str) -> dict[str, bytes]:
    with kernel_mounted(guest, fstype, read_only=True) as root:
        path = root / "meta" / name
        return {
            attr: os.getxattr(path, attr, follow_symlinks=False)
            for attr in os.listxattr(path, follow_symlinks=False)
        }


def kernel_lsattr(guest: Guest, fstype: str, *names: str) -> list[str]:
    """lsattr's letters of each name, dashes removed and sorted, as libguestfs's get_e2attrs."""
    with kernel_mounted(guest, fstype, read_only=True) as root:
        paths = [str(root / "meta" / name) for name in names]
        output = guests.run(["lsattr", "-d", *paths]).stdout.decode()
    return ["".join(sorted(line.split()[0].replace("-", ""))) for line in output.splitlines()]


def as_dict(found: list[object]) -> dict[str, bytes]:
    pairs = {}
    for entry in found:
        assert isinstance(entry, dict) and set(entry) == {"attrname", "attrval"}
        assert isinstance(entry["attrval"], bytes)
        pairs[entry["attrname"]] = entry["attrval"]
    return pairs


# ---------------------------------------------------------------- xattrs


@pytest.mark.parametrize("fstype", MBR_FILESYSTEMS)
def test_setxattr_and_removexattr_change_what_a_link_names(
    prepare: Prepare, fstype: str, tmp_path: Path
) -> None:
    guest = prepare()
    with opened(guest) as g:
        g.setxattr("user.vmcraft", BINARY, len(BINARY), meta(fstype, "link"))
        g.setxattr("user.text", TEXT, 5, meta(fstype, "file"))
        g.setxattr("user.gone", b"x", 1, meta(fstype, "file"))
        g.removexattr("user.gone", meta(fstype, "link"))
        g.setxattr("user.dir", b"folder", 6, meta(fstype, "dir"))
        listed = as_dict(g.getxattrs(meta(fstype, "link")))
        own = as_dict(g.lgetxattrs(meta(fstype, "link")))

    expected = {"user.vmcraft": BINARY, "user.text": TEXT.encode()[:5]}
    assert {k: v for k, v in listed.items() if k.startswith("user.")} == expected
    assert kernel_xattrs(guest, fstype, "file") == listed
    assert kernel_xattrs(guest, fstype, "link") == own
    assert "user.vmcraft" not in own
    assert kernel_xattrs(guest, fstype, "dir")["user.dir"] == b"folder"
    if fstype == "ext4":
        out = tmp_path / "ea-value"
        debugfs(guest, f"ea_get -f {out} /meta/file user.vmcraft")
        assert out.read_bytes() == BINARY
    if fstype == "ntfs":
        assert ntfs_stream(guest, "/meta/file", "vmcraft") == BINARY


def ntfs_stream(guest: Guest, path: str, stream: str) -> bytes:
    start, size = guest.partitions[MBR_FILESYSTEMS["ntfs"][0]]
    with guests.loop_device(guest.path, read_only=True, offset=start, size=size) as loop:
        return guests.run(["ntfscat", "-a", "0x80", "-n", stream, loop, path]).stdout


@pytest.mark.parametrize(
    "fstype",
    [*POSIX_FILESYSTEMS, pytest.param("ntfs", marks=pytest.mark.skip(reason=NTFS_LINK_XATTRS))],
)
def test_l_forms_act_on_the_link_itself(prepare: Prepare, fstype: str) -> None:
    guest = prepare()
    link = meta(fstype, "link")
    with opened(guest) as g:
        g.lsetxattr("trusted.vmcraft", b"on the link", 11, link)
        g.lsetxattr("trusted.gone", b"x", 1, link)
        g.lremovexattr("trusted.gone", link)
        own = as_dict(g.lgetxattrs(link))
        with pytest.raises(GuestFileError, match="not permitted"):
            g.lsetxattr("user.x", b"x", 1, link)  # Linux keeps user.* off symlinks

    assert own["trusted.vmcraft"] == b"on the link" and "trusted.gone" not in own
    assert kernel_xattrs(guest, fstype, "link") == own
    assert "trusted.vmcraft" not in kernel_xattrs(guest, fstype, "file")


def test_xattr_refusals(prepare: Prepare) -> None:
    with opened(prepare()) as g:
        path = meta("ext4", "file")
        with pytest.raises(GuestFileError, match=r"user\.none"):
            g.removexattr("user.none", path)
        with pytest.raises(GuestFileError, match="vallen"):
            g.setxattr("user.x", b"ab", 3, path)
        with pytest.raises(GuestFileError, match="name"):
            g.setxattr("", b"ab", 2, path)
        with pytest.raises(GuestFileNotFoundError):
            g.getxattrs(meta("ext4", "nope"))
        with pytest.raises(GuestFileNotFoundError):
            g.setxattr("user.x", b"x", 1, meta("ext4", "nope"))

        g.umount("/boot")
        g.mount_ro("/dev/sda1", "/boot")
        for call in (
            lambda: g.setxattr("user.x", b"x", 1, path),
            lambda: g.removexattr("user.x", path),
            lambda: g.set_e2attrs(path, "d"),
        ):
            with pytest.raises(ReadOnlyError):
                call()
        assert g.getxattrs(path) == []


def test_a_filesystem_without_xattrs_lists_none(mbr_guest: Guest) -> None:
    # libguestfs 1.48's answer on the ESP (vfat) is []; fusefat, which serves vfat where
    # the kernel has no driver for it, refuses listxattr with ENOTSUP instead.
    with VMCraft() as g:
        g.add_drive_opts(str(mbr_guest.path), format="raw", readonly=True)
        g.launch()
        for mountpoint in ("/", "/boot", "/boot/efi"):
            g.mount_ro(mbr_guest.mountpoints[mountpoint], mountpoint)
        assert g.getxattrs("/boot/efi/EFI") == []
        assert g.lgetxattrs("/boot/efi/EFI/BOOT") == []


# ---------------------------------------------------------------- ext2 attributes


def test_e2attrs_on_ext4_match_lsattr_and_debugfs(prepare: Prepare) -> None:
    guest = prepare()
    with opened(guest) as g:
        assert g.get_e2attrs(meta("ext4", "file")) == "e"  # ext4 files use extents
        g.set_e2attrs(meta("ext4", "file"), "Ad")
        g.set_e2attrs(meta("ext4", "dir"), "T")
        g.set_e2attrs(meta("ext4", "file"), "sA", clear=True)
        seen = g.get_e2attrs(meta("ext4", "file")), g.get_e2attrs(meta("ext4", "dir"))

    assert seen == ("de", "Te")
    assert kernel_lsattr(guest, "ext4", "file", "dir") == list(seen)
    flags = f"Flags: {EXTENT_FL | NODUMP_FL:#x}"
    assert flags in debugfs(guest, "stat /meta/file")


def test_immutable_attribute_stops_later_changes(prepare: Prepare) -> None:
    guest = prepare()
    with opened(guest) as g:
        g.set_e2attrs(meta("ext4", "file"), "i")
        # libguestfs 1.48's answer: lsattr prints "----i---------e---", it sorts to "ei".
        assert g.get_e2attrs(meta("ext4", "file")) == "ei"
        with pytest.raises(GuestFileError, match="not permitted"):
            g.chmod(0o600, meta("ext4", "file"))
        g.set_e2attrs(meta("ext4", "file"), "i", clear=True)
        g.chmod(0o600, meta("ext4", "file"))

    assert kernel_lsattr(guest, "ext4", "file") == ["e"]


@pytest.mark.parametrize("fstype", ["xfs", "btrfs"])
def test_e2attrs_on_xfs_and_btrfs(prepare: Prepare, fstype: str) -> None:
    guest = prepare()
    with opened(guest) as g:
        g.set_e2attrs(meta(fstype, "file"), "dA")
        seen = g.get_e2attrs(meta(fstype, "file"))

    assert set(seen) == {"d", "A"}
    assert kernel_lsattr(guest, fstype, "file") == [seen]


def test_e2attrs_refusals(mbr_guest: Guest, prepare: Prepare) -> None:
    with opened(prepare()) as g:
        for name in ("link", "fifo", "chr"):
            with pytest.raises(GuestFileError, match="not a regular file or folder"):
                g.get_e2attrs(meta("ext4", name))
            with pytest.raises(GuestFileError, match="not a regular file or folder"):
                g.set_e2attrs(meta("ext4", name), "d")
        with pytest.raises(GuestFileError, match="unknown attribute 'z'"):
            g.set_e2attrs(meta("ext4", "file"), "dz")
        with pytest.raises(GuestFileError, match="'I' cannot be changed"):
            g.set_e2attrs(meta("ext4", "dir"), "I")
        with pytest.raises(GuestFileError, match="no ext2-style file attributes"):
            g.get_e2attrs(meta("ntfs", "file"))
        with pytest.raises(GuestFileError, match="no ext2-style file attributes"):
            g.set_e2attrs(meta("ntfs", "file"), "d")
        assert g.get_e2attrs(meta("ext4", "file")) == "e"


# ---------------------------------------------------------------- hostile links


def test_links_to_host_paths_touch_only_guest_attributes(
    hostile_guest: Guest, tmp_path: Path
) -> None:
    hostile = plant_hostile(hostile_guest, tmp_path)
    watched = (hostile.canary, hostile.canary_dir, hostile.lone)
    before = {path: make_canary(path) for path in watched}

    with opened_hostile(hostile.guest) as g:
        for number, link in enumerate(hostile.links):
            g.setxattr(f"user.guest{number}", b"guest", 5, link)
            assert "user.canary" not in as_dict(g.getxattrs(link))
            with pytest.raises(GuestFileError, match=r"user\.canary"):
                g.removexattr("user.canary", link)
        g.set_e2attrs(hostile.links[2], "d")
        g.setxattr("user.folder", b"guest", 5, "/etc/canary-dir-link")
        g.lsetxattr("trusted.link", b"guest", 5, "/etc/canary-link")
        with pytest.raises(GuestFileError):
            g.set_e2attrs("/etc/canary-link", "d")
        with pytest.raises(GuestFileNotFoundError):
            g.setxattr("user.x", b"x", 1, "/etc/lone-link")
        with pytest.raises(SymlinkLoopError):
            g.setxattr("user.x", b"x", 1, "/loop1")

    assert {path: host_state(path) for path in watched} == before
    with hostile_root(hostile) as root:
        own = root / str(hostile.canary).lstrip("/")
        assert {f"user.guest{n}" for n in range(len(hostile.links))} == set(os.listxattr(own))
        assert os.getxattr(root / str(hostile.canary_dir).lstrip("/"), "user.folder") == b"guest"
        link = root / "etc/canary-link"
        assert os.getxattr(link, "trusted.link", follow_symlinks=False) == b"guest"
        lsattr = guests.run(["lsattr", str(own)]).stdout.decode().split()[0]
    assert "d" in lsattr
