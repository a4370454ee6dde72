"""Helpers for the writing and copying tests: the mbr guest's four filesystems, opened
through VMCraft to act and re-opened without it to check.

What VMCraft wrote is judged through another route: a kernel mount of the partition's
byte range on a loop device of our own (ext4, xfs, btrfs), a separate ntfs-3g mount of it
(NTFS: this kernel has no NTFS driver), or the filesystem's own tools (debugfs, ntfscat)
on the loop device. Everything taken is released by its own id.

Host tools: losetup, mount, umount, ntfs-3g, debugfs, ntfscat.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import os
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import guests
from guests import Guest

from vmcraft import VMCraft


@dataclass(frozen=True)
class Filesystem:
    """One filesystem of the mbr guest and where the tests mount it."""

    fstype: str
    device: str
    mountpoint: str  # in the handle, with the other three
    posix: bool  # keeps owners, modes and special files (ntfs-3g without a user map: no)

    def path(self, *names: str) -> str:
        """A guest path below this filesystem's mountpoint."""
        return "/".join([self.mountpoint.rstrip("/"), *names])


FILESYSTEMS = {
    "ext4": Filesystem("ext4", "/dev/sda1", "/boot", True),
    "xfs": Filesystem("xfs", "/dev/sda2", "/", True),
    "btrfs": Filesystem("btrfs", "/dev/sda5", "/home", True),
    "ntfs": Filesystem("ntfs", "/dev/sda7", "/srv/win", False),
}
MOUNT_ORDER = ("xfs", "ext4", "btrfs", "ntfs")  # parents first

_counter = itertools.count()


@contextlib.contextmanager
def mbr_handle(image: Path, *, readonly: bool = False) -> Iterator[VMCraft]:
    """A launched handle on an mbr guest image with ext4, xfs, btrfs and NTFS mounted."""
    with VMCraft() as g:
        g.add_drive_opts(str(image), format="raw", readonly=readonly)
        g.launch()
        for name in MOUNT_ORDER:
            fs = FILESYSTEMS[name]
            g.mount(fs.device, fs.mountpoint)
        yield g


@contextlib.contextmanager
def reopened(guest: Guest, fs: Filesystem, *, read_only: bool = True) -> Iterator[Path]:
    """One filesystem of a guest image, mounted without VMCraft; yields its root.

    The loop device covers the partition's byte range from the manifest. xfs gets
    ``nouuid``: copies of one image share the UUID, and another session may mount one.
    """
    start, size = guest.partitions[fs.device]
    mountpoint = guest.path.parent / f"own-{fs.fstype}-{next(_counter)}"
    with guests.loop_device(guest.path, read_only=read_only, offset=start, size=size) as loop:
        if fs.fstype == "ntfs":
            fuse_options = "ro,no_detach" if read_only else "no_detach"
            argv = ["ntfs-3g", "-o", fuse_options, loop, str(mountpoint)]
            with guests.fuse_mounted(argv, mountpoint, Path(f"{mountpoint}.log")) as root:
                yield root
        else:
            options = ",".join(["ro"] * read_only + ["nouuid"] * (fs.fstype == "xfs")) or None
            with guests.mounted(loop, mountpoint, options) as root:
                yield root
    mountpoint.rmdir()


def inside(root: Path, fs: Filesystem, guest_path: str) -> Path:
    """The host path, under a re-opened filesystem's root, of a guest path in the handle."""
    relative = guest_path.removeprefix(fs.mountpoint.rstrip("/"))
    return root / relative.lstrip("/")


def debugfs_stat(guest: Guest, fs: Filesystem, path: str) -> dict[str, str]:
    """debugfs's ``stat`` of a path in an ext4 (relative to its own root), read at the
    partition's offset in the image: Type, Mode (octal), User, Group, Size, Links."""
    start, _ = guest.partitions[fs.device]
    argv = ["debugfs", "-R", f"stat {path}", f"{guest.path}?offset={start}"]
    out = guests.run(argv).stdout.decode(errors="replace")
    fields: dict[str, str] = {}
    for name, value in re.findall(r"\b(Type|Mode|User|Group|Size|Links):\s*(\S+)", out):
        fields.setdefault(name, value)  # the inode's own, before the fragment's Size
    if not fields:
        raise AssertionError(f"debugfs found no {path}:\n{out}")
    return fields


