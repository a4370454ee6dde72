"""Format probing and header safety checks for image files.

An image header can name other files: a qcow2 backing file or external data file, the extents
of a vmdk descriptor. Opened blindly, a crafted header makes the host read any file it names
(``/etc/shadow`` as a backing file). Everything here runs before qemu opens the image, and
qemu-img's own report is checked again afterwards.

Host tools: qemu-img.
"""

from __future__ import annotations

import json
import logging
import os
import re
import stat
import struct
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from vmcraft import command
from vmcraft.errors import (
    CommandError,
    ImageError,
    ImageFormatError,
    ImageNotFoundError,
    UnsafeImageError,
)

log = logging.getLogger(__name__)

FORMATS = ("raw", "qcow2", "vmdk", "vpc", "vhdx", "vdi")
"""Formats VMCraft opens, by qemu's driver names (``vpc`` is VHD)."""

FORMAT_ALIASES = {"vhd": "vpc", "qcow": "qcow2", "img": "raw"}

_QCOW2_MAGIC = b"QFI\xfb"
_VMDK_SPARSE_MAGIC = b"KDMV"
_VMDK_DESCRIPTOR_MARK = b"# Disk DescriptorFile"
_VHDX_MAGIC = b"vhdxfile"
_VPC_MAGIC = b"conectix"
_VDI_SIGNATURE = 0xBEDA107F
_VDI_SIGNATURE_OFFSET = 0x40
_FOOTER_SIZE = 512
_SECTOR_SIZE = 512
_QCOW2_DATA_FILE_EXTENSION = 0x44415441
_QCOW2_V2_HEADER_SIZE = 72
_QCOW2_MAX_CLUSTER_BITS = 21
_VMDK_DESCRIPTOR_LIMIT = (1 << 20) - 1  # NB: what qemu 7.2's vmdk_read_desc reads
_VMDK_SPARSE_PARENT_OFFSET = 0x200  # NB: qemu 7.2 looks for the parent hint here
_VMDK_PARENT_WINDOW = 20 * _SECTOR_SIZE  # qemu's DESC_SIZE
_VMDK_PARENT_MARK = "parentFileNameHint"
_MAX_CHAIN_FILES = 64

# A vmdk extent line as qemu 7.2 scans one from the start of every line: sscanf skips any
# whitespace (newlines too), takes a signed sector count, and opens at most 511 characters
# of the name even without its closing quote. Access, sectors, type, "name".
_VMDK_EXTENT = re.compile(r'(?:RW|RDONLY|NOACCESS)\s+[+-]?\d+\s+\S+?\s*"([^"\n\r]{1,511})')
_LINE_START = re.compile(r"(?:^|\n)\s*")
# NB: qemu opens "proto:rest" with that protocol when the colon precedes any slash
# (path_has_protocol): "file:/etc/shadow" names the host file, "json:{...}" any node.
_PROTOCOL = re.compile(r"[^:/]*:")


@dataclass(frozen=True)
class ImageInfo:
    """What is known of an image file after probing and checking it."""

    path: str
    format: str
    virtual_size: int
    referenced_files: list[str] = field(default_factory=list)
    allow_backing: bool = False


def normalize_format(fmt: str) -> str:
    """Map a user's format name to qemu's driver name, refusing unknown ones."""
    name = FORMAT_ALIASES.get(fmt.lower(), fmt.lower())
    if name not in FORMATS:
        raise ImageFormatError(
            f"unsupported image format {fmt!r}: expected one of {', '.join(FORMATS)}"
        )
    return name


def check_image_file(path: str) -> os.stat_result:
    """Make sure ``path`` is a readable, non-empty regular file or block device."""
    try:
        st = os.stat(path)
    except FileNotFoundError as e:
        raise ImageNotFoundError(f"cannot open image {path}: no such file") from e
    except OSError as e:
        raise ImageError(f"cannot open image {path}: {e.strerror}") from e

    if stat.S_ISDIR(st.st_mode):
        raise ImageFormatError(f"cannot open image {path}: it is a directory")
    if not (stat.S_ISREG(st.st_mode) or stat.S_ISBLK(st.st_mode)):
        raise ImageFormatError(f"cannot open image {path}: not a regular file or block device")
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise ImageFormatError(f"cannot open image {path}: the file is empty")
    if not os.access(path, os.R_OK):
        raise ImageError(f"cannot open image {path}: permission denied")
    return st


