"""The reading calls (read_lines, head, tail, grep, checksum(s), file, filesize, du, statvfs).

The guest is a plain folder in ``tmp_path``. Expected values never come from VMCraft: they
come from the host programs libguestfs itself runs for these calls (head, tail, grep, zgrep,
md5sum and friends, cksum, du, file), run on the same files in the C locale, from hashlib,
from os.statvfs, and from guestfs(3)'s wording for the fixed answers ("directory", ...).
The hostile links point out of the guest at host files whose bytes differ from the guest
files the links name inside the guest, so reading the wrong side shows.

Host tools: head, tail, grep, zgrep, bzgrep, xzgrep, gzip, bzip2, xz, md5sum, sha*sum,
cksum, du, file, find, xargs, sh.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import os
import random
import shutil
import socket
import stat
import subprocess
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypeVar

import pytest

from vmcraft.errors import GuestFileError, GuestFileNotFoundError, GuestPathError
from vmcraft.guest import reading
from vmcraft.guest.files import GuestTree

MIB = 1024 * 1024
BIG_FILE_SIZE = 64 * MIB
MEMORY_LIMIT = 8 * MIB
C_LOCALE = {**os.environ, "LC_ALL": "C", "LANG": "C"}
HOSTILE_TIMEOUT_S = 20
T = TypeVar("T")

PASSWD = b"""\
root:x:0:0:root:/root:/bin/bash
daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin
bin:x:2:2:bin:/bin:/usr/sbin/nologin
# a comment with a|b and (ab) in it
abbbc
abc
ac
xx yy x
a.b and [x] and x:0
Upper Case Line
12345
ROOT in capitals
binary bin
caf\xc3\xa9 \xff raw byte
tab\there
"""
TEXT_FILES = {
    "etc/passwd": PASSWD,
    "etc/lines.txt": b"".join(b"line %02d\n" % i for i in range(1, 26)),
    "etc/noeol.txt": b"a\nb\nc",
    "etc/empty.txt": b"",
    "etc/blank.txt": b"\n",
    "etc/crlf.txt": b"one\r\ntwo\r\n\r\nthree",
    "etc/long.txt": b"".join(bytes([65 + i]) * (70_000 + i) + b"\n" for i in range(5)) + b"end\n",
}
GUEST_SECRET = b"GUEST SIDE\n"
GUEST_ABSOLUTE = b"GUEST SIDE, ABSOLUTE LINK\n"
HOST_SECRET = b"HOST SECRET: must never be read through the guest\n"


def libguestfs_lines(out: bytes) -> list[str]:
    """Split program output as libguestfs's daemon does (split_lines: "" -> [], "\\n" -> [""])."""
    lines = out.decode("utf-8", errors="surrogateescape").split("\n")
    return lines[:-1] if lines[-1] == "" else lines


def host_run(argv: list[str], cwd: Path | None = None) -> bytes:
    """What a host program prints in the C locale (libguestfs's appliance has no other)."""
    return subprocess.run(argv, cwd=cwd, env=C_LOCALE, capture_output=True, check=True).stdout


@pytest.fixture
def guest(tmp_path: Path) -> tuple[GuestTree, Path, Path]:
    """A guest root with text files and hostile links, and the host folder they aim at."""
    root, host = tmp_path / "guest", tmp_path / "host"
    for name, data in TEXT_FILES.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)

    host.mkdir()
    (host / "secret.txt").write_bytes(HOST_SECRET)
    (host / "big.bin").write_bytes(os.urandom(2 * MIB))  # du would grow if it followed a link

    # The same links resolved inside the guest name these guest files instead.
    (root / "host").mkdir()
    (root / "host/secret.txt").write_bytes(GUEST_SECRET)
    inside = root / str(host / "secret.txt").lstrip("/")
    inside.parent.mkdir(parents=True)
    inside.write_bytes(GUEST_ABSOLUTE)
    os.symlink("../../host/secret.txt", root / "etc/escape")  # relative, climbs past /
    os.symlink(host / "secret.txt", root / "etc/absolute")  # absolute host path
    os.symlink("/etc/passwd", root / "etc/passwd-link")

    tree = GuestTree(str(root), lambda: True, lambda _path: False)
    return tree, root, host


