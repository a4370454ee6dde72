"""Disk images laid out as four distributions install themselves, for end-to-end inspection.

- RHEL 9.2: GPT with a BIOS boot partition, xfs ``/boot`` and xfs ``/`` named by UUID in
  fstab, ``/bin -> usr/bin``, an SQLite rpmdb.
- CentOS 7: MBR, xfs ``/boot``, VG ``centos`` with an xfs root and swap named by
  ``/dev/mapper`` paths, the hostname only in ``/etc/sysconfig/network``, a Berkeley DB
  ``Packages``.
- Arch Linux: GPT, ext4 root and swap as genfstab writes them, a pacman local database.
- Alpine 3.19: MBR as setup-disk lays it out (ext4 ``/boot``, swap, ext4 ``/``), an apk
  database, and an aarch64 busybox that ``/bin/ls`` links to.

No OS is installed: each root holds the files inspection reads, with the contents those
distributions ship (release files, fstab, hostname) and ELF headers for programs. ext4 is
seeded by ``mke2fs -d``; xfs, which mkfs.xfs cannot seed from a folder, is filled through
a mount of the builder's own loop device. The RPM databases are made by rpm itself and
Berkeley DB's ``db_load`` (rpmdb_builder.py) and handed to the builders as bytes; the
pacman and apk databases are written here in their documented formats (alpm-db(5), apk's
installed database). Expected values are the recipe's own, never read back from the image.

Host tools: sfdisk, mke2fs, mkfs.xfs, mkswap, losetup, mount, umount, pvcreate, vgcreate,
lvcreate, pvs, vgs, lvs.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import guests
from guests import FsSpec, Guest, MiB
from inspect_guests import (
    AARCH64_PROGRAM,
    GPT_LINUX,
    GPT_SWAP,
    LINUX_TYPE,
    LVM_TYPE,
    Part,
    guest_manifest,
    make_ext,
    make_swap,
    make_volume_group,
    new_disk,
)
from inspect_support import tiny_png
from planted_guests import X86_64_PROGRAM

_DISK_TOOLS = ("sfdisk", "mkswap", "losetup")
_XFS_TOOLS = ("mkfs.xfs", "mount", "umount")
_LVM_TOOLS = ("pvcreate", "vgcreate", "lvcreate", "pvs", "vgs", "lvs")
REQUIRED_TOOLS = {
    "build_rhel9": (*_DISK_TOOLS, *_XFS_TOOLS),
    "build_centos7": (*_DISK_TOOLS, *_XFS_TOOLS, *_LVM_TOOLS),
    "build_archlinux": (*_DISK_TOOLS, "mke2fs"),
    "build_alpine": (*_DISK_TOOLS, "mke2fs"),
}
"""Host tools each builder runs, for the fixtures to skip on."""
GPT_BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"
XFS_MIN_SIZE = 300 * MiB  # xfsprogs 6.1 refuses anything smaller
SWAP_TYPE = "82"


def make_xfs(image: Path, spec: FsSpec, offset: int, size: int, scratch: Path) -> None:
    """mkfs.xfs ``spec`` into the image's bytes at ``offset``, then mount it to plant files.

    NB: mkfs.xfs 6.1 cannot seed a filesystem from a folder, so the files go in through
    the kernel's driver; ``nouuid`` lets another session mount its copy at the same time.
    """
    mountpoint = scratch / ("mnt" + spec.device.replace("/", "-"))
    with guests.loop_device(image, offset=offset, size=size) as device:
        argv = ["mkfs.xfs", "-q", "-f", "-L", spec.label or "", "-m", f"uuid={spec.uuid}"]
        guests.run([*argv, device])

        with guests.mounted(device, mountpoint, "nouuid") as root:
            guests.populate(root, spec)


def _uuid(guest: int, number: int) -> str:
    return f"5eed0010-{guest:04x}-4000-8000-0000000000{number:02x}"


USRMERGE_LINKS = {"/bin": "usr/bin", "/sbin": "usr/sbin", "/lib": "usr/lib"}
"""The top-level links of a merged /usr (Fedora 17 and RHEL 7 on, Arch since 2013)."""


# ---------------------------------------------------------------- RHEL 9.2

RHEL9_OS_RELEASE = b"""\
NAME="Red Hat Enterprise Linux"
VERSION="9.2 (Plow)"
ID="rhel"
ID_LIKE="fedora"
VERSION_ID="9.2"
PLATFORM_ID="platform:el9"
PRETTY_NAME="Red Hat Enterprise Linux 9.2 (Plow)"
ANSI_COLOR="0;31"
LOGO="fedora-logo-icon"
CPE_NAME="cpe:/o:redhat:enterprise_linux:9::baseos"
HOME_URL="https://www.redhat.com/"
REDHAT_SUPPORT_PRODUCT="Red Hat Enterprise Linux"
REDHAT_SUPPORT_PRODUCT_VERSION="9.2"
"""
RHEL9_UUIDS = {n: _uuid(9, n) for n in (2, 3)}
RHEL9_FSTAB = f"""\

