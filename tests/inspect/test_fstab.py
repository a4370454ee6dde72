"""fstab parsing and the resolution of every way fstab names a device, without images.

The guest's devices are a made-up table of blkid tags; the expected devices follow from
fstab(5) and libguestfs's ``resolve_fstab_device`` rules: disk letters are positions
among the drives, device-mapper doubles dashes, BSD disklabel partitions count from 5,
and a tag that names no device drops the entry while an unknown ``/dev`` name stays as
written.
"""

from __future__ import annotations

import pytest

from vmcraft.inspect.fstab import FstabMount, canonical_mountpoint, parse_fstab, resolve_fstab
from vmcraft.inspect.fstab_devices import GuestDevices, drive_index
from vmcraft.inspect.roots import InspectedRoot
from vmcraft.inspect.unix import blank_identity
from vmcraft.mountables import btrfsvol, split_btrfsvol

ROOT_UUID = "0f3a9b7c-1111-4222-8333-444455556666"
ROOT_PARTUUID = "8d2c63e1-aaaa-4bbb-8ccc-dddd00000002"
DEVICES = GuestDevices(
    disks=("/dev/sda", "/dev/sdb"),
    tags={
        "/dev/sda": {"PTTYPE": "gpt"},
        "/dev/sda1": {
            "TYPE": "vfat",
            "UUID": "1234-ABCD",
            "LABEL": "ESP",
            "PART_ENTRY_UUID": "8d2c63e1-aaaa-4bbb-8ccc-dddd00000001",
            "PART_ENTRY_NAME": "EFI System",
        },
        "/dev/sda2": {
            "TYPE": "ext4",
            "UUID": ROOT_UUID,
            "LABEL": "root",
            "PART_ENTRY_UUID": ROOT_PARTUUID,
            "PART_ENTRY_NAME": "root part",
        },
        "/dev/sda3": {"TYPE": "swap", "UUID": "77777777-0000-4000-8000-000000000003"},
        "/dev/sdb": {"TYPE": "xfs", "UUID": "99999999-0000-4000-8000-00000000000b"},
        "/dev/vg-0/lv-root": {"TYPE": "ext4", "UUID": "aaaaaaaa-0000-4000-8000-000000000001"},
        "/dev/vg0/home": {"TYPE": "btrfs", "LABEL": "home"},
    },
)
ONE_DISK = GuestDevices(disks=("/dev/sda",), tags=DEVICES.tags)
ROOT = "/dev/sda2"


def resolve(line: str, devices: GuestDevices = DEVICES, os_type: str = "linux") -> list[str]:
    """The mountables that one fstab line resolves to (none or one)."""
    return [m.mountable for m in resolve_fstab(parse_fstab(line), devices, ROOT, os_type)]


# ---------------------------------------------------------------- parsing


def test_comments_blank_lines_and_fields() -> None:
    text = (
        "# <file system> <mount point> <type> <options> <dump> <pass>\n"
        "\n"
        "   \t\n"
        "UUID=abc  /   ext4  errors=remount-ro 0 1\n"
        "  # an indented comment\n"
        "LABEL=boot\t/boot\text2\n"
    )

    entries = parse_fstab(text)

    assert [(e.spec, e.mountpoint, e.vfstype, e.options) for e in entries] == [
        ("UUID=abc", "/", "ext4", ("errors=remount-ro",)),
        ("LABEL=boot", "/boot", "ext2", ("defaults",)),  # fstab(5): options default
    ]


def test_octal_escapes_are_decoded_in_every_field() -> None:
    line = r"LABEL=my\040disk /mnt/my\040dir\011tab\134back ext4 user\054name=a 0 2"

    (entry,) = parse_fstab(line)

    assert entry.spec == "LABEL=my disk"
    assert entry.mountpoint == "/mnt/my dir\ttab\\back"
    assert entry.options == ("user", "name=a")  # an escaped comma still separates options


def test_options_by_name() -> None:
    (entry,) = parse_fstab("UUID=x /home btrfs defaults,noatime,subvol=@home 0 0")

    assert entry.option("subvol") == "@home"
    assert entry.option("noatime") == ""
    assert entry.option("compress") is None


@pytest.mark.parametrize(
    "bad",
    [
        "LABEL=two-fields /",
        "a b c d e f g",
        "UUID=x / ext4 defaults\x00 0 1",
        "\x01\x02\x03 / ext4",
    ],
)
def test_a_malformed_line_costs_only_itself(bad: str) -> None:
    entries = parse_fstab(f"/dev/sda1 /boot ext4 defaults 0 2\n{bad}\n/dev/sda2 / ext4 0 1\n")

    assert [e.mountpoint for e in entries] == ["/boot", "/"]


@pytest.mark.parametrize(
    ("written", "canonical"),
    [("///usr//local//", "/usr/local"), ("/", "/"), ("//", "/"), ("none", "none")],
)
def test_mountpoints_are_canonical(written: str, canonical: str) -> None:
    assert canonical_mountpoint(written) == canonical


