"""Every image format opens through the handle and shows the same guest.

The MBR guest is converted by qemu-img into each format qemu-storage-daemon exports (plus
the two multi-file vmdk layouts, whose extents sit beside the descriptor); each copy must
list the devices and filesystems of the guest's manifest and read the same file. Non-raw
formats go through a qemu-storage-daemon child that exists only while the handle is
launched; a raw image needs none. A read-only session changes no byte of the image.

Host tools: qemu-img, qemu-storage-daemon, losetup, partx, blkid, mount.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

import guests
import pytest
from guests import Guest, sha256
from image_helpers import daemon_children, library_workdirs

from vmcraft import VMCraft
from vmcraft.images import probe_image

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_tool("qemu-storage-daemon", "-h")]
CopyGuest = Callable[[Guest], Guest]

# case -> (qemu driver, extra `qemu-img convert` options)
FORMAT_CASES: dict[str, tuple[str, tuple[str, ...]]] = {
    "raw": ("raw", ()),
    "qcow2": ("qcow2", ()),
    "vmdk-monolithicSparse": ("vmdk", ()),
    "vmdk-twoGbMaxExtentSparse": ("vmdk", ("-o", "subformat=twoGbMaxExtentSparse")),
    "vmdk-monolithicFlat": ("vmdk", ("-o", "subformat=monolithicFlat")),
    "vpc": ("vpc", ("-o", "force_size=on")),
    "vhdx": ("vhdx", ()),
    "vdi": ("vdi", ()),
}
MULTI_FILE = ("vmdk-twoGbMaxExtentSparse", "vmdk-monolithicFlat")
READ_CHECK = ("/dev/sda1", "/grub/grub.cfg")  # an ext4 file any kernel here can mount


def convert_to(guest: Guest, case: str, workdir: Path) -> Guest:
    """guest in the format of ``case``, converted by qemu-img into its own folder."""
    fmt, options = FORMAT_CASES[case]
    if fmt == guest.format and not options:
        return guest
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / f"{guest.path.stem}.{guests.IMAGE_SUFFIXES[fmt]}"
    argv = ["qemu-img", "convert", "-f", guest.format, "-O", fmt, *options]
    guests.run([*argv, str(guest.path), str(target)])
    return dataclasses.replace(guest, path=target, format=fmt)


@pytest.fixture(scope="session", params=list(FORMAT_CASES))
def mbr_in_format(
    request: pytest.FixtureRequest, mbr_guest: Guest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Guest]:
    case: str = request.param
    return case, convert_to(mbr_guest, case, tmp_path_factory.mktemp(f"formats-{case}"))


def expected_filesystems(guest: Guest) -> dict[str, str]:
    # libguestfs lists every device that may hold a filesystem; swap shows as "swap".
    return {device: spec.fstype for device, spec in guest.filesystems.items()}


def expected_partitions(guest: Guest) -> list[str]:
    return sorted(guest.partitions, key=lambda name: int(name.removeprefix("/dev/sda")))


def check_guest_view(g: VMCraft, guest: Guest) -> None:
    assert g.list_devices() == ["/dev/sda"]
    assert g.list_partitions() == expected_partitions(guest)
    assert g.list_filesystems() == expected_filesystems(guest)

    device, path = READ_CHECK
    g.mount_ro(device, "/")
    assert g.read_file(path) == guest.filesystems[device].files[path]
    g.umount_all()


def test_probe_finds_the_format(mbr_in_format: tuple[str, Guest]) -> None:
    case, guest = mbr_in_format

    info = probe_image(str(guest.path))

    assert info.format == FORMAT_CASES[case][0]
    assert info.virtual_size == guest.size
    assert info.path == str(guest.path)


@pytest.mark.parametrize("declared", [False, True], ids=["probed", "declared"])
def test_every_format_shows_the_same_guest(
    mbr_in_format: tuple[str, Guest], declared: bool
) -> None:
    _, guest = mbr_in_format
    workdirs_before = library_workdirs()

    with VMCraft() as g:
        g.add_drive_opts(str(guest.path), format=guest.format if declared else None)
        g.launch()
        daemons = daemon_children()
        check_guest_view(g, guest)

    if guest.format == "raw":
        assert daemons == {}, "a raw image needs no qemu-storage-daemon"
    else:
        [argv] = daemons.values()
        assert f"driver={guest.format},node-name=disk0,file=file0,read-only=on" in argv
        assert any(f"filename={guest.path}," in arg for arg in argv)
    assert daemon_children() == {}
    assert library_workdirs() == workdirs_before


@pytest.mark.parametrize("mbr_in_format", MULTI_FILE, indirect=True)
def test_multi_file_vmdk_extents_sit_beside_the_descriptor(
    mbr_in_format: tuple[str, Guest],
) -> None:
    _, guest = mbr_in_format
    siblings = sorted(p for p in guest.path.parent.iterdir() if p != guest.path)
    assert siblings, "qemu-img wrote no extent files"
    assert guest.path.stat().st_size < 64 * 1024, "the descriptor is a small text file"

    info = probe_image(str(guest.path))

    assert set(info.referenced_files) == set(map(str, siblings))


def test_format_alias_vhd_opens_a_vpc_image(mbr_guest: Guest, tmp_path: Path) -> None:
    guest = convert_to(mbr_guest, "vpc", tmp_path)

    with VMCraft() as g:
        g.add_drive_opts(str(guest.path), format="vhd")
        g.launch()
        check_guest_view(g, guest)


def test_qsd_backend_asked_for_by_name(mbr_guest: Guest, tmp_path: Path) -> None:
    guest = convert_to(mbr_guest, "qcow2", tmp_path)

    with VMCraft() as g:
        g.add_drive_opts(str(guest.path), backend="qsd")
        g.launch()
        assert len(daemon_children()) == 1
        check_guest_view(g, guest)
        g.shutdown()
        assert daemon_children() == {}


def test_two_formats_in_one_handle(mbr_guest: Guest, tmp_path: Path) -> None:
    qcow2 = convert_to(mbr_guest, "qcow2", tmp_path / "a")
    vdi = convert_to(mbr_guest, "vdi", tmp_path / "b")

    with VMCraft() as g:
        g.add_drive_ro(str(qcow2.path))
        g.add_drive_ro(str(vdi.path))
        g.launch()
        assert g.list_devices() == ["/dev/sda", "/dev/sdb"]
        assert len(daemon_children()) == 2
        assert g.vfs_label("/dev/sdb1") == mbr_guest.filesystems["/dev/sda1"].label
    assert daemon_children() == {}


# ---------------------------------------------------------------- read-only sessions


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_read_only_session_changes_no_byte(
    mbr_guest: Guest, writable_copy: CopyGuest, tmp_path: Path, fmt: str
) -> None:
    guest = convert_to(writable_copy(mbr_guest), fmt, tmp_path / fmt)
    before = sha256(guest.path)

    with VMCraft() as g:
        g.add_drive_ro(str(guest.path))
        g.launch()
        g.mount_ro("/dev/sda2", "/")
        g.mount_ro("/dev/sda1", "/boot")
        assert g.cat("/etc/hostname") == "mbr-guest\n"
        assert g.read_file("/boot/vmlinuz") == b"not a kernel\n"

    assert sha256(guest.path) == before


@pytest.mark.parametrize("fmt", ["raw", "qcow2"])
def test_read_only_session_leaves_a_dirty_journal_alone(
    dirty_ext4_guest: Guest, writable_copy: CopyGuest, tmp_path: Path, fmt: str
) -> None:
    guest = convert_to(writable_copy(dirty_ext4_guest), fmt, tmp_path / fmt)
    spec = guest.filesystems["/dev/sda"]
    before = sha256(guest.path)

    with VMCraft() as g:
        g.add_drive_ro(str(guest.path))
        g.launch()
        assert g.mount_with_fallback("/dev/sda", "/")
        assert g.read_file("/etc/hostname") == spec.files["/etc/hostname"]
        for path in spec.journal_files:
            assert not g.exists(path), "a read-only handle replayed the journal"

    assert sha256(guest.path) == before
