"""The handle's file calls: atomic writes that keep owner and mode, and their errors.

Owners, modes, a FIFO and a link are planted in a copy of the hostile guest through a
kernel mount; what ``write`` left behind is read back the same way after the handle is
closed. Expected modes come from POSIX (a new file: 0666 & ~022 = 0644, as libguestfs's
``write`` makes it), not from VMCraft.

Host tools: cp, losetup, partx, mount, umount.
"""

from __future__ import annotations

import contextlib
import os
import stat
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from guest_edits import inside, mount_snapshot, new_mounts, partition_mounted
from guests import Guest

from vmcraft import VMCraft
from vmcraft.errors import (
    GuestFileError,
    GuestFileNotFoundError,
    GuestPathError,
    StateError,
    SymlinkLoopError,
    VMCraftError,
)

pytestmark = pytest.mark.requires_root

CopyGuest = Callable[[Guest], Guest]

OWNED = "/etc/owned.conf"  # 1234:5678, mode 0640
SETUID = "/usr/bin/suid-tool"  # 0:0, mode 04755
SETGID_DIR = "/srv/shared"  # 0:5678, mode 02775; a file in it, 1234:5678 mode 02750
SETGID_FILE = "/srv/shared/sgid-tool"
FIFO = "/run/fifo"
FILE_LINK = "/etc/owned-link"  # -> owned.conf
FIFO_TIMEOUT_S = 5.0


@pytest.fixture
def planted(hostile_guest: Guest, writable_copy: CopyGuest) -> Guest:
    """A writable copy of the hostile guest with owned, set-id and special files in it."""
    copy = writable_copy(hostile_guest)
    with partition_mounted(copy, "/dev/sda1") as root:
        for folder in ("/usr/bin", "/srv/shared", "/run"):
            inside(root, folder).mkdir(parents=True)
        _plant(inside(root, OWNED), b"old owned\n", 1234, 5678, 0o640)
        _plant(inside(root, SETUID), b"#!/bin/false\n", 0, 0, 0o4755)
        os.chown(inside(root, SETGID_DIR), 0, 5678)
        os.chmod(inside(root, SETGID_DIR), 0o2775)
        _plant(inside(root, SETGID_FILE), b"#!/bin/false\n", 1234, 5678, 0o2750)
        os.mkfifo(inside(root, FIFO))
        os.symlink("owned.conf", inside(root, FILE_LINK))
    return copy


def _plant(path: Path, content: bytes, uid: int, gid: int, mode: int) -> None:
    path.write_bytes(content)
    os.chown(path, uid, gid)
    os.chmod(path, mode)  # after chown: chown clears the set-id bits


@contextlib.contextmanager
def mounted_handle(image: Path, *, readonly: bool = False) -> Iterator[VMCraft]:
    with VMCraft() as g:
        g.add_drive_opts(str(image), format="raw", readonly=readonly)
        g.launch()
        g.mount("/dev/sda1", "/")
        yield g


def folder_listing(root: Path, guest_folder: str) -> list[str]:
    return sorted(os.listdir(inside(root, guest_folder)))


# ---------------------------------------------------------------- write


@pytest.mark.parametrize(
    ("path", "uid", "gid", "mode"),
    [
        (OWNED, 1234, 5678, 0o640),
        (SETUID, 0, 0, 0o4755),
        (SETGID_FILE, 1234, 5678, 0o2750),
    ],
    ids=["owned", "setuid", "setgid"],
)
def test_write_keeps_owner_and_mode_and_leaves_no_temp_file(
    planted: Guest, path: str, uid: int, gid: int, mode: int
) -> None:
    folder = os.path.dirname(path)
    with partition_mounted(planted, "/dev/sda1", read_only=True) as root:
        names_before = folder_listing(root, folder)
        inode_before = inside(root, path).stat().st_ino

    with mounted_handle(planted.path) as g:
        g.write(path, b"new content\n")
        assert g.read_file(path) == b"new content\n"

    with partition_mounted(planted, "/dev/sda1", read_only=True) as root:
        st = inside(root, path).stat()
        assert inside(root, path).read_bytes() == b"new content\n"
        assert (st.st_uid, st.st_gid) == (uid, gid)
        assert oct(stat.S_IMODE(st.st_mode)) == oct(mode)
        assert folder_listing(root, folder) == names_before
        assert st.st_ino != inode_before  # replaced by rename, not rewritten in place