# ---------------------------------------------------------------- tags


@pytest.mark.parametrize(
    ("spec", "device"),
    [
        (f"UUID={ROOT_UUID}", "/dev/sda2"),
        (f"UUID={ROOT_UUID.upper()}", "/dev/sda2"),
        (f'UUID="{ROOT_UUID}"', "/dev/sda2"),
        ("UUID=1234-abcd", "/dev/sda1"),
        ("LABEL=root", "/dev/sda2"),
        ("LABEL='ESP'", "/dev/sda1"),
        (f"PARTUUID={ROOT_PARTUUID.upper()}", "/dev/sda2"),
        (r"PARTLABEL=root\040part", "/dev/sda2"),
        ("LABEL=home", "/dev/vg0/home"),
        (f"/dev/disk/by-uuid/{ROOT_UUID}", "/dev/sda2"),
        ("/dev/disk/by-label/ESP", "/dev/sda1"),
        (f"/dev/disk/by-partuuid/{ROOT_PARTUUID}", "/dev/sda2"),
        (r"/dev/disk/by-partlabel/root\x20part", "/dev/sda2"),
    ],
)
def test_tags_name_the_device_that_has_them(spec: str, device: str) -> None:
    assert resolve(f"{spec} /srv ext4 defaults 0 2") == [device]


@pytest.mark.parametrize(
    "spec", ["UUID=00000000-0000-0000-0000-000000000000", "LABEL=ROOT", "PARTLABEL=nope", "X=1"]
)
def test_a_tag_no_device_has_drops_the_entry(spec: str) -> None:
    assert resolve(f"{spec} /srv ext4 defaults 0 2") == []


def test_an_unknown_disk_path_stays_as_written() -> None:
    assert resolve("/dev/disk/by-uuid/feedface /srv ext4") == ["/dev/disk/by-uuid/feedface"]


# ---------------------------------------------------------------- device names


@pytest.mark.parametrize(
    ("spec", "device"),
    [
        ("/dev/sda2", "/dev/sda2"),
        ("/dev/vda2", "/dev/sda2"),
        ("/dev/hda2", "/dev/sda2"),
        ("/dev/xvda2", "/dev/sda2"),
        ("/dev/vdb", "/dev/sdb"),  # a filesystem on the whole second disk
        ("/dev/cciss/c0d0p2", "/dev/sda2"),
        ("/dev/cciss/c0d1", "/dev/sdb"),
        ("/dev/mapper/vg--0-lv--root", "/dev/vg-0/lv-root"),
        ("/dev/mapper/vg0-home", "/dev/vg0/home"),
        ("/dev/vg0/home", "/dev/vg0/home"),
        ("/dev/hd0s2", "/dev/sda2"),  # GNU Hurd
        ("/dev/vda9", "/dev/vda9"),  # no such partition: kept as written
        ("/dev/vdc1", "/dev/vdc1"),  # no third drive
        ("/dev/mapper/nosuch-lv", "/dev/mapper/nosuch-lv"),
        ("/dev/md0", "/dev/md0"),
    ],
)
def test_device_names_of_other_hypervisors(spec: str, device: str) -> None:
    assert resolve(f"{spec} /srv ext4 defaults 0 2") == [device]


def test_disk_by_id_is_trusted_only_with_one_disk() -> None:
    spec = "/dev/disk/by-id/ata-QEMU_HARDDISK_QM00001-part2"

    assert resolve(f"{spec} /srv ext4", ONE_DISK) == ["/dev/sda2"]
    assert resolve(f"{spec} /srv ext4", DEVICES) == [spec]


def test_dev_root_is_the_root_being_inspected() -> None:
    assert resolve("/dev/root / ext4 defaults 0 1") == [ROOT]


@pytest.mark.parametrize(
    ("letters", "index"), [("a", 0), ("b", 1), ("z", 25), ("aa", 26), ("ab", 27), ("ba", 52)]
)
def test_drive_letters_count_like_linux(letters: str, index: int) -> None:
    assert drive_index(letters) == index


@pytest.mark.parametrize(
    ("os_type", "spec", "device"),
    [
        ("freebsd", "/dev/ada0p3", "/dev/sda3"),  # GPT: the partition itself
        ("freebsd", "/dev/vtbd1p2", "/dev/sdb2"),
        ("freebsd", "/dev/ada0s1a", "/dev/sda5"),  # MBR slice 1, disklabel a
        ("freebsd", "/dev/ada0s1d", "/dev/sda7"),  # c is the whole slice: d is the third
        ("netbsd", "/dev/wd0a", "/dev/wd0a"),  # NetBSD's rule covers ld and sd only
        ("netbsd", "/dev/sd0e", "/dev/sda7"),  # c is the label, d the disk
        ("openbsd", "/dev/wd0d", "/dev/sda7"),  # c is the whole disk
        ("openbsd", "0123456789abcdef.d", "/dev/sda7"),  # a disklabel UID, first disk
        ("linux", "/dev/sd0e", "/dev/sd0e"),  # BSD names mean nothing to Linux
    ],
)
def test_bsd_device_names(os_type: str, spec: str, device: str) -> None:
    assert resolve(f"{spec} /usr ufs rw 2 2", os_type=os_type) == [device]