def _read_head_and_tail(path: str) -> tuple[bytes, bytes]:
    with open(path, "rb") as f:
        head = f.read(4096)
        size = f.seek(0, os.SEEK_END)
        if size >= _FOOTER_SIZE:
            f.seek(size - _FOOTER_SIZE)
            tail = f.read(_FOOTER_SIZE)
        else:
            tail = b""
    return head, tail


def sniff_format(path: str) -> str:
    """Guess an image's format from its magic bytes; anything unrecognised is raw."""
    head, tail = _read_head_and_tail(path)
    if head.startswith(_QCOW2_MAGIC):
        return "qcow2"
    if head.startswith(_VMDK_SPARSE_MAGIC) or head.lstrip().startswith(_VMDK_DESCRIPTOR_MARK):
        return "vmdk"
    if head.startswith(_VHDX_MAGIC):
        return "vhdx"
    if len(head) >= _VDI_SIGNATURE_OFFSET + 4:
        (signature,) = struct.unpack_from("<I", head, _VDI_SIGNATURE_OFFSET)
        if signature == _VDI_SIGNATURE:
            return "vdi"
    if head.startswith(_VPC_MAGIC) or tail.startswith(_VPC_MAGIC):
        return "vpc"
    return "raw"


def _within(folder: str, target: str) -> bool:
    real = os.path.realpath(target)
    return os.path.commonpath([folder, real]) == folder


def _resolve_reference(image_path: str, name: str) -> str:
    # NB: qemu joins a relative name to the folder of the path it was given, symlinks
    # unresolved, and lets the kernel resolve "..": normpath would get "link/.." wrong.
    folder = os.path.dirname(os.path.abspath(image_path))
    return os.path.join(folder, name)


def _read_at(path: str, offset: int, size: int) -> bytes:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            return f.read(size)
    except (OSError, ValueError, OverflowError) as e:
        raise ImageFormatError(f"cannot read image {path} at offset {offset}: {e}") from e


def _c_string(raw: bytes) -> str:
    # qemu reads header names as C strings; surrogateescape keeps any byte for os.path.
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _qcow2_references(path: str, head: bytes) -> list[str]:
    # Header: magic, version, backing_file_offset (u64), backing_file_size (u32).
    if len(head) < 20:
        raise ImageFormatError(f"cannot open image {path}: qcow2 header is truncated")
    offset, size = struct.unpack_from(">QI", head, 8)
    refs = [_c_string(_read_at(path, offset, size))] if offset and size else []
    return [r for r in refs if r] + _qcow2_data_file(path, head)


def _qcow2_data_file(path: str, head: bytes) -> list[str]:
    """The external data file a qcow2 header extension names, if any."""
    if len(head) < 104:
        return []
    version, cluster_bits = struct.unpack_from(">I", head, 4)[0], head[23]
    start = struct.unpack_from(">I", head, 100)[0] if version >= 3 else _QCOW2_V2_HEADER_SIZE
    cluster = _read_at(path, 0, 1 << min(cluster_bits, _QCOW2_MAX_CLUSTER_BITS))
    while start + 8 <= len(cluster):
        kind, length = struct.unpack_from(">II", cluster, start)
        if kind == 0:
            break
        if kind == _QCOW2_DATA_FILE_EXTENSION:
            name = _c_string(cluster[start + 8 : start + 8 + length])
            return [_data_file_target(name)] if name else []
        start += 8 + (length + 7) // 8 * 8
    return []


def _data_file_target(name: str) -> str:
    # NB: qemu 7.2 opens a relative data file from its working directory, not the image's.
    return name if _PROTOCOL.match(name) else os.path.abspath(name)


