"""A guest's icon, found as libguestfs's ``inspect_get_icon`` finds it.

Only the cheap sources are used: ``/etc/favicon.png`` when the administrator put one
there, else the logo a distribution installs at a known path. Each must be a PNG between
16 and 1024 pixels a side and not larger than libguestfs allows for that distribution.
Icons that need image conversion (CirrOS's text logo, the bitmaps inside Windows's
explorer.exe) are not made: the answer is then empty, libguestfs's "no icon".
"""

from __future__ import annotations

import logging
import os
import struct

from vmcraft.errors import GuestFileError
from vmcraft.guest.files import GuestTree
from vmcraft.inspect.guestfiles import is_file, read_file_head
from vmcraft.inspect.linux import OsIdentity

log = logging.getLogger(__name__)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_HEAD_SIZE = 24  # signature, IHDR length and tag, width and height
MIN_SIDE = 16
MAX_SIDE = 1024
BYTES_PER_PIXEL = 4  # the size limit when a distribution sets none: 4 bytes a pixel

FAVICON = "/etc/favicon.png"
RHEL_FAMILY = frozenset(
    {"rhel", "redhat-based", "centos", "rocky", "scientificlinux", "oraclelinux"}
)
RHEL_FIRST_SPRITE = 7

_LOGOS: dict[str, tuple[tuple[str, int], ...]] = {
    "fedora": (("/usr/share/icons/hicolor/96x96/apps/fedora-logo-icon.png", 0),),
    "debian": (("/usr/share/pixmaps/debian-logo.png", 2048),),
    "ubuntu": (
        ("/usr/share/icons/gnome/24x24/places/ubuntu-logo.png", 2048),
        ("/usr/share/help/C/ubuntu-help/figures/ubuntu-logo.png", 2048),
    ),
    "mageia": (("/usr/share/icons/mageia.png", 10240),),
    "opensuse": (
        ("/usr/share/icons/hicolor/48x48/apps/distributor.png", 10240),
        ("/usr/share/icons/hicolor/24x24/apps/distributor.png", 10240),
    ),
    "voidlinux": (("/usr/share/void-artwork/void-logo.png", 20480),),
    "altlinux": (("/usr/share/icons/hicolor/48x48/apps/altlinux.png", 20480),),
    "gentoo": (("/usr/share/icons/gentoo/48x48/gentoo.png", 10240),),
    "openmandriva": (
        ("/usr/share/icons/large/mandriva.png", 10240),
        ("/usr/share/icons/mandriva.png", 10240),
    ),
}
"""Logo paths and size limits (0: by geometry) by distro, in the order they are tried."""
_LOGOS["sles"] = _LOGOS["suse-based"] = _LOGOS["opensuse"]

LOW_QUALITY_ONLY = frozenset({"ubuntu"})
"""Distros whose logos are too small to answer a request for a high-quality icon."""


def read_icon(tree: GuestTree, identity: OsIdentity, favicon: bool, highquality: bool) -> bytes:
    """The guest's icon as PNG bytes, or ``b""`` when there is none that is cheap to get.

    Args:
        tree: The guest with its filesystems mounted.
        identity: What inspection found.
        favicon: Try ``/etc/favicon.png`` first (never when ``highquality``).
        highquality: Only icons of a decent size are wanted.
    """
    if favicon and not highquality:
        icon = read_png(tree, FAVICON, 0)
        if icon is not None:
            return icon

    if identity.type not in ("linux", "hurd"):
        return b""
    if highquality and identity.distro in LOW_QUALITY_ONLY:
        return b""
    for path, max_size in _logos(identity):
        icon = read_png(tree, path, max_size)
        if icon is not None:
            return icon
    return b""


def _logos(identity: OsIdentity) -> tuple[tuple[str, int], ...]:
    if identity.distro in RHEL_FAMILY:
        if identity.major_version < RHEL_FIRST_SPRITE:
            return (("/usr/share/pixmaps/redhat/shadowman-transparent.png", 102400),)
        return (("/usr/share/icons/hicolor/96x96/apps/system-logo-icon.png", 102400),)
    return _LOGOS.get(identity.distro, ())


def png_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG's IHDR chunk, or None when ``head`` is no PNG."""
    if len(head) < PNG_HEAD_SIZE or not head.startswith(PNG_SIGNATURE):
        return None
    if head[12:16] != b"IHDR":
        return None
    width, height = struct.unpack(">II", head[16:24])
    return int(width), int(height)


def read_png(tree: GuestTree, path: str, max_size: int) -> bytes | None:
    """A reasonable PNG at ``path`` (symlinks followed inside the guest), else None.

    Args:
        tree: The guest.
        path: The guest path.
        max_size: Largest file accepted; 0 for 4 bytes a pixel.
    """
    if not is_file(tree, path):
        return None
    size = png_size(read_file_head(tree, path, PNG_HEAD_SIZE) or b"")
    if size is None or not all(MIN_SIDE <= side <= MAX_SIDE for side in size):
        log.debug("%s is no PNG of a usable size", path)
        return None

    limit = max_size or BYTES_PER_PIXEL * size[0] * size[1]
    try:
        if os.stat(tree.resolve(path)).st_size > limit:
            log.debug("%s is larger than %d bytes", path, limit)
            return None
        return tree.read_file(path)
    except (GuestFileError, OSError) as e:
        log.warning("cannot read the icon %s: %s", path, e)
        return None
