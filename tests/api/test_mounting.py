"""The handle's mount calls on real guest images, with the kernel's and FUSE drivers.

Expected contents come from the guests' manifests (tests/guests.py). What the kernel did is
read from /proc/self/mountinfo; what was written is read back after the handle closed, with
debugfs or ntfscat on a loop device of the test's own, or through a new read-only handle.
"""

from __future__ import annotations

import contextlib
import logging
import posixpath
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import guests
import pytest
from guests import Guest, MiB, MountEntry, opened, sha256

import vmcraft.guest.writing
from vmcraft import VMCraft
from vmcraft.errors import (
    DeviceNotFoundError,
    DriverMissingError,
    GuestPathError,
    MountError,
    ReadOnlyError,
)

pytestmark = pytest.mark.requires_root

CopyFactory = Callable[[Guest], Guest]
MBR_MOUNT_TYPES = {
    "/": "xfs",
    "/boot": "ext4",
    "/boot/efi": "fuse.fusefat",
    "/home": "btrfs",
    "/srv/win": "fuseblk",
}


# ---------------------------------------------------------------- helpers


class MountWatch:
    """The host mounts that appeared under this session's temp root since it was made."""

    def __init__(self) -> None:
        self.session_root = tempfile.gettempdir() + "/"
        self.before = set(guests.read_mountinfo())  # ids alone are reused by other sessions

    def new(self) -> list[MountEntry]:
        return [
            entry
            for entry in guests.read_mountinfo()
            if entry not in self.before and entry.mountpoint.startswith(self.session_root)
        ]

    def by_guest_path(self) -> dict[str, MountEntry]:
        """New mounts keyed by guest mountpoint, the shortest host path being the guest's /."""
        entries = self.new()
        if not entries:
            return {}
        root = min((e.mountpoint for e in entries), key=len)
        return {"/" + posixpath.relpath(e.mountpoint, root).removeprefix("."): e for e in entries}


def by_depth(mountpoints: dict[str, str]) -> list[tuple[str, str]]:
    return sorted(mountpoints.items(), key=lambda item: (item[0].count("/"), item[0] != "/"))


def mount_all(g: VMCraft, guest: Guest, read_only: bool = True) -> None:
    """Mount the manifest's mountpoints, parents first, the plain way."""
    for mountpoint, device in by_depth(guest.mountpoints):
        (g.mount_ro if read_only else g.mount)(device, mountpoint)


def check_files(g: VMCraft, guest: Guest, mountpoint: str) -> None:
    spec = guest.filesystems[guest.mountpoints[mountpoint]]
    assert spec.files
    for path, content in spec.files.items():
        guest_path = posixpath.join(mountpoint, path.lstrip("/"))
        assert g.read_file(guest_path) == content, guest_path


def partition_bytes(guest: Guest, device: str) -> bytes:
    start, size = guest.partitions[device]
    with guest.path.open("rb") as f:
        f.seek(start)
        return f.read(size)


def options_of(entry: MountEntry) -> set[str]:
    return set(entry.options.split(","))


@contextlib.contextmanager
def partition_loop(guest: Guest, device: str) -> Iterator[str]:
    """A read-only loop device of the test's own over one partition of the image."""
    start, size = guest.partitions[device]
    with guests.loop_device(guest.path, read_only=True, offset=start, size=size) as loop:
        yield loop


def debugfs(device: str, request: str) -> str:
    return guests.run(["debugfs", "-R", request, device]).stdout.decode()


def blank_partition_guest(path: Path) -> Guest:
    """A small MBR disk: sda1 ext4 LABEL=first (/), sda2 with nothing on it."""
    guests.run(["truncate", "--size", str(20 * MiB), str(path)])
    guests.run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(path)],
        input=b"label: dos\nstart=2048, size=16384, type=83\nstart=18432, size=16384, type=83\n",
    )
    guests.run(["mkfs.ext4", "-F", "-q", "-L", "first", "-E", f"offset={MiB}", str(path), "8M"])
    spec = guests.FsSpec("/dev/sda1", "ext4", "first", None)
    return Guest(
        path=path,
        format="raw",
        table="msdos",
        partitions={"/dev/sda1": (MiB, 8 * MiB), "/dev/sda2": (9 * MiB, 8 * MiB)},
        filesystems={"/dev/sda1": spec},
        volume_groups={},
        mountpoints={"/": "/dev/sda1"},
        size=20 * MiB,
    )


