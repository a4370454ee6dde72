"""Extended attributes of guest files: list, set and remove them.

The ``l`` forms act on a final link itself; the others follow it, inside the guest. Either
way the host path that resolution gives is handed to the kernel with
``follow_symlinks=False``, so no attribute of a host file is ever read or changed.
Attribute lists keep libguestfs's shape (guestfs(3)): dicts of ``attrname`` (text) and
``attrval`` (bytes), in the order the filesystem lists them.
"""

from __future__ import annotations

import errno
import os
from typing import TypedDict

from vmcraft.errors import GuestArgumentError
from vmcraft.guest.files import GuestTree, guest_errors


class XAttr(TypedDict):
    """One extended attribute, as libguestfs's ``xattr`` struct."""

    attrname: str
    attrval: bytes


def getxattrs(tree: GuestTree, path: str, *, follow: bool = True) -> list[XAttr]:
    """Every extended attribute of a guest file (libguestfs ``getxattrs``/``lgetxattrs``).

    Args:
        follow: Follow a final link inside the guest (False: the link's own attributes).
    """
    host = tree.resolve(path, follow_final=follow)
    with guest_errors("cannot list extended attributes of", path):
        return [
            XAttr(attrname=name, attrval=os.getxattr(host, name, follow_symlinks=False))
            for name in _names(host)
        ]


def _names(host: str) -> list[str]:
    try:
        return os.listxattr(host, follow_symlinks=False)
    except OSError as e:
        # NB: the kernel's vfat lists no attributes, where fusefat 0.1a and exfat-fuse 1.3
        # refuse listxattr with ENOTSUP; libguestfs 1.48 gives [] there.
        if e.errno == errno.EOPNOTSUPP:
            return []
        raise


def setxattr(
    tree: GuestTree, xattr: str, val: bytes | str, vallen: int, path: str, *, follow: bool = True
) -> None:
    """Set one extended attribute to the first ``vallen`` bytes of ``val``.

    Args:
        val: The value; text is encoded as UTF-8.
        vallen: How many bytes of ``val`` to store (libguestfs's argument).
        follow: Follow a final link inside the guest (False: ``lsetxattr``).

    Raises:
        GuestFileError: A bad name or length, or the filesystem refused.
    """
    value = val.encode("utf-8", errors="surrogateescape") if isinstance(val, str) else val
    action = f"cannot set extended attribute {xattr!r} of"
    if not 0 <= vallen <= len(value):
        raise GuestArgumentError(f"{action} {path}: vallen {vallen} is not in 0..{len(value)}")
    _check_name(xattr, action, path)
    host = tree.writable(action, path, follow_final=follow)

    with guest_errors(action, path):
        os.setxattr(host, xattr, value[:vallen], follow_symlinks=False)


def removexattr(tree: GuestTree, xattr: str, path: str, *, follow: bool = True) -> None:
    """Remove one extended attribute (libguestfs ``removexattr``/``lremovexattr``).

    Raises:
        GuestFileError: The file has no such attribute, or the filesystem refused.
    """
    action = f"cannot remove extended attribute {xattr!r} of"
    _check_name(xattr, action, path)
    host = tree.writable(action, path, follow_final=follow)

    with guest_errors(action, path):
        os.removexattr(host, xattr, follow_symlinks=False)


def _check_name(xattr: str, action: str, path: str) -> None:
    if not xattr or "\0" in xattr:
        raise GuestArgumentError(f"{action} {path}: an attribute name is not empty and has no NUL")
