"""Debian applications from a dpkg status file written here, paragraph by paragraph.

The expected records follow the status file's format (deb-control(5), deb-version(7)) and
libguestfs's stated rules: the epoch is what precedes the first colon of ``Version``, the
release what follows the first hyphen after it; ``Homepage`` is the URL; ``Source`` without
its version in parentheses is the source package; the first line of ``Description`` is the
summary and its continuation lines, less one leading space, the description.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import pytest
from inspect_support import app2 as app
from inspect_support import warnings_of
from planted_guests import plant

from vmcraft.inspect.applications import list_applications

STATUS = "/var/lib/dpkg/status"

BASE_FILES = """\
Package: base-files
Essential: yes
Status: install ok installed
Priority: required
Section: admin
Installed-Size: 395
Maintainer: Santiago Vila <sanvila@debian.org>
Architecture: amd64
Multi-Arch: foreign
Version: 12.4+deb12u4
Replaces: base, dpkg (<= 1.15.0), miscutils
Provides: base
Conffiles:
 /etc/debian_version 2d8e4a9c4b2c3c5d0d3b1c5c6d0d8e4a
 /etc/issue 54b2c6b2e5b5c0a1e2f3a4b5c6d7e8f9
Description: Debian base system miscellaneous files
 This package contains the basic filesystem hierarchy of a Debian system.
 .
 It also holds several important miscellaneous files.
Homepage: https://tracker.debian.org/pkg/base-files
"""

LIBC6_AMD64 = """\
Package: libc6
Status: install ok installed
Architecture: amd64
Multi-Arch: same
Source: glibc
Version: 2.36-9+deb12u4
Depends: libgcc-s1
Description: GNU C Library: Shared libraries
 Contains the standard libraries that are used by nearly all programs on
 the system.
Homepage: https://www.gnu.org/software/libc/libc.html
"""

LIBC6_I386 = LIBC6_AMD64.replace("amd64", "i386")

XSERVER = """\
Package: xserver-xorg-core
Status: install ok installed
Architecture: amd64
Source: xorg-server (2:21.1.7-3+deb12u5)
Version: 2:21.1.7-3+deb12u5
Description: Xorg X server - core server
"""

SUDO_HELD = """\
Package: sudo
Status: hold ok installed
Architecture: amd64
Version: 1.9.13p3-1+deb12u1
Description: Provide limited super user privileges to specific users
"""

ADDUSER_NATIVE = """\
Package: adduser
Status: install ok installed
Architecture: all
Version: 3.134
Description: add and remove users and groups
"""

ODD_UPSTREAM = """\
Package: odd-upstream
Status: install ok installed
Architecture: all
Version: 0.9-beta-2
Description: an upstream version with a hyphen
"""

NANO_REMOVED = """\
Package: nano
Status: deinstall ok config-files
Architecture: amd64
Version: 7.2-1
Conffiles:
 /etc/nanorc 8d5b9b1a2b3c4d5e6f708192a3b4c5d6