# ---------------------------------------------------------------- reading every type


def test_mount_ro_every_filesystem_type(mbr_guest_any_format: Guest) -> None:
    guest = mbr_guest_any_format
    with opened(guest) as g:
        watch = MountWatch()
        mount_all(g, guest)

        for mountpoint in guest.mountpoints:
            check_files(g, guest, mountpoint)
        assert g.mountpoints() == {device: mp for mp, device in guest.mountpoints.items()}
        assert g.mounts() == [device for _, device in by_depth(guest.mountpoints)]
        assert g.mount_levels() == dict.fromkeys(guest.mountpoints, "normal")

        mounted = watch.by_guest_path()
        assert {mp: e.fstype for mp, e in mounted.items()} == MBR_MOUNT_TYPES
        for mountpoint, entry in mounted.items():
            assert {"ro", "nosuid", "nodev"} <= options_of(entry), mountpoint

        g.umount_all()
        assert g.mountpoints() == {} and g.mounts() == []
        assert watch.new() == []


def test_mount_ro_lvm_and_exfat(gpt_lvm_guest_any_format: Guest) -> None:
    guest = gpt_lvm_guest_any_format
    with opened(guest) as g:
        watch = MountWatch()
        mount_all(g, guest)
        for mountpoint in guest.mountpoints:
            check_files(g, guest, mountpoint)

        mounted = watch.by_guest_path()
        assert set(mounted) == set(guest.mountpoints)
        assert mounted["/srv/data"].fstype == "fuseblk"  # exfat-fuse
        assert mounted["/"].fstype == "ext4" and mounted["/home"].fstype == "xfs"
        for mountpoint, entry in mounted.items():
            assert {"ro", "nosuid", "nodev"} <= options_of(entry), mountpoint


def test_explicit_type_and_options(mbr_guest: Guest) -> None:
    with opened(mbr_guest) as g:
        watch = MountWatch()
        g.mount_vfs("noatime", "xfs", "/dev/sda2", "/")
        g.mount_options("noexec", "/dev/sda1", "/boot")
        mounted = watch.by_guest_path()
        assert {"ro", "noatime", "nosuid", "nodev"} <= options_of(mounted["/"])
        assert {"ro", "noexec", "nosuid", "nodev"} <= options_of(mounted["/boot"])

        with pytest.raises(MountError) as failure:
            g.mount_vfs("", "ext4", "/dev/sda5", "/home")  # btrfs, not ext4
        message = str(failure.value)
        assert "/dev/sda5 (ext4) on /home" in message
        assert "dmesg" not in message
        assert "/dev/sda5" not in g.mountpoints()


# ---------------------------------------------------------------- refusals


def test_root_first(mbr_guest: Guest) -> None:
    with opened(mbr_guest) as g:
        watch = MountWatch()
        with pytest.raises(MountError, match="nothing is mounted on /"):
            g.mount_ro("/dev/sda1", "/boot")
        assert g.mountpoints() == {} and watch.new() == []

        g.mount_ro("/dev/sda2", "/")
        g.mount_ro("/dev/sda1", "/boot")
        assert g.cat("/boot/vmlinuz") == "not a kernel\n"


def test_mountpoint_must_exist_in_the_guest(mbr_guest: Guest) -> None:
    with opened(mbr_guest) as g:
        g.mount_ro("/dev/sda2", "/")
        watch = MountWatch()
        with pytest.raises(MountError, match="/no/such/folder: no such folder"):
            g.mount_ro("/dev/sda1", "/no/such/folder")
        with pytest.raises(MountError, match="/etc/hostname"):
            g.mount_ro("/dev/sda1", "/etc/hostname")  # a file, not a folder
        with pytest.raises(GuestPathError):
            g.mount_ro("/dev/sda1", "boot")
        with pytest.raises(MountError, match="already mounted"):
            g.mount_ro("/dev/sda5", "/")
        assert watch.new() == []
        assert g.mountpoints() == {"/dev/sda2": "/"}