def _vmdk_references(path: str, head: bytes) -> list[str]:
    if head.startswith(_VMDK_SPARSE_MAGIC):
        if len(head) < 44:
            raise ImageFormatError(f"cannot open image {path}: vmdk header is truncated")
        # capacity and descriptorOffset (u64, the latter in sectors) at 12 and 28.
        capacity, _, descriptor_sector = struct.unpack_from("<QQQ", head, 12)
        hints = _read_at(path, _VMDK_SPARSE_PARENT_OFFSET, _VMDK_PARENT_WINDOW)
        descriptor = b""
        if capacity == 0 and descriptor_sector:  # NB: only then qemu reads its extents
            offset = descriptor_sector * _SECTOR_SIZE
            descriptor = _read_at(path, offset, _VMDK_DESCRIPTOR_LIMIT)
    else:
        descriptor = _read_at(path, 0, _VMDK_DESCRIPTOR_LIMIT)
        hints = descriptor[:_VMDK_PARENT_WINDOW]

    own = os.path.basename(path)
    refs = [n for n in _vmdk_extent_names(_c_string(descriptor)) if n != own]
    return refs + _vmdk_parent_hint(_c_string(hints))


def _vmdk_extent_names(descriptor: str) -> list[str]:
    # qemu tries every line, and sscanf skips the whitespace (blank lines too) before a
    # line's first word: lines that differ only by that start at the same place.
    starts = sorted({m.end() for m in _LINE_START.finditer(descriptor)})
    matches = (_VMDK_EXTENT.match(descriptor, start) for start in starts)
    return [m.group(1) for m in matches if m]


def _vmdk_parent_hint(text: str) -> list[str]:
    # NB: qemu 7.2 takes the first "parentFileNameHint" anywhere, even in a comment,
    # skips two characters (normally `="`) and reads up to the next quote.
    start = text.find(_VMDK_PARENT_MARK)
    if start < 0:
        return []
    start += len(_VMDK_PARENT_MARK) + 2
    end = text.find('"', start)
    return [text[start:end]] if end > start else []


def header_references(path: str, fmt: str) -> list[str]:
    """List the other files an image's header makes qemu open, as written in the header."""
    head, _ = _read_head_and_tail(path)
    if fmt == "qcow2":
        return _qcow2_references(path, head)
    if fmt == "vmdk":
        return _vmdk_references(path, head)
    return []


def _chained_references(path: str) -> list[str]:
    """What a file named by another image's header makes qemu open in turn.

    qemu may open such a file with any driver (a backing format from the header, or its
    own probe, which takes any text with a ``version=`` line as a vmdk descriptor), so it
    is read as qcow2 when it has the magic and as vmdk otherwise.
    """
    head, _ = _read_head_and_tail(path)
    if head.startswith(_QCOW2_MAGIC):
        return _qcow2_references(path, head)
    return _vmdk_references(path, head)


class _Reference(NamedTuple):
    owner: str  # the file whose header names it
    name: str  # as written there
    target: str  # the path qemu opens, or the name itself for a protocol


def _locate(owner: str, name: str) -> _Reference:
    target = name if _PROTOCOL.match(name) else _resolve_reference(owner, name)
    return _Reference(owner, name, target)


def _referenced_chain(path: str, fmt: str, allow_backing: bool) -> list[_Reference]:
    """The names in path's header and, recursively, in the headers of the files they name.

    Unless allow_backing, each is refused before its own header is read.
    """
    found: list[_Reference] = []
    seen = {os.path.realpath(path)}
    pending = [(path, header_references(path, fmt))]
    while pending:
        owner, names = pending.pop()
        for ref in (_locate(owner, name) for name in names):
            if not allow_backing:
                _refuse_outside(path, ref)
            found.append(ref)
            real = os.path.realpath(ref.target)
            if _PROTOCOL.match(ref.name) or real in seen or not os.path.isfile(real):
                continue
            if len(seen) >= _MAX_CHAIN_FILES:
                raise UnsafeImageError(f"refusing image {path}: its headers name too many files")
            seen.add(real)
            pending.append((ref.target, _chained_references(real)))
    return found


def _qemu_img_info(path: str, fmt: str) -> dict[str, Any]:
    argv = ["qemu-img", "info", "--output=json", "-U", "-f", fmt, path]
    try:
        result = command.run(argv, timeout=30)
    except CommandError as e:
        detail = e.stderr.strip().splitlines()[-1] if e.stderr.strip() else e.reason
        detail = detail.removeprefix("qemu-img: ")
        raise ImageFormatError(f"cannot open image {path} as {fmt}: {detail}") from e
    info: dict[str, Any] = json.loads(result.stdout)
    return info


