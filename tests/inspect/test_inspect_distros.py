"""Inspection of RHEL 9.2, CentOS 7, Arch Linux and Alpine disk images, end to end.

The images come from distro_guests.py, opened through the VMCraft handle as a user would.
Each test checks ``inspect_os``, every ``inspect_get_*`` answer and
``inspect_list_applications2`` against the recipe: the identity as libguestfs derives it
from those release files (its release-file order, ``inspect_get_osinfo`` and package
manager rules), and the applications as libguestfs fills ``application2`` for each package
format from what was planted (the RPM spec files of rpmdb_builder.py, the pacman and apk
databases of distro_guests.py).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import distro_guests as dg
import pytest
import rpmdb_builder as rb
from conftest import skip_unless_root, skip_unless_tools
from guests import Guest
from inspect_support import (
    APP2_FIELDS,
    app2,
    identity,
    inspector_document,
    linux,
    opened,
    session_mounts,
    virt_inspector_document,
)

pytestmark = pytest.mark.requires_root


def _build(factory: pytest.TempPathFactory, builder: Callable[..., Guest], *args: object) -> Guest:
    skip_unless_root()
    skip_unless_tools(*dg.REQUIRED_TOOLS[builder.__name__])
    return builder(factory.mktemp(builder.__name__.removeprefix("build_")), *args)


@pytest.fixture(scope="session")
def rpmdb_sqlite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An rpmdb.sqlite that rpm itself filled with the hello, libdemo (two arches) and
    Plain packages of rpmdb_builder.py."""
    skip_unless_tools("rpm", "rpmbuild")
    top = tmp_path_factory.mktemp("rpmbuild-distros")
    rpms = rb.build_rpm(rb.HELLO_SPEC, top) + rb.build_rpm(rb.PLAIN_SPEC, top)
    for arch in ("x86_64", "i686"):
        rpms += rb.build_rpm(rb.LIBDEMO_SPEC, top, arch)
    dbpath = tmp_path_factory.mktemp("rpmdb-distros")
    rb.install_justdb(rpms, dbpath)
    return dbpath / "rpmdb.sqlite"


@pytest.fixture(scope="session")
def rhel9(tmp_path_factory: pytest.TempPathFactory, rpmdb_sqlite: Path) -> Guest:
    return _build(tmp_path_factory, dg.build_rhel9, rpmdb_sqlite.read_bytes())


@pytest.fixture(scope="session")
def rpm_packages(tmp_path_factory: pytest.TempPathFactory, rpmdb_sqlite: Path) -> bytes:
    """The same packages as a Berkeley DB ``Packages``, as rpm before 4.16 kept them."""
    skip_unless_tools("db5.3_load")
    packages = tmp_path_factory.mktemp("bdb-distros") / "Packages"
    rb.load_bdb_packages(rb.header_blobs(rpmdb_sqlite), packages)
    return packages.read_bytes()


@pytest.fixture(scope="session")
def centos7(tmp_path_factory: pytest.TempPathFactory, rpm_packages: bytes) -> Guest:
    return _build(tmp_path_factory, dg.build_centos7, rpm_packages)


@pytest.fixture(scope="session")
def archlinux(tmp_path_factory: pytest.TempPathFactory) -> Guest:
    return _build(tmp_path_factory, dg.build_archlinux)


@pytest.fixture(scope="session")
def alpine(tmp_path_factory: pytest.TempPathFactory) -> Guest:
    return _build(tmp_path_factory, dg.build_alpine)


# ---------------------------------------------------------------- RPM: RHEL 9.2 and CentOS 7

LIBDEMO = {
    "version": "2.0",
    "release": "1.el9",
    "url": "https://example.org/libdemo",
    "summary": "Café library, built for two architectures",
    "description": "A library installed once per architecture.",
}
RPM_APPS = [  # the spec files' values; libguestfs leaves the vendor and the source rpm out
    app2(
        "Plain",
        version="0.1",
        release="0",
        arch="noarch",
        summary="No URL, no epoch",
        description="Plain.",
    ),
    app2(
        "hello-vmcraft",
        epoch=3,
        version="1.2.3",
        release="4.fc38",
        arch="noarch",
        url="https://example.org/hello",
        summary="A tiny package for tests",
        description="First line of the description.\nSecond line.",
    ),
    app2("libdemo", arch="i686", **LIBDEMO),
    app2("libdemo", arch="x86_64", **LIBDEMO),
]


def sorted_apps(apps: list[dict[str, str | int]]) -> list[tuple[str | int, ...]]:
    """Records as tuples in a stable order: libguestfs sorts by name only."""
    return sorted(tuple(app.values()) for app in apps)


