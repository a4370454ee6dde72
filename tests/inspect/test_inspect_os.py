"""inspect_os and the inspect_get_* calls on real disk images with planted systems.

The guests come from inspect_guests.py. What each call should answer is libguestfs's
answer for the same files (its phony Debian and Ubuntu guests, its documented rules),
taken from the recipes, never read back through the code under test. What inspection did
to the host is read from /proc/self/mountinfo, and what it did to the image from the
image's own bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import inspect_guests
import pytest
import windows_guests
from conftest import skip_unless_root, skip_unless_tools
from guests import Guest, sha256
from inspect_support import (
    identity,
    inspector_document,
    linux,
    opened,
    session_mounts,
    virt_inspector_document,
    without_uuids,
)

from vmcraft import VMCraft
from vmcraft.errors import InspectionError, MountError, ReadOnlyError, StateError

pytestmark = pytest.mark.requires_root

CopyFactory = Callable[[Guest], Guest]
BUILD_TOOLS = ("sfdisk", "mke2fs", "mkswap", "pvcreate", "vgcreate", "lvcreate", "lvs")


def _build(factory: pytest.TempPathFactory, builder: Callable[[Path], Guest], *tools: str) -> Guest:
    skip_unless_root()
    skip_unless_tools(*BUILD_TOOLS, *tools)
    return builder(factory.mktemp(builder.__name__.removeprefix("build_")))


@pytest.fixture(scope="session")
def phony_debian(tmp_path_factory: pytest.TempPathFactory) -> Guest:
    return _build(tmp_path_factory, inspect_guests.build_phony_debian)


@pytest.fixture(scope="session")
def gpt_tags(tmp_path_factory: pytest.TempPathFactory) -> Guest:
    return _build(tmp_path_factory, inspect_guests.build_gpt_tags, "mkfs.btrfs", "btrfs")


@pytest.fixture(scope="session")
def btrfs_subvolumes(tmp_path_factory: pytest.TempPathFactory) -> Guest:
    return _build(tmp_path_factory, inspect_guests.build_btrfs_subvolumes, "mkfs.btrfs", "btrfs")


@pytest.fixture(scope="session")
def dual_boot(tmp_path_factory: pytest.TempPathFactory) -> Guest:
    return _build(tmp_path_factory, inspect_guests.build_dual_boot)


@pytest.fixture(scope="session")
def no_os(tmp_path_factory: pytest.TempPathFactory) -> Guest:
    return _build(tmp_path_factory, inspect_guests.build_no_os)


@pytest.fixture(scope="session")
def windows_10(tmp_path_factory: pytest.TempPathFactory) -> Guest:
    skip_unless_root()
    skip_unless_tools(*windows_guests.REQUIRED_TOOLS)
    return windows_guests.build_windows_guest(tmp_path_factory.mktemp("windows-10"))


@pytest.fixture(scope="session")
def corrupt(tmp_path_factory: pytest.TempPathFactory) -> Guest:
    return _build(tmp_path_factory, inspect_guests.build_corrupt)


# ---------------------------------------------------------------- libguestfs's phony guests


def test_phony_debian_as_libguestfs_reports_it(phony_debian: Guest) -> None:
    with opened(phony_debian) as g:
        roots = g.inspect_os()

        assert roots == ["/dev/debian/root"]
        assert g.inspect_get_roots() == roots
        assert identity(g, "/dev/debian/root") == linux(
            distro="debian",
            product_name="5.0.1",
            version=(5, 0),
            hostname="debian.invalid",
            osinfo="debian5",
            package_format="deb",
            package_management="apt",
        )
        assert g.inspect_get_mountpoints("/dev/debian/root") == phony_debian.mountpoints
        assert g.inspect_get_filesystems("/dev/debian/root") == [
            "/dev/sda1",
            "/dev/debian/root",
            "/dev/debian/usr",  # fstab calls it /dev/mapper/debian-usr
            "/dev/debian/var",
            "/dev/debian/home",
        ]


def test_phony_ubuntu_from_lsb_release(dual_boot: Guest) -> None:
    with opened(dual_boot) as g:
        g.inspect_os()

        assert identity(g, "/dev/sda1") == linux(
            distro="ubuntu",
            product_name="Ubuntu 10.10 (Phony Pharaoh)",
            version=(10, 10),
            hostname="ubuntu.invalid",
            osinfo="ubuntu10.10",
            package_format="deb",
            package_management="apt",
        )
        assert g.inspect_get_mountpoints("/dev/sda1") == {"/": "/dev/sda1"}


def test_two_systems_on_one_disk_are_two_roots(dual_boot: Guest) -> None:
    with opened(dual_boot) as g:
        assert g.inspect_os() == ["/dev/sda1", "/dev/sda2"]

        assert identity(g, "/dev/sda2") == linux(
            distro="alpinelinux",
            product_name="Alpine Linux v3.19",
            version=(3, 19),
            hostname="alpine.invalid",
            osinfo="alpinelinux3.19",
            package_format="apk",
            package_management="apk",
        )
        assert g.inspect_get_mountpoints("/dev/sda2") == {"/": "/dev/sda2"}  # by UUID=


def test_roots_on_two_drives(phony_debian: Guest, dual_boot: Guest) -> None:
    with opened(phony_debian, dual_boot) as g:
        assert g.inspect_os() == ["/dev/sdb1", "/dev/sdb2", "/dev/debian/root"]


def test_gpt_guest_named_by_tags_and_other_hypervisors_names(gpt_tags: Guest) -> None:
    with opened(gpt_tags) as g:
        assert g.inspect_os() == ["/dev/sda2"]

        assert identity(g, "/dev/sda2") == linux(
            distro="fedora",
            product_name="Fedora Linux 39 (Server Edition)",
            version=(39, 0),
            arch="aarch64",  # /bin -> usr/bin, /usr/bin/bash
            hostname="gpt.invalid",
            osinfo="fedora39",
            package_format="rpm",
            package_management="dnf",
        )
        assert g.inspect_get_mountpoints("/dev/sda2") == gpt_tags.mountpoints
        assert g.inspect_get_filesystems("/dev/sda2") == [
            "/dev/sda2",
            "/dev/sda1",
            "/dev/sda3",
            "/dev/sda4",
            "/dev/sda5",  # swap: a filesystem, but no mountpoint
            "btrfsvol:/dev/sda6/@data",
        ]


def test_the_suites_lvm_guest_in_every_image_format(gpt_lvm_guest_any_format: Guest) -> None:
    guest = gpt_lvm_guest_any_format
    with opened(guest) as g:
        assert g.inspect_os() == ["/dev/vg0/root"]

        assert identity(g, "/dev/vg0/root") == linux(
            distro="debian",  # os-release without PRETTY_NAME, and no debian_version
            version=(12, 0),
            arch="unknown",  # /bin/true is a shell script: no ELF program to read
            hostname="gpt-lvm-guest",
            osinfo="debian12",
            package_format="deb",
            package_management="apt",
        )
        assert g.inspect_get_mountpoints("/dev/vg0/root") == guest.mountpoints


@pytest.mark.parametrize("fixture", ["dirty_ext4_guest", "dirty_xfs_guest"])
def test_dirty_filesystems_are_inspected_without_replay(
    request: pytest.FixtureRequest, fixture: str
) -> None:
    guest: Guest = request.getfixturevalue(fixture)
    digest = sha256(guest.path)
    before = session_mounts()

    with opened(guest) as g:
        assert g.inspect_os() == []  # an fstab and a hostname, but no /bin: no root

        assert session_mounts() == before
    assert sha256(guest.path) == digest


def test_a_root_in_a_btrfs_subvolume(btrfs_subvolumes: Guest) -> None:
    root = "btrfsvol:/dev/sda1/root"
    with opened(btrfs_subvolumes) as g:
        assert g.inspect_os() == [root]

        assert g.inspect_get_distro(root) == "fedora"
        assert g.inspect_get_hostname(root) == "btrfs.invalid"
        assert g.inspect_get_mountpoints(root) == btrfs_subvolumes.mountpoints
        assert g.inspect_mount_root(root) == {"/": True, "/home": True}
        assert g.cat("/home/carol/x") == "c\n"
        assert g.vfs_type(root) == "btrfs"
        assert g.vfs_uuid(root) == g.vfs_uuid("/dev/sda1")

        before = session_mounts()  # the caller's mounts show subvolumes, not the default one
        assert g.inspect_os(use_cache=False) == [root]
        assert g.inspect_get_mountpoints(root) == btrfs_subvolumes.mountpoints
        assert session_mounts() == before
        g.umount_all()


def test_a_disk_without_an_os_is_no_error(no_os: Guest) -> None:
    with opened(no_os) as g:
        assert g.inspect_get_roots() == []
        assert g.inspect_os() == []
        assert g.inspect_get_roots() == []


def test_a_corrupt_fstab_still_gives_the_root_and_what_it_can(corrupt: Guest) -> None:
    with opened(corrupt) as g:
        assert g.inspect_os() == ["/dev/sda1", "/dev/sda2"]

        assert g.inspect_get_mountpoints("/dev/sda1") == {"/": "/dev/sda1", "/srv": "/dev/sda3"}
        assert g.inspect_get_mountpoints("/dev/sda2") == {"/": "/dev/sda2"}
        assert identity(g, "/dev/sda2") == linux()  # os-release is noise too


def test_windows_root_from_its_hives(windows_10: Guest) -> None:
    config = "/Windows/System32/config"
    with opened(windows_10) as g:
        assert g.inspect_os() == ["/dev/sda1"]

        assert identity(g, "/dev/sda1") == {
            "type": "windows",
            "distro": "windows",
            "product_name": "Windows 10 Pro",
            "product_variant": "Client",
            "version": (10, 0),
            "arch": "x86_64",
            "hostname": "WIN10-VMCRAFT",
            "build_id": "19045",
            "osinfo": "win10",  # build 19045: Windows 11 starts at 22000
            "package_format": "unknown",
            "package_management": "unknown",
            "format": "installed",
        }
        assert g.inspect_get_windows_systemroot("/dev/sda1") == "/Windows"
        assert g.inspect_get_windows_current_control_set("/dev/sda1") == "ControlSet001"
        assert g.inspect_get_windows_software_hive("/dev/sda1") == f"{config}/SOFTWARE"
        assert g.inspect_get_windows_system_hive("/dev/sda1") == f"{config}/SYSTEM"
        assert g.inspect_get_drive_mappings("/dev/sda1") == {"C": "/dev/sda1"}  # D: elsewhere
        assert g.inspect_get_mountpoints("/dev/sda1") == {"/": "/dev/sda1"}
        assert g.inspect_get_filesystems("/dev/sda1") == ["/dev/sda1"]
        names = [a["app2_name"] for a in g.inspect_list_applications2("/dev/sda1")]
        assert "Notepad++" in names and "7-Zip" in names
        assert g.inspect_get_icon("/dev/sda1") == b""


# ---------------------------------------------------------------- no side effects


def test_the_callers_mounts_stay_exactly_as_they_were(phony_debian: Guest) -> None:
    with opened(phony_debian) as g:
        g.mount_ro("/dev/debian/root", "/")
        g.mount_ro("/dev/sda1", "/boot")
        before = (g.mountpoints(), g.mount_levels(), session_mounts())

        g.inspect_os()
        g.inspect_list_applications2("/dev/debian/root")
        g.inspect_get_icon("/dev/debian/root")

        assert (g.mountpoints(), g.mount_levels(), session_mounts()) == before
        assert g.cat("/etc/hostname") == "debian.invalid\n"
        assert g.exists("/boot/grub/grub.conf")
        assert g.inspect_get_hostname("/dev/debian/root") == "debian.invalid"


def test_a_writable_handles_mounts_stay_writable(
    phony_debian: Guest, writable_copy: CopyFactory
) -> None:
    guest = writable_copy(phony_debian)
    with opened(guest, readonly=False) as g:
        g.mount("/dev/debian/root", "/")
        before = session_mounts()

        assert g.inspect_os() == ["/dev/debian/root"]

        assert session_mounts() == before
        g.write("/etc/motd", "still writable\n")
        assert g.cat("/etc/motd") == "still writable\n"


def test_inspection_leaves_nothing_mounted_and_the_image_unchanged(
    phony_debian: Guest, writable_copy: CopyFactory
) -> None:
    guest = writable_copy(phony_debian)
    digest = sha256(guest.path)
    before = session_mounts()

    with opened(guest, readonly=False) as g:
        g.inspect_os()
        identity(g, "/dev/debian/root")
        g.inspect_list_applications2("/dev/debian/root")
        g.inspect_get_icon("/dev/debian/root")

        assert g.mountpoints() == {}
        assert session_mounts() == before

    assert sha256(guest.path) == digest  # every inspection mount was read-only


# ---------------------------------------------------------------- caching and errors


def test_answers_are_kept_until_the_partition_cache_is_dropped(dual_boot: Guest) -> None:
    with opened(dual_boot) as g:
        roots = g.inspect_os()
        assert g.inspect_os() == roots

        g.invalidate_partition_cache()

        assert g.inspect_get_roots() == []
        assert g.inspect_os(use_cache=False) == roots


def test_calls_about_roots_inspect_os_never_returned_fail(dual_boot: Guest) -> None:
    with opened(dual_boot) as g:
        with pytest.raises(InspectionError, match="call inspect_os first"):
            g.inspect_get_type("/dev/sda1")
        g.inspect_os()
        with pytest.raises(InspectionError, match="/dev/sda3: root device not found"):
            g.inspect_get_distro("/dev/sda3")


def test_inspect_os_needs_a_launched_handle(dual_boot: Guest) -> None:
    g = VMCraft()
    g.add_drive_opts(str(dual_boot.path), format="raw")
    with pytest.raises(StateError):
        g.inspect_os()
    g.close()


@pytest.mark.parametrize(
    "call",
    [
        "inspect_get_windows_systemroot",
        "inspect_get_windows_current_control_set",
        "inspect_get_windows_software_hive",
        "inspect_get_windows_system_hive",
    ],
)
def test_windows_calls_fail_on_linux(dual_boot: Guest, call: str) -> None:
    with opened(dual_boot) as g:
        g.inspect_os()
        with pytest.raises(InspectionError, match="not a Windows guest"):
            getattr(g, call)("/dev/sda1")
        assert g.inspect_get_drive_mappings("/dev/sda1") == {}


# ---------------------------------------------------------------- inside the root


def test_applications_are_read_across_the_roots_filesystems(phony_debian: Guest) -> None:
    with opened(phony_debian) as g:
        g.inspect_os()

        apps = g.inspect_list_applications2("/dev/debian/root")  # dpkg status is on /var

    assert [(a["app2_name"], a["app2_version"], a["app2_release"]) for a in apps] == [
        ("hello", "2.10", "3")
    ]


def test_icon_from_the_usr_filesystem(phony_debian: Guest, dual_boot: Guest) -> None:
    with opened(phony_debian) as g:
        g.inspect_os()
        assert g.inspect_get_icon("/dev/debian/root") == inspect_guests.DEBIAN_ICON

    with opened(dual_boot) as g:
        g.inspect_os()
        assert g.inspect_get_icon("/dev/sda1") == b""  # no logo installed: no icon


def test_mount_root_mounts_what_fstab_says(phony_debian: Guest) -> None:
    with opened(phony_debian) as g:
        g.inspect_os()

        mounted = g.inspect_mount_root("/dev/debian/root")

        assert mounted == dict.fromkeys(phony_debian.mountpoints, True)
        assert g.mountpoints() == {dev: mp for mp, dev in phony_debian.mountpoints.items()}
        assert g.cat("/boot/grub/grub.conf") == "default 0\n"
        assert g.read_file("/usr/share/pixmaps/debian-logo.png") == inspect_guests.DEBIAN_ICON
        assert g.exists("/var/lib/dpkg/status")
        assert g.cat("/home/alice/notes.txt") == "hi\n"
        with pytest.raises(ReadOnlyError):
            g.write("/etc/motd", "read-only by default\n")
        g.umount_all()


def test_mount_root_mounts_btrfs_subvolumes(gpt_tags: Guest) -> None:
    with opened(gpt_tags) as g:
        g.inspect_os()

        mounted = g.inspect_mount_root("/dev/sda2")

        assert mounted == dict.fromkeys(gpt_tags.mountpoints, True)
        assert g.cat("/data/report.txt") == "data\n"  # inside subvolume @data
        assert g.cat("/home/bob/notes.txt") == "bob\n"
        g.umount_all()


def test_a_subvolume_mounts_by_its_btrfsvol_name(btrfs_subvolumes: Guest) -> None:
    with opened(btrfs_subvolumes) as g:
        g.mount_ro("btrfsvol:/dev/sda1/root", "/")
        g.mount_ro("btrfsvol:/dev/sda1/home", "/home")

        assert g.cat("/etc/hostname") == "btrfs.invalid\n"
        assert g.ls("/home") == ["carol"]
        with pytest.raises(MountError, match="/dev/sda1"):
            g.mount_ro("btrfsvol:/dev/sda1/no-such-subvolume", "/home/carol")
        g.umount_all()


# ---------------------------------------------------------------- virt-inspector's own output


def test_phony_debian_gives_virt_inspectors_document_byte_for_byte(phony_debian: Guest) -> None:
    assert inspector_document(phony_debian) == virt_inspector_document("phony-debian")


def test_windows_gives_virt_inspectors_document(windows_10: Guest) -> None:
    expected = without_uuids(virt_inspector_document("windows"))

    assert without_uuids(inspector_document(windows_10)) == expected


def test_btrfs_subvolumes_give_virt_inspectors_document(btrfs_subvolumes: Guest) -> None:
    # libguestfs 1.48's librpm cannot read this guest's (missing) RPM database: the
    # reference was made with --no-applications.
    expected = without_uuids(virt_inspector_document("btrfs-subvolumes"))

    assert without_uuids(inspector_document(btrfs_subvolumes, applications=False)) == expected
