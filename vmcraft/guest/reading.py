"""The guest file calls that read: lines, heads and tails, grep, checksums, types and sizes.

Each call keeps the name, argument order and return shape of its libguestfs namesake
(guestfs(3)) and reaches the guest only through ``GuestTree.resolve``. Contents are opened
only when they are a regular file, so a guest's FIFO cannot hang a call and a guest's device
node never opens a host device. Large files are streamed; ``tail`` reads backwards from the
end; tree walks never follow a symlink. Calls take the guest's ``GuestTree`` and absolute
guest paths, and raise ``GuestPathError`` for a malformed path, ``GuestFileNotFoundError``
when nothing is there, ``GuestFileError`` when they cannot work.

Host tools: file.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import io
import itertools
import lzma
import os
import re
import stat
import zlib
from collections.abc import Callable, Iterator

from vmcraft.command import run
from vmcraft.errors import GuestArgumentError, GuestFileError
from vmcraft.guest.files import GuestTree, guest_errors, open_regular
from vmcraft.guest.paths import host_to_guest
from vmcraft.units import KIB, MIB

CHUNK_SIZE = MIB  # read at a time when streaming a file
TAIL_BLOCK_SIZE = 64 * KIB  # read at a time when tail walks backwards from the end
DEFAULT_LINES = 10  # as head(1) and tail(1) print
STAT_BLOCK_SIZE = 512  # unit of st_blocks (POSIX), whatever the filesystem's block size
CHECKSUM_TYPES = ("crc", "md5", "sha1", "sha224", "sha256", "sha384", "sha512")

_MASK32 = 0xFFFFFFFF
_BIT_REVERSED = bytes(int(f"{b:08b}"[::-1], 2) for b in range(256))
_XZ_MAGIC = b"\xfd7zXZ\x00"
_STATVFS_FIELDS = "bsize frsize blocks bfree bavail files ffree favail fsid flag namemax"
_FILE_TYPES = (stat.S_IFDIR, stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO, stat.S_IFLNK, stat.S_IFSOCK)
_FILE_TYPE_NAMES = "directory|character device|block device|FIFO|symbolic link|socket"
# POSIX character classes in the C locale, as the insides of Python brackets.
_CLASSES = r"""alpha=A-Za-z digit=0-9 alnum=0-9A-Za-z upper=A-Z lower=a-z xdigit=0-9A-Fa-f
    space=\s blank=\x20\t punct=!-/:-@\[-`{-~ print=\x20-~ graph=!-~ cntrl=\x00-\x1f\x7f"""
_POSIX_CLASSES = dict(item.split("=", 1) for item in _CLASSES.split())
_ESCAPES = {c: rf"\{c}" for c in "wWsSbB123456789"}  # GNU's escapes that Python shares
_ESCAPES |= {"<": r"\b", ">": r"\b", "`": r"\A", "'": r"\Z"}
_BRE_OPERATORS = "(){}|+?"  # operators with a backslash in a basic regex, literals without
_TOKEN = re.compile(r"\\(.)|([(){}|+?])|\[:(\w+):\]")


def read_lines(tree: GuestTree, path: str) -> list[str]:
    """A guest file's lines without their LF or CRLF (libguestfs ``read_lines``)."""
    with _reading(tree, "cannot read", path) as f:
        return [line.removesuffix("\r") for line in map(_text, f)]


def head(tree: GuestTree, path: str) -> list[str]:
    """The first 10 lines of a guest file (see :func:`head_n`)."""
    return head_n(tree, DEFAULT_LINES, path)


def head_n(tree: GuestTree, nrlines: int, path: str) -> list[str]:
    """The first lines of a guest file without their LF, as ``head -n nrlines`` prints them.

    Args:
        nrlines: Positive: that many lines. Negative: all but the last ``-nrlines``. Zero: none.
    """
    with _reading(tree, "cannot read", path) as f:
        if nrlines < 0:
            nrlines = max(sum(1 for _ in f) + nrlines, 0)  # count first: memory stays flat
            f.seek(0)
        return list(itertools.islice(map(_text, f), nrlines))


def tail(tree: GuestTree, path: str) -> list[str]:
    """The last 10 lines of a guest file (see :func:`tail_n`)."""
    return tail_n(tree, DEFAULT_LINES, path)


def tail_n(tree: GuestTree, nrlines: int, path: str) -> list[str]:
    """The last lines of a guest file without their LF, read backwards from its end.

    Args:
        nrlines: Positive: the last that many lines (``tail -n N``). Negative: every line
            from line number ``-nrlines`` on, counting from 1 (``tail -n +N``). Zero: none.
    """
    with _reading(tree, "cannot read", path) as f:
        if nrlines < 0:
            return list(itertools.islice(map(_text, f), -nrlines - 1, None))
        return [_text(raw) for raw in _last_lines(f, nrlines)] if nrlines else []


def _text(raw: bytes) -> str:
    return raw.removesuffix(b"\n").decode("utf-8", errors="surrogateescape")


def _last_lines(f: io.BufferedReader, count: int) -> list[bytes]:
    """The last ``count`` lines, reading blocks backwards only as far as they reach."""
    position = f.seek(0, os.SEEK_END)
    blocks: list[bytes] = []
    newlines = 0

    # One newline more than the lines asked for ends the line before the first of them.
    while position > 0 and newlines <= count:
        size = min(TAIL_BLOCK_SIZE, position)
        position -= size
        f.seek(position)
        blocks.append(f.read(size))
        newlines += blocks[-1].count(b"\n")

    # NB: split on LF alone, as tail(1) does; bytes.splitlines would split on CR too.
    lines = b"".join(reversed(blocks)).split(b"\n")
    if lines[-1] == b"":
        lines.pop()  # the file ends with LF, or is empty
    if position > 0:
        lines = lines[1:]  # the first block began inside a line
    return lines[-count:]


def grep(
    tree: GuestTree,
    regex: str,
    path: str,
    *,
    extended: bool = False,
    fixed: bool = False,
    insensitive: bool = False,
    compressed: bool = False,
) -> list[str]:
    """The lines of a guest file, without their LF, that match (libguestfs ``grep``).

    Lines are matched as bytes, as grep does in the C locale libguestfs runs it in, so
    ``insensitive`` folds ASCII only. Regexes are Python's with POSIX classes, GNU's ``\\<``
    ``\\>`` and, in a basic one, ``\\( \\) \\{ \\} \\| \\+ \\?`` as operators (plain: literals).
    Each line of ``regex`` is a pattern. Unlike grep, ``^ $`` always anchor and NUL bytes
    do not hide the matching lines of a binary file (``grep -a``).

    Args:
        extended: An extended regex (``grep -E``).
        fixed: A plain substring (``grep -F``); not with ``extended``.
        insensitive: Ignore case (``grep -i``).
        compressed: Decompress gzip, bzip2 or xz data (``zgrep``); read other data as is.
    """
    if extended and fixed:
        raise GuestArgumentError(f"cannot grep {path}: 'extended' and 'fixed' exclude each other")
    try:
        matches = _matcher(regex, extended, fixed, insensitive)
    except re.error as e:
        raise GuestArgumentError(f"cannot grep {path}: invalid regex {regex!r}: {e}") from e

    with _reading(tree, "cannot grep", path) as f:
        try:
            with _decompressed(f) if compressed else f as data:
                return [_text(raw) for raw in data if matches(raw.removesuffix(b"\n"))]
        except (EOFError, lzma.LZMAError, zlib.error) as e:
            raise GuestFileError(f"cannot grep {path}: corrupt compressed data: {e}") from e


def _matcher(regex: str, extended: bool, fixed: bool, nocase: bool) -> Callable[[bytes], bool]:
    """Tells whether a line matches any of the patterns (one a line) in ``regex``."""
    sources = regex.split("\n")
    if fixed:
        fold: Callable[[bytes], bytes] = bytes.lower if nocase else bytes
        needles = [fold(s.encode("utf-8", errors="surrogateescape")) for s in sources]
        return lambda line: any(n in fold(line) for n in needles)

    flags = re.IGNORECASE if nocase else 0
    patterns = [_translate(s, extended).encode("utf-8", "surrogateescape") for s in sources]
    compiled = [re.compile(p, flags) for p in patterns]
    return lambda line: any(p.search(line) for p in compiled)


def _translate(regex: str, extended: bool) -> str:
    """A POSIX regex in Python's syntax.

    Character classes and GNU's escapes are translated; in a basic regex, the meanings of
    ``( ) { } | + ?`` with and without a backslash are swapped.
    """

    def token(m: re.Match[str]) -> str:
        escaped, plain, name = m.group(1, 2, 3)
        if name is not None and name not in _POSIX_CLASSES:
            raise re.error(f"invalid character class {name!r}")
        if name is not None:
            return _POSIX_CLASSES[name]
        if plain is not None:
            return plain if extended else "\\" + plain
        if escaped in _BRE_OPERATORS and not extended:
            return str(escaped)
        return _ESCAPES.get(escaped, re.escape(escaped))

    pattern = _TOKEN.sub(token, regex)
    return "\\" + pattern if pattern.startswith(("*", "+", "?")) else pattern  # as grep does


def _decompressed(f: io.BufferedReader) -> io.BufferedIOBase:
    """The file's data, decompressed when its magic number names gzip, bzip2 or xz."""
    magic = f.read(len(_XZ_MAGIC))
    f.seek(0)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.GzipFile(fileobj=f, mode="rb")
    if magic.startswith(b"BZh"):
        return bz2.BZ2File(f)
    return lzma.LZMAFile(f) if magic == _XZ_MAGIC else f


class _PosixCrc:
    """The CRC that POSIX ``cksum`` prints (polynomial 0x04C11DB7, most significant bit first).

    zlib runs the same polynomial bit-reflected: fed bytes with their bits reversed, its
    register reversed at the end is the unreflected CRC, at C speed.
    """

    def __init__(self) -> None:
        self._zlib_value = _MASK32  # zlib's value for an all-zero register
        self.length = 0

    def update(self, data: bytes) -> None:
        self._zlib_value = zlib.crc32(data.translate(_BIT_REVERSED), self._zlib_value)
        self.length += len(data)

    def hexdigest(self) -> str:
        """The checksum as ``cksum`` prints it, in decimal (named like hashlib's method)."""
        length = self.length.to_bytes((self.length.bit_length() + 7) // 8, "little")
        register = ~zlib.crc32(length.translate(_BIT_REVERSED), self._zlib_value) & _MASK32
        return str(~int(f"{register:032b}"[::-1], 2) & _MASK32)


def checksum(tree: GuestTree, csumtype: str, path: str) -> str:
    """The checksum of a guest file (libguestfs ``checksum``).

    Args:
        csumtype: One of ``CHECKSUM_TYPES``, in any case. ``crc`` gives POSIX ``cksum``'s
            CRC in decimal; the others give a hash in lowercase hex.
    """
    kind = _checksum_kind(csumtype)
    with _reading(tree, "cannot checksum", path) as f:
        return _digest(kind, f).hexdigest()


def checksums_out(tree: GuestTree, csumtype: str, directory: str, sumsfile: str) -> None:
    """Write the checksum of every regular file below a guest folder to a host file.

    The lines are those of ``find -type f | xargs md5sum`` run in ``directory`` (for
    ``crc``, of ``cksum``: CRC, size, name): ``<sum>  ./relative/path``, with coreutils'
    backslash escape for names holding a backslash, LF or CR. Symlinks are neither followed
    nor listed. Files come in name order, folder by folder (find's order is unspecified).

    Args:
        csumtype: One of ``CHECKSUM_TYPES``, in any case.
        sumsfile: Host path of the file to write.
    """
    kind = _checksum_kind(csumtype)
    top = tree.resolve(directory)
    with guest_errors("cannot checksum", directory):
        if not stat.S_ISDIR(os.stat(top).st_mode):
            raise GuestFileError(f"cannot checksum {directory}: not a directory")

    with open(sumsfile, "wb") as out, guest_errors("cannot checksum", directory):
        for entry in _walk(top):
            if entry.is_file(follow_symlinks=False):
                name = "./" + os.path.relpath(entry.path, top)
                out.write(_sum_line(kind, entry.path, host_to_guest(tree.root, entry.path), name))


def _checksum_kind(csumtype: str) -> str:
    kind = csumtype.lower()
    if kind not in CHECKSUM_TYPES:
        raise GuestArgumentError(
            f"unknown checksum type {csumtype!r}: use {'|'.join(CHECKSUM_TYPES)}"
        )
    return kind


def _digest(kind: str, f: io.BufferedReader) -> _PosixCrc | hashlib._Hash:
    digest = _PosixCrc() if kind == "crc" else hashlib.new(kind)
    for chunk in iter(lambda: f.read(CHUNK_SIZE), b""):
        digest.update(chunk)
    return digest


def _sum_line(kind: str, host: str, guest: str, name: str) -> bytes:
    with os.fdopen(open_regular(host, "cannot checksum", guest), "rb") as f:
        digest = _digest(kind, f)
    raw = os.fsencode(name)
    if isinstance(digest, _PosixCrc):
        return b"%s %d %s\n" % (digest.hexdigest().encode(), digest.length, raw)

    # NB: coreutils 9.1 escapes CR as well as backslash and LF; 8.x left CR alone.
    escaped = raw.replace(b"\\", b"\\\\").replace(b"\n", b"\\n").replace(b"\r", b"\\r")
    flag = b"\\" if escaped != raw else b""
    return b"%s%s  %s\n" % (flag, digest.hexdigest().encode(), escaped)


def _walk(top: str) -> Iterator[os.DirEntry[str]]:
    """Every entry below a folder, in name order, folder by folder, no symlink followed."""
    pending = [top]
    while pending:
        with os.scandir(pending.pop()) as found:
            entries = sorted(found, key=lambda e: e.name)
        yield from entries
        pending.extend(e.path for e in reversed(entries) if e.is_dir(follow_symlinks=False))


def file(tree: GuestTree, path: str) -> str:
    """Describe what a guest path is, a final symlink not followed (libguestfs ``file``).

    Returns:
        For a regular file, what ``file -zb`` says of its contents (``ASCII text``,
        ``ELF 64-bit LSB executable, x86-64, ...``); otherwise its type: ``directory``,
        ``character device``, ``block device``, ``FIFO``, ``symbolic link`` or ``socket``.
    """
    host = tree.resolve(path, follow_final=False)
    with guest_errors("cannot determine the type of", path):
        mode = os.lstat(host).st_mode
    if not stat.S_ISREG(mode):
        names = dict(zip(_FILE_TYPES, _FILE_TYPE_NAMES.split("|"), strict=True))
        return names.get(stat.S_IFMT(mode), "unknown, not regular file")

    # -h: should the file have turned into a symlink meanwhile, describe it, never follow.
    return _described(["file", "-zbh", "--", host], path)


def device_file(host_device: str, name: str) -> str:
    """What a guest device holds, as ``file -zbsL`` reads it (libguestfs ``file`` of a device).

    Args:
        host_device: The host path of the guest device.
        name: The guest's name for it (``/dev/sda1``), for messages.
    """
    return _described(["file", "-zbsL", "--", host_device], name)


def _described(argv: list[str], name: str) -> str:
    result = run(argv, check=False)
    if result.returncode != 0:
        raise GuestFileError(f"cannot determine the type of {name}: {result.stderr.strip()}")
    return result.stdout.removesuffix("\n").removesuffix(" ")


def filesize(tree: GuestTree, path: str) -> int:
    """The size in bytes of a guest file, a final symlink followed inside the guest."""
    host = tree.resolve(path)
    with guest_errors("cannot stat", path):
        return os.stat(host).st_size


def du(tree: GuestTree, path: str) -> int:
    """Disk space used by a guest path and all below it, in KiB rounded up, as ``du -s``.

    Allocated blocks are summed (holes cost nothing), each inode once however many hard
    links reach it; symlinks, the final one too, count themselves and are never followed.
    """
    host = tree.resolve(path, follow_final=False)
    with guest_errors("cannot measure", path):
        used = _bytes_used(host)
    return -(-used // KIB)


def _bytes_used(top: str) -> int:
    st = os.lstat(top)
    blocks = st.st_blocks
    seen: set[tuple[int, int]] = set()

    for entry in _walk(top) if stat.S_ISDIR(st.st_mode) else ():
        st = entry.stat(follow_symlinks=False)
        inode = (st.st_dev, st.st_ino)
        if st.st_nlink > 1 and not stat.S_ISDIR(st.st_mode) and inode in seen:
            continue  # a hard link to an inode already counted
        seen.add(inode)
        blocks += st.st_blocks
    return blocks * STAT_BLOCK_SIZE


def statvfs(tree: GuestTree, path: str) -> dict[str, int]:
    """Statistics of the filesystem holding a guest path (libguestfs ``statvfs``).

    Returns:
        statvfs(3)'s fields by their names without ``f_`` (``bsize`` ... ``namemax``).
    """
    host = tree.resolve(path)
    with guest_errors("cannot stat the filesystem of", path):
        st = os.statvfs(host)
    return {name: int(getattr(st, f"f_{name}")) for name in _STATVFS_FIELDS.split()}


@contextlib.contextmanager
def _reading(tree: GuestTree, action: str, path: str) -> Iterator[io.BufferedReader]:
    """A guest file opened for reading, with OSErrors turned into guest errors."""
    host = tree.resolve(path)
    with guest_errors(action, path), os.fdopen(open_regular(host, action, path), "rb") as f:
        yield f
