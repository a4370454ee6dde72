"""Which filesystems are Linux roots, and where their hostname is, per libguestfs's rules.

A root has a folder ``/etc``, a ``/bin`` that is a folder or a symlink reading exactly
``usr/bin``, and a regular ``/etc/fstab`` or ``/etc/hosts``; the last component of each is
not followed. The hostname is the first real line of ``/etc/HOSTNAME`` or
``/etc/hostname``, else ``HOSTNAME=`` in ``/etc/sysconfig/network``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from planted_guests import FSTAB, plant

from vmcraft.inspect import is_linux_root, read_hostname

# ---------------------------------------------------------------------- hostname


def test_hostname_prefers_etc_HOSTNAME_then_skips_comments(tmp_path: Path) -> None:
    both = plant(
        tmp_path / "both",
        {"/etc/HOSTNAME": "old-suse\n", "/etc/hostname": "newer\n"},
    )
    commented = plant(
        tmp_path / "commented",
        {"/etc/hostname": "# set by the installer\n\nweb1.example.com\n"},
    )

    assert read_hostname(both) == "old-suse"
    assert read_hostname(commented) == "web1.example.com"


def test_no_hostname_anywhere(tmp_path: Path) -> None:
    tree = plant(tmp_path, {"/etc/sysconfig/network": "NETWORKING=yes\n"})

    assert read_hostname(tree) is None


# ------------------------------------------------------------------ is_linux_root


@pytest.mark.parametrize(
    ("files", "symlinks", "folders"),
    [
        pytest.param({"/etc/fstab": FSTAB}, {}, ("/bin",), id="bin-folder-fstab"),
        pytest.param({"/etc/hosts": "127.0.0.1 localhost\n"}, {}, ("/bin",), id="hosts-only"),
        pytest.param(
            {"/etc/fstab": FSTAB}, {"/bin": "usr/bin"}, ("/usr/bin",), id="bin-link-usr-bin"
        ),
    ],
)
def test_is_linux_root_accepts(
    tmp_path: Path,
    files: dict[str, str],
    symlinks: dict[str, str],
    folders: tuple[str, ...],
) -> None:
    assert is_linux_root(plant(tmp_path, files, symlinks, folders))


@pytest.mark.parametrize(
    ("files", "symlinks", "folders"),
    [
        pytest.param({}, {}, (), id="empty"),
        pytest.param({"/etc/fstab": FSTAB}, {}, (), id="no-bin"),
        pytest.param({}, {}, ("/etc", "/bin"), id="no-fstab-no-hosts"),
        pytest.param({"/bin/ls": b""}, {}, ("/etc/fstab",), id="fstab-is-a-folder"),
        pytest.param(
            {"/real-etc/fstab": FSTAB}, {"/etc": "real-etc"}, ("/bin",), id="etc-is-a-link"
        ),
        # libguestfs accepts a /bin link only when its target reads exactly "usr/bin".
        pytest.param(
            {"/etc/fstab": FSTAB}, {"/bin": "/usr/bin"}, ("/usr/bin",), id="bin-absolute-link"
        ),
        pytest.param({"/etc/fstab": FSTAB, "/bin": b"not a folder"}, {}, (), id="bin-is-a-file"),
    ],
)
def test_is_linux_root_rejects(
    tmp_path: Path,
    files: dict[str, str | bytes],
    symlinks: dict[str, str],
    folders: tuple[str, ...],
) -> None:
    assert not is_linux_root(plant(tmp_path, files, symlinks, folders))
