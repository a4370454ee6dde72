"""Disk images holding planted operating systems, for the inspection tests.

Each builder makes a sparse raw image with the host tools a user has (sfdisk, mke2fs,
LVM, mkswap, mkfs.btrfs) and plants the files a distribution would have: release files,
a hostname, an fstab, an ELF header as ``/bin/ls``. No real OS is installed. Filesystems
go straight into the image at their byte offsets (``mke2fs -E offset=``); LVs are made
without device-mapper, so their filesystems go in at the LV's offset inside the PV.

The values a test expects are the recipe's own (labels, UUIDs, the release strings) and
libguestfs's documented answers for them, never values read back from the image.

Host tools: sfdisk, mke2fs, losetup, pvcreate, vgcreate, lvcreate, pvs, vgs, lvs, mkswap,
mkfs.btrfs, btrfs, mount, umount, qemu-img.
"""

from __future__ import annotations

import dataclasses
import struct
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import guests
from guests import LVM_CONFIG, SECTOR_SIZE, FsSpec, MiB
from inspect_support import tiny_png
from planted_guests import X86_64_PROGRAM

LVM_TYPE = "8e"
LINUX_TYPE = "83"
GPT_LINUX = guests.GPT_LINUX
GPT_SWAP = "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"
MBR_DISK_ID = "0x5eed0004"
EXTENT_SIZE = 4 * MiB


@dataclass(frozen=True)
class Part:
    """One partition: number, byte range, type, and for GPT a GUID and a name."""

    number: int
    start: int
    size: int
    type: str
    uuid: str | None = None
    name: str | None = None

    @property
    def device(self) -> str:
        return f"/dev/sda{self.number}"

    def script_line(self) -> str:
        fields = [f"start={self.start // SECTOR_SIZE}", f"size={self.size // SECTOR_SIZE}"]
        fields += [f"type={self.type}"] + ([f"uuid={self.uuid}"] if self.uuid else [])
        return ", ".join(fields + ([f'name="{self.name}"'] if self.name else []))