def test_a_bsd_root_is_the_filesystem_at_hand() -> None:
    assert resolve("/dev/ada0s1a / ufs rw 1 1", os_type="freebsd") == [ROOT]


# ---------------------------------------------------------------- entries left out


@pytest.mark.parametrize(
    "line",
    [
        "proc /proc proc defaults 0 0",
        "sysfs /sys sysfs defaults 0 0",
        "tmpfs /tmp tmpfs mode=1777 0 0",
        "devpts /dev/pts devpts gid=5 0 0",
        "cgroup2 /sys/fs/cgroup cgroup2 rw 0 0",
        "none /var/lib/x none bind 0 0",
        "nfs.example.com:/export /mnt/nfs nfs defaults 0 0",
        "//server/share /mnt/smb cifs credentials=/root/c 0 0",
        "/srv/share /mnt/share none bind 0 0",
        "/dev/sda2 /mnt/again ext4 bind 0 0",
        "/dev/fd0 /mnt/floppy auto noauto 0 0",
        "/dev/cdrom /mnt/cdrom iso9660 noauto,ro 0 0",
        "/dev/sda2 /media/usb ext4 noauto 0 0",
        "/dev/sda2 /dev/shm ext4 defaults 0 0",
        "/dev/sda2 /proc/x ext4 defaults 0 0",
        "/dev/sda2 /selinux ext4 defaults 0 0",
    ],
)
def test_pseudo_network_bind_and_removable_entries_are_left_out(line: str) -> None:
    assert resolve(line) == []


def test_swap_is_a_filesystem_without_a_mountpoint() -> None:
    text = "/dev/vda2 / ext4 defaults 0 1\n/dev/vda3 none swap sw 0 0\n/dev/vdb /srv xfs 0 2\n"
    mounts = resolve_fstab(parse_fstab(text), DEVICES, ROOT, "linux")
    root = InspectedRoot(ROOT, "ext4", blank_identity("linux"), tuple(mounts))

    assert root.mountpoints == {"/": "/dev/sda2", "/srv": "/dev/sdb"}
    assert root.filesystems == ["/dev/sda2", "/dev/sda3", "/dev/sdb"]


def test_a_root_without_usable_fstab_is_mounted_on_slash_alone() -> None:
    root = InspectedRoot("/dev/sdb", "xfs", blank_identity("linux"), ())

    assert root.mountpoints == {"/": "/dev/sdb"}
    assert root.filesystems == ["/dev/sdb"]


def test_only_the_first_of_several_roots_counts() -> None:
    text = "/dev/sda2 / ext4 0 1\n/dev/sdb /srv xfs 0 2\n/dev/sdb / xfs 0 1\n"

    mounts = resolve_fstab(parse_fstab(text), DEVICES, ROOT, "linux")

    assert mounts == [
        FstabMount("/dev/sda2", "/", "ext4"),
        FstabMount("/dev/sdb", "/srv", "xfs"),
    ]


# ---------------------------------------------------------------- btrfs subvolumes


@pytest.mark.parametrize(
    ("subvol", "mountable"),
    [("@home", "btrfsvol:/dev/vg0/home/@home"), ("/@home", "btrfsvol:/dev/vg0/home//@home")],
)
def test_a_btrfs_subvolume_is_its_own_mountable_named_as_fstab_spells_it(
    subvol: str, mountable: str
) -> None:
    line = f"LABEL=home /home btrfs defaults,subvol={subvol},compress=zstd 0 0"

    assert resolve(line) == [mountable]


def test_btrfs_without_subvol_is_the_whole_device() -> None:
    assert resolve("LABEL=home /home btrfs defaults 0 0") == ["/dev/vg0/home"]


@pytest.mark.parametrize(
    ("mountable", "parts"),
    [
        ("btrfsvol:/dev/sda2/@", ("/dev/sda2", "@")),
        ("btrfsvol:/dev/sda2/@/var/lib", ("/dev/sda2", "@/var/lib")),
        ("btrfsvol:/dev/vg0/home/@home", ("/dev/vg0/home", "@home")),
        ("/dev/sda2", ("/dev/sda2", None)),
    ],
)
def test_btrfsvol_names_split_at_a_known_device(
    mountable: str, parts: tuple[str, str | None]
) -> None:
    assert split_btrfsvol(mountable, DEVICES.tags) == parts
    if parts[1] is not None:
        assert btrfsvol(*parts) == mountable  # type: ignore[arg-type]
