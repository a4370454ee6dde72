"""Helpers for the metadata call tests: open a guest through VMCraft, look at it without.

What VMCraft changed is judged through routes that do not go through VMCraft: a kernel
mount of the test's own loop device (``nouuid`` for xfs, whose clones share a UUID), an
ntfs-3g process the test starts itself, and the filesystems' own tools (debugfs reads an
ext4 at a byte offset of the image; xfs_db reads the test's own read-only loop device).
The hostile setup plants links to host canaries in a copy of ``hostile_guest``.

Host tools: cp, losetup, partx, mount, umount, ntfs-3g, debugfs, xfs_db.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import os
import re
import stat
from collections.abc import Iterator
from pathlib import Path

import guests
from guests import Guest

from vmcraft import VMCraft

# Guest device and guest mountpoint of each filesystem of mbr_guest.
MBR_FILESYSTEMS = {
    "ext4": ("/dev/sda1", "/boot"),
    "xfs": ("/dev/sda2", "/"),
    "btrfs": ("/dev/sda5", "/home"),
    "ntfs": ("/dev/sda7", "/srv/win"),
}
POSIX_FILESYSTEMS = ("ext4", "xfs", "btrfs")
NTFS_NO_OWNERS = (
    "ntfs-3g without the 'permissions' option keeps no POSIX owner or mode: chown and "
    "chmod succeed and change nothing (see test_ntfs_keeps_no_owner_or_mode)"
)

_counter = itertools.count()


def guest_path(fstype: str, relative: str) -> str:
    """The guest path of a path relative to a filesystem's mountpoint."""
    return os.path.join(MBR_FILESYSTEMS[fstype][1], relative.lstrip("/"))


def copy_of(guest: Guest, folder: Path) -> Guest:
    """The guest on a sparse copy of its image in ``folder``."""
    target = folder / f"{guest.path.stem}-{next(_counter)}{guest.path.suffix}"
    guests.run(["cp", "--sparse=always", str(guest.path), str(target)])
    return dataclasses.replace(guest, path=target)


@contextlib.contextmanager
def opened(guest: Guest, *, readonly: bool = False) -> Iterator[VMCraft]:
    """A VMCraft handle on mbr_guest (or a copy) with its four filesystems mounted."""
    with VMCraft() as g:
        g.add_drive_opts(str(guest.path), format="raw", readonly=readonly)
        g.launch()
        for device, mountpoint in sorted(MBR_FILESYSTEMS.values(), key=lambda d: d[1]):
            g.mount(device, mountpoint)
        yield g


@contextlib.contextmanager
def kernel_mounted(guest: Guest, fstype: str, *, read_only: bool = False) -> Iterator[Path]:
    """One filesystem of the image mounted by the test itself, never by VMCraft.

    The loop device covers the partition's byte range from the manifest; ntfs runs in an
    ntfs-3g process of the test's own.
    """
    device = MBR_FILESYSTEMS[fstype][0]
    start, size = guest.partitions[device]
    mountpoint = guest.path.parent / f"own-{fstype}-{next(_counter)}"
    with guests.loop_device(guest.path, read_only=read_only, offset=start, size=size) as loop:
        if fstype == "ntfs":
            options = "no_detach,ro" if read_only else "no_detach"
            argv = ["ntfs-3g", "-o", options, loop, str(mountpoint)]
            log = mountpoint.with_suffix(".log")
            with guests.fuse_mounted(argv, mountpoint, log) as root:
                yield root
        else:
            options = ",".join(["ro"] * read_only + ["nouuid"] * (fstype == "xfs")) or None
            with guests.mounted(loop, mountpoint, options) as root:
                yield root
    mountpoint.rmdir()


def debugfs(guest: Guest, request: str, device: str = "/dev/sda1") -> str:
    """debugfs's answer to one request, reading the ext4 at its offset in the image."""
    start, _ = guest.partitions[device]
    result = guests.run(["debugfs", "-R", request, f"{guest.path}?offset={start}"])
    return result.stdout.decode(errors="replace")


def debugfs_time(stat_output: str, name: str) -> tuple[int, int]:
    """(seconds, nanoseconds) of an inode time in ``debugfs stat`` output.

    ext4 keeps the low 32 bits of the seconds, signed, and an extra word whose two low bits
    extend the seconds (epoch bits) and whose upper 30 bits are the nanoseconds.
    """
    match = re.search(rf"^\s*{name}: 0x([0-9a-f]+):([0-9a-f]+)", stat_output, re.MULTILINE)
    assert match, f"no {name} in debugfs output:\n{stat_output}"
    low, extra = int(match[1], 16), int(match[2], 16)
    seconds = low - (1 << 32) if low & (1 << 31) else low
    return seconds + ((extra & 3) << 32), extra >> 2


