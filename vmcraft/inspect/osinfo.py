"""libosinfo short ids (``debian12``, ``ubuntu22.04``, ``rhel9.2``, ``win11``) for a guest.

The rules are libguestfs's ``inspect_get_osinfo``: a few distros have their own shape
(Ubuntu's two-digit minor, CentOS 7's ``.0``, SLES service packs), the rest are
``<distro><major>.<minor>`` when any version is known, and anything unmatched is
``unknown``.
"""

from __future__ import annotations

UNKNOWN = "unknown"

MAJOR_ONLY_DISTROS = frozenset({"fedora", "mageia"})
ROLLING_DISTROS = frozenset({"archlinux", "gentoo", "voidlinux"})
BSD_TYPES = frozenset({"freebsd", "netbsd", "openbsd"})
WINDOWS_11_FIRST_BUILD = 22000


def osinfo_id(
    os_type: str,
    distro: str,
    major: int,
    minor: int,
    *,
    product_name: str = UNKNOWN,
    product_variant: str = UNKNOWN,
    build_id: str = UNKNOWN,
) -> str:
    """The libosinfo short id of an inspected OS, or ``unknown``.

    Args:
        os_type: libguestfs type (``linux``, ``windows``, ``freebsd``...).
        distro: libguestfs distro name.
        major: Major version, 0 when not known.
        minor: Minor version, 0 when not known.
        product_name: Needed for Windows only (``... R2``, ``... 2019``).
        product_variant: Needed for Windows only (``Server`` or ``Client``).
        build_id: Needed for Windows 10 and later only (11 starts at build 22000).
    """
    if os_type == "linux":
        return _linux_id(distro, major, minor)
    if os_type in BSD_TYPES:
        return f"{distro}{major}.{minor}"
    if os_type == "dos" and distro == "msdos":
        return "msdos6.22"
    if os_type == "windows":
        return _windows_id(major, minor, product_name, product_variant, build_id)
    return UNKNOWN


def _linux_id(distro: str, major: int, minor: int) -> str:
    special = _special_linux_id(distro, major, minor)
    if special is not None:
        return special
    if distro != UNKNOWN and (major > 0 or minor > 0):
        return f"{distro}{major}.{minor}"
    return UNKNOWN


def _special_linux_id(distro: str, major: int, minor: int) -> str | None:
    """The id of a distro with a shape of its own; None to use the general rule."""
    if distro == "centos":
        return _centos_id(major, minor)
    if distro == "rocky" and major >= 8:
        return f"rocky{major}"
    if distro == "debian" and major >= 4:
        return f"debian{major}"
    if distro in MAJOR_ONLY_DISTROS:
        return f"{distro}{major}"
    if distro == "sles":
        return f"sles{major}" if minor == 0 else f"sles{major}sp{minor}"
    if distro == "ubuntu":
        return f"ubuntu{major}.{minor:02d}"
    if distro in ROLLING_DISTROS:
        return distro
    if distro == "altlinux":
        return f"alt{major}.{minor}" if major >= 8 else f"altlinux{major}.{minor}"
    return None


def _centos_id(major: int, minor: int) -> str | None:
    if major >= 8:
        return f"centos{major}"
    if major == 7:
        return "centos7.0"
    if major == 6:
        return f"centos6.{minor}"
    return None


_WINDOWS_CLIENT_SERVER = {
    (6, 0): ("winvista", "win2k8"),
    (6, 1): ("win7", "win2k8r2"),
    (6, 2): ("win8", "win2k12"),
    (6, 3): ("win8.1", "win2k12r2"),
}


_WINDOWS_SERVER_YEARS = (("2025", "win2k25"), ("2022", "win2k22"), ("2019", "win2k19"))
"""Windows Server releases that report 10.0, told apart by the year in the product name."""


def _windows_id(major: int, minor: int, name: str, variant: str, build_id: str) -> str:
    if (major, minor) == (5, 1):
        return "winxp"
    if (major, minor) == (5, 2):
        return _windows_5_2_id(name)
    if (major, minor) in _WINDOWS_CLIENT_SERVER:
        client, server = _WINDOWS_CLIENT_SERVER[major, minor]
        return server if "Server" in variant else client
    if (major, minor) == (10, 0):
        return _windows_10_id(name, variant, build_id)
    return UNKNOWN


def _windows_5_2_id(name: str) -> str:
    if "XP" in name:
        return "winxp"  # XP x64 shares 5.2 with Server 2003
    return "win2k3r2" if "R2" in name else "win2k3"


def _windows_10_id(name: str, variant: str, build_id: str) -> str:
    if "Server" in variant:
        ids = (osid for year, osid in _WINDOWS_SERVER_YEARS if year in name)
        return next(ids, "win2k16")  # 2016 shares 10.0 and says nothing else

    # NB: Windows 11 still reports 10.0; only the build number tells them apart.
    if not (build_id.isascii() and build_id.isdigit()):
        return UNKNOWN
    return "win11" if int(build_id) >= WINDOWS_11_FIRST_BUILD else "win10"
