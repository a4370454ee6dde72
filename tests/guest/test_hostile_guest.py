"""A guest whose symlinks point out of it is read and written only inside itself.

The ``hostile_guest`` fixture's root holds ``/etc/passwd-link -> /etc/shadow``,
``/up -> ../../../..``, ``/data/escape -> ../../../../etc``, ``/abs -> /``,
``/rel/inner -> ../abs``, loops, and ``/boot -> /tmp``, on which its fstab mounts sda2.
Every call goes through the handle, once on a read-only handle and once on a writable
copy. A "prepared" copy adds what the fixture lacks: a guest /etc/shadow and /tmp, and
links to absolute paths of host canary files (one with a guest file at the same path).
Whatever VMCraft wrote is checked afterwards through a kernel mount of the image.

Host tools: cp, losetup, partx, mount, umount.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import guests
import pytest
from guest_edits import inside, mount_snapshot, new_mounts, partition_mounted
from guests import Guest, sha256

from vmcraft import VMCraft
from vmcraft.errors import (
    GuestFileError,
    GuestFileNotFoundError,
    GuestPathError,
    MountError,
    ReadOnlyError,
)

pytestmark = pytest.mark.requires_root

CopyGuest = Callable[[Guest], Guest]
OpenHandle = Callable[[Guest], VMCraft]

GUEST_SHADOW = b"root:guest-only-hash:19000:0:99999:7:::\n"
HOST_CANARY = b"host canary: a guest must never read this\n"
GUEST_CANARY = b"the guest's own file at the canary's path\n"
BOOT_FILE = "/vmlinuz-hostile"


@dataclasses.dataclass(frozen=True)
class Prepared:
    """The hostile guest plus a shadow file, /tmp, and links to host canaries."""

    guest: Guest
    canary: Path  # a host file; the guest has a file of its own at the same path
    lone_canary: Path  # a host file; the guest has nothing at that path


@pytest.fixture(scope="module")
def prepared(hostile_guest: Guest, tmp_path_factory: pytest.TempPathFactory) -> Prepared:
    canaries = tmp_path_factory.mktemp("host-canaries")
    canary, lone_canary = canaries / "secret", canaries / "lone-secret"
    canary.write_bytes(HOST_CANARY)
    lone_canary.write_bytes(HOST_CANARY)

    image = tmp_path_factory.mktemp("hostile-prepared") / "hostile-prepared.raw"
    guests.run(["cp", "--sparse=always", str(hostile_guest.path), str(image)])
    guest = dataclasses.replace(hostile_guest, path=image)
    with partition_mounted(guest, "/dev/sda1") as root:
        inside(root, "/tmp").mkdir(mode=0o1777)
        inside(root, "/etc/shadow").write_bytes(GUEST_SHADOW)
        own = inside(root, str(canary))
        own.parent.mkdir(parents=True)
        own.write_bytes(GUEST_CANARY)
        os.symlink(canary, inside(root, "/etc/canary-link"))
        os.symlink(lone_canary, inside(root, "/etc/lone-canary-link"))
    return Prepared(guest, canary, lone_canary)


@pytest.fixture(params=[True, False], ids=["read-only", "writable-copy"])
def readonly(request: pytest.FixtureRequest) -> bool:
    value: bool = request.param
    return value


@pytest.fixture
def open_handle(readonly: bool, writable_copy: CopyGuest) -> Iterator[OpenHandle]:
    """A factory: a launched handle on a guest (or on a copy), sda1 mounted on /."""
    with contextlib.ExitStack() as stack:

        def open_(guest: Guest) -> VMCraft:
            image = guest.path if readonly else writable_copy(guest).path
            g = stack.enter_context(VMCraft())
            g.add_drive_opts(str(image), format="raw", readonly=readonly)
            g.launch()
            g.mount("/dev/sda1", "/")
            return g

        yield open_


@contextlib.contextmanager
def writable_handle(image: Path) -> Iterator[VMCraft]:
    with VMCraft() as g:
        g.add_drive_opts(str(image), format="raw", readonly=False)
        g.launch()
        g.mount("/dev/sda1", "/")
        yield g


# ---------------------------------------------------------------- reading


def test_passwd_link_does_not_reach_the_hosts_shadow(
    hostile_guest: Guest, open_handle: OpenHandle
) -> None:
    assert Path("/etc/shadow").exists()  # so that an escape would find something
    g = open_handle(hostile_guest)

    with pytest.raises(GuestFileNotFoundError, match="/etc/passwd-link") as caught:
        g.cat("/etc/passwd-link")
    assert isinstance(caught.value, FileNotFoundError)
    # libguestfs 1.48's exists lstats: the dangling link is there, nothing behind it.
    assert g.exists("/etc/passwd-link") and g.is_symlink("/etc/passwd-link")
    assert not g.is_file("/etc/passwd-link", followsymlinks=True)


def test_passwd_link_reads_the_guests_shadow(prepared: Prepared, open_handle: OpenHandle) -> None:
    g = open_handle(prepared.guest)

    content = g.read_file("/etc/passwd-link")
    assert content == GUEST_SHADOW
    assert content != Path("/etc/shadow").read_bytes()
    assert g.cat("/etc/passwd-link") == GUEST_SHADOW.decode()


def test_link_to_a_host_path_reads_the_guests_file(
    prepared: Prepared, open_handle: OpenHandle
) -> None:
    g = open_handle(prepared.guest)

    assert g.read_file("/etc/canary-link") == GUEST_CANARY
    assert g.read_file(str(prepared.canary)) == GUEST_CANARY
    with pytest.raises(GuestFileNotFoundError):
        g.read_file("/etc/lone-canary-link")
    assert not g.is_file("/etc/lone-canary-link", followsymlinks=True)
    assert prepared.lone_canary.read_bytes() == HOST_CANARY  # it is there to be found


def test_links_above_the_root_list_the_guest_root(
    hostile_guest: Guest, open_handle: OpenHandle
) -> None:
    g = open_handle(hostile_guest)
    guest_root = g.ls("/")

    expected = {
        path.strip("/").split("/")[0] for path in hostile_guest.filesystems["/dev/sda1"].symlinks
    }
    assert expected <= set(guest_root)
    assert set(guest_root) != set(os.listdir("/"))
    for alias in ("/up", "/abs", "/rel/inner", "/up/up/..", "/data/escape/../up"):
        assert g.ls(alias) == guest_root, alias
        assert g.is_dir(alias, followsymlinks=True), alias


def test_relative_link_climbing_out_reads_the_guests_etc(
    hostile_guest: Guest, open_handle: OpenHandle
) -> None:
    g = open_handle(hostile_guest)
    files = hostile_guest.filesystems["/dev/sda1"].files

    assert g.cat("/data/escape/hostname") == files["/etc/hostname"].decode()
    assert g.read_file("/data/escape/hosts") == files["/etc/hosts"]
    assert g.read_file("/rel/inner/etc/fstab") == files["/etc/fstab"]
    assert g.ls("/data/escape") == g.ls("/etc")
    assert "hostname" in g.ls("/data/escape")


@pytest.mark.parametrize("path", ["/loop1", "/loop2", "/selfloop", "/loop1/x", "/up/selfloop"])
def test_link_loops_raise_a_path_error(
    hostile_guest: Guest, open_handle: OpenHandle, path: str
) -> None:
    g = open_handle(hostile_guest)

    for call in (g.cat, g.read_file, g.ls):
        with pytest.raises(GuestPathError, match="too many levels of symbolic links") as caught:
            call(path)
        assert isinstance(caught.value, ValueError)


# ---------------------------------------------------------------- /boot -> /tmp


def test_mount_on_boot_link_without_guest_tmp_fails_inside_the_guest(
    hostile_guest: Guest, open_handle: OpenHandle
) -> None:
    g = open_handle(hostile_guest)
    before = mount_snapshot()

    with pytest.raises(MountError, match="/boot"):
        g.mount_ro("/dev/sda2", "/boot")
    assert new_mounts(before) == []
    assert g.mountpoints() == {"/dev/sda1": "/"}


def test_mount_on_boot_link_lands_on_the_guests_tmp(
    prepared: Prepared, open_handle: OpenHandle
) -> None:
    host_tmp_mounts = [e.mount_id for e in guests.read_mountinfo() if e.mountpoint == "/tmp"]
    before = mount_snapshot()
    g = open_handle(prepared.guest)
    [root] = new_mounts(before)

    g.mount_ro("/dev/sda2", "/boot")

    [boot] = new_mounts(before | {(root.mount_id, root.mountpoint)})
    assert boot.mountpoint == f"{root.mountpoint}/tmp"
    assert boot.mountpoint.startswith(f"{root.mountpoint}/")
    assert [e.mount_id for e in guests.read_mountinfo() if e.mountpoint == "/tmp"] == (
        host_tmp_mounts
    )
    assert not Path("/tmp", BOOT_FILE.lstrip("/")).exists()
    content = prepared.guest.filesystems["/dev/sda2"].files[BOOT_FILE]
    assert g.read_file(f"/boot{BOOT_FILE}") == content
    assert g.read_file(f"/tmp{BOOT_FILE}") == content
    assert g.mountpoints() == {"/dev/sda1": "/", "/dev/sda2": "/boot"}

    g.umount("/boot")
    assert new_mounts(before) == [root]


def test_writes_below_a_read_only_mount_are_refused(
    prepared: Prepared, writable_copy: CopyGuest
) -> None:
    copy = writable_copy(prepared.guest)
    with writable_handle(copy.path) as g:
        g.mount_ro("/dev/sda2", "/boot")

        with pytest.raises(ReadOnlyError, match="/boot/new"):
            g.write("/boot/new", b"x")
        with pytest.raises(ReadOnlyError):
            g.mkdir_p("/tmp/newdir")
        g.write("/etc/beside-boot", b"root is writable\n")

    with partition_mounted(copy, "/dev/sda2", read_only=True) as boot:
        assert sorted(p.name for p in boot.iterdir()) == ["lost+found", BOOT_FILE.lstrip("/")]
    with partition_mounted(copy, "/dev/sda1", read_only=True) as root:
        assert inside(root, "/etc/beside-boot").read_bytes() == b"root is writable\n"


# ---------------------------------------------------------------- writing


def test_writes_through_escaping_links_stay_in_the_guest(
    hostile_guest: Guest, writable_copy: CopyGuest
) -> None:
    copy = writable_copy(hostile_guest)
    assert not Path("/etc/pwned").exists()
    assert not Path("/x").exists()

    with writable_handle(copy.path) as g:
        g.write("/data/escape/pwned", b"written through /data/escape\n")
        g.mkdir_p("/up/x/y")
        g.write("/abs/up/rel/inner/root-file", "through /abs and /rel/inner\n")
        assert g.read_file("/etc/pwned") == b"written through /data/escape\n"
        assert g.is_dir("/x/y")
        assert not Path("/etc/pwned").exists()
        assert not Path("/x").exists()
        assert not Path("/root-file").exists()

    assert not Path("/etc/pwned").exists()
    assert not Path("/x").exists()
    with partition_mounted(copy, "/dev/sda1", read_only=True) as root:
        assert inside(root, "/etc/pwned").read_bytes() == b"written through /data/escape\n"
        assert inside(root, "/x/y").is_dir()
        assert inside(root, "/root-file").read_bytes() == b"through /abs and /rel/inner\n"
        assert inside(root, "/data/escape").is_symlink()


def test_write_through_a_link_to_a_host_path_changes_only_the_guest(
    prepared: Prepared, writable_copy: CopyGuest
) -> None:
    copy = writable_copy(prepared.guest)

    with writable_handle(copy.path) as g:
        g.write("/etc/canary-link", b"changed by the test\n")
        g.write("/etc/lone-canary-link", b"created by the test\n")

    assert prepared.canary.read_bytes() == HOST_CANARY
    assert prepared.lone_canary.read_bytes() == HOST_CANARY
    with partition_mounted(copy, "/dev/sda1", read_only=True) as root:
        assert inside(root, str(prepared.canary)).read_bytes() == b"changed by the test\n"
        assert inside(root, str(prepared.lone_canary)).read_bytes() == b"created by the test\n"
        assert inside(root, "/etc/canary-link").is_symlink()


def test_mkdir_p_on_boot_link_creates_the_guests_tmp(
    hostile_guest: Guest, writable_copy: CopyGuest
) -> None:
    copy = writable_copy(hostile_guest)
    host_tmp = set(os.listdir("/tmp"))

    with writable_handle(copy.path) as g:
        g.mkdir_p("/boot/grub")
        assert g.is_dir("/tmp/grub")
        g.mount_ro("/dev/sda2", "/tmp/grub")
        assert g.read_file(f"/boot/grub{BOOT_FILE}") == b"not a kernel either\n"

    assert not {"grub"} & (set(os.listdir("/tmp")) - host_tmp)
    with partition_mounted(copy, "/dev/sda1", read_only=True) as root:
        assert inside(root, "/tmp/grub").is_dir()
        assert inside(root, "/boot").is_symlink()


def test_read_only_handle_refuses_writes_and_changes_no_byte(hostile_guest: Guest) -> None:
    digest = sha256(hostile_guest.path)

    with VMCraft() as g:
        g.add_drive_opts(str(hostile_guest.path), format="raw", readonly=True)
        g.launch()
        g.mount("/dev/sda1", "/")
        attempts: list[Callable[[], None]] = [
            lambda: g.write("/etc/hostname", b"changed\n"),
            lambda: g.write("/data/escape/pwned", b"x"),
            lambda: g.write("/new-file", "x"),
            lambda: g.mkdir_p("/up/x/y"),
            lambda: g.mkdir_p("/etc"),
        ]
        for attempt in attempts:
            with pytest.raises(ReadOnlyError) as caught:
                attempt()
            assert isinstance(caught.value, PermissionError)
            assert isinstance(caught.value, GuestFileError)
        assert g.cat("/etc/hostname") == "hostile\n"
        assert not g.exists("/new-file")

    assert sha256(hostile_guest.path) == digest


def test_read_only_mount_of_a_writable_drive_refuses_writes(
    hostile_guest: Guest, writable_copy: CopyGuest
) -> None:
    copy = writable_copy(hostile_guest)
    digest = sha256(copy.path)

    with VMCraft() as g:
        g.add_drive_opts(str(copy.path), format="raw", readonly=False)
        g.launch()
        g.mount_ro("/dev/sda1", "/")
        with pytest.raises(ReadOnlyError, match="read-only"):
            g.write("/etc/hostname", b"changed\n")
        with pytest.raises(ReadOnlyError):
            g.mkdir_p("/new")

    assert sha256(copy.path) == digest