def assert_rpm_apps(apps: list[dict[str, str | int]]) -> None:
    assert [a["app2_name"] for a in apps] == ["Plain", "hello-vmcraft", "libdemo", "libdemo"]
    assert all(tuple(app) == APP2_FIELDS for app in apps)
    assert sorted_apps(apps) == sorted_apps(RPM_APPS)


def test_rhel9_as_libguestfs_reports_it(rhel9: Guest) -> None:
    with opened(rhel9) as g:
        assert g.inspect_os() == ["/dev/sda3"]

        assert identity(g, "/dev/sda3") == linux(
            distro="rhel",  # os-release, through /etc/os-release -> ../usr/lib/os-release
            product_name="Red Hat Enterprise Linux 9.2 (Plow)",
            version=(9, 2),
            arch="x86_64",  # /bin -> usr/bin, /usr/bin/ls
            hostname="rhel9.invalid",
            osinfo="rhel9.2",
            package_format="rpm",
            package_management="dnf",
        )
        assert g.inspect_get_mountpoints("/dev/sda3") == rhel9.mountpoints  # both by UUID=
        assert g.inspect_get_filesystems("/dev/sda3") == ["/dev/sda3", "/dev/sda2"]
        assert g.inspect_get_drive_mappings("/dev/sda3") == {}
        assert g.inspect_get_icon("/dev/sda3") == dg.RHEL9_ICON


def test_rhel9_applications_from_its_sqlite_rpmdb(rhel9: Guest) -> None:
    with opened(rhel9) as g:
        g.inspect_os()
        before = session_mounts()

        apps = g.inspect_list_applications2("/dev/sda3")

        assert session_mounts() == before
    assert_rpm_apps(apps)


def test_centos7_as_libguestfs_reports_it(centos7: Guest) -> None:
    root = "/dev/centos/root"
    with opened(centos7) as g:
        assert g.inspect_os() == [root]

        assert identity(g, root) == linux(
            distro="centos",  # os-release's VERSION_ID=7 is not enough: centos-release decides
            product_name="CentOS Linux release 7.9.2009 (Core)",
            version=(7, 9),
            arch="x86_64",
            hostname="centos7.invalid",  # from /etc/sysconfig/network
            osinfo="centos7.0",  # libosinfo has one CentOS 7
            package_format="rpm",
            package_management="yum",
        )
        assert g.inspect_get_mountpoints(root) == centos7.mountpoints
        assert g.inspect_get_filesystems(root) == [root, "/dev/sda1", "/dev/centos/swap"]
        assert g.inspect_get_drive_mappings(root) == {}
        assert g.inspect_get_icon(root) == dg.CENTOS7_ICON  # through an absolute link


def test_centos7_applications_from_its_berkeley_db(centos7: Guest) -> None:
    with opened(centos7) as g:
        g.inspect_os()

        apps = g.inspect_list_applications2("/dev/centos/root")

    assert_rpm_apps(apps)


# ---------------------------------------------------------------- Arch Linux and Alpine


def test_archlinux_as_libguestfs_reports_it(archlinux: Guest) -> None:
    with opened(archlinux) as g:
        assert g.inspect_os() == ["/dev/sda2"]

        assert identity(g, "/dev/sda2") == linux(
            distro="archlinux",
            product_name="Arch Linux",
            version=(0, 0),  # a rolling release: no VERSION_ID, and none needed
            arch="x86_64",  # /bin -> usr/bin, /usr/bin/bash
            hostname="arch.invalid",
            build_id="rolling",
            osinfo="archlinux",
            package_format="pacman",
            package_management="pacman",
        )
        assert g.inspect_get_mountpoints("/dev/sda2") == archlinux.mountpoints
        assert g.inspect_get_filesystems("/dev/sda2") == ["/dev/sda2", "/dev/sda3"]
        assert g.inspect_get_drive_mappings("/dev/sda2") == {}
        assert g.inspect_get_icon("/dev/sda2") == b""  # libguestfs knows no Arch logo


def test_archlinux_applications_from_pacmans_local_database(archlinux: Guest) -> None:
    with opened(archlinux) as g:
        g.inspect_os()

        apps = g.inspect_list_applications2("/dev/sda2")

    assert apps == [  # %DESC% is the description; ALPM_DB_VERSION is no package
        app2(
            "ffmpeg",
            epoch=2,
            version="6.0",
            release="11",
            arch="x86_64",
            url="https://ffmpeg.org/",
            description="Complete solution to record, convert and stream audio and video",
        ),
        app2(
            "iana-etc",
            version="20231016",
            release="1",
            arch="any",
            url="https://www.iana.org/protocols",
            description="/etc/protocols and /etc/services provided by IANA",
        ),
        app2(
            "linux",
            version="6.6.1.arch1",
            release="1",
            arch="x86_64",
            url="https://github.com/archlinux/linux",
            description="The Linux kernel and modules",
        ),
        app2(
            "pacman",
            version="6.0.2",
            release="8",
            arch="x86_64",
            url="https://www.archlinux.org/pacman/",
            description="A library-based package manager with dependency support",
        ),
    ]