# ---------------------------------------------------------------- lines


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (b"one\r\ntwo\nthree", ["one", "two", "three"]),
        (b"", []),
        (b"\n", [""]),
        (b"a\n\nb\n", ["a", "", "b"]),
        (b"caf\xc3\xa9\n\xff\n", ["café", "\udcff"]),
    ],
)
def test_read_lines_drops_lf_and_crlf(
    guest: tuple[GuestTree, Path, Path], data: bytes, expected: list[str]
) -> None:
    tree, root, _ = guest
    (root / "etc/data").write_bytes(data)

    assert reading.read_lines(tree, "/etc/data") == expected


@pytest.mark.parametrize("name", sorted(TEXT_FILES))
@pytest.mark.parametrize("count", [-30, -25, -11, -3, -1, 0, 1, 3, 10, 25, 30])
def test_head_n_and_tail_n_match_head_and_tail(
    guest: tuple[GuestTree, Path, Path], name: str, count: int
) -> None:
    tree, root, _ = guest
    host_file = str(root / name)
    tail_count = str(count) if count >= 0 else f"+{-count}"  # libguestfs: tail_n(-N) = +N

    expected_head = libguestfs_lines(host_run(["head", "-n", str(count), host_file]))
    expected_tail = libguestfs_lines(host_run(["tail", "-n", tail_count, host_file]))

    assert reading.head_n(tree, count, "/" + name) == expected_head
    assert reading.tail_n(tree, count, "/" + name) == expected_tail


def test_head_and_tail_give_ten_lines(guest: tuple[GuestTree, Path, Path]) -> None:
    tree, root, _ = guest
    host_file = str(root / "etc/lines.txt")

    assert reading.head(tree, "/etc/lines.txt") == libguestfs_lines(host_run(["head", host_file]))
    assert reading.tail(tree, "/etc/lines.txt") == libguestfs_lines(host_run(["tail", host_file]))
    assert len(reading.tail(tree, "/etc/lines.txt")) == 10


def test_tail_across_block_boundaries_matches_tail(tmp_path: Path) -> None:
    """Random lines, some longer than tail's backward block, with CRs and missing last LFs."""
    tree = GuestTree(str(tmp_path), lambda: True, lambda _path: False)
    rng = random.Random(20240611)
    for index in range(12):
        lengths = [rng.choice([0, 1, 5, 200, 65_535, 65_536, 140_000]) for _ in range(15)]
        data = b"\n".join(bytes([97 + n % 26]) * n + b"\r" * (n % 2) for n in lengths)
        data += b"\n" if index % 3 else b""
        (tmp_path / f"f{index}").write_bytes(data)

        for count in (1, 2, 7, 15, 16, -1, -7):
            argument = str(count) if count >= 0 else f"+{-count}"
            expected = host_run(["tail", "-n", argument, str(tmp_path / f"f{index}")])
            assert reading.tail_n(tree, count, f"/f{index}") == libguestfs_lines(expected)


# ---------------------------------------------------------------- grep

BASIC, EXTENDED, FIXED = (), ("-E",), ("-F",)
# fmt: off
GREP_CASES = [
    ("root", BASIC), ("^root:", BASIC), ("nologin$", BASIC), ("a\\(b\\)*c", BASIC),
    ("ab*c", BASIC), ("x\\{2\\}", BASIC), ("[[:digit:]]\\+", BASIC), ("a|b", BASIC),
    ("ro\\|da", BASIC), ("(ab)", BASIC), ("\\<bin\\>", BASIC), ("^[^#r]", BASIC),
    ("[]x]", BASIC), ("[[:upper:]][[:lower:]]", BASIC), ("[[:space:]]here", BASIC),
    ("a.b", BASIC), ("\\(x\\)\\1", BASIC), ("", BASIC), ("*", BASIC), ("root\ndaemon", BASIC),
    ("café", BASIC), ("caf.. \udcff", BASIC),  # C locale: é is two bytes, \xff one
    ("ro|da", EXTENDED), ("(b)+c", EXTENDED), ("^[a-z]+:x:[0-9]{1,}:", EXTENDED),
    ("a+b?c", EXTENDED), ("[[:punct:]]{2}", EXTENDED),
    ("a.b", FIXED), ("[x]", FIXED), ("x:0\nabc", FIXED),
    ("ROOT", ("-i",)), ("DAEMON|^root", ("-E", "-i")), ("BIN", ("-F", "-i")),
]
# fmt: on


