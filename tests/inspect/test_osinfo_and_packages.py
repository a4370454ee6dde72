"""osinfo short ids and package managers, from libguestfs's stated rules.

The expected ids follow libguestfs's ``inspect_get_osinfo`` documentation and the
libosinfo ids it targets (``centos7.0``, ``ubuntu22.04``, ``sles15sp4``, ``win2k8r2``...).
"""

from __future__ import annotations

import pytest

from vmcraft.inspect import osinfo_id, package_format, package_management


@pytest.mark.parametrize(
    ("distro", "major", "minor", "expected"),
    [
        ("debian", 5, 0, "debian5"),
        ("debian", 12, 4, "debian12"),
        ("debian", 3, 1, "debian3.1"),
        ("ubuntu", 10, 10, "ubuntu10.10"),
        ("ubuntu", 22, 4, "ubuntu22.04"),
        ("fedora", 14, 0, "fedora14"),
        ("mageia", 9, 0, "mageia9"),
        ("rhel", 9, 2, "rhel9.2"),
        ("rhel", 7, 0, "rhel7.0"),
        ("centos", 8, 5, "centos8"),
        ("centos", 7, 9, "centos7.0"),
        ("centos", 6, 10, "centos6.10"),
        ("centos", 5, 11, "centos5.11"),
        ("rocky", 9, 2, "rocky9"),
        ("sles", 15, 4, "sles15sp4"),
        ("sles", 12, 0, "sles12"),
        ("opensuse", 15, 5, "opensuse15.5"),
        ("alpinelinux", 3, 18, "alpinelinux3.18"),
        ("archlinux", 0, 0, "archlinux"),
        ("gentoo", 2, 14, "gentoo"),
        ("voidlinux", 0, 0, "voidlinux"),
        ("altlinux", 10, 1, "alt10.1"),
        ("altlinux", 7, 0, "altlinux7.0"),
        ("debian", 0, 0, "unknown"),
        ("slackware", 0, 0, "unknown"),
        ("unknown", 5, 0, "unknown"),
    ],
)
def test_linux_osinfo(distro: str, major: int, minor: int, expected: str) -> None:
    assert osinfo_id("linux", distro, major, minor) == expected


def test_other_unixes_and_dos() -> None:
    assert osinfo_id("freebsd", "freebsd", 13, 2) == "freebsd13.2"
    assert osinfo_id("dos", "msdos", 0, 0) == "msdos6.22"
    assert osinfo_id("dos", "freedos", 1, 2) == "unknown"
    assert osinfo_id("hurd", "debian", 0, 0) == "unknown"


@pytest.mark.parametrize(
    ("major", "minor", "name", "variant", "build_id", "expected"),
    [
        (5, 1, "Microsoft Windows XP", "unknown", "2600", "winxp"),
        (5, 2, "Microsoft Windows Server 2003 R2", "unknown", "3790", "win2k3r2"),
        (6, 1, "Windows 7 Enterprise", "Client", "7601", "win7"),
        (6, 1, "Windows Server 2008 R2 Standard", "Server", "7601", "win2k8r2"),
        (6, 3, "Windows 8.1 Pro", "Client", "9600", "win8.1"),
        (10, 0, "Windows 10 Pro", "Client", "19045", "win10"),
        (10, 0, "Windows 10 Pro", "Client", "22631", "win11"),
        (10, 0, "Windows Server 2019 Standard", "Server", "17763", "win2k19"),
        (10, 0, "Windows Server 2022 Datacenter", "Server", "20348", "win2k22"),
        (10, 0, "Windows Server 2025 Standard", "Server", "26100", "win2k25"),
        (10, 0, "Windows Server 2016 Standard", "Server", "14393", "win2k16"),
        (10, 0, "Windows 10 Pro", "Client", "unknown", "unknown"),
    ],
)
def test_windows_osinfo(
    major: int, minor: int, name: str, variant: str, build_id: str, expected: str
) -> None:
    got = osinfo_id(
        "windows",
        "windows",
        major,
        minor,
        product_name=name,
        product_variant=variant,
        build_id=build_id,
    )

    assert got == expected


@pytest.mark.parametrize(
    ("distro", "major", "dnf_installed", "expected"),
    [
        ("fedora", 38, True, "dnf"),
        ("fedora", 38, False, "yum"),
        ("fedora", 21, True, "yum"),
        ("fedora", 0, False, "unknown"),
        ("rhel", 9, False, "dnf"),
        ("rhel", 8, False, "dnf"),
        ("rhel", 7, False, "yum"),
        ("rhel", 5, False, "yum"),
        ("rhel", 4, False, "up2date"),
        ("rhel", 0, False, "unknown"),
        ("centos", 7, False, "yum"),
        ("rocky", 9, False, "dnf"),
        ("oraclelinux", 8, False, "dnf"),
        ("debian", 12, False, "apt"),
        ("ubuntu", 22, False, "apt"),
        ("altlinux", 10, False, "apt"),
        ("opensuse", 15, False, "zypper"),
        ("sles", 15, False, "zypper"),
        ("mageia", 9, False, "urpmi"),
        ("archlinux", 0, False, "pacman"),
        ("alpinelinux", 3, False, "apk"),
        ("gentoo", 2, False, "portage"),
        ("voidlinux", 0, False, "xbps"),
        ("slackware", 15, False, "unknown"),
        ("unknown", 0, False, "unknown"),
    ],
)
def test_package_management(distro: str, major: int, dnf_installed: bool, expected: str) -> None:
    assert package_management(distro, major, dnf_installed) == expected


@pytest.mark.parametrize(
    ("distro", "expected"),
    [
        ("fedora", "rpm"),
        ("altlinux", "rpm"),
        ("sles", "rpm"),
        ("debian", "deb"),
        ("linuxmint", "deb"),
        ("archlinux", "pacman"),
        ("alpinelinux", "apk"),
        ("gentoo", "ebuild"),
        ("voidlinux", "xbps"),
        ("slackware", "unknown"),
        ("unknown", "unknown"),
    ],
)
def test_package_format(distro: str, expected: str) -> None:
    assert package_format(distro) == expected