#
# /etc/fstab
# Created by anaconda on Tue Apr 25 09:31:02 2023
#
# Accessible filesystems, by reference, are maintained under '/dev/disk/'.
# See man pages fstab(5), findfs(8), mount(8) and/or blkid(8) for more info.
#
# After editing this file, run 'systemctl daemon-reload' to update systemd
# units generated from this file.
#
UUID={RHEL9_UUIDS[3]} /                       xfs     defaults        0 0
UUID={RHEL9_UUIDS[2]} /boot                   xfs     defaults        0 0
""".encode()
RHEL9_PARTS = (
    Part(1, 1 * MiB, 1 * MiB, GPT_BIOS_BOOT, name="biosboot"),
    Part(2, 2 * MiB, XFS_MIN_SIZE, GPT_LINUX),
    Part(3, 2 * MiB + XFS_MIN_SIZE, XFS_MIN_SIZE, GPT_LINUX),
)
RHEL9_KERNEL = "5.14.0-284.11.1.el9_2.x86_64"
RHEL_LOGO = "/usr/share/icons/hicolor/96x96/apps/system-logo-icon.png"  # libguestfs, RHEL ≥ 7
RHEL9_ICON = tiny_png(64, 64)


def _rhel9_specs(rpmdb_sqlite: bytes) -> dict[str, FsSpec]:
    root_files = {
        "/usr/lib/os-release": RHEL9_OS_RELEASE,
        "/etc/redhat-release": b"Red Hat Enterprise Linux release 9.2 (Plow)\n",
        "/etc/hostname": b"rhel9.invalid\n",
        "/etc/fstab": RHEL9_FSTAB,
        "/usr/bin/ls": X86_64_PROGRAM,
        "/usr/bin/dnf-3": b"#!/usr/bin/python3\n",
        "/var/lib/rpm/rpmdb.sqlite": rpmdb_sqlite,
        RHEL_LOGO: RHEL9_ICON,
    }
    links = USRMERGE_LINKS | {
        "/etc/os-release": "../usr/lib/os-release",
        "/etc/system-release": "redhat-release",
        "/usr/bin/dnf": "dnf-3",
    }
    entry = f"/loader/entries/0123456789abcdef0123456789abcdef-{RHEL9_KERNEL}.conf"
    title = f"title Red Hat Enterprise Linux ({RHEL9_KERNEL}) 9.2 (Plow)\n"
    return {
        "/dev/sda2": FsSpec(
            "/dev/sda2",
            "xfs",
            None,
            RHEL9_UUIDS[2],
            files={entry: title.encode(), f"/vmlinuz-{RHEL9_KERNEL}": b"-"},
        ),
        "/dev/sda3": FsSpec(
            "/dev/sda3",
            "xfs",
            None,
            RHEL9_UUIDS[3],
            files=root_files,
            symlinks=links,
            directories=("/boot", "/home", "/tmp"),
        ),
    }


def build_rhel9(workdir: Path, rpmdb_sqlite: bytes) -> Guest:
    """RHEL 9.2 on plain GPT partitions, as a cloud image has it (no LVM, no ESP);
    ``rpmdb_sqlite`` is planted as ``/var/lib/rpm/rpmdb.sqlite``."""
    image = new_disk(workdir / "rhel9.raw", "gpt", RHEL9_PARTS)
    specs = _rhel9_specs(rpmdb_sqlite)
    for part in RHEL9_PARTS[1:]:
        make_xfs(image, specs[part.device], part.start, part.size, workdir / "scratch")
    mountpoints = {"/": "/dev/sda3", "/boot": "/dev/sda2"}
    return guest_manifest(image, "gpt", RHEL9_PARTS, specs, mountpoints)


# ---------------------------------------------------------------- CentOS 7

CENTOS7_OS_RELEASE = b"""\
NAME="CentOS Linux"
VERSION="7 (Core)"
ID="centos"
ID_LIKE="rhel fedora"
VERSION_ID="7"
PRETTY_NAME="CentOS Linux 7 (Core)"
ANSI_COLOR="0;31"
CPE_NAME="cpe:/o:centos:centos:7"
HOME_URL="https://www.centos.org/"
BUG_REPORT_URL="https://bugs.centos.org/"
"""
CENTOS7_RELEASE = b"CentOS Linux release 7.9.2009 (Core)\n"
CENTOS7_BOOT_UUID = _uuid(7, 1)
CENTOS7_FSTAB = f"""\