@pytest.mark.parametrize(("regex", "flags"), GREP_CASES)
def test_grep_matches_grep_in_the_c_locale(
    guest: tuple[GuestTree, Path, Path], regex: str, flags: tuple[str, ...]
) -> None:
    tree, root, _ = guest
    pattern = regex.encode("utf-8", errors="surrogateescape")
    expected = subprocess.run(
        ["grep", "-a", *flags, "-e", pattern],
        stdin=(root / "etc/passwd").open("rb"),
        env=C_LOCALE,
        capture_output=True,
        check=False,
    )
    assert expected.returncode in (0, 1), expected.stderr

    found = reading.grep(
        tree,
        regex,
        "/etc/passwd",
        extended="-E" in flags,
        fixed="-F" in flags,
        insensitive="-i" in flags,
    )
    assert found == libguestfs_lines(expected.stdout)


@pytest.mark.parametrize(
    ("suffix", "compress", "zgrep"),
    [
        (".gz", ["gzip", "-c"], "zgrep"),
        (".bz2", ["bzip2", "-c"], "bzgrep"),
        (".xz", ["xz", "-c"], "xzgrep"),
        ("", ["cat"], "zgrep"),
    ],
)
def test_grep_compressed_matches_zgrep(
    guest: tuple[GuestTree, Path, Path], suffix: str, compress: list[str], zgrep: str
) -> None:
    tree, root, _ = guest
    packed = root / f"var/log/messages{suffix}"
    packed.parent.mkdir(parents=True)
    packed.write_bytes(host_run([*compress, str(root / "etc/passwd")]))
    expected = host_run([zgrep, "-a", "nologin", str(packed)])

    found = reading.grep(tree, "nologin", f"/var/log/messages{suffix}", compressed=True)

    assert found == libguestfs_lines(expected)
    assert len(found) == 2


def test_grep_gzip_without_compressed_reads_raw_bytes(guest: tuple[GuestTree, Path, Path]) -> None:
    tree, root, _ = guest
    (root / "etc/passwd.gz").write_bytes(gzip.compress(PASSWD))

    assert reading.grep(tree, "nologin", "/etc/passwd.gz") == []
    assert reading.grep(tree, "nologin", "/etc/passwd.gz", compressed=True) != []


@pytest.mark.parametrize(
    ("regex", "options"),
    [("a", {"extended": True, "fixed": True}), ("a\\(", {}), ("(a", {"extended": True})],
)
def test_grep_refuses_bad_arguments(
    guest: tuple[GuestTree, Path, Path], regex: str, options: dict[str, bool]
) -> None:
    with pytest.raises(GuestFileError, match="cannot grep /etc/passwd"):
        reading.grep(guest[0], regex, "/etc/passwd", **options)


def test_grep_corrupt_compressed_data_is_a_guest_error(guest: tuple[GuestTree, Path, Path]) -> None:
    tree, root, _ = guest
    (root / "etc/cut.gz").write_bytes(gzip.compress(PASSWD)[:40])

    with pytest.raises(GuestFileError, match=r"cannot grep /etc/cut\.gz"):
        reading.grep(tree, "root", "/etc/cut.gz", compressed=True)


# ---------------------------------------------------------------- checksums


@pytest.mark.parametrize("csumtype", ["md5", "sha1", "sha224", "sha256", "sha384", "sha512"])
def test_checksum_hashes_match_hashlib_and_coreutils(
    guest: tuple[GuestTree, Path, Path], csumtype: str
) -> None:
    tree, root, _ = guest
    host_file = root / "etc/passwd"
    coreutils = host_run([f"{csumtype}sum", str(host_file)]).split()[0].decode()

    result = reading.checksum(tree, csumtype, "/etc/passwd")

    assert result == hashlib.new(csumtype, PASSWD).hexdigest() == coreutils
    assert reading.checksum(tree, csumtype.upper(), "/etc/passwd") == result


@pytest.mark.parametrize("name", sorted(TEXT_FILES))
def test_checksum_crc_matches_cksum(guest: tuple[GuestTree, Path, Path], name: str) -> None:
    tree, root, _ = guest
    expected = host_run(["cksum", str(root / name)]).split()[0].decode()

    assert reading.checksum(tree, "crc", "/" + name) == expected


