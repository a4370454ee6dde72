"""Package format and package manager, as libguestfs derives them from the distro.

Both are a plain function of the distro and its major version, with one look at the
guest: a Fedora from 22 on says ``dnf`` only when ``/usr/bin/dnf`` is installed.
"""

from __future__ import annotations

UNKNOWN = "unknown"

_FORMATS = {
    "rpm": (
        "altlinux",
        "centos",
        "fedora",
        "mageia",
        "mandriva",
        "meego",
        "neokylin",
        "openmandriva",
        "opensuse",
        "oraclelinux",
        "redhat-based",
        "rhel",
        "rocky",
        "scientificlinux",
        "sles",
        "suse-based",
    ),
    "deb": ("debian", "kalilinux", "kylin", "linuxmint", "ubuntu"),
    "pacman": ("archlinux",),
    "ebuild": ("gentoo",),
    "pisi": ("pardus",),
    "apk": ("alpinelinux",),
    "xbps": ("voidlinux",),
}
PACKAGE_FORMATS = {distro: fmt for fmt, distros in _FORMATS.items() for distro in distros}
"""Package format by distro; distros not listed (Slackware, CirrOS...) have none known."""

_MANAGERS = {
    "apt": ("altlinux", "debian", "kalilinux", "kylin", "linuxmint", "ubuntu"),
    "pacman": ("archlinux",),
    "portage": ("gentoo",),
    "pisi": ("pardus",),
    "urpmi": ("mageia", "mandriva"),
    "zypper": ("opensuse", "sles", "suse-based"),
    "apk": ("alpinelinux",),
    "xbps": ("voidlinux",),
    "yum": ("meego",),
    "dnf": ("neokylin", "openmandriva"),
}
FIXED_PACKAGE_MANAGERS = {
    distro: manager for manager, distros in _MANAGERS.items() for distro in distros
}
"""Package manager by distro, for the distros where the version does not matter."""

RHEL_FAMILY = frozenset(
    {"centos", "oraclelinux", "redhat-based", "rhel", "rocky", "scientificlinux"}
)
"""Distros whose manager went up2date (2-4), yum (5-7), dnf (8 on)."""

FEDORA_FIRST_DNF = 22
RHEL_FIRST_DNF = 8
RHEL_FIRST_YUM = 5
RHEL_FIRST_UP2DATE = 2


def package_format(distro: str) -> str:
    """``rpm``, ``deb``, ``pacman``, ``ebuild``, ``pisi``, ``apk``, ``xbps`` or unknown."""
    return PACKAGE_FORMATS.get(distro, UNKNOWN)


def package_management(distro: str, major_version: int, dnf_installed: bool) -> str:
    """The package manager of a distro release, or ``unknown``.

    Args:
        distro: libguestfs distro name.
        major_version: 0 when the version is not known.
        dnf_installed: Whether the guest has ``/usr/bin/dnf`` (matters for Fedora only).
    """
    if distro == "fedora":
        return _fedora_manager(major_version, dnf_installed)
    if distro in RHEL_FAMILY:
        return _rhel_manager(major_version)
    return FIXED_PACKAGE_MANAGERS.get(distro, UNKNOWN)


def _fedora_manager(major: int, dnf_installed: bool) -> str:
    if major >= FEDORA_FIRST_DNF and dnf_installed:
        return "dnf"
    # Version 0 means the release file was not understood (RHBZ#1332025): say nothing.
    return "yum" if major >= 1 else UNKNOWN


def _rhel_manager(major: int) -> str:
    if major >= RHEL_FIRST_DNF:
        return "dnf"
    if major >= RHEL_FIRST_YUM:
        return "yum"
    if major >= RHEL_FIRST_UP2DATE:
        return "up2date"
    return UNKNOWN