def test_unmountable_devices(mbr_guest: Guest, gpt_lvm_guest: Guest) -> None:
    with opened(mbr_guest, gpt_lvm_guest) as g:
        watch = MountWatch()
        refusals = {
            "/dev/sda6": "/dev/sda6: it is swap space",
            "/dev/sda4": "/dev/sda4: it is an extended partition",
            "/dev/sdb2": "/dev/sdb2: it is an LVM physical volume",
            "/dev/sda": "/dev/sda: no filesystem found",
        }
        for device, reason in refusals.items():
            with pytest.raises(MountError, match=reason):
                g.mount_ro(device, "/")
            with pytest.raises(MountError, match=reason):
                g.mount(device, "/")
        with pytest.raises(DeviceNotFoundError, match="/dev/sdz9"):
            g.mount_ro("/dev/sdz9", "/")
        assert g.mountpoints() == {} and watch.new() == []


# ---------------------------------------------------------------- unmounting


def test_umount_by_path_by_device_and_by_alias(mbr_guest: Guest) -> None:
    with opened(mbr_guest) as g:
        watch = MountWatch()
        mount_all(g, mbr_guest)
        mounted = watch.by_guest_path()

        with pytest.raises(MountError, match="/boot/efi mounted below it"):
            g.umount("/boot")
        with pytest.raises(MountError, match="mounted below it"):
            g.umount("/dev/sda2")
        assert len(watch.new()) == len(mbr_guest.mountpoints)  # nothing was unmounted

        g.umount("/dev/sda3")  # by device
        g.umount("/boot/")  # by path, not normalised
        g.umount(mounted["/home"].source)  # by host alias, /dev/loopNp5
        assert g.mountpoints() == {"/dev/sda2": "/", "/dev/sda7": "/srv/win"}
        assert set(watch.by_guest_path()) == {"/", "/srv/win"}

        with pytest.raises(MountError, match="not mounted"):
            g.umount("/boot")
        with pytest.raises(MountError, match="not mounted"):
            g.umount("/dev/sda1")

        g.umount_all()
        assert g.mountpoints() == {} and watch.new() == []


def test_shutdown_unmounts_everything(mbr_guest: Guest) -> None:
    watch = MountWatch()
    with opened(mbr_guest) as g:
        mount_all(g, mbr_guest)
        assert len(watch.new()) == len(mbr_guest.mountpoints)
    assert watch.new() == []


# ---------------------------------------------------------------- read-only and writable


def test_readonly_drive_stays_readonly(mbr_guest: Guest, monkeypatch: pytest.MonkeyPatch) -> None:
    before = sha256(mbr_guest.path)
    with opened(mbr_guest) as g:
        watch = MountWatch()
        g.mount("/dev/sda2", "/")  # mount(), not mount_ro()
        g.mount("/dev/sda1", "/boot")
        g.mount("/dev/sda7", "/srv/win")
        for mountpoint, entry in watch.by_guest_path().items():
            assert "ro" in options_of(entry), mountpoint

        def touched(*args: object) -> None:
            raise AssertionError("the write went ahead on a read-only handle")

        monkeypatch.setattr(vmcraft.guest.writing, "replace_file", touched)
        for path in ("/etc/hostname", "/etc/new-file", "/boot/new", "/srv/win/new.txt"):
            with pytest.raises(ReadOnlyError, match="read-only"):
                g.write(path, "changed\n")
            with pytest.raises(PermissionError):
                g.write(path, b"changed\n")
        with pytest.raises(ReadOnlyError):
            g.mkdir_p("/var/new/folder")
        assert g.read_file("/etc/hostname") == b"mbr-guest\n"
        assert not g.exists("/etc/new-file") and not g.exists("/var/new")
    assert sha256(mbr_guest.path) == before


