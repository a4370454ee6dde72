"""Folder calls on a hostile guest never read, list or remove anything outside it.

The hostile guest gets a /victim tree whose links point at a host folder holding canary
files: by absolute host path, by a relative path climbing far above the guest's root, and
as the final component of the paths given. Whatever the calls do, the host folder's
listing, modes, sizes and change times stay the same; the guest is read back through a
kernel mount.

Host tools: cp, losetup, mount, umount.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest
from directory_helpers import hostile_handle, listing
from guest_edits import inside, partition_mounted
from guests import Guest

from vmcraft.errors import GuestFileNotFoundError

pytestmark = pytest.mark.requires_root

CopyGuest = Callable[[Guest], Guest]
CANARY = b"host canary: no guest call may touch this\n"


@pytest.fixture
def host_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "host-folder"
    (folder / "inner").mkdir(parents=True)
    (folder / "canary").write_bytes(CANARY)
    (folder / "inner" / "canary").write_bytes(CANARY)
    return folder


def host_state(folder: Path) -> dict[str, tuple[int, int, int]]:
    """Every path below a host folder with its mode, size and change time."""
    paths = [folder, *sorted(folder.rglob("*"))]
    return {str(p): (p.lstat().st_mode, p.lstat().st_size, p.lstat().st_ctime_ns) for p in paths}


@pytest.fixture
def hostile_copy(hostile_guest: Guest, writable_copy: CopyGuest, host_folder: Path) -> Guest:
    """The hostile guest with a /victim tree full of links to the host folder."""
    copy = writable_copy(hostile_guest)
    with partition_mounted(copy, "/dev/sda1") as root:
        victim = inside(root, "/victim")
        (victim / "sub").mkdir(parents=True)
        (victim / "file").write_bytes(b"guest file\n")
        os.symlink(host_folder, victim / "host-folder-link")
        os.symlink(host_folder / "canary", victim / "canary-link")
        os.symlink("../" * 12 + str(host_folder).lstrip("/"), victim / "sub" / "climbing-link")
        os.symlink(host_folder, inside(root, "/host-folder-link"))
    return copy


def test_rm_rf_of_a_tree_with_links_to_a_host_folder_removes_only_the_links(
    hostile_copy: Guest, host_folder: Path
) -> None:
    before = host_state(host_folder)
    with hostile_handle(hostile_copy.path) as g:
        g.rm_rf("/victim")
        g.rm_rf("/host-folder-link")
        g.rm_rf("/abs")  # -> /: the link goes, the guest stays
        assert g.exists("/etc/hostname")

    assert host_state(host_folder) == before
    assert (host_folder / "canary").read_bytes() == CANARY
    with partition_mounted(hostile_copy, "/dev/sda1", read_only=True) as root:
        names = listing(root)
        assert "victim" not in names and "host-folder-link" not in names and "abs" not in names
        assert inside(root, "/etc/hostname").read_bytes() == b"hostile\n"


def test_removing_through_links_never_reaches_the_host(
    hostile_copy: Guest, host_folder: Path
) -> None:
    before = host_state(host_folder)
    with hostile_handle(hostile_copy.path) as g:
        g.rm("/victim/canary-link")
        g.rm_f("/victim/host-folder-link/canary")
        g.rm_rf("/victim/host-folder-link/inner")
        g.rm_rf("/victim/sub/climbing-link/inner")
        with pytest.raises(GuestFileNotFoundError):
            g.rmdir("/host-folder-link/inner")
        with pytest.raises(GuestFileNotFoundError):
            g.mkdir("/host-folder-link/made-by-guest")
        with pytest.raises(GuestFileNotFoundError):
            g.mkdtemp("/victim/host-folder-link/tmpXXXXXX")

    assert host_state(host_folder) == before
    with partition_mounted(hostile_copy, "/dev/sda1", read_only=True) as root:
        assert listing(inside(root, "/victim")) == ["file", "host-folder-link", "sub"]


def test_listings_never_show_host_files(hostile_copy: Guest, host_folder: Path) -> None:
    with hostile_handle(hostile_copy.path, readonly=True) as g:
        everything = g.find("/")
        through_links = {p: g.find(p) for p in ("/abs", "/up", "/rel/inner")}
        root_entries = {e["name"] for e in g.readdir("/up")}
        long_listing = g.ll("/abs")
        for call in (g.find, g.readdir, g.ll):
            with pytest.raises(GuestFileNotFoundError):
                call("/victim/host-folder-link")

    assert "victim/host-folder-link" in everything
    assert not [p for p in everything if p.startswith("victim/host-folder-link/")]
    assert not [p for p in everything if "canary" in p and "link" not in p]
    for found in through_links.values():
        assert found == everything
    with partition_mounted(hostile_copy, "/dev/sda1", read_only=True) as root:
        assert root_entries == {".", "..", *os.listdir(root)}
    shown = {line.split()[8] for line in long_listing.splitlines()[1:]}
    assert shown == root_entries
