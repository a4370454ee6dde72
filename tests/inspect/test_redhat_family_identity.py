"""Fedora, RHEL, Rocky and CentOS identity: os-release and redhat-release in libguestfs's order.

The rebuilds ship a ``redhat-release`` too, so their own release files are tested first;
CentOS and Rocky put only the major version in os-release, so their release file has the
last word; the package manager follows the major version (up2date, yum, dnf).
"""

from __future__ import annotations

from pathlib import Path

from planted_guests import FEDORA_38_OS_RELEASE, RPM_DNF, RPM_YUM, linux, plant_linux

from vmcraft.inspect import read_identity


def test_fedora_14_from_redhat_release(tmp_path: Path) -> None:
    release = "Fedora release 14 (Laughlin)\n"
    tree = plant_linux(
        tmp_path,
        {
            "/etc/redhat-release": release,
            "/etc/fedora-release": release,
            "/etc/sysconfig/network": "NETWORKING=yes\nHOSTNAME=fedora.invalid\n",
        },
    )

    assert read_identity(tree) == linux(
        distro="fedora",
        product_name="Fedora release 14 (Laughlin)",
        major_version=14,
        hostname="fedora.invalid",
        osinfo="fedora14",
        **RPM_YUM,
    )


def test_fedora_38_from_os_release_uses_dnf(tmp_path: Path) -> None:
    tree = plant_linux(
        tmp_path,
        {
            "/etc/os-release": FEDORA_38_OS_RELEASE,
            "/etc/redhat-release": "Fedora release 38 (Thirty Eight)\n",
            "/usr/bin/dnf-3": "#!/usr/bin/python3\n",
            "/etc/hostname": "f38.example.com\n",
        },
        symlinks={"/usr/bin/dnf": "dnf-3"},
    )

    assert read_identity(tree) == linux(
        distro="fedora",
        product_name="Fedora Linux 38 (Server Edition)",
        major_version=38,
        hostname="f38.example.com",
        osinfo="fedora38",
        **RPM_DNF,
    )


def test_fedora_without_dnf_binary_says_yum(tmp_path: Path) -> None:
    # libguestfs says dnf for Fedora >= 22 only when /usr/bin/dnf is there.
    tree = plant_linux(tmp_path, {"/etc/os-release": FEDORA_38_OS_RELEASE})

    assert read_identity(tree).package_management == "yum"


def test_rhel_9_2_from_os_release(tmp_path: Path) -> None:
    os_release = (
        'NAME="Red Hat Enterprise Linux"\n'
        'VERSION="9.2 (Plow)"\n'
        'ID="rhel"\n'
        'ID_LIKE="fedora"\n'
        'VERSION_ID="9.2"\n'
        'PRETTY_NAME="Red Hat Enterprise Linux 9.2 (Plow)"\n'
    )
    tree = plant_linux(
        tmp_path,
        {
            "/etc/os-release": os_release,
            "/etc/redhat-release": "Red Hat Enterprise Linux release 9.2 (Plow)\n",
        },
    )

    assert read_identity(tree) == linux(
        distro="rhel",
        product_name="Red Hat Enterprise Linux 9.2 (Plow)",
        major_version=9,
        minor_version=2,
        osinfo="rhel9.2",
        **RPM_DNF,
    )


def test_rhel_6_2_from_redhat_release(tmp_path: Path) -> None:
    release = "Red Hat Enterprise Linux Server release 6.2 (Santiago)\n"
    tree = plant_linux(
        tmp_path,
        {
            "/etc/redhat-release": release,
            "/etc/sysconfig/network": 'NETWORKING=yes\nHOSTNAME="rhel6.example.com"\n',
        },
    )

    assert read_identity(tree) == linux(
        distro="rhel",
        product_name="Red Hat Enterprise Linux Server release 6.2 (Santiago)",
        major_version=6,
        minor_version=2,
        hostname="rhel6.example.com",
        osinfo="rhel6.2",
        **RPM_YUM,
    )


def test_rhel_4_update_release_uses_up2date(tmp_path: Path) -> None:
    release = "Red Hat Enterprise Linux AS release 4 (Nahant Update 9)\n"
    tree = plant_linux(tmp_path, {"/etc/redhat-release": release})

    identity = read_identity(tree)

    assert (identity.distro, identity.major_version, identity.minor_version) == ("rhel", 4, 9)
    assert identity.package_management == "up2date"
    assert identity.osinfo == "rhel4.9"


def test_rocky_9_from_os_release(tmp_path: Path) -> None:
    os_release = (
        'NAME="Rocky Linux"\n'
        'VERSION="9.2 (Blue Onyx)"\n'
        'ID="rocky"\n'
        'VERSION_ID="9.2"\n'
        'PRETTY_NAME="Rocky Linux 9.2 (Blue Onyx)"\n'
    )
    release = "Rocky Linux release 9.2 (Blue Onyx)\n"
    tree = plant_linux(
        tmp_path,
        {
            "/etc/os-release": os_release,
            "/etc/rocky-release": release,
            "/etc/redhat-release": release,
        },
    )

    assert read_identity(tree) == linux(
        distro="rocky",
        product_name="Rocky Linux 9.2 (Blue Onyx)",
        major_version=9,
        minor_version=2,
        osinfo="rocky9",
        **RPM_DNF,
    )


def test_rocky_major_only_os_release_defers_to_rocky_release(tmp_path: Path) -> None:
    os_release = 'ID="rocky"\nVERSION_ID="8"\nPRETTY_NAME="Rocky Linux 8"\n'
    tree = plant_linux(
        tmp_path,
        {
            "/etc/os-release": os_release,
            "/etc/rocky-release": "Rocky Linux release 8.8 (Green Obsidian)\n",
        },
    )

    identity = read_identity(tree)

    assert identity.product_name == "Rocky Linux release 8.8 (Green Obsidian)"
    assert (identity.major_version, identity.minor_version) == (8, 8)
    assert identity.osinfo == "rocky8"


def test_centos_7_release_file_overrides_major_only_os_release(tmp_path: Path) -> None:
    os_release = (
        'NAME="CentOS Linux"\n'
        'VERSION="7 (Core)"\n'
        'ID="centos"\n'
        'VERSION_ID="7"\n'
        'PRETTY_NAME="CentOS Linux 7 (Core)"\n'
    )
    release = "CentOS Linux release 7.9.2009 (Core)\n"
    tree = plant_linux(
        tmp_path,
        {
            "/etc/os-release": os_release,
            "/etc/centos-release": release,
            "/etc/redhat-release": release,
        },
    )

    assert read_identity(tree) == linux(
        distro="centos",
        product_name="CentOS Linux release 7.9.2009 (Core)",
        major_version=7,
        minor_version=9,
        osinfo="centos7.0",
        **RPM_YUM,
    )


def test_unrecognised_redhat_release_is_redhat_based(tmp_path: Path) -> None:
    tree = plant_linux(tmp_path, {"/etc/redhat-release": "Acme Linux 3.1 (Coyote)\n"})

    identity = read_identity(tree)

    assert identity.distro == "redhat-based"
    assert identity.product_name == "Acme Linux 3.1 (Coyote)"
    assert (identity.major_version, identity.minor_version) == (3, 1)
    assert identity.package_management == "up2date"