def test_checksum_crc_matches_cksum_at_length_byte_edges(tmp_path: Path) -> None:
    """cksum appends the length in as few bytes as it needs: 0, 1, 2 and 3 of them."""
    tree = GuestTree(str(tmp_path), lambda: True, lambda _path: False)
    for size in (0, 1, 255, 256, 65_535, 65_536, 70_001):
        (tmp_path / "f").write_bytes(bytes(range(256)) * (size // 256) + b"\x5a" * (size % 256))
        expected = host_run(["cksum", str(tmp_path / "f")]).split()[0].decode()
        assert reading.checksum(tree, "crc", "/f") == expected, size


def test_checksum_unknown_type_is_refused(guest: tuple[GuestTree, Path, Path]) -> None:
    with pytest.raises(GuestFileError, match="unknown checksum type 'sha3'"):
        reading.checksum(guest[0], "sha3", "/etc/passwd")


@pytest.fixture
def sums_tree(guest: tuple[GuestTree, Path, Path]) -> Path:
    """A folder of files with awkward names, special files and links out of the guest."""
    _, root, host = guest
    top = root / "srv/sums"
    (top / "sub/deeper").mkdir(parents=True)
    for name, data in {
        "a.txt": b"alpha\n",
        "sub/b.bin": os.urandom(3000),
        "sub/deeper/c": b"",
        "back\\slash": b"1",
        "new\nline": b"2",
        "carriage\rreturn": b"3",
        "with space": b"4",
        "café": b"5",
        os.fsdecode(b"not utf-8 \xff"): b"6",
    }.items():
        (top / name).write_bytes(data)
    os.symlink(host, top / "hostdir")
    os.symlink(host / "secret.txt", top / "hostfile")
    os.symlink("../../..", top / "sub/up")
    os.mkfifo(top / "fifo")
    return top


@pytest.mark.parametrize("csumtype", ["md5", "sha256", "crc"])
def test_checksums_out_matches_find_and_xargs(
    guest: tuple[GuestTree, Path, Path], sums_tree: Path, tmp_path: Path, csumtype: str
) -> None:
    tree = guest[0]
    program = "cksum" if csumtype == "crc" else f"{csumtype}sum"
    expected = host_run(["sh", "-c", f"find -type f -print0 | xargs -0 {program}"], sums_tree)
    sumsfile = tmp_path / "sums.txt"

    reading.checksums_out(tree, csumtype, "/srv/sums", str(sumsfile))

    written = sumsfile.read_bytes()
    assert sorted(written.split(b"\n")) == sorted(expected.split(b"\n"))
    assert b"secret" not in written and b"big.bin" not in written


def test_checksums_out_refuses_a_file(guest: tuple[GuestTree, Path, Path], tmp_path: Path) -> None:
    with pytest.raises(GuestFileError, match="not a directory"):
        reading.checksums_out(guest[0], "md5", "/etc/passwd", str(tmp_path / "sums"))


# ---------------------------------------------------------------- types and sizes


@pytest.fixture
def special_files(guest: tuple[GuestTree, Path, Path]) -> Iterator[Path]:
    """A guest /dev with a FIFO, a socket and (as root) device nodes of /dev/zero and sda."""
    root = guest[1]
    dev = root / "dev"
    dev.mkdir()
    os.mkfifo(dev / "fifo")
    server = socket.socket(socket.AF_UNIX)
    with contextlib.suppress(OSError):  # a tmp path too long for AF_UNIX: those cases skip
        server.bind(str(dev / "sock"))
    with contextlib.suppress(PermissionError):  # not root: the device cases skip
        os.mknod(dev / "zero", stat.S_IFCHR | 0o600, os.makedev(1, 5))
        os.mknod(dev / "sda", stat.S_IFBLK | 0o600, os.makedev(8, 0))
    yield dev
    server.close()


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("/dev", "directory"),
        ("/etc/escape", "symbolic link"),
        ("/etc/absolute", "symbolic link"),
        ("/dev/fifo", "FIFO"),
        ("/dev/sock", "socket"),
        ("/dev/zero", "character device"),
        ("/dev/sda", "block device"),
    ],
)
def test_file_names_what_is_not_a_regular_file(
    guest: tuple[GuestTree, Path, Path], special_files: Path, name: str, expected: str
) -> None:
    if not os.path.lexists(guest[1] / name.lstrip("/")):
        pytest.skip(f"{name} could not be made here")

    assert reading.file(guest[0], name) == expected


