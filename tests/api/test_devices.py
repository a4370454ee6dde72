"""The handle's device calls on real guest images: names, partitions, filesystems, LVM,
blkid and the caches in front of it.

Expected values come from the guests' manifests (tests/guests.py). The independent route is
the host: the loop device a handle made is found with ``losetup -j`` (raw images) or from the
source of a mount in /proc/self/mountinfo, and blkid runs directly on its nodes.
"""

from __future__ import annotations

import hashlib
import re
import subprocess
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import guests
import pytest
from conftest import skip_unless_tools
from guests import Guest, MiB, opened

from vmcraft import VMCraft
from vmcraft.errors import DeviceNotFoundError, GuestFileError, StateError, VolumeError

pytestmark = pytest.mark.requires_root

PV_TYPE = "LVM2_member"
CopyFactory = Callable[[Guest], Guest]


# ---------------------------------------------------------------- helpers


def partnum(device: str) -> int:
    match = re.search(r"(\d+)$", device)
    assert match, device
    return int(match[1])


def on_drive(device: str, drive: str) -> str:
    """A manifest name (always /dev/sdaN) as the guest names it on another drive."""
    return drive + device.removeprefix("/dev/sda") if device.startswith("/dev/sda") else device


def expected_filesystems(guest: Guest, drive: str = "/dev/sda") -> dict[str, str]:
    """list_filesystems() as libguestfs defines it, from the manifest: PVs left out."""
    return {
        on_drive(device, drive): spec.fstype
        for device, spec in guest.filesystems.items()
        if spec.fstype != PV_TYPE
    }


def expected_tags(guest: Guest, device: str) -> dict[str, str]:
    spec = guest.filesystems[device]
    tags = {"TYPE": spec.fstype}
    if spec.label is not None:
        tags["LABEL"] = spec.label
    if spec.uuid is not None:
        tags["UUID"] = spec.uuid
    return tags


def host_blkid(node: str) -> dict[str, str]:
    """blkid run on a host node by the test itself (low-level probe, no cache)."""
    output = guests.run(["blkid", "--probe", "--output", "export", node]).stdout.decode()
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


def identity(tags: dict[str, str]) -> dict[str, str]:
    return {key: tags[key] for key in ("TYPE", "LABEL", "UUID") if key in tags}


def mount_source(g: VMCraft, device: str) -> str:
    """The host node the handle mounts for ``device``, as /proc/self/mountinfo shows it."""
    session_root = tempfile.gettempdir() + "/"
    before = set(guests.read_mountinfo())  # ids alone are reused by concurrent sessions
    g.mount_ro(device, "/")
    try:
        new = [
            entry
            for entry in guests.read_mountinfo()
            if entry not in before and entry.mountpoint.startswith(session_root)
        ]
    finally:
        g.umount("/")
    assert len(new) == 1, new
    return new[0].source


def loops_of(image: Path) -> list[str]:
    """Loop devices attached to ``image``, as ``losetup -j`` lists them."""
    output = guests.run(["losetup", "--associated", str(image)]).stdout.decode()
    return [line.split(":", 1)[0] for line in output.splitlines() if line.strip()]


def first_mountable(guest: Guest) -> str:
    """A partition the kernel mounts (ext4 /boot in both guests)."""
    return next(d for d, s in guest.filesystems.items() if s.fstype == "ext4" and "sda" in d)


def host_disk(g: VMCraft, guest: Guest) -> str:
    """The loop device behind /dev/sda, from a mount's source."""
    partition = first_mountable(guest)
    node = mount_source(g, partition)
    suffix = f"p{partnum(partition)}"
    assert node.startswith("/dev/loop") and node.endswith(suffix), node
    return node.removesuffix(suffix)