def test_write_through_a_link_replaces_the_target_and_keeps_the_link(planted: Guest) -> None:
    with mounted_handle(planted.path) as g:
        g.write(FILE_LINK, "through the link\n")

    with partition_mounted(planted, "/dev/sda1", read_only=True) as root:
        link = inside(root, FILE_LINK)
        assert link.is_symlink()
        assert os.readlink(link) == "owned.conf"
        assert inside(root, OWNED).read_bytes() == b"through the link\n"
        st = inside(root, OWNED).stat()
        assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (1234, 5678, 0o640)


def test_write_a_new_file_gives_mode_0644_owned_by_root(planted: Guest) -> None:
    with mounted_handle(planted.path) as g:
        old_umask = os.umask(0o077)  # the handle must not depend on the caller's umask
        try:
            g.write("/etc/brand-new", b"fresh\n")
            g.write("/srv/shared/also-new", "fresh\n")
        finally:
            os.umask(old_umask)

    with partition_mounted(planted, "/dev/sda1", read_only=True) as root:
        for path in ("/etc/brand-new", "/srv/shared/also-new"):
            st = inside(root, path).stat()
            assert stat.S_ISREG(st.st_mode)
            assert oct(stat.S_IMODE(st.st_mode)) == oct(0o644), path
            assert inside(root, path).read_bytes() == b"fresh\n"
        assert folder_listing(root, "/etc").count("brand-new") == 1
        assert not [n for n in folder_listing(root, "/etc") if n.startswith(".brand-new")]


def test_write_replaces_the_whole_content(planted: Guest) -> None:
    with mounted_handle(planted.path) as g:
        g.write("/etc/hosts", b"")
        assert g.read_file("/etc/hosts") == b""
        g.write("/etc/hosts", "é\n")
        assert g.read_file("/etc/hosts") == "é\n".encode()


def test_write_onto_a_folder_or_fifo_is_refused(planted: Guest) -> None:
    with mounted_handle(planted.path) as g:
        with pytest.raises(GuestFileError, match="/etc"):
            g.write("/etc", b"x")
        with pytest.raises(GuestFileError, match="not a regular file"):
            g.write(FIFO, b"x")
        assert g.is_dir("/etc")


def test_write_into_a_missing_folder_is_not_found(planted: Guest) -> None:
    with mounted_handle(planted.path) as g, pytest.raises(GuestFileNotFoundError, match="/no/such"):
        g.write("/no/such/file", b"x")


# ---------------------------------------------------------------- read, list, mkdir


@pytest.mark.parametrize("call", ["cat", "read_file", "ls"])
def test_missing_path_is_not_found(hostile_guest: Guest, call: str) -> None:
    with mounted_handle(hostile_guest.path, readonly=True) as g:
        with pytest.raises(GuestFileNotFoundError, match="/etc/no-such-file") as caught:
            getattr(g, call)("/etc/no-such-file")
        assert isinstance(caught.value, FileNotFoundError)
        assert isinstance(caught.value, VMCraftError)
        assert not g.exists("/etc/no-such-file")
        assert not g.exists("/etc/hostname/below-a-file")


def test_reading_a_folder_or_listing_a_file_fails_clearly(hostile_guest: Guest) -> None:
    with mounted_handle(hostile_guest.path, readonly=True) as g:
        with pytest.raises(GuestFileError, match="cannot read /etc"):
            g.cat("/etc")
        with pytest.raises(GuestFileError, match="cannot list /etc/hostname"):
            g.ls("/etc/hostname")


def test_reading_a_fifo_fails_instead_of_blocking(planted: Guest) -> None:
    before = mount_snapshot()
    with mounted_handle(planted.path, readonly=True) as g:
        [root] = new_mounts(before)
        outcome: list[BaseException | bytes] = []

        def read() -> None:
            try:
                outcome.append(g.read_file(FIFO))
            except BaseException as e:
                outcome.append(e)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        reader.join(FIFO_TIMEOUT_S)
        blocked = reader.is_alive()
        if blocked:  # unblock it by opening the other end, so the handle can close
            with open(inside(Path(root.mountpoint), FIFO), "wb"):
                pass
            reader.join(FIFO_TIMEOUT_S)

        assert not blocked, f"read_file({FIFO}) blocked waiting for a writer"
        assert isinstance(outcome[0], GuestFileError), outcome
        assert "not a regular file" in str(outcome[0])