def test_writes_persist_on_a_writable_copy(mbr_guest: Guest, writable_copy: CopyFactory) -> None:
    copy = writable_copy(mbr_guest)
    with opened(copy, readonly=False) as g:
        watch = MountWatch()
        g.mount("/dev/sda2", "/")
        g.mount("/dev/sda1", "/boot")
        g.mount("/dev/sda5", "/home")
        for mountpoint, entry in watch.by_guest_path().items():
            assert "rw" in options_of(entry), mountpoint
            assert {"nosuid", "nodev"} <= options_of(entry), mountpoint

        g.write("/etc/hostname", "renamed\n")
        g.mkdir_p("/var/lib/vmcraft/state")
        g.write("/var/lib/vmcraft/state/note", b"\x00binary\xff")
        g.write("/boot/grub/custom.cfg", "set timeout=3\n")
        g.mkdir_p("/boot/extra/deeper")
        g.write("/home/alice/todo.txt", "write tests\n")

        # A read-only mount on a writable drive refuses writes all the same.
        g.umount("/home")
        g.mount_ro("/dev/sda5", "/home")
        with pytest.raises(ReadOnlyError):
            g.write("/home/alice/late.txt", "too late\n")

    # ext4 /boot through debugfs, with no VMCraft involved.
    with partition_loop(copy, "/dev/sda1") as boot:
        assert debugfs(boot, "cat /grub/custom.cfg") == "set timeout=3\n"
        assert "Type: directory" in debugfs(boot, "stat /extra/deeper")
        assert debugfs(boot, "cat /vmlinuz") == "not a kernel\n"

    with opened(copy) as g:
        mount_all(g, copy)
        assert g.cat("/etc/hostname") == "renamed\n"
        assert g.read_file("/var/lib/vmcraft/state/note") == b"\x00binary\xff"
        assert g.is_dir("/boot/extra/deeper")
        assert g.cat("/home/alice/todo.txt") == "write tests\n"
        assert not g.exists("/home/alice/late.txt")
        assert (
            g.read_file("/etc/os-release")
            == mbr_guest.filesystems["/dev/sda2"].files["/etc/os-release"]
        )


@pytest.mark.skipif(
    "vfat" in Path("/proc/filesystems").read_text().split(),
    reason="the kernel has vfat: FAT mounts read-write there",
)
def test_vfat_read_write_needs_the_kernel_driver(
    mbr_guest: Guest, writable_copy: CopyFactory
) -> None:
    copy = writable_copy(mbr_guest)
    before = partition_bytes(copy, "/dev/sda3")
    with opened(copy, readonly=False) as g:
        g.mount_ro("/dev/sda2", "/")
        g.mount_ro("/dev/sda1", "/boot")
        watch = MountWatch()
        with pytest.raises(DriverMissingError) as failure:
            g.mount("/dev/sda3", "/boot/efi")
        assert isinstance(failure.value, MountError)
        assert "/dev/sda3 (vfat) on /boot/efi" in str(failure.value)
        assert "kernel's vfat driver" in str(failure.value)
        assert watch.new() == [] and "/dev/sda3" not in g.mountpoints()

        g.mount_ro("/dev/sda3", "/boot/efi")
        check_files(g, copy, "/boot/efi")
    # NB: only the FAT is compared: Linux 6.18 writes to xfs's log even on a ro mount of a
    # writable device. fusefat must not write its FAT back.
    assert partition_bytes(copy, "/dev/sda3") == before


def test_ntfs_read_write(mbr_guest: Guest, writable_copy: CopyFactory) -> None:
    copy = writable_copy(mbr_guest)
    with opened(copy, readonly=False) as g:
        g.mount("/dev/sda2", "/")
        watch = MountWatch()
        g.mount("/dev/sda7", "/srv/win")
        (entry,) = watch.new()
        assert entry.fstype == "fuseblk"
        assert {"rw", "nosuid", "nodev"} <= options_of(entry)
        assert g.mount_levels()["/srv/win"] == "normal"

        g.mkdir_p("/srv/win/Users/Public/Documents")
        g.write("/srv/win/Users/Public/Documents/from-vmcraft.txt", "written through ntfs-3g\n")
        check_files(g, copy, "/srv/win")

    with partition_loop(copy, "/dev/sda7") as ntfs:
        path = "/Users/Public/Documents/from-vmcraft.txt"
        written = guests.run(["ntfscat", ntfs, path]).stdout
        assert written == b"written through ntfs-3g\n"


def test_two_xfs_clones_side_by_side(mbr_guest: Guest, writable_copy: CopyFactory) -> None:
    clone = writable_copy(mbr_guest)  # same xfs UUID as the original
    with opened(mbr_guest, clone) as g:
        assert g.vfs_uuid("/dev/sda2") == g.vfs_uuid("/dev/sdb2")
        g.mount_ro("/dev/sda2", "/")
        g.mount_ro("/dev/sdb2", "/tmp")
        assert g.cat("/tmp/etc/hostname") == g.cat("/etc/hostname") == "mbr-guest\n"

    with opened(mbr_guest) as first, opened(clone) as second:
        first.mount_ro("/dev/sda2", "/")
        second.mount_ro("/dev/sda2", "/")
        assert first.cat("/etc/hostname") == second.cat("/etc/hostname") == "mbr-guest\n"