def lvm_disk(path: Path, vg_name: str, pv_uuid: str, hostname: bytes) -> Guest:
    """A small MBR disk: one PV of ``vg_name`` holding LV root (ext4, /etc/hostname)."""
    image = path
    guests.run(["truncate", "--size", str(40 * MiB), str(image)])
    guests.run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(image)],
        input=b"label: dos\nstart=2048, size=77824, type=8e\n",
    )
    spec = guests.FsSpec(
        f"/dev/{vg_name}/root", "ext4", "root", None, files={"/etc/hostname": hostname}
    )
    with guests.loop_device(image, partitions=True) as loop:
        pv = f"{loop}p1"
        lvm = ["--config", guests.LVM_CONFIG, "--devices", pv]
        env = {"LVM_SUPPRESS_FD_WARNINGS": "1"}
        guests.run(["pvcreate", *lvm, "-q", "--uuid", pv_uuid, "--norestorefile", pv], env=env)
        guests.run(["vgcreate", *lvm, "-q", vg_name, pv], env=env)
        create = ["lvcreate", *lvm, "-q", "-an", "-Zn", "-Wn", "-n", "root", "-L", "16m"]
        guests.run([*create, vg_name], env=env)
        offset, size = guests.logical_volume_extents(pv, vg_name)["root"]
        with guests.loop_device(pv, offset=offset, size=size) as lv:
            seed = path.parent / f"seed-{path.stem}"
            guests.populate(seed, spec)
            guests.run(["mkfs.ext4", "-F", "-q", "-L", "root", "-d", str(seed), lv])
    return Guest(
        path=image,
        format="raw",
        table="msdos",
        partitions={"/dev/sda1": (MiB, 38 * MiB)},
        filesystems={
            "/dev/sda1": guests.FsSpec("/dev/sda1", PV_TYPE, None, pv_uuid),
            spec.device: spec,
        },
        volume_groups={vg_name: ["root"]},
        mountpoints={"/": spec.device},
        size=40 * MiB,
    )


# ---------------------------------------------------------------- names and partitions


def test_mbr_devices_and_partitions(mbr_guest_any_format: Guest) -> None:
    guest = mbr_guest_any_format
    with opened(guest) as g:
        assert g.list_devices() == ["/dev/sda"]
        # Manifest order is partition-number order: primaries, the extended sda4, logicals.
        assert g.list_partitions() == list(guest.partitions)
        assert "/dev/sda4" in g.list_partitions()
        assert {"/dev/sda5", "/dev/sda6", "/dev/sda7"} <= set(g.list_partitions())
        for partition in guest.partitions:
            assert g.part_to_dev(partition) == "/dev/sda"
            assert g.part_to_partnum(partition) == partnum(partition)


def test_mbr_device_sizes(mbr_guest: Guest) -> None:
    with opened(mbr_guest) as g:
        assert g.blockdev_getsize64("/dev/sda") == mbr_guest.size
        for partition, (_, size) in mbr_guest.partitions.items():
            if partition != "/dev/sda4":
                assert g.blockdev_getsize64(partition) == size, partition
        # libguestfs 1.48's answer for the extended container: Linux's node for it has
        # two sectors, whatever the logical partitions inside it span.
        assert g.blockdev_getsize64("/dev/sda4") == 1024


def test_gpt_devices_and_partitions(gpt_lvm_guest_any_format: Guest) -> None:
    guest = gpt_lvm_guest_any_format
    with opened(guest) as g:
        assert g.list_devices() == ["/dev/sda"]
        assert g.list_partitions() == list(guest.partitions)
        for partition in guest.partitions:
            assert g.part_to_dev(partition) == "/dev/sda"
            assert g.part_to_partnum(partition) == partnum(partition)


def test_host_aliases_name_the_same_devices(mbr_guest_any_format: Guest) -> None:
    guest = mbr_guest_any_format
    with opened(guest) as g:
        disk = host_disk(g, guest)
        if guest.format == "raw":
            assert disk in loops_of(guest.path)

        for partition in guest.partitions:
            alias = f"{disk}p{partnum(partition)}"
            assert g.part_to_dev(alias) == "/dev/sda"
            assert g.part_to_partnum(alias) == partnum(partition)
        for device in expected_filesystems(guest):
            alias = f"{disk}p{partnum(device)}"
            assert g.blkid(alias) == g.blkid(device)
            assert g.vfs_label(alias) == guest.filesystems[device].label

        # A mount made through the alias is reported under the guest's name.
        g.mount_ro(f"{disk}p2", "/")
        assert g.mountpoints() == {"/dev/sda2": "/"}
        g.umount(f"{disk}p2")
        assert g.mountpoints() == {}


