"""The handle's link calls on real ext4, xfs, btrfs and NTFS, and on a hostile guest.

Links are made through the handle on a copy of the mbr guest and read back after it is
closed through the test's own mount: the kernel's (ext4, xfs, btrfs) or ntfs-3g's (NTFS);
on ext4, debugfs reads the link straight from the image as well. The hostile guest proves
that a symlink's target is stored as data and resolved only inside the guest: linking to
``/etc/shadow`` or through a link to a host folder changes nothing on the host.

Host tools: cp, losetup, mount, umount, ntfs-3g, debugfs.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from pathlib import Path

import guests
import pytest
from directory_helpers import (
    FILE_CONTENT,
    WORK,
    fs_view,
    hostile_handle,
    image_state,
    opened,
    plant,
)
from guest_edits import inside, partition_mounted
from guests import Guest, sha256

from vmcraft.errors import GuestFileError, GuestFileNotFoundError, GuestPathError, ReadOnlyError

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_tool("ntfs-3g", "--version")]

CopyGuest = Callable[[Guest], Guest]
CANARY = b"host canary: a guest link must never change this\n"


@pytest.fixture(params=list(WORK))
def fs(request: pytest.FixtureRequest) -> str:
    value: str = request.param
    return value


@pytest.fixture
def planted(mbr_guest: Guest, writable_copy: CopyGuest, fs: str) -> Guest:
    copy = writable_copy(mbr_guest)
    with fs_view(copy, fs, read_only=False) as root:
        plant(root / "work", fs)
    return copy


def names_in(folder: Path) -> list[str]:
    return sorted(os.listdir(folder))


# ---------------------------------------------------------------- symlinks


def test_ln_s_stores_the_target_verbatim(planted: Guest, fs: str) -> None:
    work = WORK[fs]
    targets = {
        "relative": "../full/sub/deep.txt",
        "absolute": "/etc/hostname",
        "nowhere": "no/such/thing",
        "spaced": "a name with spaces/and ..",
    }
    with opened(planted.path) as g:
        for name, target in targets.items():
            g.ln_s(target, f"{work}/{name}")
        read_back = {name: g.readlink(f"{work}/{name}") for name in targets}
        listed = g.readlinklist(work, [*targets, "file.txt", "missing", "../work/link"])

    assert read_back == targets
    assert listed == [*targets.values(), "", "", "file.txt"]
    with fs_view(planted, fs) as root:
        for name, target in targets.items():
            assert os.readlink(root / "work" / name) == target


@pytest.mark.requires_tool("debugfs", "-V")
def test_ln_s_on_ext4_is_what_debugfs_reads(mbr_guest: Guest, writable_copy: CopyGuest) -> None:
    copy = writable_copy(mbr_guest)
    with opened(copy.path) as g:
        g.ln_s("/etc/some/target", "/boot/debugfs-link")

    start, size = copy.partitions["/dev/sda1"]
    with guests.loop_device(copy.path, read_only=True, offset=start, size=size) as loop:
        shown = guests.run(["debugfs", "-R", "stat /debugfs-link", loop]).stdout
    assert b'Fast link dest: "/etc/some/target"' in shown
    assert b"Type: symlink" in shown


def test_ln_s_refuses_an_existing_name_and_ln_sf_replaces_it(planted: Guest, fs: str) -> None:
    work = WORK[fs]
    with opened(planted.path) as g:
        with pytest.raises(GuestFileError, match="exists"):
            g.ln_s("elsewhere", work + "/link")
        g.ln_sf("full/sub", work + "/link")
        g.ln_sf("full/file.txt", work + "/file.txt")
        g.ln_sf("made-new", work + "/new-link")
        with pytest.raises(GuestPathError):
            g.ln_s("", work + "/empty-target")

    with fs_view(planted, fs) as root:
        assert os.readlink(root / "work" / "link") == "full/sub"
        assert os.readlink(root / "work" / "file.txt") == "full/file.txt"
        assert os.readlink(root / "work" / "new-link") == "made-new"
        assert not [n for n in names_in(root / "work") if n.startswith(".vmcraft")]
        assert not os.path.lexists(root / "work" / "empty-target")


def test_linking_onto_a_folder_puts_the_link_inside_it(planted: Guest, fs: str) -> None:
    work = WORK[fs]
    with opened(planted.path) as g:
        g.ln_s("../file.txt", work + "/empty")
        g.ln_sf("/some/where/file.txt", work + "/full")
        with pytest.raises(GuestFileError, match="directory"):
            g.ln_sf(work + "/full/sub", work + "/full")  # full/sub is a folder: not replaced

    with fs_view(planted, fs) as root:
        assert os.readlink(root / "work" / "empty" / "file.txt") == "../file.txt"
        assert os.readlink(root / "work" / "full" / "file.txt") == "/some/where/file.txt"
        assert (root / "work" / "full" / "sub" / "deep.txt").read_bytes() == FILE_CONTENT


# ---------------------------------------------------------------- hard links


def test_ln_makes_a_hard_link_and_ln_f_replaces(planted: Guest, fs: str) -> None:
    work = WORK[fs]
    with opened(planted.path) as g:
        g.ln(work + "/file.txt", work + "/hard")
        g.ln(work + "/link", work + "/hard-to-link")  # the symlink itself, as ln -P
        with pytest.raises(GuestFileError, match="exists"):
            g.ln(work + "/file.txt", work + "/full/file.txt")
        g.ln_f(work + "/file.txt", work + "/full/file.txt")
        g.ln_f(work + "/file.txt", work + "/hard")  # already that file: nothing changes
        with pytest.raises(GuestFileNotFoundError):
            g.ln(work + "/no-such", work + "/hard-to-nothing")

    with fs_view(planted, fs) as root:
        original = (root / "work" / "file.txt").lstat()
        for name in ("hard", "full/file.txt"):
            assert (root / "work" / name).lstat().st_ino == original.st_ino
        assert original.st_nlink == 3
        assert stat.S_ISLNK((root / "work" / "hard-to-link").lstat().st_mode)
        assert os.readlink(root / "work" / "hard-to-link") == "file.txt"
        assert not [n for n in names_in(root / "work") if n.startswith(".vmcraft")]


# ---------------------------------------------------------------- readlink, realpath


def test_readlink_and_realpath(planted: Guest, fs: str) -> None:
    work = WORK[fs]
    with opened(planted.path, readonly=True) as g:
        assert g.readlink(work + "/full/link") == "../file.txt"
        assert g.realpath(work + "/full/link") == work + "/file.txt"
        assert g.realpath(work + "/full/sub/../../link") == work + "/file.txt"
        assert g.realpath(work + "/.") == work
        with pytest.raises(GuestFileError, match="not a symbolic link"):
            g.readlink(work + "/file.txt")
        with pytest.raises(GuestFileNotFoundError):
            g.readlink(work + "/no-such")
        with pytest.raises(GuestFileNotFoundError):
            g.realpath(work + "/dangling")


# ---------------------------------------------------------------- read-only handle


def test_links_on_a_read_only_handle_are_refused(mbr_guest: Guest) -> None:
    before = image_state(mbr_guest.path)
    with opened(mbr_guest.path, readonly=True) as g:
        for work in WORK.values():
            for call in (g.ln, g.ln_f, g.ln_s, g.ln_sf):
                with pytest.raises(ReadOnlyError, match="read-only"):
                    call("/etc/hostname", work + "-link")
                assert not g.exists(work + "-link")
    assert image_state(mbr_guest.path) == before


# ---------------------------------------------------------------- hostile guest


def host_snapshot(*paths: Path) -> list[tuple[str, int, int, int, str]]:
    """Mode, link count, change time and (for files) content of host paths."""
    return [
        (str(p), st.st_mode, st.st_nlink, st.st_ctime_ns, sha256(p) if p.is_file() else "")
        for p, st in ((p, p.lstat()) for p in paths)
    ]


def test_ln_s_to_etc_shadow_makes_a_guest_link_and_leaves_the_host_alone(
    hostile_guest: Guest, writable_copy: CopyGuest
) -> None:
    copy = writable_copy(hostile_guest)
    before = host_snapshot(Path("/etc/shadow"), Path("/etc/passwd"))
    with hostile_handle(copy.path) as g:
        g.ln_s("/etc/shadow", "/etc/evil")
        g.ln_sf("/etc/passwd", "/etc/passwd-link")  # was -> /etc/shadow
        assert g.readlink("/etc/evil") == "/etc/shadow"
        # The guest has no /etc/shadow: the link is there (libguestfs 1.48's exists
        # lstats it), but nothing is behind it.
        assert g.exists("/etc/evil") and not g.exists("/etc/evil/")
        assert g.realpath("/up/../../..") == "/"
        assert g.realpath("/up/etc/../up") == "/"
        assert g.realpath("/rel/inner/etc/hostname") == "/etc/hostname"

    assert host_snapshot(Path("/etc/shadow"), Path("/etc/passwd")) == before
    with partition_mounted(copy, "/dev/sda1", read_only=True) as root:
        assert os.readlink(inside(root, "/etc/evil")) == "/etc/shadow"
        assert os.readlink(inside(root, "/etc/passwd-link")) == "/etc/passwd"


def test_links_through_links_to_host_paths_stay_in_the_guest(
    hostile_guest: Guest, writable_copy: CopyGuest, tmp_path: Path
) -> None:
    host_folder = tmp_path / "host-folder"
    host_folder.mkdir()
    canary = host_folder / "canary"
    canary.write_bytes(CANARY)
    copy = writable_copy(hostile_guest)
    with partition_mounted(copy, "/dev/sda1") as root:
        os.symlink(host_folder, inside(root, "/etc/host-folder-link"))
        os.symlink(canary, inside(root, "/etc/canary-link"))
    before = host_snapshot(host_folder, canary)

    with hostile_handle(copy.path) as g:
        with pytest.raises(GuestFileNotFoundError):
            g.ln_s("/etc/hostname", "/etc/host-folder-link/planted")
        with pytest.raises(GuestFileNotFoundError):
            g.ln("/etc/hostname", "/etc/host-folder-link/hard")
        g.ln("/etc/canary-link", "/etc/hard-to-canary-link")  # the link, never the host file
        g.ln_sf("/etc/hostname", "/etc/canary-link")
        g.ln_sf("replaced", "/etc/host-folder-link")
        assert g.readlinklist("/etc", ["canary-link", "host-folder-link"]) == [
            "/etc/hostname",
            "replaced",
        ]
        assert g.readlinklist("/abs/etc", ["passwd-link", "../up", "hostname"]) == [
            "/etc/shadow",
            "../../../..",
            "",
        ]

    assert host_snapshot(host_folder, canary) == before
    assert os.listdir(host_folder) == ["canary"]
    with partition_mounted(copy, "/dev/sda1", read_only=True) as root:
        assert os.readlink(inside(root, "/etc/hard-to-canary-link")) == str(canary)
        assert os.readlink(inside(root, "/etc/host-folder-link")) == "replaced"


def test_link_arguments_are_checked(hostile_guest: Guest) -> None:
    with hostile_handle(hostile_guest.path, readonly=True) as g:
        for call in (g.readlink, g.realpath):
            with pytest.raises(GuestPathError):
                call("etc/hostname")
        with pytest.raises(GuestPathError):
            g.readlinklist("etc", ["x"])
        with pytest.raises(GuestPathError):
            g.realpath("/selfloop")
        assert g.readlinklist("/", ["selfloop", "loop1", "nul\0name"]) == ["selfloop", "loop2", ""]