@pytest.mark.requires_tool("file")
def test_file_describes_contents_as_file_zb(guest: tuple[GuestTree, Path, Path]) -> None:
    tree, root, _ = guest
    shutil.copy("/bin/ls", root / "ls")
    (root / "etc/passwd.gz").write_bytes(gzip.compress(PASSWD))

    for name in ("ls", "etc/passwd", "etc/passwd.gz", "etc/lines.txt", "etc/empty.txt"):
        expected = host_run(["file", "-zb", str(root / name)]).decode().rstrip("\n")
        assert reading.file(tree, "/" + name) == expected
    assert reading.file(tree, "/ls").startswith("ELF ")
    assert reading.file(tree, "/etc/lines.txt") == "ASCII text"


def test_filesize_follows_links_inside_the_guest(guest: tuple[GuestTree, Path, Path]) -> None:
    tree = guest[0]

    assert reading.filesize(tree, "/etc/passwd") == len(PASSWD)
    assert reading.filesize(tree, "/etc/passwd-link") == len(PASSWD)
    assert reading.filesize(tree, "/etc/escape") == len(GUEST_SECRET)
    assert reading.filesize(tree, "/etc/absolute") == len(GUEST_ABSOLUTE)


@pytest.mark.parametrize("link", ["/etc/escape", "/etc/absolute"])
def test_hostile_links_are_read_on_the_guest_side(
    guest: tuple[GuestTree, Path, Path], link: str
) -> None:
    tree = guest[0]
    content = GUEST_SECRET if link == "/etc/escape" else GUEST_ABSOLUTE
    line = content.decode().rstrip("\n")

    assert reading.read_lines(tree, link) == [line]
    assert reading.head(tree, link) == reading.tail(tree, link) == [line]
    assert reading.grep(tree, "SIDE", link) == [line]
    assert reading.grep(tree, "SECRET", link) == []
    assert reading.checksum(tree, "sha256", link) == hashlib.sha256(content).hexdigest()


@pytest.fixture
def du_tree(guest: tuple[GuestTree, Path, Path]) -> Path:
    """Files, a sparse file, hard links and links out of the guest, under /data."""
    _, root, host = guest
    data = root / "data"
    (data / "sub").mkdir(parents=True)
    (data / "small").write_bytes(b"x" * 100)
    (data / "sub/medium").write_bytes(os.urandom(300_000))
    with (data / "sparse").open("wb") as f:
        f.truncate(10 * MIB)
        f.seek(5 * MIB)
        f.write(b"y" * 4096)
    os.link(data / "sub/medium", data / "hardlink")
    os.symlink(host, data / "hostdir")
    os.symlink("../../..", data / "sub/up")
    return data


@pytest.mark.parametrize("name", ["/data", "/data/sub", "/data/sparse", "/data/hostdir", "/"])
def test_du_matches_du_sk(guest: tuple[GuestTree, Path, Path], du_tree: Path, name: str) -> None:
    tree, root, _ = guest
    expected = int(host_run(["du", "-sk", str(root / name.lstrip("/"))]).split()[0])

    assert reading.du(tree, name) == expected


def test_du_never_follows_links(guest: tuple[GuestTree, Path, Path], du_tree: Path) -> None:
    assert reading.du(guest[0], "/data") < 2 * 1024  # host/big.bin alone is 2 MiB


def test_statvfs_matches_os_statvfs(guest: tuple[GuestTree, Path, Path]) -> None:
    tree, root, _ = guest
    expected = os.statvfs(root)

    result = reading.statvfs(tree, "/etc/passwd")

    assert list(result) == [
        "bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "favail",
        "fsid", "flag", "namemax",
    ]  # fmt: skip
    for stable in ("bsize", "frsize", "blocks", "files", "fsid", "flag", "namemax"):
        assert result[stable] == getattr(expected, f"f_{stable}"), stable
    assert 0 <= result["bavail"] <= result["bfree"] <= result["blocks"]  # others write here too
    assert 0 <= result["favail"] <= result["ffree"] <= result["files"]


# ---------------------------------------------------------------- errors and safety

