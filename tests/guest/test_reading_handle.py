"""The handle's reading calls on ext4, xfs, btrfs and NTFS of the mbr guest.

The reading functions are tested in depth on plain folders (test_reading_calls.py); here
each call goes through ``VMCraft`` with libguestfs's names and argument order, on one
read-only handle with the four filesystems mounted. Expected values come from the guest's
manifest run through the host programs libguestfs runs for these calls (head, tail, grep,
file, cksum) in the C locale, from hashlib, and, for du and statvfs, from an independent
mount of the same partition (a kernel mount, or ntfs-3g started by the test).

Host tools: losetup, mount, umount, ntfs-3g, head, tail, grep, file, cksum, du.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from guests import Guest
from writing_support import FILESYSTEMS, Filesystem, inside, mbr_handle, reopened

from vmcraft import VMCraft
from vmcraft.errors import GuestFileError, GuestFileNotFoundError

pytestmark = pytest.mark.requires_root

C_LOCALE = {**os.environ, "LC_ALL": "C", "LANG": "C"}
# A text file on each filesystem (path inside that filesystem), and a pattern in it.
TEXT = {
    "ext4": ("/grub/grub.cfg", "root"),
    "xfs": ("/etc/fstab", "^UUID="),
    "btrfs": ("/alice/notes.txt", "notes"),
    "ntfs": ("/Users/Public/readme.txt", "ntfs"),
}
# A folder of each filesystem whose files the manifest lists.
FOLDER = {"ext4": "/grub", "xfs": "/etc", "btrfs": "/alice", "ntfs": "/Users"}
STATVFS_FIXED = ("bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "namemax")


@pytest.fixture(scope="module")
def g(mbr_guest: Guest) -> Iterator[VMCraft]:
    """One read-only handle for the module: reading changes nothing."""
    with mbr_handle(mbr_guest.path, readonly=True) as handle:
        yield handle


@pytest.fixture(params=list(FILESYSTEMS))
def fs(request: pytest.FixtureRequest) -> Filesystem:
    return FILESYSTEMS[request.param]


def manifest(guest: Guest, fs: Filesystem) -> dict[str, bytes]:
    return guest.filesystems[fs.device].files


def host_lines(argv: list[str], data: bytes, tmp_path: Path) -> list[str]:
    """A host program's output on a copy of the data, split as libguestfs's daemon does."""
    sample = tmp_path / "sample"
    sample.write_bytes(data)
    # grep exits 1 when nothing matches: an empty list, as libguestfs returns.
    result = subprocess.run([*argv, str(sample)], env=C_LOCALE, capture_output=True, check=False)
    lines = result.stdout.decode("utf-8", "surrogateescape").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def test_lines_heads_and_tails(
    g: VMCraft, mbr_guest: Guest, fs: Filesystem, tmp_path: Path
) -> None:
    name, _ = TEXT[fs.fstype]
    data, path = manifest(mbr_guest, fs)[name], fs.path(name.lstrip("/"))

    expected_lines = [line.removesuffix("\r") for line in host_lines(["cat"], data, tmp_path)]
    assert g.read_lines(path) == expected_lines
    assert g.head(path) == host_lines(["head"], data, tmp_path)
    assert g.head_n(1, path) == host_lines(["head", "-n", "1"], data, tmp_path)
    assert g.head_n(-1, path) == host_lines(["head", "-n", "-1"], data, tmp_path)
    assert g.tail(path) == host_lines(["tail"], data, tmp_path)
    assert g.tail_n(1, path) == host_lines(["tail", "-n", "1"], data, tmp_path)
    assert g.tail_n(-2, path) == host_lines(["tail", "-n", "+2"], data, tmp_path)


def test_grep_with_its_options(
    g: VMCraft, mbr_guest: Guest, fs: Filesystem, tmp_path: Path
) -> None:
    name, pattern = TEXT[fs.fstype]
    data, path = manifest(mbr_guest, fs)[name], fs.path(name.lstrip("/"))

    assert g.grep(pattern, path) == host_lines(["grep", "--", pattern], data, tmp_path)
    assert g.grep(pattern, path, insensitive=True) == host_lines(
        ["grep", "-i", "--", pattern], data, tmp_path
    )
    assert g.grep("a|o", path, extended=True) == host_lines(["grep", "-E", "a|o"], data, tmp_path)
    assert g.grep("=", path, fixed=True) == host_lines(["grep", "-F", "="], data, tmp_path)
    with pytest.raises(GuestFileError, match="exclude"):
        g.grep("x", path, extended=True, fixed=True)


def test_checksum_and_checksums_out(
    g: VMCraft, mbr_guest: Guest, fs: Filesystem, tmp_path: Path
) -> None:
    files = manifest(mbr_guest, fs)
    name, _ = TEXT[fs.fstype]
    data, path = files[name], fs.path(name.lstrip("/"))

    for kind in ("md5", "sha1", "sha256", "sha512"):
        assert g.checksum(kind, path) == hashlib.new(kind, data).hexdigest()
    crc = host_lines(["cksum"], data, tmp_path)[0].split()[0]
    assert g.checksum("crc", path) == crc

    folder = FOLDER[fs.fstype]
    sums = tmp_path / "sums"
    g.checksums_out("sha256", fs.path(folder.lstrip("/")), str(sums))
    expected = {
        f"{hashlib.sha256(content).hexdigest()}  ./{guest_path.removeprefix(folder + '/')}"
        for guest_path, content in files.items()
        if guest_path.startswith(folder + "/")
    }
    assert set(sums.read_text().splitlines()) == expected


def test_file_and_filesize(g: VMCraft, mbr_guest: Guest, fs: Filesystem, tmp_path: Path) -> None:
    name, _ = TEXT[fs.fstype]
    data, path = manifest(mbr_guest, fs)[name], fs.path(name.lstrip("/"))

    assert g.file(path) == host_lines(["file", "-zb"], data, tmp_path)[0]
    assert g.file(fs.path(FOLDER[fs.fstype].lstrip("/"))) == "directory"
    assert g.filesize(path) == len(data)
    with pytest.raises(GuestFileNotFoundError):
        g.filesize(fs.path("no-such-file"))


def test_du_and_statvfs_match_an_independent_mount(
    g: VMCraft, mbr_guest: Guest, fs: Filesystem
) -> None:
    folder = FOLDER[fs.fstype]
    used = g.du(fs.path(folder.lstrip("/")))
    stats = g.statvfs(fs.path(folder.lstrip("/")))

    with reopened(mbr_guest, fs) as root:
        host_folder = inside(root, fs, fs.path(folder.lstrip("/")))
        argv = ["du", "-s", str(host_folder)]
        du = subprocess.run(argv, env=C_LOCALE, capture_output=True, check=True)
        own = os.statvfs(host_folder)
    assert used == int(du.stdout.split()[0])
    independent = {name: getattr(own, f"f_{name}") for name in STATVFS_FIXED}
    assert {name: stats[name] for name in STATVFS_FIXED} == independent