# ---------------------------------------------------------------- the fallback ladder


def ladder_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "vmcraft.filesystems.fallback"]


def test_fallback_on_dirty_ext4(dirty_ext4_guest: Guest, caplog: pytest.LogCaptureFixture) -> None:
    guest = dirty_ext4_guest
    spec = guest.filesystems["/dev/sda"]
    before = sha256(guest.path)
    with opened(guest) as g:
        with pytest.raises(MountError) as failure:
            g.mount_ro("/dev/sda", "/")  # the journal cannot be replayed read-only
        assert "dmesg" not in str(failure.value)

        caplog.clear()
        with caplog.at_level(logging.INFO, logger="vmcraft"):
            assert g.mount_with_fallback("/dev/sda", "/") is True
        # NB: Linux 6.x takes ext4's norecovery (an alias of noload): the second rung holds.
        assert g.mount_levels() == {"/": "ro-norecovery"}
        messages = ladder_messages(caplog)
        assert any("trying normal" in m for m in messages)
        assert any("with normal failed" in m for m in messages)
        assert any("trying ro-norecovery" in m for m in messages)

        for path, content in spec.files.items():
            assert g.read_file(path) == content
        for path in spec.journal_files:
            assert not g.exists(path)
    assert sha256(guest.path) == before


def test_fallback_replays_a_writable_ext4(
    dirty_ext4_guest: Guest, writable_copy: CopyFactory
) -> None:
    copy = writable_copy(dirty_ext4_guest)
    spec = copy.filesystems["/dev/sda"]
    with opened(copy, readonly=False) as g:
        assert g.mount_with_fallback("/dev/sda", "/") is True
        assert g.mount_levels() == {"/": "normal"}
        for path, content in {**spec.files, **spec.journal_files}.items():
            assert g.read_file(path) == content


def test_fallback_on_dirty_xfs(dirty_xfs_guest: Guest, caplog: pytest.LogCaptureFixture) -> None:
    guest = dirty_xfs_guest
    spec = guest.filesystems["/dev/sda1"]
    before = sha256(guest.path)
    with opened(guest) as g, caplog.at_level(logging.INFO, logger="vmcraft"):
        assert g.mount_with_fallback("/dev/sda1", "/") is True
        assert g.mount_levels() == {"/": "ro-norecovery"}
        assert any("with normal failed" in m for m in ladder_messages(caplog))
        for path, content in spec.files.items():
            assert g.read_file(path) == content
        for path in spec.journal_files:
            assert not g.exists(path)
    assert sha256(guest.path) == before


def test_fallback_on_hibernated_ntfs(
    dirty_ntfs_guest: Guest, writable_copy: CopyFactory, caplog: pytest.LogCaptureFixture
) -> None:
    copy = writable_copy(dirty_ntfs_guest)
    spec = copy.filesystems["/dev/sda1"]
    with opened(copy, readonly=False) as g:
        with pytest.raises(MountError, match="could only mount it read-only"):
            g.mount("/dev/sda1", "/")
        assert g.mountpoints() == {}

        watch = MountWatch()
        with caplog.at_level(logging.INFO, logger="vmcraft"):
            assert g.mount_with_fallback("/dev/sda1", "/") is True
        assert g.mount_levels() == {"/": "ntfs-ro"}
        messages = ladder_messages(caplog)
        assert any("with normal failed" in m for m in messages)
        assert any("trying ntfs-ro" in m for m in messages)
        (entry,) = watch.new()
        assert {"ro", "nosuid", "nodev"} <= options_of(entry)

        for path, content in spec.files.items():
            assert g.read_file(path) == content
        with pytest.raises(ReadOnlyError):
            g.write("/Windows/new.txt", "no\n")


