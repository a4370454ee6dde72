"""Identity of the Unix roots that are not plain Linux, and of a ``/usr`` on its own.

Each guest is a folder planted with what the system installs; the expected values follow
libguestfs's ``check_*_root`` rules (daemon/inspect_fs_unix.ml): which file gives the
version, the first line as product name, where the hostname is kept, and osinfo per
lib/inspect-osinfo.c (``<distro><major>.<minor>`` for any BSD, nothing for Hurd or
Minix). Package format and manager are a function of the distro alone, so every BSD,
CoreOS and Minix has none.

One choice departs from libguestfs's code on purpose: its OpenBSD reader reports type and
distro ``freebsd`` and the hostname from ``/etc/rc.conf``, while its documentation of
``inspect_get_type`` and ``inspect_get_distro`` lists ``openbsd``; the documented values
are expected here, with the hostname from OpenBSD's ``/etc/myname``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from planted_guests import (
    DEB_APT,
    DEBIAN_12_OS_RELEASE,
    ELFCLASS32,
    ELFDATA2LSB,
    EM_386,
    X86_64_PROGRAM,
    elf_header,
    guest_os,
    linux,
    plant,
)

from vmcraft.inspect.roles import Finding, Role, classify

I386_PROGRAM = elf_header(ELFCLASS32, ELFDATA2LSB, EM_386)
BSD_FSTAB = "/dev/ada0p2 / ufs rw 1 1\n"

FREEBSD_MOTD = (
    "FreeBSD 13.2-RELEASE releng/13.2-n254617-525ecfdad597 GENERIC\n\nWelcome to FreeBSD!\n"
)
FREEBSD_RC_CONF = (
    "# written by bsdinstall\n"
    'hostname="freebsd13.example.com"\n'
    'ifconfig_vtnet0="DHCP"\n'
    'sshd_enable="YES"\n'
)
NETBSD_RC_CONF = "rc_configured=YES\nhostname=netbsd.example.org\n"
NETBSD_RELEASE = (
    "NetBSD 9.3 (GENERIC) #0: Thu Aug  4 15:30:37 UTC 2022\n"
    "\n"
    "Copyright (c) 1996-2022 The NetBSD Foundation, Inc.\n"
)
OPENBSD_MOTD = (
    "OpenBSD 7.4 (GENERIC.MP) #1397: Tue Oct 10 09:02:37 MDT 2023\n\nWelcome to OpenBSD\n"
)
COREOS_OS_RELEASE = """\
NAME=CoreOS
ID=coreos
VERSION=647.0.0
VERSION_ID=647.0.0
PRETTY_NAME="CoreOS 647.0.0"
HOME_URL="https://coreos.com/"
"""
COREOS_LSB_RELEASE = """\
DISTRIB_ID=CoreOS
DISTRIB_RELEASE=647.0.0
DISTRIB_CODENAME="Red Dog"
DISTRIB_DESCRIPTION="CoreOS 647.0.0"
"""


FREEBSD_BASE: dict[str, str | bytes] = {
    "/etc/freebsd-update.conf": "Components src world kernel\n",
    "/etc/fstab": BSD_FSTAB,
    "/bin/sh": X86_64_PROGRAM,
}
NETBSD_BASE: dict[str, str | bytes] = {
    "/netbsd": b"kernel",
    "/etc/fstab": "/dev/wd0a / ffs rw 1 1\n",
    "/bin/sh": X86_64_PROGRAM,
}
OPENBSD_BASE: dict[str, str | bytes] = {
    "/bsd": b"kernel",
    "/etc/fstab": BSD_FSTAB,
    "/bin/ls": X86_64_PROGRAM,
}


def classify_planted(
    root: Path, base: dict[str, str | bytes], files: dict[str, str] | None = None
) -> Finding:
    """Classify a guest planted from ``base`` plus ``files``."""
    return classify(plant(root, {**base, **(files or {})}))


def hurd_files(**extra: str) -> dict[str, str | bytes]:
    """The three translators libguestfs looks for, and an i386 ``/bin/bash``."""
    translators = {f"/hurd/{name}": I386_PROGRAM for name in ("console", "hello", "null")}
    return {**translators, "/bin/bash": I386_PROGRAM, **extra}


# -------------------------------------------------------------------------- BSD roots


@pytest.mark.parametrize(
    ("os_type", "files", "product_name", "version", "hostname"),
    [
        pytest.param(
            "freebsd",
            {**FREEBSD_BASE, "/etc/motd": FREEBSD_MOTD, "/etc/rc.conf": FREEBSD_RC_CONF},
            "FreeBSD 13.2-RELEASE releng/13.2-n254617-525ecfdad597 GENERIC",
            (13, 2),
            "freebsd13.example.com",
            id="freebsd",
        ),
        pytest.param(
            "netbsd",
            {**NETBSD_BASE, "/etc/release": NETBSD_RELEASE, "/etc/rc.conf": NETBSD_RC_CONF},
            "NetBSD 9.3 (GENERIC) #0: Thu Aug  4 15:30:37 UTC 2022",
            (9, 3),
            "netbsd.example.org",
            id="netbsd",
        ),
        pytest.param(
            "openbsd",
            {**OPENBSD_BASE, "/etc/motd": OPENBSD_MOTD, "/etc/myname": "puffy.example.org\n"},
            "OpenBSD 7.4 (GENERIC.MP) #1397: Tue Oct 10 09:02:37 MDT 2023",
            (7, 4),
            "puffy.example.org",
            id="openbsd",
        ),
    ],
)
def test_bsd_root(
    tmp_path: Path,
    os_type: str,
    files: dict[str, str | bytes],
    product_name: str,
    version: tuple[int, int],
    hostname: str,
) -> None:
    major, minor = version
    identity = guest_os(
        os_type,
        os_type,
        product_name=product_name,
        major_version=major,
        minor_version=minor,
        hostname=hostname,
        osinfo=f"{os_type}{major}.{minor}",  # lib/inspect-osinfo.c's rule for every BSD
    )

    assert classify(plant(tmp_path, files)) == Finding(Role.ROOT, identity, fstab_os_type=os_type)


# ---------------------------------------------------------------------------- FreeBSD


def test_freebsd_version_comes_only_from_motd(tmp_path: Path) -> None:
    # libguestfs reads no /bin/freebsd-version; a motd without a number gives no version,
    # and its osinfo still has the BSD shape.
    finding = classify_planted(
        tmp_path,
        FREEBSD_BASE,
        {
            "/etc/motd": "Welcome to FreeBSD!\n",
            "/bin/freebsd-version": '#!/bin/sh\nUSERLAND_VERSION="13.2-RELEASE"\n',
        },
    )

    assert finding.identity == guest_os(
        "freebsd", "freebsd", product_name="Welcome to FreeBSD!", osinfo="freebsd0.0"
    )


def test_freebsd_without_motd_or_rc_conf(tmp_path: Path) -> None:
    finding = classify_planted(tmp_path, FREEBSD_BASE)

    assert finding.identity == guest_os("freebsd", "freebsd", osinfo="freebsd0.0")


@pytest.mark.parametrize(
    ("rc_conf", "hostname"),
    [
        pytest.param('hostname="double.example"\n', "double.example", id="double-quoted"),
        pytest.param("hostname='single.example'\n", "single.example", id="single-quoted"),
        pytest.param("hostname=bare.example\n", "bare.example", id="unquoted"),
        pytest.param(
            '#hostname="old.example"\nhostname="new.example"\n', "new.example", id="commented"
        ),
        pytest.param('hostname="one"\nhostname="two"\n', "one", id="first-wins"),
        pytest.param('  hostname="indented"\n', "unknown", id="indented-is-not-read"),
    ],
)
def test_rc_conf_hostname(tmp_path: Path, rc_conf: str, hostname: str) -> None:
    finding = classify_planted(tmp_path, FREEBSD_BASE, {"/etc/rc.conf": rc_conf})

    assert finding.identity is not None
    assert finding.identity.hostname == hostname


# ----------------------------------------------------------------------------- NetBSD


def test_netbsd_release_that_misses_the_pattern_keeps_its_name(tmp_path: Path) -> None:
    # The pattern wants "NetBSD N.M" at the start; when it fails, the first line has
    # already become the product name and no version is set.
    finding = classify_planted(tmp_path, NETBSD_BASE, {"/etc/release": "NetBSD-current 10.99\n"})

    assert finding.identity == guest_os(
        "netbsd", "netbsd", product_name="NetBSD-current 10.99", osinfo="netbsd0.0"
    )


# ---------------------------------------------------------------------------- OpenBSD


def test_openbsd_before_first_boot(tmp_path: Path) -> None:
    # The installer leaves "?.?" in the motd until the first boot rewrites it.
    finding = classify_planted(tmp_path, OPENBSD_BASE, {"/etc/motd": "OpenBSD ?.? (UNKNOWN)\n"})

    assert finding.identity == guest_os(
        "openbsd", "openbsd", product_name="OpenBSD ?.? (UNKNOWN)", osinfo="openbsd0.0"
    )


def test_openbsd_myname_skips_blank_and_comment_lines(tmp_path: Path) -> None:
    myname = "# set by the installer\n\npuffy.example.org\n"
    finding = classify_planted(
        tmp_path, OPENBSD_BASE, {"/etc/motd": OPENBSD_MOTD, "/etc/myname": myname}
    )

    assert finding.identity is not None
    assert finding.identity.hostname == "puffy.example.org"


# ------------------------------------------------------------------------------- Hurd


def test_debian_gnu_hurd(tmp_path: Path) -> None:
    files = hurd_files(**{"/etc/debian_version": "13.1\n", "/etc/hostname": "hurd.invalid\n"})

    assert classify(plant(tmp_path, files)) == Finding(
        Role.ROOT,
        guest_os(
            "hurd",
            "debian",
            arch="i386",
            product_name="13.1",
            major_version=13,
            minor_version=1,
            hostname="hurd.invalid",
            **DEB_APT,
        ),
        fstab_os_type="hurd",
    )


def test_hurd_os_release_without_version_falls_back_to_debian_version(tmp_path: Path) -> None:
    # os-release names the distro but has no VERSION_ID, so libguestfs goes on to
    # /etc/debian_version, whose first line replaces the product name.
    os_release = 'PRETTY_NAME="Debian GNU/Hurd trixie/sid"\nNAME="Debian GNU/Hurd"\nID=debian\n'
    files = hurd_files(**{"/etc/os-release": os_release, "/etc/debian_version": "trixie/sid\n"})

    assert classify(plant(tmp_path, files)).identity == guest_os(
        "hurd", "debian", arch="i386", product_name="trixie/sid", **DEB_APT
    )


# ------------------------------------------------------------------------------ Minix


def test_minix_root(tmp_path: Path) -> None:
    tree = plant(
        tmp_path,
        {
            "/service/vm": I386_PROGRAM,
            "/etc/fstab": "/dev/c0d0p0s0 / mfs rw 0 1\n",
            "/etc/version": "3.3.0\n",
            "/etc/hostname.file": "# set by setup\n\nminix.example.org\n",
            "/bin/sh": I386_PROGRAM,
        },
    )

    # No distro, and no fstab read: libguestfs cannot map Minix device names yet.
    assert classify(tree) == Finding(
        Role.ROOT,
        guest_os(
            "minix",
            "unknown",
            arch="i386",
            product_name="3.3.0",
            major_version=3,
            minor_version=3,
            hostname="minix.example.org",
        ),
    )


# ----------------------------------------------------------------------------- CoreOS


def test_coreos_root_knows_only_its_hostname(tmp_path: Path) -> None:
    tree = plant(
        tmp_path,
        {"/etc/coreos/update.conf": "GROUP=stable\n", "/etc/hostname": "core1\n"},
        folders=("/root", "/home", "/usr"),
    )

    assert classify(tree) == Finding(
        Role.ROOT,
        guest_os("linux", "coreos", arch="unknown", hostname="core1"),
        fixed_mountpoint="/",
    )


@pytest.mark.parametrize(
    ("path", "content"),
    [
        pytest.param("/lib/os-release", COREOS_OS_RELEASE, id="os-release"),
        pytest.param("/share/coreos/lsb-release", COREOS_LSB_RELEASE, id="lsb-release"),
    ],
)
def test_coreos_usr(tmp_path: Path, path: str, content: str) -> None:
    tree = plant(
        tmp_path, {path: content, "/bin/ls": X86_64_PROGRAM}, folders=("/local", "/share/coreos")
    )

    assert classify(tree) == Finding(
        Role.USR,
        guest_os(
            "linux",
            "coreos",
            product_name="CoreOS 647.0.0",
            major_version=647,
            osinfo="coreos647.0",
        ),
        fixed_mountpoint="/usr",
    )


# ------------------------------------------------------------------------- Linux /usr


def test_linux_usr_reads_its_own_os_release(tmp_path: Path) -> None:
    # Debian's os-release gives only the major version, which does not finish libguestfs's
    # os-release test; for a /usr it keeps what it read all the same.
    tree = plant(
        tmp_path,
        {"/lib/os-release": DEBIAN_12_OS_RELEASE, "/bin/ls": X86_64_PROGRAM},
        folders=("/local", "/share", "/src"),
    )

    assert classify(tree) == Finding(
        Role.USR,
        linux(
            distro="debian",
            product_name="Debian GNU/Linux 12 (bookworm)",
            major_version=12,
            osinfo="debian12",
            **DEB_APT,
        ),
    )


def test_linux_usr_without_os_release(tmp_path: Path) -> None:
    tree = plant(tmp_path, {"/bin/ls": X86_64_PROGRAM}, folders=("/local", "/share", "/src"))

    assert classify(tree) == Finding(Role.USR, linux())