def test_lv_host_alias(gpt_lvm_guest_any_format: Guest) -> None:
    guest = gpt_lvm_guest_any_format
    with opened(guest) as g:
        for lv in g.lvs():
            alias = mount_source(g, lv)
            assert alias.startswith("/dev/loop"), alias
            assert identity(host_blkid(alias)) == expected_tags(guest, lv)
            assert g.vfs_uuid(alias) == guest.filesystems[lv].uuid
            with pytest.raises(DeviceNotFoundError, match="not a partition"):
                g.part_to_dev(alias)


def test_unknown_devices_are_refused(mbr_guest: Guest) -> None:
    with opened(mbr_guest) as g:
        for call in (g.part_to_dev, g.part_to_partnum, g.blkid, g.vfs_type):
            for name in ("/dev/sdz9", "/dev/nosuch/lv", "/dev/mapper/nosuch-lv"):
                with pytest.raises(DeviceNotFoundError, match=re.escape(name)):
                    call(name)
        with pytest.raises(ValueError, match="sdz9"):  # DeviceNotFoundError is a ValueError
            g.part_to_dev("/dev/sdz9")
        with pytest.raises(DeviceNotFoundError, match="not a partition"):
            g.part_to_partnum("/dev/sda")


def test_calls_before_launch_and_after_close(mbr_guest: Guest) -> None:
    g = VMCraft()
    g.add_drive_opts(str(mbr_guest.path), format="raw")
    with pytest.raises(StateError, match="launch"):
        g.list_devices()
    g.close()
    with pytest.raises(StateError, match="closed"):
        g.list_partitions()


# ---------------------------------------------------------------- filesystems and LVM


def test_mbr_filesystems_and_blkid(mbr_guest_any_format: Guest) -> None:
    guest = mbr_guest_any_format
    with opened(guest) as g:
        assert g.list_filesystems() == expected_filesystems(guest)
        assert "/dev/sda4" not in g.list_filesystems()  # the extended container
        assert g.pvs() == [] and g.vgs() == [] and g.lvs() == []

        disk = host_disk(g, guest)
        for device in guest.filesystems:
            tags = g.blkid(device)
            assert identity(tags) == expected_tags(guest, device)
            assert all(key == key.upper() for key in tags)
            assert tags["DEVNAME"] == device  # libguestfs 1.48 names the guest's device
            assert identity(host_blkid(f"{disk}p{partnum(device)}")) == identity(tags)

            spec = guest.filesystems[device]
            assert g.vfs_type(device) == spec.fstype
            assert g.vfs_label(device) == (spec.label or "")
            assert g.vfs_uuid(device) == (spec.uuid or "")


def test_gpt_lvm_filesystems_and_blkid(gpt_lvm_guest_any_format: Guest) -> None:
    guest = gpt_lvm_guest_any_format
    (vg_name,) = guest.volume_groups
    with opened(guest) as g:
        assert g.list_filesystems() == expected_filesystems(guest)
        assert g.pvs() == [d for d, s in guest.filesystems.items() if s.fstype == PV_TYPE]
        assert g.vgs() == [vg_name]
        assert g.lvs() == sorted(f"/dev/{vg_name}/{lv}" for lv in guest.volume_groups[vg_name])

        for device in guest.filesystems:
            assert identity(g.blkid(device)) == expected_tags(guest, device)
        assert g.vfs_type("/dev/sda2") == PV_TYPE
        assert g.vfs_label("/dev/sda2") == ""
        # device-mapper's name for an LV is an alias too.
        assert g.vfs_label(f"/dev/mapper/{vg_name}-root") == "root"

        disk = host_disk(g, guest)
        for partition in guest.partitions:
            tags = host_blkid(f"{disk}p{partnum(partition)}")
            assert identity(tags) == expected_tags(guest, partition)