def xfs_db_fields(guest: Guest, path: str, fields: str) -> dict[str, str]:
    """``xfs_db print`` of inode fields of an xfs path, on the test's own loop device."""
    start, size = guest.partitions[MBR_FILESYSTEMS["xfs"][0]]
    with guests.loop_device(guest.path, read_only=True, offset=start, size=size) as loop:
        argv = ["xfs_db", "-r", "-c", f"path {path}", "-c", f"print {fields}", loop]
        output = guests.run(argv).stdout.decode()
    return dict(line.split(" = ", 1) for line in output.splitlines() if " = " in line)


@dataclasses.dataclass(frozen=True)
class Hostile:
    """A copy of hostile_guest whose links aim at a host canary file and folder."""

    guest: Guest
    canary: Path  # host file; the guest has its own file at the same path
    canary_dir: Path  # host folder; the guest has its own, empty folder at the same path
    lone: Path  # host file; the guest has nothing at that path, /etc/lone-link aims at it
    links: tuple[str, ...]  # guest paths that all reach the guest's file at canary's path


def plant_hostile(hostile_guest: Guest, folder: Path) -> Hostile:
    """Copy hostile_guest and plant links to host paths under ``folder``.

    ``/etc/canary-link`` is absolute, ``/etc/canary-up`` climbs with ``..`` past the root,
    ``/etc/canary-dir-link`` aims at the host folder; ``/abs`` and ``/up`` come with the
    fixture. Inside the guest each of them names the guest's own files.
    """
    canary_dir = folder / "canary-dir"
    canary_dir.mkdir()
    canary, lone = folder / "canary.txt", folder / "lone.txt"
    canary.write_bytes(b"host canary\n")
    lone.write_bytes(b"host canary without a guest twin\n")

    guest = copy_of(hostile_guest, folder)
    with hostile_root(Hostile(guest, canary, canary_dir, lone, ())) as root:
        _plant(root, canary, canary_dir, lone)

    links = (
        "/etc/canary-link",
        "/etc/canary-up",
        f"/abs{canary}",
        f"/up{canary}",
        f"/etc/canary-dir-link/../{canary.name}",
    )
    return Hostile(guest, canary, canary_dir, lone, links)


@contextlib.contextmanager
def opened_hostile(guest: Guest, *, readonly: bool = False) -> Iterator[VMCraft]:
    """A VMCraft handle on a hostile guest, its root filesystem mounted on /."""
    with VMCraft() as g:
        g.add_drive_opts(str(guest.path), format="raw", readonly=readonly)
        g.launch()
        g.mount("/dev/sda1", "/")
        yield g


@contextlib.contextmanager
def hostile_root(hostile: Hostile) -> Iterator[Path]:
    """The hostile copy's root filesystem mounted by the test itself."""
    start, size = hostile.guest.partitions["/dev/sda1"]
    mountpoint = hostile.guest.path.parent / f"own-hostile-{next(_counter)}"
    with (
        guests.loop_device(hostile.guest.path, offset=start, size=size) as loop,
        guests.mounted(loop, mountpoint) as root,
    ):
        yield root
    mountpoint.rmdir()


def _plant(root: Path, canary: Path, canary_dir: Path, lone: Path) -> None:
    own = root / str(canary).lstrip("/")
    own.parent.mkdir(parents=True, exist_ok=True)
    own.write_bytes(b"the guest's own file at the canary's path\n")
    (root / str(canary_dir).lstrip("/")).mkdir()

    climb = "../" * (len(canary.parts) + 3)
    os.symlink(canary, root / "etc/canary-link")
    os.symlink(f"{climb}{str(canary).lstrip('/')}", root / "etc/canary-up")
    os.symlink(canary_dir, root / "etc/canary-dir-link")
    os.symlink(lone, root / "etc/lone-link")


def host_state(path: Path) -> dict[str, object]:
    """What any metadata call could change on a host file or folder, read without
    changing it (the content with O_NOATIME, so that even the atime can be compared)."""
    result = os.lstat(path)
    state: dict[str, object] = {
        "inode": (result.st_dev, result.st_ino, result.st_mode, result.st_nlink),
        "owner": (result.st_uid, result.st_gid),
        "times": (result.st_mtime_ns, result.st_ctime_ns),
        "xattrs": {
            name: os.getxattr(path, name, follow_symlinks=False)
            for name in os.listxattr(path, follow_symlinks=False)
        },
        "flags": guests.run(["lsattr", "-d", str(path)]).stdout.split()[0],
    }
    if stat.S_ISDIR(result.st_mode):
        state["entries"] = sorted(os.listdir(path))
    else:
        state["atime"] = result.st_atime_ns
        fd = os.open(path, os.O_RDONLY | os.O_NOATIME)
        with os.fdopen(fd, "rb") as f:
            state["content"] = f.read()
    return state


def make_canary(path: Path) -> dict[str, object]:
    """Give a host file or folder a distinctive mode, owner, times and xattr; its state."""
    os.chmod(path, 0o640 if path.is_file() else 0o750)
    os.chown(path, 4242, 4343)
    os.setxattr(path, "user.canary", b"host value")
    os.utime(path, ns=(1_111_111_111_000_000_001, 1_222_222_222_000_000_002))
    return host_state(path)