#
# /etc/fstab
# Created by anaconda on Mon Nov  9 10:12:41 2020
#
# Accessible filesystems, by reference, are maintained under '/dev/disk'
# See man pages fstab(5), findfs(8), mount(8) and/or blkid(8) for more info
#
/dev/mapper/centos-root /                       xfs     defaults        0 0
UUID={CENTOS7_BOOT_UUID} /boot                   xfs     defaults        0 0
/dev/mapper/centos-swap swap                    swap    defaults        0 0
""".encode()
CENTOS7_SYSCONFIG_NETWORK = b"# Created by anaconda\nNETWORKING=yes\nHOSTNAME=centos7.invalid\n"
CENTOS7_PARTS = (
    Part(1, 1 * MiB, XFS_MIN_SIZE, LINUX_TYPE),
    Part(2, 1 * MiB + XFS_MIN_SIZE, XFS_MIN_SIZE + 16 * MiB, LVM_TYPE),
)
CENTOS7_VOLUMES = (("root", XFS_MIN_SIZE), ("swap", 8 * MiB))
CENTOS7_ICON = tiny_png(48, 48)
CENTOS7_ICON_FILE = "/usr/share/icons/hicolor/48x48/apps/fedora-logo-icon.png"


def _centos7_specs(rpm_packages: bytes) -> dict[str, FsSpec]:
    root_files = {
        "/etc/os-release": CENTOS7_OS_RELEASE,
        "/etc/centos-release": CENTOS7_RELEASE,
        "/etc/sysconfig/network": CENTOS7_SYSCONFIG_NETWORK,
        "/etc/fstab": CENTOS7_FSTAB,
        "/usr/bin/ls": X86_64_PROGRAM,
        "/usr/bin/yum": b"#!/usr/bin/python\n",
        "/var/lib/rpm/Packages": rpm_packages,
        CENTOS7_ICON_FILE: CENTOS7_ICON,
    }
    links = USRMERGE_LINKS | {
        "/etc/redhat-release": "centos-release",
        "/etc/system-release": "centos-release",
        RHEL_LOGO: CENTOS7_ICON_FILE,  # absolute: it must resolve inside the guest
    }
    boot_files = {"/grub2/grub.cfg": b"set default=0\n", "/vmlinuz-3.10.0-1160.el7.x86_64": b"-"}
    return {
        "/dev/sda1": FsSpec("/dev/sda1", "xfs", None, CENTOS7_BOOT_UUID, files=boot_files),
        "/dev/centos/root": FsSpec(
            "/dev/centos/root",
            "xfs",
            None,
            _uuid(7, 2),
            files=root_files,
            symlinks=links,
            directories=("/boot", "/home", "/tmp"),
        ),
        "/dev/centos/swap": FsSpec("/dev/centos/swap", "swap", None, _uuid(7, 3)),
    }


def build_centos7(workdir: Path, rpm_packages: bytes) -> Guest:
    """CentOS 7 as anaconda's automatic partitioning lays it out; ``rpm_packages`` is
    planted as the Berkeley DB ``/var/lib/rpm/Packages``."""
    image = new_disk(workdir / "centos7.raw", "dos", CENTOS7_PARTS)
    specs = _centos7_specs(rpm_packages)
    scratch = workdir / "scratch"
    boot = CENTOS7_PARTS[0]
    make_xfs(image, specs["/dev/sda1"], boot.start, boot.size, scratch)

    extents = make_volume_group(image, CENTOS7_PARTS[1], "centos", CENTOS7_VOLUMES)
    make_xfs(image, specs["/dev/centos/root"], *extents["root"], scratch)
    make_swap(image, specs["/dev/centos/swap"], *extents["swap"])

    mountpoints = {"/": "/dev/centos/root", "/boot": "/dev/sda1"}
    guest = guest_manifest(image, "dos", CENTOS7_PARTS, specs, mountpoints)
    return dataclasses.replace(guest, volume_groups={"centos": [n for n, _ in CENTOS7_VOLUMES]})


# ---------------------------------------------------------------- Arch Linux

ARCH_OS_RELEASE = b"""\
NAME="Arch Linux"
PRETTY_NAME="Arch Linux"
ID=arch
BUILD_ID=rolling
ANSI_COLOR="38;2;23;147;209"
HOME_URL="https://archlinux.org/"
DOCUMENTATION_URL="https://wiki.archlinux.org/"
SUPPORT_URL="https://bbs.archlinux.org/"
BUG_REPORT_URL="https://gitlab.archlinux.org/groups/archlinux/-/issues"
PRIVACY_POLICY_URL="https://terms.archlinux.org/docs/privacy-policy/"
LOGO=archlinux-logo
"""
ARCH_UUIDS = {n: _uuid(0xA, n) for n in (2, 3)}
ARCH_FSTAB = f"""\
# Static information about the filesystems.
# See fstab(5) for details.

