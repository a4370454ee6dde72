"""``glob_expand`` and ``case_sensitive_path`` on real ext4, xfs, btrfs and NTFS, and on a
hostile guest.

A tree of known names is planted once per module in a copy of the mbr guest through the
test's own mounts (the kernel's, or ntfs-3g's for NTFS); the expected matches are derived
from those names and glob(3)'s rules (sorted, hidden names only for a leading dot, folders
marked with ``/``, braces expanded in order), never from VMCraft's output. The hostile
guest's links to the host's / and to a host folder must lead to guest names only.

Host tools: cp, losetup, mount, umount, ntfs-3g.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator
from pathlib import Path

import guests
import pytest
from directory_helpers import WORK, fs_view, hostile_handle, opened
from guest_edits import inside, partition_mounted
from guests import Guest

from vmcraft import VMCraft
from vmcraft.errors import GuestFileError, GuestFileNotFoundError, GuestPathError

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_tool("ntfs-3g", "--version")]

FILES = ("a.txt", "b.txt", "c.log", ".hidden.txt", "file[1].txt", "dir1/x.conf", "dir1/y.conf")
FILES += ("dir2/x.conf", "Mixed/Sub/File.TXT")
CASE_TWINS = ("Dup", "dUP")  # on the POSIX filesystems only
CANARY = b"host canary: no guest listing may show this\n"


def plant_names(work: Path, fs: str) -> None:
    for name in FILES:
        (work / name).parent.mkdir(parents=True, exist_ok=True)
        (work / name).write_bytes(name.encode())
    os.symlink("dir1", work / "link-to-dir1")
    os.symlink("nowhere", work / "dangling")
    if fs != "ntfs":
        for name in CASE_TWINS:
            (work / name).write_bytes(b"twin\n")


@pytest.fixture(scope="module")
def planted(mbr_guest: Guest, tmp_path_factory: pytest.TempPathFactory) -> Guest:
    image = tmp_path_factory.mktemp("glob-planted") / "mbr.raw"
    guests.run(["cp", "--sparse=always", str(mbr_guest.path), str(image)])
    guest = dataclasses.replace(mbr_guest, path=image)
    for fs in WORK:
        with fs_view(guest, fs, read_only=False) as root:
            plant_names(root / "work", fs)
    return guest


@pytest.fixture(scope="module")
def g(planted: Guest) -> Iterator[VMCraft]:
    """One read-only handle for the module: these calls change nothing."""
    with opened(planted.path, readonly=True) as handle:
        yield handle


@pytest.fixture(params=list(WORK))
def work(request: pytest.FixtureRequest) -> str:
    value: str = WORK[request.param]
    return value


# ---------------------------------------------------------------- glob_expand


@pytest.mark.parametrize(
    ("pattern", "names"),
    [
        ("*.txt", ["a.txt", "b.txt", "file[1].txt"]),
        (".*.txt", [".hidden.txt"]),
        ("?.txt", ["a.txt", "b.txt"]),
        ("[ab].*", ["a.txt", "b.txt"]),
        ("[!a]*.txt", ["b.txt", "file[1].txt"]),
        ("[^a-b]*.t?t", ["file[1].txt"]),
        ("file\\[1\\].txt", ["file[1].txt"]),
        ("dir[[:digit:]]/x.conf", ["dir1/x.conf", "dir2/x.conf"]),
        ("*/x.conf", ["dir1/x.conf", "dir2/x.conf", "link-to-dir1/x.conf"]),
        ("{c.log,a.txt,none,dir*/y.*}", ["c.log", "a.txt", "dir1/y.conf"]),
        ("dang*", ["dangling"]),
        ("a.txt", ["a.txt"]),
        ("none", []),
        ("nothing*", []),
        ("a.txt/*", []),
    ],
)
def test_glob_expand_matches_as_glob_3(
    g: VMCraft, work: str, pattern: str, names: list[str]
) -> None:
    assert g.glob_expand(f"{work}/{pattern}") == [f"{work}/{name}" for name in names]


def test_glob_expand_marks_folders_unless_told_not_to(g: VMCraft, work: str) -> None:
    folders = ["Mixed", "dir1", "dir2", "link-to-dir1"]
    assert g.glob_expand(f"{work}/*") == sorted(
        [f"{work}/{n}/" for n in folders]
        + [f"{work}/{n}" for n in ("a.txt", "b.txt", "c.log")]
        + [f"{work}/{n}" for n in ("dangling", "file[1].txt")]
        + ([f"{work}/{n}" for n in CASE_TWINS] if not work.startswith("/srv/win") else [])
    )
    assert g.glob_expand(f"{work}/dir*", directoryslash=False) == [f"{work}/dir1", f"{work}/dir2"]
    assert g.glob_expand(f"{work}/*/", directoryslash=False) == [f"{work}/{n}/" for n in folders]
    assert g.glob_expand(work) == [work + "/"]


def test_glob_expand_crosses_the_guests_filesystems(g: VMCraft) -> None:
    assert g.glob_expand("/{boot,home,srv/win,}/work/a.txt") == [
        "/boot/work/a.txt",
        "/home/work/a.txt",
        "/srv/win/work/a.txt",
        "/work/a.txt",
    ]
    assert g.glob_expand("/*/work/", directoryslash=False) == ["/boot/work/", "/home/work/"]
    assert g.glob_expand("/") == ["/"]


def test_glob_expand_checks_its_pattern(g: VMCraft) -> None:
    for pattern in ("*.txt", "", "/work/\0*"):
        with pytest.raises(GuestPathError):
            g.glob_expand(pattern)


# ---------------------------------------------------------------- case_sensitive_path


def test_case_sensitive_path_finds_the_true_case_on_ntfs(g: VMCraft) -> None:
    found = g.case_sensitive_path("/SRV/WIN/users/PUBLIC/README.TXT")
    assert found == "/srv/win/Users/Public/readme.txt"
    assert g.cat(found) == "hello from NTFS\r\n"
    assert g.case_sensitive_path("/srv/win/users/public/NEW.txt") == "/srv/win/Users/Public/NEW.txt"
    assert g.case_sensitive_path("//srv//WIN//") == "/srv/win"
    assert g.case_sensitive_path("/") == "/"


def test_case_sensitive_path_on_every_filesystem(g: VMCraft, work: str) -> None:
    upper = work.upper()
    assert g.case_sensitive_path(upper + "/MIXED/sub/file.txt") == work + "/Mixed/Sub/File.TXT"
    assert g.case_sensitive_path(upper + "/LINK-TO-DIR1/X.CONF") == work + "/link-to-dir1/x.conf"
    assert g.case_sensitive_path(upper + "/mixed/SUB") == work + "/Mixed/Sub"
    assert g.case_sensitive_path(upper + "/mixed/New-File") == work + "/Mixed/New-File"
    with pytest.raises(GuestFileNotFoundError, match="nosuch"):
        g.case_sensitive_path(upper + "/nosuch/file.txt")
    with pytest.raises(GuestFileError, match="not a folder"):
        g.case_sensitive_path(upper + "/A.TXT/below")
    for dotted in (upper + "/./a.txt", upper + "/mixed/../a.txt"):
        with pytest.raises(GuestPathError, match=r"\. or \.\."):
            g.case_sensitive_path(dotted)


def test_case_sensitive_path_prefers_the_exact_name(g: VMCraft) -> None:
    for work in ("/work", "/boot/work", "/home/work"):
        assert g.case_sensitive_path(work + "/dUP") == work + "/dUP"
        assert g.case_sensitive_path(work + "/Dup") == work + "/Dup"
        assert g.case_sensitive_path(work + "/dup") == work + "/Dup"  # first in byte order


# ---------------------------------------------------------------- hostile guest


@pytest.fixture(scope="module")
def hostile_prepared(
    hostile_guest: Guest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Guest, Path]:
    host_folder = tmp_path_factory.mktemp("glob-host-folder")
    (host_folder / "canary").write_bytes(CANARY)
    image = tmp_path_factory.mktemp("glob-hostile") / "hostile.raw"
    guests.run(["cp", "--sparse=always", str(hostile_guest.path), str(image)])
    guest = dataclasses.replace(hostile_guest, path=image)
    with partition_mounted(guest, "/dev/sda1") as root:
        os.symlink(host_folder, inside(root, "/etc/host-folder-link"))
    return guest, host_folder


def test_glob_expand_never_lists_host_files(hostile_prepared: tuple[Guest, Path]) -> None:
    guest, host_folder = hostile_prepared
    with partition_mounted(guest, "/dev/sda1", read_only=True) as root:
        guest_root = sorted(os.listdir(root))

    with hostile_handle(guest.path, readonly=True) as h:
        assert h.glob_expand("/etc/host-folder-link/*") == []
        assert h.glob_expand(str(host_folder) + "/*") == []
        top = h.glob_expand("/*", directoryslash=False)
        assert top == [f"/{name}" for name in guest_root]
        for link in ("/abs", "/up", "/rel/inner"):
            assert h.glob_expand(link + "/*", directoryslash=False) == [link + p for p in top]
        assert h.glob_expand("/up/*/hostname") == ["/up/etc/hostname"]
        assert h.glob_expand("/loop1/*") == []
        assert h.glob_expand("/selfloop*") == ["/selfloop"]
        everything = h.glob_expand("/*/*") + h.glob_expand("/*/*/*")
        assert not [p for p in everything if p.endswith("canary")]
        assert h.case_sensitive_path("/ABS/ETC/HOSTNAME") == "/abs/etc/hostname"
        with pytest.raises(GuestFileNotFoundError):
            h.case_sensitive_path("/etc/host-folder-link/CANARY")
