"""Linux identity from planted release files, checked against libguestfs's answers.

Each guest is a folder holding what the distribution installs; the expected values are
what libguestfs reports for the same files (its phony Debian and Ubuntu guests, and its
documented rules for the others), never values read back from this code. The Red Hat
family has its own file (test_redhat_family_identity.py).
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from planted_guests import (
    DEB_APT,
    DEBIAN_12_OS_RELEASE,
    ELFCLASS64,
    ELFDATA2LSB,
    EM_AARCH64,
    FEDORA_38_OS_RELEASE,
    FSTAB,
    RPM_DNF,
    RPM_ZYPPER,
    X86_64_PROGRAM,
    elf_header,
    linux,
    plant,
    plant_linux,
)

from vmcraft.inspect import is_linux_root, read_identity

# ------------------------------------------------------------ libguestfs's phony guests


def test_phony_debian(tmp_path: Path) -> None:
    tree = plant_linux(
        tmp_path,
        {"/etc/debian_version": "5.0.1", "/etc/hostname": "debian.invalid"},
    )

    assert read_identity(tree) == linux(
        distro="debian",
        product_name="5.0.1",
        major_version=5,
        hostname="debian.invalid",
        osinfo="debian5",
        **DEB_APT,
    )


def test_phony_ubuntu(tmp_path: Path) -> None:
    lsb_release = (
        "DISTRIB_ID=Ubuntu\n"
        "DISTRIB_RELEASE=10.10\n"
        "DISTRIB_CODENAME=maverick\n"
        'DISTRIB_DESCRIPTION="Ubuntu 10.10 (Phony Pharaoh)"\n'
    )
    tree = plant_linux(
        tmp_path,
        {
            "/etc/lsb-release": lsb_release,
            "/etc/debian_version": "5.0.1",  # the phony guest has both; lsb-release wins
            "/etc/hostname": "ubuntu.invalid",
        },
    )

    assert read_identity(tree) == linux(
        distro="ubuntu",
        product_name="Ubuntu 10.10 (Phony Pharaoh)",
        major_version=10,
        minor_version=10,
        hostname="ubuntu.invalid",
        osinfo="ubuntu10.10",
        **DEB_APT,
    )


# ------------------------------------------------------------------ other families


def test_arch_from_os_release_is_rolling(tmp_path: Path) -> None:
    os_release = (
        'NAME="Arch Linux"\n'
        'PRETTY_NAME="Arch Linux"\n'
        "ID=arch\n"
        "BUILD_ID=rolling\n"
        'HOME_URL="https://archlinux.org/"\n'
    )
    tree = plant_linux(tmp_path, {"/etc/arch-release": "", "/etc/os-release": os_release})

    assert read_identity(tree) == linux(
        distro="archlinux",
        product_name="Arch Linux",
        build_id="rolling",
        osinfo="archlinux",
        package_format="pacman",
        package_management="pacman",
    )


def test_arch_release_alone_names_only_the_distro(tmp_path: Path) -> None:
    tree = plant_linux(tmp_path, {"/etc/arch-release": ""})

    identity = read_identity(tree)

    assert (identity.distro, identity.product_name) == ("archlinux", "unknown")
    assert identity.osinfo == "archlinux"


def test_alpine_from_alpine_release_on_aarch64_busybox(tmp_path: Path) -> None:
    tree = plant(
        tmp_path,
        {
            "/etc/fstab": FSTAB,
            "/etc/alpine-release": "3.18.4\n",
            "/etc/hostname": "alpine\n",
            "/bin/busybox": elf_header(ELFCLASS64, ELFDATA2LSB, EM_AARCH64),
        },
        symlinks={"/bin/ls": "/bin/busybox", "/bin/sh": "/bin/busybox"},
    )

    assert read_identity(tree) == linux(
        distro="alpinelinux",
        product_name="3.18.4",
        major_version=3,
        minor_version=18,
        arch="aarch64",
        hostname="alpine",
        osinfo="alpinelinux3.18",
        package_format="apk",
        package_management="apk",
    )


def test_opensuse_leap_15_5_from_os_release(tmp_path: Path) -> None:
    os_release = (
        'NAME="openSUSE Leap"\n'
        'VERSION="15.5"\n'
        'ID="opensuse-leap"\n'
        'ID_LIKE="suse opensuse"\n'
        'VERSION_ID="15.5"\n'
        'PRETTY_NAME="openSUSE Leap 15.5"\n'
    )
    tree = plant_linux(tmp_path, {"/etc/os-release": os_release})

    assert read_identity(tree) == linux(
        distro="opensuse",
        product_name="openSUSE Leap 15.5",
        major_version=15,
        minor_version=5,
        osinfo="opensuse15.5",
        **RPM_ZYPPER,
    )


def test_sles_15_sp4_from_os_release(tmp_path: Path) -> None:
    os_release = (
        'NAME="SLES"\n'
        'VERSION="15-SP4"\n'
        'VERSION_ID="15.4"\n'
        'PRETTY_NAME="SUSE Linux Enterprise Server 15 SP4"\n'
        'ID="sles"\n'
    )
    tree = plant_linux(tmp_path, {"/etc/os-release": os_release})

    assert read_identity(tree) == linux(
        distro="sles",
        product_name="SUSE Linux Enterprise Server 15 SP4",
        major_version=15,
        minor_version=4,
        osinfo="sles15sp4",
        **RPM_ZYPPER,
    )


def test_sles_11_sp2_from_suse_release(tmp_path: Path) -> None:
    suse_release = "SUSE Linux Enterprise Server 11 (x86_64)\nVERSION = 11\nPATCHLEVEL = 2\n"
    tree = plant_linux(
        tmp_path,
        {"/etc/SuSE-release": suse_release, "/etc/HOSTNAME": "sles11.example.com\n"},
    )

    assert read_identity(tree) == linux(
        distro="sles",
        product_name="SUSE Linux Enterprise Server 11 (x86_64)",
        major_version=11,
        minor_version=2,
        hostname="sles11.example.com",
        osinfo="sles11sp2",
        **RPM_ZYPPER,
    )


def test_debian_12_from_os_release_alone(tmp_path: Path) -> None:
    tree = plant_linux(tmp_path, {"/etc/os-release": DEBIAN_12_OS_RELEASE})

    assert read_identity(tree) == linux(
        distro="debian",
        product_name="Debian GNU/Linux 12 (bookworm)",
        major_version=12,
        osinfo="debian12",
        **DEB_APT,
    )


def test_debian_version_completes_major_only_os_release(tmp_path: Path) -> None:
    tree = plant_linux(
        tmp_path,
        {"/etc/os-release": DEBIAN_12_OS_RELEASE, "/etc/debian_version": "12.4\n"},
    )

    assert read_identity(tree) == linux(
        distro="debian",
        product_name="12.4",
        major_version=12,
        minor_version=4,
        osinfo="debian12",
        **DEB_APT,
    )


def test_debian_testing_has_no_version(tmp_path: Path) -> None:
    os_release = 'PRETTY_NAME="Debian GNU/Linux trixie/sid"\nNAME="Debian GNU/Linux"\nID=debian\n'
    tree = plant_linux(
        tmp_path,
        {"/etc/os-release": os_release, "/etc/debian_version": "trixie/sid\n"},
    )

    assert read_identity(tree) == linux(distro="debian", product_name="trixie/sid", **DEB_APT)


# ---------------------------------------------------------- layout and damaged files


def test_gpt_guest_with_os_release_symlink_into_usr(tmp_path: Path) -> None:
    tree = plant(
        tmp_path,
        {
            "/etc/fstab": FSTAB,
            "/usr/lib/os-release": FEDORA_38_OS_RELEASE,
            "/usr/bin/bash": X86_64_PROGRAM,
            "/usr/bin/dnf": "#!/usr/bin/python3\n",
        },
        symlinks={"/etc/os-release": "../usr/lib/os-release", "/bin": "usr/bin"},
    )

    assert is_linux_root(tree)
    assert read_identity(tree) == linux(
        distro="fedora",
        product_name="Fedora Linux 38 (Server Edition)",
        major_version=38,
        osinfo="fedora38",
        **RPM_DNF,
    )


def test_usr_lib_os_release_stands_in_for_a_missing_etc_os_release(tmp_path: Path) -> None:
    tree = plant_linux(tmp_path, {"/usr/lib/os-release": DEBIAN_12_OS_RELEASE})

    identity = read_identity(tree)

    assert (identity.distro, identity.major_version, identity.osinfo) == (
        "debian",
        12,
        "debian12",
    )


GARBAGE = b"\x89PNG\r\n\x1a\n\x00\xff\xfe\xfd no equals sign here\n\x00ID\x00=\xc3\x28\n=\n"


def test_corrupt_os_release_alone_yields_unknowns(tmp_path: Path) -> None:
    tree = plant_linux(tmp_path, {"/etc/os-release": GARBAGE})

    assert read_identity(tree) == linux()


def test_corrupt_os_release_leaves_the_release_file_to_decide(tmp_path: Path) -> None:
    tree = plant_linux(
        tmp_path,
        {"/etc/os-release": GARBAGE, "/etc/debian_version": "12.4\n"},
    )

    identity = read_identity(tree)

    assert (identity.distro, identity.product_name) == ("debian", "12.4")
    assert (identity.major_version, identity.minor_version) == (12, 4)


def test_os_release_without_pretty_name_falls_through(tmp_path: Path) -> None:
    tree = plant_linux(
        tmp_path,
        {
            "/etc/os-release": "ID=fedora\nVERSION_ID=14\n",
            "/etc/redhat-release": "Fedora release 14 (Laughlin)\n",
        },
    )

    assert read_identity(tree).product_name == "Fedora release 14 (Laughlin)"


def test_release_file_loop_and_folder_are_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = plant_linux(
        tmp_path,
        {"/etc/debian_version": "11.9\n"},
        symlinks={"/etc/os-release": "/etc/os-release-b", "/etc/os-release-b": "os-release"},
    )
    os.mkdir(tmp_path / "etc" / "lsb-release")

    with caplog.at_level(logging.WARNING, logger="vmcraft.inspect"):
        identity = read_identity(tree)

    assert (identity.distro, identity.major_version, identity.minor_version) == ("debian", 11, 9)
    assert "/etc/os-release" in caplog.text