def test_filesystem_on_whole_disk(dirty_ext4_guest: Guest) -> None:
    with opened(dirty_ext4_guest) as g:
        assert g.list_devices() == ["/dev/sda"]
        assert g.list_partitions() == []
        assert g.list_filesystems() == {"/dev/sda": "ext4"}
        assert identity(g.blkid("/dev/sda")) == expected_tags(dirty_ext4_guest, "/dev/sda")


def test_file_of_a_guest_device_describes_its_content(gpt_lvm_guest: Guest) -> None:
    # libguestfs 1.48's answers: file -zbsL on the device itself, with nothing mounted.
    boot, pv = gpt_lvm_guest.filesystems["/dev/sda1"], gpt_lvm_guest.filesystems["/dev/sda2"]
    _, pv_size = gpt_lvm_guest.partitions["/dev/sda2"]
    with opened(gpt_lvm_guest) as g:
        assert g.file("/dev/vg0/home") == "SGI XFS filesystem data (blksz 4096, inosz 512, v2 dirs)"
        assert g.file("/dev/mapper/vg0-home") == g.file("/dev/vg0/home")
        assert g.file("/dev/sda2") == (
            f"LVM2 PV (Linux Logical Volume Manager), UUID: {pv.uuid}, size: {pv_size}"
        )
        assert g.file("/dev/sda1").startswith(
            f'Linux rev 1.0 ext4 filesystem data, UUID={boot.uuid}, volume name "{boot.label}"'
        )
        with pytest.raises(GuestFileError, match="no filesystem is mounted"):
            g.file("/dev/null")  # no guest device: a path in the guest's tree


def test_unrecognised_devices_are_unknown(tmp_path: Path) -> None:
    """A blank partition and a blank unpartitioned disk are "unknown"."""
    partitioned = tmp_path / "blank-parts.raw"
    guests.run(["truncate", "--size", str(20 * MiB), str(partitioned)])
    guests.run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(partitioned)],
        input=b"label: dos\nstart=2048, size=16384, type=83\nstart=18432, size=16384, type=83\n",
    )
    guests.run(
        ["mkfs.ext4", "-F", "-q", "-L", "first", "-E", f"offset={MiB}", str(partitioned), "8192k"]
    )
    blank = tmp_path / "blank.raw"
    guests.run(["truncate", "--size", str(4 * MiB), str(blank)])

    with VMCraft() as g:
        g.add_drive_opts(str(partitioned), format="raw")
        g.add_drive_opts(str(blank), format="raw")
        g.launch()
        assert g.list_devices() == ["/dev/sda", "/dev/sdb"]
        assert g.list_filesystems() == {
            "/dev/sda1": "ext4",
            "/dev/sda2": "unknown",
            "/dev/sdb": "unknown",
        }
        assert g.vfs_type("/dev/sda2") == ""
        assert g.blkid("/dev/sdb") == {}


def test_two_drives(mbr_guest: Guest, gpt_lvm_guest: Guest) -> None:
    with opened(mbr_guest, gpt_lvm_guest) as g:
        assert g.list_devices() == ["/dev/sda", "/dev/sdb"]
        assert g.list_partitions() == [
            *mbr_guest.partitions,
            *(on_drive(p, "/dev/sdb") for p in gpt_lvm_guest.partitions),
        ]
        assert g.list_filesystems() == {
            **expected_filesystems(mbr_guest),
            **expected_filesystems(gpt_lvm_guest, "/dev/sdb"),
        }
        assert g.part_to_dev("/dev/sdb3") == "/dev/sdb"
        assert g.part_to_partnum("/dev/sdb3") == 3
        assert g.pvs() == ["/dev/sdb2"]
        assert g.vgs() == ["vg0"]
        assert g.vfs_label("/dev/sdb1") == gpt_lvm_guest.filesystems["/dev/sda1"].label
        assert g.vfs_label("/dev/sda1") == mbr_guest.filesystems["/dev/sda1"].label
        with pytest.raises(DeviceNotFoundError):
            g.part_to_dev("/dev/sdb4")


# ---------------------------------------------------------------- same VG name twice