# <file system> <dir> <type> <options> <dump> <pass>
# /dev/sda2
UUID={ARCH_UUIDS[2]}\t/         \text4      \trw,relatime\t0 1

# /dev/sda3
UUID={ARCH_UUIDS[3]}\tnone      \tswap      \tdefaults  \t0 0

""".encode()
ARCH_PARTS = (
    Part(1, 1 * MiB, 1 * MiB, GPT_BIOS_BOOT),
    Part(2, 2 * MiB, 64 * MiB, GPT_LINUX),
    Part(3, 66 * MiB, 8 * MiB, GPT_SWAP),
)
PACMAN_LOCAL = "/var/lib/pacman/local"


def pacman_desc(fields: dict[str, str]) -> bytes:
    """A local database ``desc`` file: each ``%FIELD%``, its value lines, a blank line."""
    return "".join(f"%{name}%\n{value}\n\n" for name, value in fields.items()).encode()


ARCH_PACKAGES = {
    "linux-6.6.1.arch1-1": {
        "NAME": "linux",
        "VERSION": "6.6.1.arch1-1",
        "BASE": "linux",
        "DESC": "The Linux kernel and modules",
        "URL": "https://github.com/archlinux/linux",
        "ARCH": "x86_64",
        "BUILDDATE": "1699464498",
        "INSTALLDATE": "1699550000",
        "PACKAGER": "Jan Alexander Steffens (heftig) <heftig@archlinux.org>",
        "SIZE": "136953183",
        "REASON": "1",
        "LICENSE": "GPL2",
        "VALIDATION": "pgp",
        "DEPENDS": "coreutils\nkmod\ninitramfs",
    },
    "pacman-6.0.2-8": {
        "NAME": "pacman",
        "VERSION": "6.0.2-8",
        "BASE": "pacman",
        "DESC": "A library-based package manager with dependency support",
        "URL": "https://www.archlinux.org/pacman/",
        "ARCH": "x86_64",
        "LICENSE": "GPL",
    },
    "ffmpeg-2:6.0-11": {
        "NAME": "ffmpeg",
        "VERSION": "2:6.0-11",
        "DESC": "Complete solution to record, convert and stream audio and video",
        "URL": "https://ffmpeg.org/",
        "ARCH": "x86_64",
    },
    "iana-etc-20231016-1": {
        "NAME": "iana-etc",
        "VERSION": "20231016-1",
        "DESC": "/etc/protocols and /etc/services provided by IANA",
        "URL": "https://www.iana.org/protocols",
        "ARCH": "any",
    },
}
"""Package folder name -> its desc fields, in pacman's order."""


