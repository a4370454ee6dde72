"""Listings of guest folders: libguestfs's ``ll``, ``ls0``, ``find``, ``find0`` and ``readdir``.

The folder asked for is resolved inside the guest; below it nothing is ever followed: a
guest's link to a host folder is listed as the link it is, and a walk never leaves the tree
it started in (entries are read with lstat semantics, ``follow_symlinks=False``). The long
listing is built here rather than by the host's ls(1): owners are the guest's numbers (the
host's user names mean nothing for a guest), and the ``..`` of the guest's root is that
root, never the host folder above the mount.
"""

from __future__ import annotations

import os
import stat
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypedDict

from vmcraft.errors import GuestFileError
from vmcraft.guest.files import GuestTree, guest_errors
from vmcraft.guest.paths import host_to_guest
from vmcraft.units import KIB

STAT_BLOCK_SIZE = 512  # unit of st_blocks (POSIX)
RECENT_SECONDS = 31_556_952 // 2  # ls(1) shows the time, not the year, within half a year
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

# readdir's one-letter file types (guestfs(3)); 'u' when the type cannot be read.
FTYP_BY_FORMAT = {
    stat.S_IFBLK: "b",
    stat.S_IFCHR: "c",
    stat.S_IFDIR: "d",
    stat.S_IFIFO: "f",
    stat.S_IFLNK: "l",
    stat.S_IFREG: "r",
    stat.S_IFSOCK: "s",
}
FTYP_UNKNOWN = "u"
FTYP_UNEXPECTED = "?"
FUSE_UNKNOWN_INO = 0xFFFFFFFF
"""NB: the d_ino of every entry listed by fusefat 0.1a and exfat-fuse 1.3 (Linux 6.18)."""


class Dirent(TypedDict):
    """One entry of ``readdir``, shaped as libguestfs's ``guestfs_dirent``."""

    ino: int
    ftyp: str
    name: str


def directory_host_path(tree: GuestTree, action: str, directory: str) -> str:
    """The host path of a guest folder, resolved inside the guest.

    Raises:
        GuestFileNotFoundError: Nothing is there.
        GuestFileError: It is not a folder.
    """
    host = tree.resolve(directory)
    with guest_errors(action, directory):
        mode = os.lstat(host).st_mode
    if not stat.S_ISDIR(mode):
        raise GuestFileError(f"{action} {directory}: not a directory")
    return host


def sort_key(name: str) -> bytes:
    """Byte order, as strcmp(3) and the C locale sort names."""
    return os.fsencode(name)


def names_in(tree: GuestTree, action: str, directory: str) -> list[str]:
    """The names in a guest folder in byte order, without ``.`` and ``..``."""
    host = directory_host_path(tree, action, directory)
    with guest_errors(action, directory):
        return sorted(os.listdir(host), key=sort_key)


def ls0(tree: GuestTree, directory: str, filename: str) -> None:
    """Write the names in a guest folder to a host file, each ended by a NUL byte."""
    names = names_in(tree, "cannot list", directory)
    with open(filename, "wb") as out:
        out.writelines(os.fsencode(name) + b"\0" for name in names)