def test_alpine_as_libguestfs_reports_it(alpine: Guest) -> None:
    with opened(alpine) as g:
        assert g.inspect_os() == ["/dev/sda3"]

        assert identity(g, "/dev/sda3") == linux(
            distro="alpinelinux",
            product_name="Alpine Linux v3.19",
            version=(3, 19),
            arch="aarch64",  # /bin/ls -> /bin/busybox, resolved inside the guest
            hostname="alpine.invalid",
            osinfo="alpinelinux3.19",
            package_format="apk",
            package_management="apk",
        )
        assert g.inspect_get_mountpoints("/dev/sda3") == alpine.mountpoints
        # The CD-ROM, the /media mount and tmpfs are left out; swap is kept.
        assert g.inspect_get_filesystems("/dev/sda3") == ["/dev/sda3", "/dev/sda1", "/dev/sda2"]
        assert g.inspect_get_drive_mappings("/dev/sda3") == {}
        assert g.inspect_get_icon("/dev/sda3") == b""


def test_alpine_applications_from_apks_database(alpine: Guest) -> None:
    with opened(alpine) as g:
        g.inspect_os()

        apps = g.inspect_list_applications2("/dev/sda3")

    assert apps == [  # T: is the description; the release loses apk's "r"
        app2(
            "alpine-baselayout",
            version="3.4.3",
            release="2",
            arch="aarch64",
            url="https://git.alpinelinux.org/cgit/aports/tree/main/alpine-baselayout",
            description="Alpine base dir structure and init scripts",
        ),
        app2(
            "busybox",
            version="1.36.1",
            release="15",
            arch="aarch64",
            url="https://busybox.net/",
            description="Size optimized toolbox of many common UNIX utilities",
        ),
        app2(
            "musl",
            version="1.2.4_git20230717",
            release="4",
            arch="aarch64",
            url="https://musl.libc.org/",
            description="the musl c library (libc) implementation",
        ),
    ]


# ---------------------------------------------------------------- every guest


@pytest.mark.parametrize(
    ("fixture", "root", "path", "content"),
    [
        ("rhel9", "/dev/sda3", "/boot/vmlinuz-5.14.0-284.11.1.el9_2.x86_64", "-"),
        ("centos7", "/dev/centos/root", "/boot/grub2/grub.cfg", "set default=0\n"),
        ("archlinux", "/dev/sda2", "/etc/arch-release", ""),
        ("alpine", "/dev/sda3", "/boot/extlinux.conf", "DEFAULT lts\n"),
    ],
)
def test_mount_root_mounts_what_fstab_says(
    request: pytest.FixtureRequest, fixture: str, root: str, path: str, content: str
) -> None:
    guest: Guest = request.getfixturevalue(fixture)
    with opened(guest) as g:
        g.inspect_os()

        mounted = g.inspect_mount_root(root)

        assert mounted == dict.fromkeys(guest.mountpoints, True)
        assert g.mountpoints() == {dev: mp for mp, dev in guest.mountpoints.items()}
        assert g.cat(path) == content
        g.umount_all()


def test_two_distributions_on_two_drives(rhel9: Guest, alpine: Guest) -> None:
    with opened(rhel9, alpine) as g:
        assert g.inspect_os() == ["/dev/sda3", "/dev/sdb3"]

        assert g.inspect_get_distro("/dev/sda3") == "rhel"
        assert g.inspect_get_distro("/dev/sdb3") == "alpinelinux"
        # fstab's UUID= names the partitions of the drive they are on.
        assert g.inspect_get_mountpoints("/dev/sdb3") == {"/": "/dev/sdb3", "/boot": "/dev/sdb1"}
        assert g.inspect_get_filesystems("/dev/sdb3") == ["/dev/sdb3", "/dev/sdb1", "/dev/sdb2"]


# ---------------------------------------------------------------- virt-inspector's own output


@pytest.mark.parametrize(
    ("name", "applications"),
    # libguestfs 1.48's librpm cannot read the RPM databases these guests hold (real ones,
    # made by rpm 4.18): it stops with "rpmtsInitIterator", so their references were made
    # with --no-applications.
    [("alpine", True), ("archlinux", True), ("rhel9", False), ("centos7", False)],
)
def test_virt_inspectors_document_byte_for_byte(
    name: str, applications: bool, request: pytest.FixtureRequest
) -> None:
    guest: Guest = request.getfixturevalue(name)

    assert inspector_document(guest, applications=applications) == virt_inspector_document(name)
