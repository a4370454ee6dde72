"""What the inspection tests share: an opened handle, the answers of every get_* call,
the two witnesses of side effects (this session's mounts, an image's bytes), and the
application records libguestfs returns, spelled from guestfs(3) rather than from the code."""

from __future__ import annotations

import logging
import re
import struct
import tempfile
import zlib
from pathlib import Path

import guests
import pytest
from guests import Guest, opened

from vmcraft import VMCraft
from vmcraft.cli.inspect import describe, to_xml

APP2_FIELDS = (
    "app2_name",
    "app2_display_name",
    "app2_epoch",
    "app2_version",
    "app2_release",
    "app2_arch",
    "app2_install_path",
    "app2_trans_path",
    "app2_publisher",
    "app2_url",
    "app2_source_package",
    "app2_summary",
    "app2_description",
    "app2_spare1",
    "app2_spare2",
    "app2_spare3",
    "app2_spare4",
)
"""guestfs(3)'s ``application2`` struct, in its order."""


def app2(name: str, **fields: str | int) -> dict[str, str | int]:
    """An application2 record: the given fields (without ``app2_``), "" for the other
    strings, epoch 0."""
    record: dict[str, str | int] = dict.fromkeys(APP2_FIELDS, "")
    record.update(app2_name=name, app2_epoch=0)
    record.update({f"app2_{key}": value for key, value in fields.items()})
    return record


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


VIRT_INSPECTOR = Path(__file__).parent / "virt_inspector"
_UUID_ELEMENT = re.compile(r"<uuid>[^<]*</uuid>")


def inspector_document(*drives: Guest, applications: bool = True) -> str:
    """What ``vmcraft inspect --xml`` prints for the guest."""
    with opened(*drives) as g:
        return to_xml(describe(g, applications=applications))


def virt_inspector_document(name: str) -> str:
    """virt-inspector's own output for a guest the builders make (see virt_inspector/)."""
    return (VIRT_INSPECTOR / f"{name}.xml").read_bytes().decode()  # keep its CR LF


def without_uuids(document: str) -> str:
    """The document with every ``<uuid>`` blanked: mkntfs and mkfs.btrfs choose their own,
    so those differ from one build of a guest to the next."""
    return _UUID_ELEMENT.sub("<uuid/>", document)


def identity(g: VMCraft, root: str) -> dict[str, object]:
    """Every inspect_get_* answer for ``root`` that is a plain value."""
    return {
        "type": g.inspect_get_type(root),
        "distro": g.inspect_get_distro(root),
        "product_name": g.inspect_get_product_name(root),
        "product_variant": g.inspect_get_product_variant(root),
        "version": (g.inspect_get_major_version(root), g.inspect_get_minor_version(root)),
        "arch": g.inspect_get_arch(root),
        "hostname": g.inspect_get_hostname(root),
        "build_id": g.inspect_get_build_id(root),
        "osinfo": g.inspect_get_osinfo(root),
        "package_format": g.inspect_get_package_format(root),
        "package_management": g.inspect_get_package_management(root),
        "format": g.inspect_get_format(root),
    }


def linux(**known: object) -> dict[str, object]:
    unknown: dict[str, object] = {
        "type": "linux",
        "distro": "unknown",
        "product_name": "unknown",
        "product_variant": "unknown",
        "version": (0, 0),
        "arch": "x86_64",
        "hostname": "unknown",
        "build_id": "unknown",
        "osinfo": "unknown",
        "package_format": "unknown",
        "package_management": "unknown",
        "format": "installed",
    }
    return unknown | known


def session_mounts() -> set[guests.MountEntry]:
    """This session's mounts: everything under its temp root (handles work there)."""
    root = tempfile.gettempdir() + "/"
    return {e for e in guests.read_mountinfo() if e.mountpoint.startswith(root)}


def tiny_png(width: int, height: int) -> bytes:
    """A valid grey PNG of the given size (a few hundred bytes), built from the PNG spec."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    rows = b"".join(b"\0" + bytes([0x80]) * width for _ in range(height))
    body = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows, 9)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + body