def test_fallback_on_a_clean_filesystem(mbr_guest: Guest) -> None:
    with opened(mbr_guest) as g:
        assert g.mount_with_fallback("/dev/sda2", "/") is True
        assert g.mount_with_fallback("/dev/sda1", "/boot", fstype="ext4") is True
        assert g.mount_levels() == {"/": "normal", "/boot": "normal"}


def test_fallback_without_a_filesystem(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    guest = blank_partition_guest(tmp_path / "blank.raw")
    with opened(guest) as g:
        watch = MountWatch()
        with caplog.at_level(logging.WARNING, logger="vmcraft"):
            assert g.mount_with_fallback("/dev/sda2", "/") is False
            assert g.mount_with_fallback("/dev/sdz9", "/") is False
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert any("/dev/sda2" in m and "no filesystem" in m for m in warnings)
        assert any("/dev/sdz9" in m for m in warnings)
        assert g.mountpoints() == {} and g.mount_levels() == {} and watch.new() == []

        assert g.mount_with_fallback("/dev/sda1", "/") is True


# ---------------------------------------------------------------- several at once


CHILDREN_FIRST = {
    "/boot/efi": "/dev/sda3",
    "/srv/win": "/dev/sda7",
    "/home": "/dev/sda5",
    "/boot": "/dev/sda1",
    "/": "/dev/sda2",
}


def test_mount_all_parallel_mounts_parents_first(mbr_guest: Guest) -> None:
    assert {mp: CHILDREN_FIRST[mp] for mp in mbr_guest.mountpoints} == CHILDREN_FIRST
    with opened(mbr_guest) as g:
        watch = MountWatch()
        results = g.mount_all_parallel(CHILDREN_FIRST, max_workers=4)
        assert results == dict.fromkeys(CHILDREN_FIRST, True)

        order = g.mounts()
        assert order[0] == "/dev/sda2"
        assert order.index("/dev/sda1") < order.index("/dev/sda3")
        # Nothing hidden: every file of every filesystem is visible at its mountpoint.
        for mountpoint in mbr_guest.mountpoints:
            check_files(g, mbr_guest, mountpoint)
        for mountpoint, entry in watch.by_guest_path().items():
            assert {"ro", "nosuid", "nodev"} <= options_of(entry), mountpoint


def test_mount_all_parallel_reports_failures(mbr_guest: Guest) -> None:
    with opened(mbr_guest) as g:
        results = g.mount_all_parallel(
            {
                "/": "/dev/sda2",
                "/boot": "/dev/sda1",
                "/home": "/dev/sda6",  # swap
                "/srv/win": "/dev/sdz9",  # no such device
                "/boot/efi": "/dev/sda3",
            }
        )
        assert results == {
            "/": True,
            "/boot": True,
            "/home": False,
            "/srv/win": False,
            "/boot/efi": True,
        }
        assert g.mountpoints() == {"/dev/sda2": "/", "/dev/sda1": "/boot", "/dev/sda3": "/boot/efi"}
        assert g.cat("/boot/efi/EFI/BOOT/hello.txt") == "hello from the ESP\n"


def test_mount_all_parallel_skips_children_of_a_failure(
    mbr_guest: Guest, caplog: pytest.LogCaptureFixture
) -> None:
    with opened(mbr_guest) as g:
        watch = MountWatch()
        with caplog.at_level(logging.WARNING, logger="vmcraft"):
            results = g.mount_all_parallel(
                [("/dev/sda2", "/"), ("/dev/sda6", "/boot"), ("/dev/sda3", "/boot/efi")]
            )
        assert results == {"/": True, "/boot": False, "/boot/efi": False}
        assert g.mountpoints() == {"/dev/sda2": "/"}
        assert any("/boot failed" in r.getMessage() for r in caplog.records)

        g.umount_all()
        results = g.mount_all_parallel({"/": "/dev/sda4", "/boot": "/dev/sda1"})
        assert results == {"/": False, "/boot": False}
        assert g.mountpoints() == {} and watch.new() == []


def test_mount_all_parallel_read_write(mbr_guest: Guest, writable_copy: CopyFactory) -> None:
    copy = writable_copy(mbr_guest)
    with opened(copy, readonly=False) as g:
        watch = MountWatch()
        results = g.mount_all_parallel(CHILDREN_FIRST, readonly=False)
        # FAT cannot be mounted read-write without the kernel's vfat driver.
        vfat_rw = "vfat" in Path("/proc/filesystems").read_text().split()
        assert results == {**dict.fromkeys(CHILDREN_FIRST, True), "/boot/efi": vfat_rw}
        for mountpoint, entry in watch.by_guest_path().items():
            assert "rw" in options_of(entry), mountpoint
        g.write("/boot/parallel.txt", "rw\n")

    with partition_loop(copy, "/dev/sda1") as boot:
        assert debugfs(boot, "cat /parallel.txt") == "rw\n"


# ---------------------------------------------------------------- LVs that cannot be mapped


@pytest.fixture(scope="module")
def striped_guest(tmp_path_factory: pytest.TempPathFactory) -> Guest:
    """Two PVs in VG vgs: LV plain (ext4, linear on the first PV), LV striped (-i 2 over
    both) and LV spanned (two segments, one per PV). Without device-mapper only plain can be
    reached."""
    image = tmp_path_factory.mktemp("striped") / "striped.raw"
    guests.run(["truncate", "--size", str(42 * MiB), str(image)])
    guests.run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(image)],
        input=b"label: dos\nstart=2048, size=40960, type=8e\nstart=43008, size=40960, type=8e\n",
    )
    plain = guests.FsSpec("/dev/vgs/plain", "ext4", "plain", None, files={"/plain.txt": b"ok\n"})
    env = {"LVM_SUPPRESS_FD_WARNINGS": "1"}

    with guests.loop_device(image, partitions=True) as loop:
        pv1, pv2 = f"{loop}p1", f"{loop}p2"

        def lvm(*argv: str) -> None:
            scope = ["--config", guests.LVM_CONFIG, "--devices", pv1, "--devices", pv2]
            guests.run([argv[0], *scope, "-q", *argv[1:]], env=env)

        create = ("lvcreate", "-an", "-Zn", "-Wn")
        lvm("pvcreate", pv1, pv2)
        lvm("vgcreate", "vgs", pv1, pv2)
        lvm(*create, "-n", "plain", "-L", "4m", "vgs", pv1)
        offset, size = guests.logical_volume_extents(pv1, "vgs")["plain"]
        with guests.loop_device(pv1, offset=offset, size=size) as lv:
            seed = image.parent / "seed-plain"
            guests.populate(seed, plain)
            guests.run(["mkfs.ext4", "-F", "-q", "-L", "plain", "-d", str(seed), lv])
        lvm(*create, "-i", "2", "-I", "64k", "-n", "striped", "-L", "8m", "vgs")
        lvm(*create, "-n", "spanned", "-L", "4m", "vgs", pv1)
        lvm("lvextend", "-L", "+4m", "vgs/spanned", pv2)

    return Guest(
        path=image,
        format="raw",
        table="msdos",
        partitions={"/dev/sda1": (MiB, 20 * MiB), "/dev/sda2": (21 * MiB, 20 * MiB)},
        filesystems={plain.device: plain},
        volume_groups={"vgs": ["plain", "spanned", "striped"]},
        mountpoints={"/": plain.device},
        size=42 * MiB,
    )


@pytest.mark.requires_tool("lvcreate")
@pytest.mark.requires_tool("lvextend")
def test_unmappable_lvs_are_listed_but_not_mounted(striped_guest: Guest) -> None:
    with opened(striped_guest) as g:
        assert g.lvs() == ["/dev/vgs/plain", "/dev/vgs/spanned", "/dev/vgs/striped"]
        assert g.pvs() == ["/dev/sda1", "/dev/sda2"]
        assert g.vgs() == ["vgs"]
        assert set(g.list_filesystems()) == set(g.lvs())
        assert g.list_filesystems()["/dev/vgs/plain"] == "ext4"

        watch = MountWatch()
        with pytest.raises(MountError, match=r"striped over 2 PVs.*no device-mapper"):
            g.mount_ro("/dev/vgs/striped", "/")
        with pytest.raises(MountError, match=r"spanned has 2 segments.*no device-mapper"):
            g.mount("/dev/vgs/spanned", "/")
        assert g.mount_with_fallback("/dev/vgs/striped", "/") is False
        assert watch.new() == []

        g.mount_ro("/dev/vgs/plain", "/")
        assert g.cat("/plain.txt") == "ok\n"