def _arch_specs() -> dict[str, FsSpec]:
    database: dict[str, bytes] = {f"{PACMAN_LOCAL}/ALPM_DB_VERSION": b"9\n"}
    for folder, fields in ARCH_PACKAGES.items():
        database[f"{PACMAN_LOCAL}/{folder}/desc"] = pacman_desc(fields)
        database[f"{PACMAN_LOCAL}/{folder}/files"] = b"%FILES%\nusr/\n\n"
    root_files = {
        "/usr/lib/os-release": ARCH_OS_RELEASE,
        "/etc/arch-release": b"",  # NB: empty on Arch
        "/etc/hostname": b"arch.invalid\n",
        "/etc/fstab": ARCH_FSTAB,
        "/usr/bin/bash": X86_64_PROGRAM,
        "/usr/bin/pacman": X86_64_PROGRAM,
        "/usr/share/pixmaps/archlinux-logo.png": tiny_png(64, 64),  # libguestfs ignores it
    }
    links = USRMERGE_LINKS | {"/etc/os-release": "../usr/lib/os-release"}
    root = FsSpec(
        "/dev/sda2",
        "ext4",
        None,
        ARCH_UUIDS[2],
        files=root_files | database,
        symlinks=links,
        directories=("/boot", "/home", "/tmp"),
    )
    swap = FsSpec("/dev/sda3", "swap", None, ARCH_UUIDS[3])
    return {"/dev/sda2": root, "/dev/sda3": swap}


def build_archlinux(workdir: Path) -> Guest:
    """Arch Linux on a BIOS/GPT disk: an ext4 root and a swap partition."""
    image = new_disk(workdir / "archlinux.raw", "gpt", ARCH_PARTS)
    specs = _arch_specs()
    root, swap = ARCH_PARTS[1:]
    make_ext(image, specs[root.device], root.start, root.size, workdir / "scratch")
    make_swap(image, specs[swap.device], swap.start, swap.size)
    return guest_manifest(image, "gpt", ARCH_PARTS, specs, {"/": "/dev/sda2"})


# ---------------------------------------------------------------- Alpine 3.19

