"""Arch Linux applications from a pacman local database written here.

Each package is a folder ``name-version`` holding a ``desc`` file of ``%FIELD%`` headers,
each followed by its value lines and a blank line (alpm-db(5)). The expected records follow
libguestfs's rules: the first line of ``%NAME%``, ``%ARCH%``, ``%URL%`` and ``%DESC%`` (as
the description, no summary); ``%VERSION%`` as ``[epoch:]version-release``; only folders
count, and a package lacking a name, an architecture, a version or a release is skipped.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from inspect_support import app2 as app
from inspect_support import warnings_of
from planted_guests import plant

from vmcraft.inspect.applications import list_applications

LOCAL = "/var/lib/pacman/local"


def desc(**fields: str) -> str:
    """A desc file with the given fields, in pacman's order and layout."""
    return "".join(f"%{name.upper()}%\n{value}\n\n" for name, value in fields.items())


LINUX = desc(
    name="linux",
    version="6.6.1.arch1-1",
    base="linux",
    desc="The Linux kernel and modules",
    url="https://github.com/archlinux/linux",
    arch="x86_64",
    builddate="1700000000",
    installdate="1700100000",
    packager="Jan Alexander Steffens (heftig) <heftig@archlinux.org>",
    size="137000000",
    reason="1",
    license="GPL2",
    validation="pgp",
    depends="coreutils\nkmod\ninitramfs",
)
FFMPEG = desc(
    name="ffmpeg",
    version="2:6.0-11",
    desc="Complete solution to record, convert and stream audio and video",
    url="https://ffmpeg.org/",
    arch="x86_64",
)
CA_CERTIFICATES = desc(
    name="ca-certificates",
    version="20220905-1",
    desc="Common CA certificates (default providers)",
    url="https://src.fedoraproject.org/rpms/ca-certificates",
    arch="any",
)


def test_local_database(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tree = plant(
        tmp_path,
        {
            f"{LOCAL}/ALPM_DB_VERSION": "9\n",
            f"{LOCAL}/linux-6.6.1.arch1-1/desc": LINUX,
            f"{LOCAL}/linux-6.6.1.arch1-1/files": "%FILES%\nboot/\n",
            f"{LOCAL}/ffmpeg-2:6.0-11/desc": FFMPEG,
            f"{LOCAL}/ca-certificates-20220905-1/desc": CA_CERTIFICATES,
        },
    )

    with caplog.at_level(logging.WARNING):
        apps = list_applications(tree, "pacman")

    assert apps == [
        app(
            "ca-certificates",
            version="20220905",
            release="1",
            arch="any",
            url="https://src.fedoraproject.org/rpms/ca-certificates",
            description="Common CA certificates (default providers)",
        ),
        app(
            "ffmpeg",
            epoch=2,
            version="6.0",
            release="11",
            arch="x86_64",
            url="https://ffmpeg.org/",
            description="Complete solution to record, convert and stream audio and video",
        ),
        app(
            "linux",
            version="6.6.1.arch1",
            release="1",
            arch="x86_64",
            url="https://github.com/archlinux/linux",
            description="The Linux kernel and modules",
        ),
    ]
    assert warnings_of(caplog) == []


def test_symlinked_folders_are_not_packages(tmp_path: Path) -> None:
    tree = plant(
        tmp_path,
        {f"{LOCAL}/linux-6.6.1.arch1-1/desc": LINUX, "/srv/ffmpeg/desc": FFMPEG},
        symlinks={f"{LOCAL}/ffmpeg-2:6.0-11": "/srv/ffmpeg"},
    )

    assert [a["app2_name"] for a in list_applications(tree, "pacman")] == ["linux"]


def test_damaged_packages_are_skipped_with_one_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    no_arch = desc(name="no-arch", version="1.0-1", desc="lost its %ARCH%")
    no_release = desc(name="no-release", version="1.0", arch="x86_64")
    tree = plant(
        tmp_path,
        {
            f"{LOCAL}/linux-6.6.1.arch1-1/desc": LINUX,
            f"{LOCAL}/no-arch-1.0-1/desc": no_arch,
            f"{LOCAL}/no-release-1.0/desc": no_release,
            f"{LOCAL}/no-desc-1.0-1/files": "%FILES%\n",
        },
    )

    with caplog.at_level(logging.WARNING):
        apps = list_applications(tree, "pacman")

    assert [a["app2_name"] for a in apps] == ["linux"]
    (warning,) = warnings_of(caplog)
    assert LOCAL in warning
    assert all(name in warning for name in ("no-arch", "no-release", "no-desc"))


def test_missing_database_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tree = plant(tmp_path, folders=("/var/lib/pacman",))

    with caplog.at_level(logging.WARNING):
        assert list_applications(tree, "pacman") == []

    (warning,) = warnings_of(caplog)
    assert LOCAL in warning and "does not exist" in warning