def ntfscat(guest: Guest, fs: Filesystem, path: str) -> bytes:
    """A file's bytes (path relative to the volume's root) as ntfsprogs read them."""
    start, size = guest.partitions[fs.device]
    with guests.loop_device(guest.path, read_only=True, offset=start, size=size) as loop:
        return guests.run(["ntfscat", "--force", loop, path]).stdout


def plant_file(
    path: Path,
    content: bytes,
    *,
    owner: tuple[int, int] | None = None,
    mode: int | None = None,
    mtime_ns: int | None = None,
) -> None:
    """Write a file on a re-opened filesystem, with owner, mode and times if given."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    if owner is not None:
        os.chown(path, *owner)
    if mode is not None:
        os.chmod(path, mode)  # after chown, which clears the set-id bits
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))


@dataclass(frozen=True)
class HostState:
    """What a host file or folder looks like: it must not change through a guest call."""

    mode: int
    uid: int
    gid: int
    mtime_ns: int
    listing: tuple[str, ...]
    digest: str

    @classmethod
    def of(cls, path: Path) -> HostState:
        st = path.lstat()
        is_dir = stat.S_ISDIR(st.st_mode)
        listing = tuple(sorted(os.listdir(path))) if is_dir else ()
        digest = "" if is_dir else hashlib.sha256(path.read_bytes()).hexdigest()
        return cls(st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, listing, digest)


def data_digest(path: Path) -> str:
    """A digest of a sparse file's data extents and size, read without its holes.

    Equal digests mean equal bytes; a file rewritten with the same bytes may differ only
    if its holes moved, which a read-only handle must not do either.
    """
    digest = hashlib.sha256()
    with path.open("rb") as f:
        size = os.fstat(f.fileno()).st_size
        position = 0
        while position < size:
            try:
                position = os.lseek(f.fileno(), position, os.SEEK_DATA)
            except OSError:  # ENXIO: only a hole remains
                break
            end = os.lseek(f.fileno(), position, os.SEEK_HOLE)
            f.seek(position)
            digest.update(b"%d:" % position)
            while position < end:
                block = f.read(min(1 << 20, end - position))
                digest.update(block)
                position += len(block)
    digest.update(b"size:%d" % size)
    return digest.hexdigest()


# ---------------------------------------------------------------- trees to copy

TREE_FILE = b"file content\n" * 100
FILE_MTIME_NS = 1_000_000_000_123_456_700  # a multiple of 100 ns: NTFS keeps it too
FOLDER_MTIME_NS = 1_100_000_000_987_654_300
TOP_MTIME_NS = 1_200_000_000_000_000_000


@dataclass(frozen=True)
class Canary:
    """A host file and folder that guest links aim at; they must never change."""

    file: Path
    folder: Path

    def state(self) -> tuple[HostState, HostState, HostState]:
        return HostState.of(self.file), HostState.of(self.folder), HostState.of(self.inner)

    @property
    def inner(self) -> Path:
        return self.folder / "secret.txt"


def make_canary(folder: Path) -> Canary:
    folder.mkdir(parents=True, exist_ok=True)
    canary = Canary(folder / "canary.txt", folder / "canary-dir")
    canary.file.write_bytes(b"host canary: never to be read through a guest\n")
    canary.folder.mkdir()
    canary.inner.write_bytes(b"host secret: never to be copied out of the host\n")
    return canary


def plant_tree(top: Path, canary: Canary, *, posix: bool) -> None:
    """A tree with owners, modes, times, an xattr, hard links, symlinks (some aiming at host
    paths), a FIFO (posix only) and a sparse file."""
    top.mkdir()
    owner, mode = ((1234, 5678), 0o640) if posix else (None, None)
    plant_file(top / "file.txt", TREE_FILE, owner=owner, mode=mode, mtime_ns=FILE_MTIME_NS)
    os.setxattr(top / "file.txt", "user.note", b"kept")
    (top / "sub").mkdir()
    setuid = 0o4755 if posix else None
    plant_file(top / "sub" / "setuid", b"#!/bin/false\n", mode=setuid, mtime_ns=FILE_MTIME_NS)
    os.link(top / "file.txt", top / "sub" / "hard")

    links = {"rel-link": "file.txt", "abs-link": str(canary.file), "dir-link": str(canary.folder)}
    links["up-link"] = "../../../../../../.."
    for name, target in links.items():
        os.symlink(target, top / name)
    with (top / "sparse.bin").open("wb") as f:
        f.seek(4 << 20)
        f.write(b"data in the middle")
        f.truncate(8 << 20)
    os.utime(top / "sparse.bin", ns=(FILE_MTIME_NS, FILE_MTIME_NS))

    if posix:
        os.mkfifo(top / "fifo")
        os.utime(top / "fifo", ns=(FILE_MTIME_NS, FILE_MTIME_NS))
        os.lchown(top / "rel-link", 1234, 5678)
        os.chown(top / "sub", 4321, 8765)
        os.chmod(top / "sub", 0o750)
    os.utime(top / "sub", ns=(FOLDER_MTIME_NS, FOLDER_MTIME_NS))
    os.utime(top, ns=(TOP_MTIME_NS, TOP_MTIME_NS))


@dataclass(frozen=True)
class Entry:
    """What a copy may keep of one entry of a tree."""

    kind: int  # stat.S_IFMT
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    content: str  # a file's sha256, a link's target
    xattrs: tuple[tuple[str, bytes], ...]  # user.* only


@dataclass(frozen=True)
class Snapshot:
    """A tree as a host mount shows it: entries by relative path, and hard link groups."""

    entries: dict[str, Entry]
    hard_links: frozenset[frozenset[str]]


def snapshot(top: Path) -> Snapshot:
    """Walk a tree (its top included, as "."), never following a symlink."""
    entries: dict[str, Entry] = {}
    inodes: dict[tuple[int, int], set[str]] = {}
    pending = [top]
    while pending:
        path = pending.pop()
        relative = os.path.relpath(path, top)
        st = path.lstat()
        entries[relative] = _entry(path, st)
        if stat.S_ISDIR(st.st_mode):
            pending.extend(sorted(path.iterdir()))
        elif st.st_nlink > 1:
            inodes.setdefault((st.st_dev, st.st_ino), set()).add(relative)
    groups = frozenset(frozenset(g) for g in inodes.values() if len(g) > 1)
    return Snapshot(entries, groups)


def _entry(path: Path, st: os.stat_result) -> Entry:
    if stat.S_ISREG(st.st_mode):
        content = hashlib.sha256(path.read_bytes()).hexdigest()
    elif stat.S_ISLNK(st.st_mode):
        content = os.readlink(path)
    else:
        content = ""
    names = sorted(n for n in os.listxattr(path, follow_symlinks=False) if n.startswith("user."))
    xattrs = tuple((n, os.getxattr(path, n, follow_symlinks=False)) for n in names)
    kind, mode = stat.S_IFMT(st.st_mode), stat.S_IMODE(st.st_mode)
    return Entry(kind, mode, st.st_uid, st.st_gid, st.st_mtime_ns, content, xattrs)


def assert_archive_copy(source: Snapshot, copy: Snapshot, *, posix: bool) -> None:
    """The copy has every entry with its kind, contents, times, xattrs and hard links, and
    on a posix target its owners and modes (FIFOs exist only on a posix source)."""
    assert sorted(copy.entries) == sorted(source.entries)
    for name, want in source.entries.items():
        got = copy.entries[name]
        assert (got.kind, got.content) == (want.kind, want.content), name
        if want.kind != stat.S_IFLNK or posix:
            assert got.mtime_ns == want.mtime_ns, name
        if want.kind != stat.S_IFLNK:
            assert got.xattrs == want.xattrs, name
        if posix:
            assert (got.mode, got.uid, got.gid) == (want.mode, want.uid, want.gid), name
    assert copy.hard_links == source.hard_links


def files_under(top: Path) -> list[Path]:
    """Every regular file below a folder, no symlink followed."""
    found = []
    for folder, _, names in os.walk(top):
        paths = [Path(folder) / name for name in names]
        found += [p for p in paths if stat.S_ISREG(p.lstat().st_mode)]
    return found