ALPINE_OS_RELEASE = b"""\
NAME="Alpine Linux"
ID=alpine
VERSION_ID=3.19.1
PRETTY_NAME="Alpine Linux v3.19"
HOME_URL="https://alpinelinux.org/"
BUG_REPORT_URL="https://gitlab.alpinelinux.org/alpine/aports/-/issues"
"""
ALPINE_UUIDS = {n: _uuid(0xA1, n) for n in (1, 2, 3)}
ALPINE_FSTAB = f"""\
UUID={ALPINE_UUIDS[3]}\t/\text4\trw,relatime 0 1
UUID={ALPINE_UUIDS[1]}\t/boot\text4\trw,relatime 0 2
UUID={ALPINE_UUIDS[2]}\tswap\tswap\tdefaults\t0 0
/dev/cdrom\t/media/cdrom\tiso9660\tnoauto,ro 0 0
/dev/usbdisk\t/media/usb\tvfat\tnoauto\t0 0
tmpfs\t/tmp\ttmpfs\tnosuid,nodev\t0\t0
""".encode()
ALPINE_PARTS = (
    Part(1, 1 * MiB, 32 * MiB, LINUX_TYPE),
    Part(2, 33 * MiB, 8 * MiB, SWAP_TYPE),
    Part(3, 41 * MiB, 64 * MiB, LINUX_TYPE),
)
ALPINE_INSTALLED = """\
C:Q1GrX9OnoTBf1MOz1jJNwK4pgTIt0=
P:alpine-baselayout
V:3.4.3-r2
A:aarch64
S:8812
I:20480
T:Alpine base dir structure and init scripts
U:https://git.alpinelinux.org/cgit/aports/tree/main/alpine-baselayout
L:GPL-2.0-only
o:alpine-baselayout
m:Natanael Copa <ncopa@alpinelinux.org>
t:1702995000
c:d6e2f3e1b5a0c4a9f8e7d6c5b4a3928170615243
D:alpine-baselayout-data=3.4.3-r2 /bin/sh
F:etc
R:motd
a:0:0:644
Z:Q1SLkS9hBidUbPwwrw+XR0Whv3ww8=

C:Q1bq6ey04R0m+1G3QkhjDNWbu4Oac=
P:busybox
V:1.36.1-r15
A:aarch64
S:511046
I:946176
T:Size optimized toolbox of many common UNIX utilities
U:https://busybox.net/
L:GPL-2.0-only
o:busybox
m:Sören Tempel <soeren+alpine@soeren-tempel.net>
t:1702995123
c:5d8c1e1b0d6c3a3a1e9f5c7b8a6d4e2f1c0b9a87
D:so:libc.musl-aarch64.so.1
p:cmd:busybox=1.36.1-r15
F:bin
R:busybox
a:0:0:755
Z:Q1X8WGfbJ3kOfFeS3XQ2cYK5GpT5E=

C:Q1n7HmeGhMtZfE2yGvJ7y4fC9XWEI=
P:musl
V:1.2.4_git20230717-r4
A:aarch64
S:394722
I:655360
T:the musl c library (libc) implementation
U:https://musl.libc.org/
L:MIT
o:musl
m:Timo Teräs <timo.teras@iki.fi>
t:1702300000
c:0f4e7a1cd39b6f3a3ab4c7c3f5c2b1b8a9d0e1f2
p:so:libc.musl-aarch64.so.1=1
F:lib
R:ld-musl-aarch64.so.1
a:0:0:755
Z:Q1t2kTFZT8xKYzYB3AsFyWyNPUJvA=

""".encode()


def _alpine_specs() -> dict[str, FsSpec]:
    root_files = {
        "/etc/os-release": ALPINE_OS_RELEASE,
        "/etc/alpine-release": b"3.19.1\n",
        "/etc/hostname": b"alpine.invalid\n",
        "/etc/fstab": ALPINE_FSTAB,
        "/bin/busybox": AARCH64_PROGRAM,
        "/lib/apk/db/installed": ALPINE_INSTALLED,
    }
    links = {"/bin/ls": "/bin/busybox", "/bin/sh": "/bin/busybox"}  # absolute, as apk makes them
    boot_files = {"/extlinux.conf": b"DEFAULT lts\n", "/vmlinuz-lts": b"-"}
    return {
        "/dev/sda1": FsSpec("/dev/sda1", "ext4", None, ALPINE_UUIDS[1], files=boot_files),
        "/dev/sda2": FsSpec("/dev/sda2", "swap", None, ALPINE_UUIDS[2]),
        "/dev/sda3": FsSpec(
            "/dev/sda3",
            "ext4",
            None,
            ALPINE_UUIDS[3],
            files=root_files,
            symlinks=links,
            directories=("/boot", "/media/cdrom", "/media/usb", "/tmp"),
        ),
    }


def build_alpine(workdir: Path) -> Guest:
    """Alpine as ``setup-disk -m sys`` lays it out: sda1 ``/boot``, sda2 swap, sda3 ``/``."""
    image = new_disk(workdir / "alpine.raw", "dos", ALPINE_PARTS)
    specs = _alpine_specs()
    for part in ALPINE_PARTS:
        spec = specs[part.device]
        if spec.fstype == "swap":
            make_swap(image, spec, part.start, part.size)
        else:
            make_ext(image, spec, part.start, part.size, workdir / "scratch")
    mountpoints = {"/": "/dev/sda3", "/boot": "/dev/sda1"}
    return guest_manifest(image, "dos", ALPINE_PARTS, specs, mountpoints)