def test_exists_is_file_is_dir(planted: Guest) -> None:
    with mounted_handle(planted.path, readonly=True) as g:
        assert g.is_file(OWNED) and g.exists(FILE_LINK) and g.exists(FIFO)
        # libguestfs: a link counts as what it points to only with followsymlinks.
        assert not g.is_file(FILE_LINK) and g.is_file(FILE_LINK, followsymlinks=True)
        assert not g.is_file(FIFO) and not g.is_dir(FIFO)
        assert g.is_dir("/srv/shared") and g.is_dir("/up/srv") and not g.is_file("/srv")
        assert not g.is_dir("/up") and g.is_dir("/up", followsymlinks=True)
        assert g.exists("/") and g.is_dir("/")
        assert not g.exists("/no-such") and not g.is_dir("/no-such")


def test_exists_and_types_as_libguestfs_148_answers(planted: Guest) -> None:
    with mounted_handle(planted.path, readonly=True) as g:
        # exists lstats: a looping link is there; a loop on the way is an error (ELOOP).
        assert g.exists("/loop1") and g.exists("/selfloop")
        for call in (g.exists, g.is_file, g.is_dir):
            with pytest.raises(SymlinkLoopError):
                call("/loop1/x")
        with pytest.raises(SymlinkLoopError):
            g.is_dir("/selfloop", followsymlinks=True)
        # A trailing slash names a folder: a link to one is followed, a file is not one.
        assert g.is_dir("/up/") and not g.is_symlink("/up/") and g.file("/up/") == "directory"
        assert not g.exists(OWNED + "/") and not g.is_file(OWNED + "/")
        with pytest.raises(GuestFileError, match="Not a directory"):
            g.statns(OWNED + "/")


def test_mkdir_p_creates_parents_and_accepts_existing(planted: Guest) -> None:
    with mounted_handle(planted.path) as g:
        g.mkdir_p("/a/b/c")
        g.mkdir_p("/a/b/c")
        g.mkdir_p("/a/./b/../b/d/")
        with pytest.raises(GuestFileError, match="in the way"):
            g.mkdir_p("/etc/hostname/sub")
        assert g.ls("/a/b") == ["c", "d"]

    with partition_mounted(planted, "/dev/sda1", read_only=True) as root:
        assert inside(root, "/a/b/c").is_dir()
        assert inside(root, "/a/b/d").is_dir()


# ---------------------------------------------------------------- malformed paths


BAD_PATHS = ["etc/hostname", "", "./etc", "/etc/\0hostname", "\0"]


@pytest.mark.parametrize("path", BAD_PATHS)
def test_relative_and_nul_paths_are_rejected(planted: Guest, path: str) -> None:
    calls: dict[str, Callable[[str], object]]
    with mounted_handle(planted.path) as g:
        calls = {
            "cat": g.cat,
            "read_file": g.read_file,
            "ls": g.ls,
            "exists": g.exists,
            "is_file": g.is_file,
            "is_dir": g.is_dir,
            "write": lambda p: g.write(p, b"x"),
            "mkdir_p": g.mkdir_p,
        }
        for name, call in calls.items():
            with pytest.raises(GuestPathError) as caught:
                call(path)
            assert isinstance(caught.value, ValueError), name


# ---------------------------------------------------------------- before a mount


def test_file_calls_before_mounting_root_fail_clearly(hostile_guest: Guest) -> None:
    with VMCraft() as g:
        g.add_drive_opts(str(hostile_guest.path), format="raw", readonly=True)
        g.launch()
        calls: dict[str, Callable[[], object]] = {
            "cat": lambda: g.cat("/etc/hostname"),
            "read_file": lambda: g.read_file("/etc/hostname"),
            "ls": lambda: g.ls("/"),
            "exists": lambda: g.exists("/etc"),
            "is_file": lambda: g.is_file("/etc/hostname"),
            "is_dir": lambda: g.is_dir("/etc"),
            "write": lambda: g.write("/etc/x", b"x"),
            "mkdir_p": lambda: g.mkdir_p("/x"),
        }
        for name, call in calls.items():
            with pytest.raises(GuestFileError, match="no filesystem is mounted on /") as caught:
                call()
            assert not isinstance(caught.value, StateError), name

        g.mount_ro("/dev/sda1", "/")
        assert g.cat("/etc/hostname") == "hostile\n"
        g.umount("/")
        with pytest.raises(GuestFileError, match="no filesystem is mounted on /"):
            g.cat("/etc/hostname")