def test_same_vg_name_in_two_handles(gpt_lvm_guest: Guest, writable_copy: CopyFactory) -> None:
    copy = writable_copy(gpt_lvm_guest)
    with opened(copy, readonly=False) as g:
        g.mount("/dev/vg0/root", "/")
        g.write("/etc/hostname", "the copy\n")
        g.mount("/dev/vg0/home", "/home")
        g.write("/home/bob/notes.txt", "the copy's notes\n")

    root_spec = gpt_lvm_guest.filesystems["/dev/vg0/root"]
    home_spec = gpt_lvm_guest.filesystems["/dev/vg0/home"]
    with opened(gpt_lvm_guest) as original, opened(copy) as clone:
        assert original.vgs() == clone.vgs() == ["vg0"]
        for g in (original, clone):
            g.mount_ro("/dev/vg0/root", "/")
            g.mount_ro("/dev/vg0/home", "/home")  # two xfs clones: needs nouuid
        assert original.read_file("/etc/hostname") == root_spec.files["/etc/hostname"]
        assert clone.cat("/etc/hostname") == "the copy\n"
        assert original.read_file("/home/bob/notes.txt") == home_spec.files["/bob/notes.txt"]
        assert clone.cat("/home/bob/notes.txt") == "the copy's notes\n"


def test_same_pv_twice_in_one_handle_is_refused(
    gpt_lvm_guest: Guest, writable_copy: CopyFactory
) -> None:
    copy = writable_copy(gpt_lvm_guest)
    with VMCraft() as g:
        g.add_drive_opts(str(gpt_lvm_guest.path), format="raw")
        g.add_drive_opts(str(copy.path), format="raw")
        with pytest.raises(VolumeError, match="is on both"):
            g.launch()
    # The failed launch released its loop devices (the kernel may take a moment when
    # something else held the device open while it was detached).
    deadline = time.monotonic() + 2
    while loops_of(gpt_lvm_guest.path) + loops_of(copy.path) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert loops_of(gpt_lvm_guest.path) + loops_of(copy.path) == []


def test_same_vg_name_twice_in_one_handle_is_refused(tmp_path: Path) -> None:
    """Two VGs named vg0 (other PVs, other VG uuids) cannot share /dev/vg0/*.

    lvm2 refuses such a pair as well until one is renamed; the handle refuses to launch
    rather than let one /dev/vg0/root hide the other. Separate handles work.
    """
    first = lvm_disk(
        tmp_path / "first.raw", "vg0", "vmcrft-pv01-0000-0000-0000-0000-dup001", b"1\n"
    )
    second = lvm_disk(
        tmp_path / "second.raw", "vg0", "vmcrft-pv02-0000-0000-0000-0000-dup002", b"2\n"
    )

    with VMCraft() as g:
        g.add_drive_opts(str(first.path), format="raw")
        g.add_drive_opts(str(second.path), format="raw")
        with pytest.raises(VolumeError, match="two volume groups are named vg0"):
            g.launch()

    with opened(first) as g1, opened(second) as g2:
        for g in (g1, g2):
            assert g.lvs() == ["/dev/vg0/root"]
            assert g.pvs() == ["/dev/sda1"]
            g.mount_ro("/dev/vg0/root", "/")
        assert g1.cat("/etc/hostname") == "1\n"
        assert g2.cat("/etc/hostname") == "2\n"


# ---------------------------------------------------------------- caches


def blkid_stats(g: VMCraft) -> dict[str, int]:
    stats: dict[str, int] = g.get_cache_stats()["blkid"]
    return stats


def partition_stats(g: VMCraft) -> dict[str, int]:
    stats: dict[str, int] = g.get_cache_stats()["partitions"]
    return stats


