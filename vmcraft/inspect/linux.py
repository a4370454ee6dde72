"""Is a filesystem a Linux root, and which Linux is it.

The answers follow libguestfs's ``inspect_*`` calls for a Linux root: the same tests for a
root, the same release files in the same order (:mod:`vmcraft.inspect.release`), the same
architecture rule (:mod:`vmcraft.inspect.arch`), and libguestfs's "unknown" and ``0`` where
nothing was found. Everything is read in Python from the mounted tree.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass

from vmcraft.guest.files import GuestTree
from vmcraft.inspect.arch import guest_architecture
from vmcraft.inspect.guestfiles import is_dir, is_file, read_link, read_small_file
from vmcraft.inspect.osinfo import osinfo_id
from vmcraft.inspect.packages import package_format, package_management
from vmcraft.inspect.release import read_release, shell_unquote

log = logging.getLogger(__name__)

UNKNOWN = "unknown"

HOSTNAME_FILES = ("/etc/HOSTNAME", "/etc/hostname")
"""Files holding just the hostname, in libguestfs's order (old SUSE and Debian first)."""

SYSCONFIG_NETWORK = "/etc/sysconfig/network"
_SYSCONFIG_HOSTNAME = re.compile(r"^\s*(?:export\s+)?HOSTNAME=(.*?)\s*$")


@dataclass(frozen=True)
class OsIdentity:
    """One operating system as libguestfs's ``inspect_get_*`` calls describe it.

    Strings are ``unknown`` and versions 0 where nothing was found.
    """

    type: str
    distro: str
    product_name: str
    product_variant: str
    major_version: int
    minor_version: int
    arch: str
    hostname: str
    build_id: str
    osinfo: str
    package_format: str
    package_management: str


def is_linux_root(tree: GuestTree) -> bool:
    """Whether the filesystem mounted as ``tree`` looks like a Linux root.

    libguestfs's rule: ``/etc`` is a folder, ``/bin`` is a folder or a symlink whose
    target is exactly ``usr/bin``, and ``/etc/fstab`` or ``/etc/hosts`` is a regular file.
    None of the last components is followed if it is a symlink.
    """
    if not is_dir(tree, "/etc"):
        return False
    if not (is_dir(tree, "/bin") or read_link(tree, "/bin") == "usr/bin"):
        return False
    has_fstab = is_file(tree, "/etc/fstab", follow=False)
    return has_fstab or is_file(tree, "/etc/hosts", follow=False)


def read_identity(tree: GuestTree) -> OsIdentity:
    """Describe the Linux root mounted as ``tree`` (check :func:`is_linux_root` first).

    Never raises for what the guest contains: a missing, garbled or hostile file only
    leaves its fields unknown.
    """
    facts = read_release(tree)
    distro = facts.distro or UNKNOWN
    major, minor = facts.version or (0, 0)
    dnf_installed = is_file(tree, "/usr/bin/dnf")

    return OsIdentity(
        type="linux",
        distro=distro,
        product_name=facts.product_name or UNKNOWN,
        product_variant=UNKNOWN,  # Linux has none; libguestfs sets it for Windows only
        major_version=major,
        minor_version=minor,
        arch=guest_architecture(tree),
        hostname=read_hostname(tree) or UNKNOWN,
        build_id=facts.build_id or UNKNOWN,
        osinfo=osinfo_id("linux", distro, major, minor),
        package_format=package_format(distro),
        package_management=package_management(distro, major, dnf_installed),
    )


def read_hostname(tree: GuestTree) -> str | None:
    """The guest's hostname as configured, or None.

    The first line of ``/etc/HOSTNAME`` or ``/etc/hostname`` that is neither empty nor a
    ``#`` comment, else ``HOSTNAME=`` in ``/etc/sysconfig/network`` (RHEL before 7).
    """
    for path in HOSTNAME_FILES:
        hostname = read_hostname_file(tree, path)
        if hostname is not None:
            return hostname
    return _sysconfig_hostname(tree)


def read_hostname_file(tree: GuestTree, path: str) -> str | None:
    """The first line of ``path`` that is neither empty nor a ``#`` comment, or None.

    libguestfs reads every file that holds just a hostname this way (``/etc/hostname``,
    OpenBSD's ``/etc/myname``, Minix's ``/etc/hostname.file``).
    """
    text = read_small_file(tree, path)
    if text is None:
        return None
    lines = [line for line in text.split("\n") if line and not line.startswith("#")]
    return lines[0] if lines else None


def _sysconfig_hostname(tree: GuestTree) -> str | None:
    """``HOSTNAME=`` from a shell-variables file; the last assignment wins, as in a shell.

    NB: libguestfs reads this through Augeas's Shellvars lens, which keeps the quotes of a
    quoted value (``"db1"``); the value is unquoted here.
    """
    if not is_file(tree, SYSCONFIG_NETWORK, follow=False):
        return None
    text = read_small_file(tree, SYSCONFIG_NETWORK)
    if text is None:
        return None

    hostname = None
    for line in text.split("\n"):
        match = _SYSCONFIG_HOSTNAME.match(line)
        if match:
            hostname = shell_unquote(match[1]) or None
    return hostname