def walk(tree: GuestTree, top: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry below a host folder, with its path relative to it.

    Folder by folder, names in byte order; a symlink is never followed, so the walk never
    leaves ``top``. It does enter filesystems mounted below ``top``: they are the guest's.
    """
    pending = [("", top)]
    while pending:
        prefix, folder = pending.pop()
        guest_folder = host_to_guest(tree.root, folder)
        with guest_errors("cannot list", guest_folder), os.scandir(folder) as found:
            entries = sorted(found, key=lambda e: sort_key(e.name))
        yield from ((prefix + entry.name, entry) for entry in entries)

        folders = [e for e in reversed(entries) if e.is_dir(follow_symlinks=False)]
        pending.extend((f"{prefix}{e.name}/", e.path) for e in folders)


def find(tree: GuestTree, directory: str) -> list[str]:
    """Every name below a guest folder, relative to it and sorted (libguestfs ``find``).

    Folders are listed too; symlinks are listed and never followed.
    """
    top = directory_host_path(tree, "cannot find in", directory)
    return sorted((relative for relative, _ in walk(tree, top)), key=sort_key)


def find0(tree: GuestTree, directory: str, files: str) -> None:
    """Write what ``find`` returns to a host file, each name ended by a NUL byte.

    Names come in walk order (folder by folder), streamed: memory stays flat.
    """
    top = directory_host_path(tree, "cannot find in", directory)
    with open(files, "wb") as out:
        for relative, _ in walk(tree, top):
            out.write(os.fsencode(relative) + b"\0")


def readdir(tree: GuestTree, directory: str) -> list[Dirent]:
    """The entries of a guest folder, ``.`` and ``..`` included, in the folder's own order.

    ``ftyp`` is one of libguestfs's letters: b c d f l r s, ``u`` when the entry vanished
    before its type could be read, ``?`` for a type Linux does not name. ``ino`` is the
    folder entry's own (``d_ino``), as libguestfs returns it: for a mountpoint, the inode
    of the folder below the mount, not of the mounted root.
    """
    host = directory_host_path(tree, "cannot read folder", directory)
    with guest_errors("cannot read folder", directory):
        here = os.lstat(host)
        dots = [_dirent(".", here), _dirent("..", _parent_stat(tree, host, here))]
        with os.scandir(host) as found:
            return dots + [_entry_dirent(entry) for entry in found]


def _parent(tree: GuestTree, host: str) -> str:
    # The guest's / is its own parent, as in any root directory.
    return host if host == tree.root else os.path.dirname(host)


def _parent_stat(tree: GuestTree, host: str, here: os.stat_result) -> os.stat_result:
    # A filesystem's root folder lists itself as "..", and the kernel reports that
    # d_ino; lstat of the host folder above it would describe another filesystem.
    parent = os.lstat(_parent(tree, host))
    return here if parent.st_dev != here.st_dev else parent


def _dirent(name: str, result: os.stat_result) -> Dirent:
    return Dirent(ino=result.st_ino, ftyp=_ftyp(result), name=name)


def _ftyp(result: os.stat_result) -> str:
    return FTYP_BY_FORMAT.get(stat.S_IFMT(result.st_mode), FTYP_UNEXPECTED)


def _entry_dirent(entry: os.DirEntry[str]) -> Dirent:
    ino = entry.inode()
    try:
        found = entry.stat(follow_symlinks=False)
    except FileNotFoundError:
        return Dirent(ino=ino, ftyp=FTYP_UNKNOWN, name=entry.name)
    if ino == FUSE_UNKNOWN_INO:
        ino = found.st_ino
    return Dirent(ino=ino, ftyp=_ftyp(found), name=entry.name)


@dataclass(frozen=True)
class _Row:
    """One line of a long listing, as the strings of its columns."""

    columns: tuple[str, str, str, str, str]  # mode, links, owner, group, size
    date: str
    name: str
    blocks: int


def ll(tree: GuestTree, directory: str) -> str:
    """A guest folder listed as ``ls -la`` does, with owners as numbers (libguestfs ``ll``).

    Times are UTC, as in libguestfs's appliance. Meant for people, not for parsing.
    """
    host = directory_host_path(tree, "cannot list", directory)
    now = time.time()
    with guest_errors("cannot list", directory):
        rows = [_row(".", host, now), _row("..", _parent(tree, host), now)]
        rows += [_row(name, os.path.join(host, name), now) for name in os.listdir(host)]
    return _format(sorted(rows, key=lambda r: sort_key(r.name)))


def _row(name: str, host: str, now: float) -> _Row:
    result = os.lstat(host)
    shown = name
    if stat.S_ISLNK(result.st_mode):
        shown = f"{name} -> {os.readlink(host)}"
    columns = (
        stat.filemode(result.st_mode),
        str(result.st_nlink),
        str(result.st_uid),
        str(result.st_gid),
        _size_column(result),
    )
    return _Row(columns, _date_column(result.st_mtime, now), shown, result.st_blocks)


def _size_column(result: os.stat_result) -> str:
    if stat.S_ISCHR(result.st_mode) or stat.S_ISBLK(result.st_mode):
        return f"{os.major(result.st_rdev)}, {os.minor(result.st_rdev)}"
    return str(result.st_size)


def _date_column(mtime: float, now: float) -> str:
    try:
        t = time.gmtime(mtime)
    except (OverflowError, OSError, ValueError):
        return str(int(mtime))  # as ls(1) shows a time it cannot convert
    day = f"{MONTHS[t.tm_mon - 1]} {t.tm_mday:>2}"
    if now - RECENT_SECONDS < mtime <= now:
        return f"{day} {t.tm_hour:02}:{t.tm_min:02}"
    return f"{day} {t.tm_year:>5}"


def _format(rows: list[_Row]) -> str:
    widths = [max(len(row.columns[i]) for row in rows) for i in range(5)]
    total_bytes = sum(row.blocks for row in rows) * STAT_BLOCK_SIZE
    lines = [f"total {-(-total_bytes // KIB)}"]

    for row in rows:
        mode, links, owner, group, size = row.columns
        lines.append(
            f"{mode} {links:>{widths[1]}} {owner:<{widths[2]}} {group:<{widths[3]}} "
            f"{size:>{widths[4]}} {row.date} {row.name}"
        )
    return "\n".join(lines) + "\n"