def delta(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    return {key: after[key] - before[key] for key in ("hits", "misses", "invalidations")}


def test_blkid_second_call_is_a_hit(mbr_guest: Guest) -> None:
    with opened(mbr_guest, blkid_ttl_s=60, partition_ttl_s=30) as g:
        stats = g.get_cache_stats()
        assert stats["blkid"]["ttl_s"] == 60
        assert stats["partitions"]["ttl_s"] == 30

        before = blkid_stats(g)
        first = g.blkid("/dev/sda1")
        middle = blkid_stats(g)
        second = g.blkid("/dev/sda1")
        assert delta(middle, before) == {"hits": 0, "misses": 1, "invalidations": 0}
        assert delta(blkid_stats(g), middle) == {"hits": 1, "misses": 0, "invalidations": 0}
        assert first == second

        # A caller changing the returned dict does not change the cache.
        first["LABEL"] = "tampered"
        assert g.vfs_label("/dev/sda1") == "boot"


def test_blkid_entries_expire(mbr_guest: Guest) -> None:
    with opened(mbr_guest, blkid_ttl_s=0.05, partition_ttl_s=0.05) as g:
        g.blkid("/dev/sda2")
        g.list_partitions()
        before_blkid, before_parts = blkid_stats(g), partition_stats(g)
        time.sleep(0.1)
        assert g.vfs_label("/dev/sda2") == "root"
        assert g.list_partitions() == list(mbr_guest.partitions)
        assert delta(blkid_stats(g), before_blkid)["misses"] == 1
        assert delta(partition_stats(g), before_parts)["misses"] == 1


def test_use_cache_false_forces_a_miss(mbr_guest: Guest) -> None:
    with opened(mbr_guest) as g:
        g.blkid("/dev/sda3")
        g.list_partitions()
        before_blkid, before_parts = blkid_stats(g), partition_stats(g)
        assert g.blkid("/dev/sda3", use_cache=False)["LABEL"] == "ESP"
        assert g.list_partitions(use_cache=False) == list(mbr_guest.partitions)
        assert delta(blkid_stats(g), before_blkid)["misses"] == 1
        assert delta(partition_stats(g), before_parts)["misses"] == 1
        # The fresh result replaced the old one: the next call is a hit.
        before = blkid_stats(g)
        g.blkid("/dev/sda3")
        assert delta(blkid_stats(g), before) == {"hits": 1, "misses": 0, "invalidations": 0}


def test_invalidating_one_device_keeps_the_others(mbr_guest: Guest, gpt_lvm_guest: Guest) -> None:
    with opened(mbr_guest, gpt_lvm_guest) as g:
        warm = ["/dev/sda", "/dev/sda1", "/dev/sda2", "/dev/sdb1", "/dev/vg0/root"]
        for device in warm:
            g.blkid(device)
        g.list_partitions()

        before = blkid_stats(g)
        g.invalidate_partition_cache("/dev/sda1")
        assert delta(blkid_stats(g), before)["invalidations"] == 1
        for device in warm:
            g.blkid(device)
        assert delta(blkid_stats(g), before)["misses"] == 1  # sda1 only

        # The other drive's partition listing stayed cached.
        before = partition_stats(g)
        g.list_partitions()
        assert delta(partition_stats(g), before)["hits"] >= 1

        # A disk drops itself and its partitions (8 nodes of sda), nothing of sdb or the LV.
        before = blkid_stats(g)
        g.invalidate_partition_cache("/dev/sda")
        assert delta(blkid_stats(g), before)["invalidations"] == 3  # sda, sda1, sda2 cached
        for device in warm:
            g.blkid(device)
        assert delta(blkid_stats(g), before)["misses"] == 3
        before = partition_stats(g)
        g.list_partitions()
        assert delta(partition_stats(g), before) == {"hits": 1, "misses": 1, "invalidations": 0}

        # None: everything.
        g.invalidate_partition_cache()
        before = blkid_stats(g)
        for device in warm:
            g.blkid(device)
        assert delta(blkid_stats(g), before)["misses"] == len(warm)

        with pytest.raises(DeviceNotFoundError):
            g.invalidate_partition_cache("/dev/sdz9")


def test_invalidating_by_host_alias(mbr_guest: Guest) -> None:
    with opened(mbr_guest) as g:
        disk = host_disk(g, mbr_guest)
        g.blkid("/dev/sda5")
        g.blkid("/dev/sda7")
        before = blkid_stats(g)
        g.invalidate_partition_cache(f"{disk}p5")
        g.blkid("/dev/sda5")
        g.blkid("/dev/sda7")
        assert delta(blkid_stats(g), before) == {"hits": 1, "misses": 1, "invalidations": 1}


def test_writing_files_keeps_blkid_valid(mbr_guest: Guest, writable_copy: CopyFactory) -> None:
    """Nothing VMCraft does yet changes a device's signature (no mkfs, no relabel, no
    repartitioning), so file writes keep the cache; its tags are still what blkid sees."""
    copy = writable_copy(mbr_guest)
    with opened(copy, readonly=False) as g:
        disk = host_disk(g, copy)
        cached = g.blkid("/dev/sda1")
        g.mount("/dev/sda2", "/")
        g.mount("/dev/sda1", "/boot")
        g.write("/boot/grub/extra.cfg", "set timeout=1\n")
        g.mkdir_p("/boot/new/dir")

        before = blkid_stats(g)
        assert g.blkid("/dev/sda1") == cached
        assert delta(blkid_stats(g), before) == {"hits": 1, "misses": 0, "invalidations": 0}
        assert identity(host_blkid(f"{disk}p1")) == identity(cached)


def test_blkid_of_a_partition_node_on_the_host(mbr_guest: Guest) -> None:
    """The same tags again through util-linux's own partition offsets: no loop device."""
    for device, (start, size) in mbr_guest.partitions.items():
        if device not in mbr_guest.filesystems:
            continue
        argv = ["blkid", "--probe", "--output", "export", "--offset", str(start)]
        argv += ["--size", str(size), str(mbr_guest.path)]
        output = subprocess.run(argv, capture_output=True, text=True, check=True).stdout
        tags = dict(line.split("=", 1) for line in output.splitlines() if "=" in line)
        assert identity(tags) == expected_tags(mbr_guest, device)


# ---------------------------------------------------------------- btrfs subvolumes


def btrfs_with_subvolumes(image: Path) -> None:
    """A whole-disk btrfs with subvolumes ``root`` (made the default), ``home`` and
    ``root/machines`` (nested), as Fedora and systemd lay them out."""
    guests.run(["truncate", "--size", str(128 * MiB), str(image)])
    with guests.loop_device(image) as device:
        guests.run(["mkfs.btrfs", "-q", "-f", "-L", "fedora", device])
        with guests.mounted(device, image.parent / "top") as top:
            for path in ("root", "home", "root/machines"):
                guests.run(["btrfs", "-q", "subvolume", "create", str(top / path)])
            guests.run(["btrfs", "subvolume", "set-default", str(top / "root")])


def test_btrfs_subvolumes_are_filesystems_as_in_libguestfs(tmp_path: Path) -> None:
    skip_unless_tools("mkfs.btrfs", "btrfs")
    image = tmp_path / "btrfs.raw"
    btrfs_with_subvolumes(image)
    before = hashlib.sha256(image.read_bytes()).hexdigest()

    with VMCraft() as g:
        g.add_drive_opts(str(image), format="raw")
        g.launch()

        # The default subvolume (root) is the device itself; the others follow it.
        assert g.list_filesystems() == {
            "/dev/sda": "btrfs",
            "btrfsvol:/dev/sda/home": "btrfs",
            "btrfsvol:/dev/sda/root/machines": "btrfs",
        }
        assert g.vfs_type("btrfsvol:/dev/sda/home") == "btrfs"
        assert g.vfs_label("btrfsvol:/dev/sda/root/machines") == "fedora"
        g.mount_ro("/dev/sda", "/")
        assert g.ls("/") == ["machines"]  # the default subvolume, root, with its nested one
        g.mount_ro("btrfsvol:/dev/sda/root", "/machines")
        assert g.ls("/machines") == ["machines"]  # root again, seen through its name
        g.umount_all()

        g.invalidate_partition_cache("/dev/sda")
        assert "btrfsvol:/dev/sda/home" in g.list_filesystems()
        assert g.get_cache_stats()["blkid"]["misses"] >= 1

    assert hashlib.sha256(image.read_bytes()).hexdigest() == before
