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
from typing import Any

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

# A vmdk descriptor extent line: access, size in sectors, type, "file name", [offset].
_VMDK_EXTENT = re.compile(r'^\s*(RW|RDONLY|NOACCESS)\s+\d+\s+(\w+)\s*(?:"([^"]*)")?', re.M)
_VMDK_PARENT = re.compile(r'^\s*parentFileNameHint\s*=\s*"([^"]*)"', re.M)


@dataclass(frozen=True)
class ImageInfo:
    """What is known of an image file after probing and checking it."""

    path: str
    format: str
    virtual_size: int
    referenced_files: list[str] = field(default_factory=list)


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
    folder = os.path.dirname(os.path.realpath(image_path))
    return os.path.normpath(os.path.join(folder, name))


def _qcow2_references(path: str, head: bytes) -> list[str]:
    # Header: magic, version, backing_file_offset (u64), backing_file_size (u32).
    if len(head) < 20:
        raise ImageFormatError(f"cannot open image {path}: qcow2 header is truncated")
    offset, size = struct.unpack_from(">QI", head, 8)
    if offset == 0 or size == 0:
        return []
    with open(path, "rb") as f:
        f.seek(offset)
        name = f.read(size).decode(errors="replace")
    return [name]


def _vmdk_descriptor(path: str, head: bytes) -> str:
    if head.lstrip().startswith(_VMDK_DESCRIPTOR_MARK):
        with open(path, "rb") as f:
            return f.read(64 * 1024).decode(errors="replace")
    # Sparse header: descriptorOffset and descriptorSize (u64, in sectors) at 28 and 36.
    if len(head) < 44:
        raise ImageFormatError(f"cannot open image {path}: vmdk header is truncated")
    offset, size = struct.unpack_from("<QQ", head, 28)
    if offset == 0 or size == 0:
        return ""
    with open(path, "rb") as f:
        f.seek(offset * 512)
        return f.read(min(size, 128) * 512).decode(errors="replace")


def _vmdk_references(path: str, head: bytes) -> list[str]:
    descriptor = _vmdk_descriptor(path, head)
    names = [m.group(3) for m in _VMDK_EXTENT.finditer(descriptor) if m.group(3)]
    own = os.path.basename(path)
    refs = [n for n in names if n != own]
    refs += _VMDK_PARENT.findall(descriptor)
    return refs


def header_references(path: str, fmt: str) -> list[str]:
    """List the other files an image's header makes qemu open, as written in the header."""
    head, _ = _read_head_and_tail(path)
    if fmt == "qcow2":
        return _qcow2_references(path, head)
    if fmt == "vmdk":
        return _vmdk_references(path, head)
    return []


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


def _reported_references(info: dict[str, Any]) -> list[str]:
    refs: list[str] = []
    for key in ("full-backing-filename", "backing-filename"):
        if info.get(key):
            refs.append(str(info[key]))
    data = info.get("format-specific", {}).get("data", {})
    if data.get("data-file"):
        refs.append(str(data["data-file"]))
    for extent in data.get("extents", []):
        if extent.get("filename"):
            refs.append(str(extent["filename"]))
    return refs


def _refuse_outside(path: str, refs: list[str], allow_backing: bool) -> list[str]:
    folder = os.path.dirname(os.path.realpath(path))
    resolved = [_resolve_reference(path, r) for r in refs]
    if allow_backing:
        return resolved
    own = os.path.realpath(path)
    for name, target in zip(refs, resolved, strict=True):
        if os.path.realpath(target) == own:
            continue
        if name.startswith(("json:", "nbd:", "http:", "https:", "ssh:", "iscsi:")):
            raise UnsafeImageError(
                f"refusing image {path}: its header names {name!r}, which is not a local file"
                " (pass allow_backing=True to trust it)"
            )
        if not _within(folder, target):
            raise UnsafeImageError(
                f"refusing image {path}: its header names {name!r}, outside the image's folder"
                " (pass allow_backing=True to trust it)"
            )
    return resolved


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
    declared = normalize_format(fmt) if fmt else None
    if declared and declared not in ("raw", sniffed):
        raise ImageFormatError(f"cannot open image {path} as {declared}: its header says {sniffed}")
    chosen = declared or sniffed
    if declared == "raw" and sniffed != "raw":
        log.warning("opening %s as raw although its header says %s", path, sniffed)

    refs = _refuse_outside(path, header_references(path, chosen), allow_backing)
    if chosen == "raw":
        size = _raw_size(path)
        if size == 0:
            raise ImageFormatError(f"cannot open image {path}: the device is empty")
        return ImageInfo(path, chosen, size, refs)

    info = _qemu_img_info(path, chosen)
    refs = _refuse_outside(path, _reported_references(info), allow_backing)
    size = int(info.get("virtual-size", 0))
    if size <= 0:
        raise ImageFormatError(f"cannot open image {path}: its virtual size is {size}")
    return ImageInfo(path, chosen, size, refs)


def _raw_size(path: str) -> int:
    with open(path, "rb") as f:
        return f.seek(0, os.SEEK_END)