def _reported_references(path: str, info: dict[str, Any]) -> list[_Reference]:
    refs: list[_Reference] = []
    for key in ("full-backing-filename", "backing-filename"):
        if info.get(key):
            refs.append(_locate(path, str(info[key])))
    data = info.get("format-specific", {}).get("data", {})
    if data.get("data-file"):
        name = str(data["data-file"])
        refs.append(_Reference(path, name, _data_file_target(name)))
    for extent in data.get("extents", []):
        if extent.get("filename"):
            refs.append(_locate(path, str(extent["filename"])))
    return refs


def _image_folders(path: str) -> set[str]:
    # The folder the caller named the image in, where qemu looks, and the real one.
    given = os.path.realpath(os.path.dirname(os.path.abspath(path)))
    return {given, os.path.dirname(os.path.realpath(path))}


def _refuse_outside(path: str, ref: _Reference) -> None:
    named = "its header names" if ref.owner == path else f"the header of {ref.owner} names"
    if _PROTOCOL.match(ref.name):
        raise UnsafeImageError(
            f"refusing image {path}: {named} {ref.name!r}, which is not a local file"
            " (pass allow_backing=True to trust it)"
        )
    if os.path.realpath(ref.target) == os.path.realpath(path):
        return
    if not any(_within(folder, ref.target) for folder in _image_folders(path)):
        raise UnsafeImageError(
            f"refusing image {path}: {named} {ref.name!r}, outside the image's folder"
            " (pass allow_backing=True to trust it)"
        )


def _checked(path: str, refs: list[_Reference], allow_backing: bool) -> list[str]:
    """The paths (or protocol names) the references lead to, each refused if unsafe."""
    if not allow_backing:
        for ref in refs:
            _refuse_outside(path, ref)
    real = (r.target if _PROTOCOL.match(r.name) else os.path.realpath(r.target) for r in refs)
    return list(dict.fromkeys(real))


def probe_image(path: str, fmt: str | None = None, allow_backing: bool = False) -> ImageInfo:
    """Check an image file and find its format, size and the files its header names.

    Args:
        path: The image file.
        fmt: The format the caller says it has; None to probe.
        allow_backing: Trust backing files and extents outside the image's folder.

    Raises:
        ImageNotFoundError: No such file.
        ImageFormatError: Empty, a directory, corrupt, or not of the stated format.
        UnsafeImageError: The header names files outside the image's folder.
    """
    check_image_file(path)
    sniffed = sniff_format(path)
    try:
        declared = normalize_format(fmt) if fmt else None
    except ImageFormatError as e:
        raise ImageFormatError(f"cannot open image {path}: {e}") from e
    if declared and declared not in ("raw", sniffed):
        raise ImageFormatError(f"cannot open image {path} as {declared}: its header says {sniffed}")
    chosen = declared or sniffed
    if declared == "raw" and sniffed != "raw":
        log.warning("opening %s as raw although its header says %s", path, sniffed)

    refs = _checked(path, _referenced_chain(path, chosen, allow_backing), allow_backing)
    if chosen == "raw":
        size = _raw_size(path)
        if size == 0:
            raise ImageFormatError(f"cannot open image {path}: the device is empty")
        return ImageInfo(path, chosen, size, refs, allow_backing)

    info = _qemu_img_info(path, chosen)
    refs = _checked(path, _reported_references(path, info), allow_backing)
    size = int(info.get("virtual-size", 0))
    if size <= 0:
        raise ImageFormatError(f"cannot open image {path}: its virtual size is {size}")
    return ImageInfo(path, chosen, size, refs, allow_backing)


def recheck_image(info: ImageInfo) -> None:
    """Check a probed image's header again just before it is opened.

    The file may have changed since it was probed; this repeats the checks that need no
    program (the magic bytes and the files the header names), so that what qemu opens is
    what was checked.

    Raises:
        ImageError: As :func:`probe_image` would.
    """
    check_image_file(info.path)
    sniffed = sniff_format(info.path)
    if info.format not in ("raw", sniffed):
        raise ImageFormatError(
            f"cannot open image {info.path} as {info.format}: its header now says {sniffed}"
        )
    chain = _referenced_chain(info.path, info.format, info.allow_backing)
    _checked(info.path, chain, info.allow_backing)


def _raw_size(path: str) -> int:
    with open(path, "rb") as f:
        return f.seek(0, os.SEEK_END)