def new_disk(path: Path, label: str, parts: Sequence[Part]) -> Path:
    """A sparse image a MiB longer than its last partition, with this partition table."""
    path.parent.mkdir(parents=True, exist_ok=True)
    end = max(p.start + p.size for p in parts) + MiB
    guests.run(["truncate", "--size", str(end), str(path)])

    lines = [f"label: {label}", "unit: sectors"]
    if label == "dos":
        lines.append(f"label-id: {MBR_DISK_ID}")
    lines += [p.script_line() for p in parts]
    script = "\n".join(lines).encode() + b"\n"
    guests.run(["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(path)], input=script)
    return path


def make_ext(image: Path, spec: FsSpec, offset: int, size: int, scratch: Path) -> None:
    """mke2fs ``spec`` (ext2/3/4) into the image's bytes at ``offset``, seeded with its files."""
    seed = scratch / ("seed" + spec.device.replace("/", "-"))
    seed.mkdir(parents=True)
    guests.populate(seed, spec)
    argv = ["mke2fs", "-t", spec.fstype, "-F", "-q", "-L", spec.label or "", "-U", spec.uuid or ""]
    argv += ["-d", str(seed), "-E", f"offset={offset}", str(image), f"{size // 1024}k"]
    guests.run(argv)


def make_swap(image: Path, spec: FsSpec, offset: int, size: int) -> None:
    with guests.loop_device(image, offset=offset, size=size) as device:
        guests.run(["mkswap", "-L", spec.label or "", "-U", spec.uuid or "", device])


def make_btrfs(
    image: Path, top: FsSpec, offset: int, size: int, subvolumes: dict[str, FsSpec], scratch: Path
) -> None:
    """A btrfs whose files live in subvolumes at its top, as fstab's ``subvol=`` finds them."""
    with guests.loop_device(image, offset=offset, size=size) as device:
        argv = ["mkfs.btrfs", "-q", "-f", "-L", top.label or "", "-U", top.uuid or "", device]
        guests.run(argv)
        with guests.mounted(device, scratch / "btrfs") as mounted:
            for name, spec in subvolumes.items():
                guests.run(["btrfs", "-q", "subvolume", "create", str(mounted / name)])
                guests.populate(mounted / name, spec)


def make_volume_group(
    image: Path, pv: Part, vg: str, volumes: Sequence[tuple[str, int]]
) -> dict[str, tuple[int, int]]:
    """An LVM PV on ``pv`` with linear LVs; returns each LV's (offset in the image, size)."""
    with guests.loop_device(image, offset=pv.start, size=pv.size) as device:
        _lvm(["pvcreate", "-q", device], device)
        _lvm(["vgcreate", "-q", "-s", f"{EXTENT_SIZE}b", vg, device], device)
        for name, size in volumes:
            _lvm(["lvcreate", "-q", "-an", "-Zn", "-Wn", "-n", name, "-L", f"{size}b", vg], device)
        extents = guests.logical_volume_extents(device, vg)
    return {name: (pv.start + offset, size) for name, (offset, size) in extents.items()}


def _lvm(argv: list[str], pv: str) -> None:
    # NB: no device-mapper: activation off; --devices keeps LVM to this PV alone.
    full = [argv[0], "--config", LVM_CONFIG, "--devices", pv, *argv[1:]]
    guests.run(full, env={"LVM_SUPPRESS_FD_WARNINGS": "1"})


# ---------------------------------------------------------------- (a) phony Debian

DEBIAN_FSTAB = b"""\
# /etc/fstab: static file system information.
#
# <file system>        <mount point> <type> <options>  <dump> <pass>
proc                   /proc         proc   defaults   0      0
LABEL=BOOT             /boot         ext2   defaults   0      2
/dev/debian/root       /             ext4   defaults   0      1
/dev/mapper/debian-usr /usr          ext4   defaults   0      2
/dev/debian/var        /var          ext4   defaults   0      2
/dev/debian/home       /home         ext4   defaults   0      2
tmpfs                  /tmp          tmpfs  mode=1777  0      0
"""
DEBIAN_ICON = tiny_png(48, 48)
DEBIAN_DPKG_STATUS = b"""\
Package: hello
Status: install ok installed
Architecture: amd64
Version: 2.10-3
Description: example package based on GNU hello

"""
DEBIAN_PARTS = (
    Part(1, 1 * MiB, 32 * MiB, LINUX_TYPE),
    Part(2, 33 * MiB, 100 * MiB, LVM_TYPE),
)
DEBIAN_VOLUMES = (("root", 32 * MiB), ("usr", 16 * MiB), ("var", 16 * MiB), ("home", 16 * MiB))


def _debian_specs() -> dict[str, FsSpec]:
    def lv(name: str, number: int, **content: Any) -> FsSpec:
        fs_uuid = f"5eed0001-0000-4000-8000-0000000000{number:02x}"
        return FsSpec(f"/dev/debian/{name}", "ext4", name, fs_uuid, **content)

    root_files = {
        "/etc/debian_version": b"5.0.1\n",
        "/etc/hostname": b"debian.invalid\n",
        "/etc/fstab": DEBIAN_FSTAB,
        "/bin/ls": X86_64_PROGRAM,
    }
    boot_uuid = "5eed0001-0000-4000-8000-000000000001"
    return {
        "/dev/sda1": FsSpec(
            "/dev/sda1", "ext2", "BOOT", boot_uuid, files={"/grub/grub.conf": b"default 0\n"}
        ),
        "/dev/debian/root": lv(
            "root", 2, files=root_files, directories=("/boot", "/usr", "/var", "/home", "/tmp")
        ),
        "/dev/debian/usr": lv(
            "usr",
            3,
            files={"/share/pixmaps/debian-logo.png": DEBIAN_ICON},
            directories=("/bin", "/local"),
        ),
        "/dev/debian/var": lv(
            "var",
            4,
            files={"/lib/dpkg/status": DEBIAN_DPKG_STATUS},
            directories=("/log", "/run", "/spool"),
        ),
        "/dev/debian/home": lv("home", 5, files={"/alice/notes.txt": b"hi\n"}),
    }


def build_phony_debian(workdir: Path) -> guests.Guest:
    """libguestfs's phony Debian: /boot on sda1, VG ``debian`` with root, usr, var, home."""
    image = new_disk(workdir / "debian.raw", "dos", DEBIAN_PARTS)
    specs = _debian_specs()
    scratch = workdir / "scratch-debian"
    boot = DEBIAN_PARTS[0]
    make_ext(image, specs["/dev/sda1"], boot.start, boot.size, scratch)

    extents = make_volume_group(image, DEBIAN_PARTS[1], "debian", DEBIAN_VOLUMES)
    for name, (offset, size) in extents.items():
        make_ext(image, specs[f"/dev/debian/{name}"], offset, size, scratch)

    mountpoints = {"/": "/dev/debian/root", "/boot": "/dev/sda1", "/usr": "/dev/debian/usr"}
    mountpoints |= {"/var": "/dev/debian/var", "/home": "/dev/debian/home"}
    guest = guest_manifest(image, "dos", DEBIAN_PARTS, specs, mountpoints)
    return dataclasses.replace(guest, volume_groups={"debian": [n for n, _ in DEBIAN_VOLUMES]})


# ---------------------------------------------------------------- (c) GPT, tags and vdX

GPT_UUIDS = {n: f"5eed0003-0000-4000-8000-0000000000{n:02x}" for n in range(1, 7)}
GPT_PART_UUIDS = {n: f"5eed0003-5eed-4000-8000-0000000000{n:02x}" for n in range(1, 7)}
GPT_PARTS = (
    Part(1, 1 * MiB, 32 * MiB, GPT_LINUX, GPT_PART_UUIDS[1], "boot"),
    Part(2, 33 * MiB, 64 * MiB, GPT_LINUX, GPT_PART_UUIDS[2], "root"),
    Part(3, 97 * MiB, 32 * MiB, GPT_LINUX, GPT_PART_UUIDS[3], "home"),
    Part(4, 129 * MiB, 32 * MiB, GPT_LINUX, GPT_PART_UUIDS[4], "srv"),
    Part(5, 161 * MiB, 8 * MiB, GPT_SWAP, GPT_PART_UUIDS[5], "swap"),
    Part(6, 169 * MiB, 128 * MiB, GPT_LINUX, GPT_PART_UUIDS[6], "data part"),
)
GPT_FSTAB = f"""\
# Written by a hypervisor that called the disk vda.
PARTUUID={GPT_PART_UUIDS[2].upper()} / ext4 defaults 0 1

UUID={GPT_UUIDS[1]} /boot ext4 defaults 0 2
LABEL=home\\040fs //home/ ext4 defaults,noatime 0 2
/dev/vda4 /srv ext4 defaults 0 2
/dev/vda5 none swap sw 0 0
/dev/disk/by-partlabel/data\\x20part /data btrfs subvol=@data,compress=zstd 0 0
UUID=00000000-dead-4000-8000-000000000000 /mnt/gone ext4 defaults,nofail 0 2
tmpfs /tmp tmpfs defaults 0 0
/srv/share /mnt/share none bind 0 0
nfs.example.com:/export /mnt/nfs nfs defaults 0 0
/dev/cdrom /media/cdrom iso9660 noauto,ro 0 0
""".encode()
FEDORA_OS_RELEASE = b"""\
NAME="Fedora Linux"
VERSION="39 (Server Edition)"
ID=fedora
VERSION_ID=39
PRETTY_NAME="Fedora Linux 39 (Server Edition)"
"""
AARCH64_PROGRAM = X86_64_PROGRAM[:18] + struct.pack("<H", 183) + X86_64_PROGRAM[20:]


def _gpt_specs() -> dict[str, FsSpec]:
    def ext4(n: int, label: str, **content: Any) -> FsSpec:
        return FsSpec(f"/dev/sda{n}", "ext4", label, GPT_UUIDS[n], **content)

    root_files = {
        "/etc/fstab": GPT_FSTAB,
        "/etc/hostname": b"gpt.invalid\n",
        "/usr/lib/os-release": FEDORA_OS_RELEASE,
        "/usr/bin/bash": AARCH64_PROGRAM,
        "/usr/bin/dnf": b"#!/usr/bin/python3\n",
    }
    return {
        "/dev/sda1": ext4(1, "boot", files={"/loader/entries/fedora.conf": b"title Fedora\n"}),
        "/dev/sda2": ext4(
            2,
            "root",
            files=root_files,
            symlinks={"/etc/os-release": "../usr/lib/os-release", "/bin": "usr/bin"},
            directories=("/boot", "/home", "/srv", "/data", "/tmp", "/mnt"),
        ),
        "/dev/sda3": ext4(3, "home fs", files={"/bob/notes.txt": b"bob\n"}),
        "/dev/sda4": ext4(4, "srv", files={"/www/index.html": b"<p>hello</p>\n"}),
        "/dev/sda5": FsSpec("/dev/sda5", "swap", "swap", GPT_UUIDS[5]),
        # NB: mkfs.btrfs 6.2 refuses a UUID the kernel knows from another session's image.
        "/dev/sda6": FsSpec(
            "/dev/sda6", "btrfs", "data", str(uuid.uuid4()), files={"/report.txt": b"data\n"}
        ),
    }


def build_gpt_tags(workdir: Path) -> guests.Guest:
    """GPT; fstab names its filesystems by PARTUUID, UUID, LABEL, vdX and by-partlabel."""
    image = new_disk(workdir / "gpt-tags.raw", "gpt", GPT_PARTS)
    specs = _gpt_specs()
    scratch = workdir / "scratch-gpt"
    for part in GPT_PARTS[:4]:
        make_ext(image, specs[part.device], part.start, part.size, scratch)
    make_swap(image, specs["/dev/sda5"], GPT_PARTS[4].start, GPT_PARTS[4].size)
    data = specs["/dev/sda6"]
    make_btrfs(image, data, GPT_PARTS[5].start, GPT_PARTS[5].size, {"@data": data}, scratch)
    mountpoints = {"/": "/dev/sda2", "/boot": "/dev/sda1", "/home": "/dev/sda3"}
    mountpoints |= {"/srv": "/dev/sda4", "/data": "btrfsvol:/dev/sda6/@data"}
    return guest_manifest(image, "gpt", GPT_PARTS, specs, mountpoints)


def guest_manifest(
    image: Path, table: str, parts: Sequence[Part], specs: dict[str, FsSpec], mounts: dict[str, str]
) -> guests.Guest:
    """The manifest of a raw image from its recipe: partitions, filesystems, mountpoints."""
    return guests.Guest(
        path=image,
        format="raw",
        table=table,
        partitions={p.device: (p.start, p.size) for p in parts},
        filesystems=specs,
        volume_groups={},
        mountpoints=mounts,
        size=image.stat().st_size,
    )


# ---------------------------------------------------------------- (b, d, e, f) MBR disks

UBUNTU_LSB_RELEASE = b"""\
DISTRIB_ID=Ubuntu
DISTRIB_RELEASE=10.10
DISTRIB_CODENAME=maverick
DISTRIB_DESCRIPTION="Ubuntu 10.10 (Phony Pharaoh)"
"""
ALPINE_OS_RELEASE = b"""\
NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
"""
MBR_UUIDS = {n: f"5eed0005-0000-4000-8000-0000000000{n:02x}" for n in range(1, 4)}
CORRUPT_FSTAB = (
    b"\x00\xff\xfe garbage \x01\x02\n"
    b"LABEL=only-two-fields /\n"
    b"/dev/sda1 / ext4 defaults 0 1\n"
    b"this line has far too many fields to be an entry of fstab\n"
    + f"UUID={MBR_UUIDS[3]} /srv ext4 defaults 0 2\n".encode()
)
MBR_PARTS = tuple(Part(n, n * 33 * MiB - 32 * MiB, 32 * MiB, LINUX_TYPE) for n in (1, 2, 3))


def _root_spec(n: int, label: str, files: dict[str, bytes]) -> FsSpec:
    base = {"/bin/ls": X86_64_PROGRAM}
    return FsSpec(f"/dev/sda{n}", "ext4", label, MBR_UUIDS[n], files=base | files)


def _mbr_disk(workdir: Path, name: str, specs: dict[str, FsSpec]) -> guests.Guest:
    parts = MBR_PARTS[: len(specs)]
    image = new_disk(workdir / f"{name}.raw", "dos", parts)
    for part in parts:
        spec = specs[part.device]
        if spec.fstype == "swap":
            make_swap(image, spec, part.start, part.size)
        else:
            make_ext(image, spec, part.start, part.size, workdir / f"scratch-{name}")
    return guest_manifest(image, "dos", parts, specs, {})


def build_dual_boot(workdir: Path) -> guests.Guest:
    """Two roots: libguestfs's phony Ubuntu on sda1, an Alpine on sda2."""
    ubuntu = {
        "/etc/lsb-release": UBUNTU_LSB_RELEASE,
        "/etc/debian_version": b"squeeze/sid\n",
        "/etc/hostname": b"ubuntu.invalid\n",
        "/etc/fstab": b"/dev/sda1 / ext4 errors=remount-ro 0 1\n",
    }
    alpine = {
        "/etc/os-release": ALPINE_OS_RELEASE,
        "/etc/alpine-release": b"3.19.1\n",
        "/etc/hostname": b"alpine.invalid\n",
        "/etc/fstab": f"UUID={MBR_UUIDS[2]} / ext4 rw,relatime 0 1\n".encode(),
    }
    specs = {
        "/dev/sda1": _root_spec(1, "ubuntu", ubuntu),
        "/dev/sda2": _root_spec(2, "alp", alpine),
    }
    return _mbr_disk(workdir, "dual-boot", specs)


def build_no_os(workdir: Path) -> guests.Guest:
    """Data and swap only: nothing an inspection could call an operating system."""
    data = FsSpec("/dev/sda1", "ext4", "data", MBR_UUIDS[1], files={"/etc/notes": b"no os\n"})
    swap = FsSpec("/dev/sda2", "swap", "swap", MBR_UUIDS[2])
    return _mbr_disk(workdir, "no-os", {"/dev/sda1": data, "/dev/sda2": swap})


def build_corrupt(workdir: Path) -> guests.Guest:
    """sda1: a root whose fstab is half garbage; sda2: a root with garbage for fstab and
    os-release; sda3: the data filesystem sda1's one good non-root line names."""
    noise = bytes(range(256)) * 4
    specs = {
        "/dev/sda1": _root_spec(1, "root1", {"/etc/fstab": CORRUPT_FSTAB}),
        "/dev/sda2": _root_spec(2, "root2", {"/etc/fstab": noise, "/etc/os-release": noise}),
        "/dev/sda3": FsSpec("/dev/sda3", "ext4", "srv", MBR_UUIDS[3], files={"/x": b"x\n"}),
    }
    return _mbr_disk(workdir, "corrupt", specs)


def build_btrfs_subvolumes(workdir: Path) -> guests.Guest:
    """Fedora's layout: one btrfs on sda1 whose subvolumes ``root`` and ``home`` are / and
    /home; the filesystem's top holds no OS."""
    fs_uuid = str(uuid.uuid4())  # NB: see _gpt_specs on fixed btrfs UUIDs
    fstab = f"UUID={fs_uuid} / btrfs subvol=root,compress=zstd:1 0 0\n"
    fstab += f"UUID={fs_uuid} /home btrfs subvol=/home,compress=zstd:1 0 0\n"
    root_files = {"/etc/fstab": fstab.encode(), "/etc/os-release": FEDORA_OS_RELEASE}
    root_files |= {"/etc/hostname": b"btrfs.invalid\n", "/bin/ls": X86_64_PROGRAM}
    subvolumes = {
        "root": FsSpec("/dev/sda1", "btrfs", "fedora", fs_uuid, root_files, directories=("/home",)),
        "home": FsSpec("/dev/sda1", "btrfs", "fedora", fs_uuid, files={"/carol/x": b"c\n"}),
    }
    part = Part(1, 1 * MiB, 128 * MiB, LINUX_TYPE)
    image = new_disk(workdir / "btrfs.raw", "dos", (part,))
    top = FsSpec("/dev/sda1", "btrfs", "fedora", fs_uuid)
    make_btrfs(image, top, part.start, part.size, subvolumes, workdir / "scratch-btrfs")
    # libguestfs names a subvolume as fstab spells it, leading slash and all.
    mountpoints = {"/": "btrfsvol:/dev/sda1/root", "/home": "btrfsvol:/dev/sda1//home"}
    return guest_manifest(image, "dos", (part,), {"/dev/sda1": top}, mountpoints)