ALL_CALLS: dict[str, Callable[[GuestTree, str], object]] = {
    "read_lines": reading.read_lines,
    "head": reading.head,
    "tail_n": lambda tree, path: reading.tail_n(tree, -2, path),
    "grep": lambda tree, path: reading.grep(tree, "x", path),
    "checksum": lambda tree, path: reading.checksum(tree, "crc", path),
    "file": reading.file,
    "filesize": reading.filesize,
    "du": reading.du,
    "statvfs": reading.statvfs,
}


@pytest.mark.parametrize("call", sorted(ALL_CALLS))
def test_missing_paths_raise_file_not_found(guest: tuple[GuestTree, Path, Path], call: str) -> None:
    with pytest.raises(GuestFileNotFoundError) as caught:
        ALL_CALLS[call](guest[0], "/etc/missing/file")

    assert isinstance(caught.value, FileNotFoundError)
    assert "/etc/missing/file" in str(caught.value)


@pytest.mark.parametrize("call", sorted(ALL_CALLS))
@pytest.mark.parametrize("path", ["etc/passwd", "/etc/pass\0wd"])
def test_malformed_paths_are_refused(
    guest: tuple[GuestTree, Path, Path], call: str, path: str
) -> None:
    with pytest.raises(GuestPathError):
        ALL_CALLS[call](guest[0], path)


@pytest.mark.timeout(HOSTILE_TIMEOUT_S)
@pytest.mark.parametrize("call", ["read_lines", "head", "tail_n", "grep", "checksum"])
@pytest.mark.parametrize("name", ["/dev", "/dev/fifo", "/dev/zero", "/dev/sda"])
def test_contents_of_special_files_are_never_opened(
    guest: tuple[GuestTree, Path, Path], special_files: Path, call: str, name: str
) -> None:
    """A FIFO would block and /dev/zero never end: both must be refused before opening."""
    if not os.path.lexists(guest[1] / name.lstrip("/")):
        pytest.skip(f"{name} could not be made here")

    with pytest.raises(GuestFileError, match=f"{name}: not a regular file"):
        ALL_CALLS[call](guest[0], name)


@pytest.mark.timeout(HOSTILE_TIMEOUT_S)
def test_checksums_out_skips_special_files(
    guest: tuple[GuestTree, Path, Path], special_files: Path, tmp_path: Path
) -> None:
    reading.checksums_out(guest[0], "md5", "/dev", str(tmp_path / "sums"))

    assert (tmp_path / "sums").read_bytes() == b""


# ---------------------------------------------------------------- large files


@pytest.fixture
def big_file(tmp_path: Path) -> tuple[GuestTree, Path]:
    """A 64 MiB sparse file whose last kilobytes hold lines."""
    path = tmp_path / "big"
    tail_lines = b"".join(b"\nrecord %03d" % i for i in range(40)) + b"\n"
    with path.open("wb") as f:
        f.truncate(BIG_FILE_SIZE - len(tail_lines))
        f.seek(0, os.SEEK_END)
        f.write(tail_lines)
    return GuestTree(str(tmp_path), lambda: True, lambda _path: False), path


def peak_memory(call: Callable[[], T]) -> tuple[T, int]:
    """What ``call`` returns, and the peak of Python's allocations while it ran."""
    tracemalloc.start()
    try:
        result = call()
        return result, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("csumtype", ["sha256", "md5", "crc"])
def test_checksum_streams_a_large_file(big_file: tuple[GuestTree, Path], csumtype: str) -> None:
    tree, path = big_file
    assert path.stat().st_size == BIG_FILE_SIZE
    program = "cksum" if csumtype == "crc" else f"{csumtype}sum"
    expected = host_run([program, str(path)]).split()[0].decode()

    result, peak = peak_memory(lambda: reading.checksum(tree, csumtype, "/big"))

    assert result == expected
    assert peak < MEMORY_LIMIT, f"peak {peak} bytes"


def test_tail_reads_a_large_file_from_its_end(big_file: tuple[GuestTree, Path]) -> None:
    tree, path = big_file
    expected = libguestfs_lines(host_run(["tail", "-n", "10", str(path)]))

    result, peak = peak_memory(lambda: reading.tail(tree, "/big"))

    assert result == expected == [f"record {i:03d}" for i in range(30, 40)]
    assert peak < MEMORY_LIMIT, f"peak {peak} bytes"