Description: small, friendly text editor inspired by Pico
"""

VIM_PURGED = """\
Package: vim-tiny
Status: purge ok not-installed
Architecture: amd64
"""

HALF_INSTALLED = """\
Package: broken-postinst
Status: install reinstreq half-installed
Architecture: amd64
Version: 1.0-1
"""

STATUS_FILE = "\n".join(
    [
        *(BASE_FILES, LIBC6_AMD64, NANO_REMOVED, LIBC6_I386, XSERVER, VIM_PURGED, SUDO_HELD),
        *(HALF_INSTALLED, ADDUSER_NATIVE, ODD_UPSTREAM),
    ]
)


EXPECTED = [
    app("adduser", version="3.134", arch="all", summary="add and remove users and groups"),
    app(
        "base-files",
        version="12.4+deb12u4",
        arch="amd64",
        url="https://tracker.debian.org/pkg/base-files",
        summary="Debian base system miscellaneous files",
        description="This package contains the basic filesystem hierarchy of a Debian system."
        "\n.\nIt also holds several important miscellaneous files.",
    ),
    *(
        app(
            "libc6",
            version="2.36",
            release="9+deb12u4",
            arch=arch,
            url="https://www.gnu.org/software/libc/libc.html",
            source_package="glibc",
            summary="GNU C Library: Shared libraries",
            description="Contains the standard libraries that are used by nearly all programs on"
            "\nthe system.",
        )
        for arch in ("amd64", "i386")  # the file's order: the sort keeps it for one name
    ),
    app(
        "odd-upstream",
        version="0.9",
        release="beta-2",
        arch="all",
        summary="an upstream version with a hyphen",
    ),
    app(
        "sudo",
        version="1.9.13p3",
        release="1+deb12u1",
        arch="amd64",
        summary="Provide limited super user privileges to specific users",
    ),
    app(
        "xserver-xorg-core",
        epoch=2,
        version="21.1.7",
        release="3+deb12u5",
        arch="amd64",
        source_package="xorg-server",
        summary="Xorg X server - core server",
    ),
]


def test_installed_packages_of_a_status_file(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = plant(tmp_path, {STATUS: STATUS_FILE})

    with caplog.at_level(logging.WARNING):
        apps = list_applications(tree, "deb")

    assert apps == EXPECTED
    assert warnings_of(caplog) == []


def test_last_paragraph_without_a_final_blank_line(tmp_path: Path) -> None:
    tree = plant(tmp_path, {STATUS: (BASE_FILES + "\n" + ADDUSER_NATIVE).rstrip("\n")})

    assert [a["app2_name"] for a in list_applications(tree, "deb")] == ["adduser", "base-files"]


def test_status_file_reached_through_a_symlink(tmp_path: Path) -> None:
    tree = plant(
        tmp_path, {"/srv/dpkg/status": ADDUSER_NATIVE}, symlinks={STATUS: "/srv/dpkg/status"}
    )

    assert [a["app2_name"] for a in list_applications(tree, "deb")] == ["adduser"]


def test_blocks_lost_in_a_crash(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    # ext4's delayed allocation: after a crash the tail of a rewritten file reads as zeroes.
    damaged = (BASE_FILES + "\n" + ADDUSER_NATIVE + "\n" + XSERVER).encode()
    damaged = damaged[: -len(XSERVER) // 2] + bytes(4096)
    tree = plant(tmp_path, {STATUS: damaged})

    with caplog.at_level(logging.WARNING):
        apps = list_applications(tree, "deb")

    assert [a["app2_name"] for a in apps] == ["adduser", "base-files"]
    (warning,) = warnings_of(caplog)
    assert STATUS in warning and "NUL" in warning


def test_bad_epoch_skips_the_package(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = ADDUSER_NATIVE.replace("adduser", "bad-epoch").replace("3.134", "x:1.0-1")
    tree = plant(tmp_path, {STATUS: ADDUSER_NATIVE + "\n" + bad})

    with caplog.at_level(logging.WARNING):
        apps = list_applications(tree, "deb")

    assert [a["app2_name"] for a in apps] == ["adduser"]
    (warning,) = warnings_of(caplog)
    assert STATUS in warning and "bad-epoch" in warning


@pytest.mark.parametrize(
    ("make", "reason"),
    [
        (lambda root: None, "does not exist"),
        (lambda root: (root / "var/lib/dpkg/status").mkdir(parents=True), "not a regular"),
        (lambda root: os.mkfifo(root / "var/lib/dpkg/status"), "not a regular"),
        (lambda root: (root / "var/lib/dpkg/status").write_text(""), "no installed package"),
    ],
    ids=["missing", "folder", "fifo", "empty"],
)
def test_unusable_status_file_is_reported(
    make: Callable[[Path], object], reason: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = plant(tmp_path, folders=("/var/lib/dpkg",))
    make(tmp_path)

    with caplog.at_level(logging.WARNING):
        assert list_applications(tree, "deb") == []

    (warning,) = warnings_of(caplog)
    assert STATUS in warning and reason in warning
