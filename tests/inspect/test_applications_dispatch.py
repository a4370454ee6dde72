"""The entry point of application listing: package formats, order, and what gets reported.

libguestfs returns an empty list for a package format it has no reader for; VMCraft does
too, but never silently (issue 4): every empty answer that does not mean "nothing
installed" comes with one warning.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from planted_guests import plant

from vmcraft.guest.files import GuestTree
from vmcraft.inspect.applications import APPLICATION_FIELDS, list_applications


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("package_format", ["ebuild", "xbps", "pisi", "unknown"])
def test_format_without_a_reader(
    package_format: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = plant(tmp_path, {"/var/db/xbps/pkgdb-0.38.plist": "<plist/>"})

    with caplog.at_level(logging.WARNING):
        assert list_applications(tree, package_format) == []

    (warning,) = warnings_of(caplog)
    assert package_format in warning


def test_rpm_guest_without_a_database(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tree = plant(tmp_path, folders=("/var/lib/rpm", "/usr/lib/sysimage"))

    with caplog.at_level(logging.WARNING):
        assert list_applications(tree, "rpm") == []

    (warning,) = warnings_of(caplog)
    assert "/var/lib/rpm" in warning and "/usr/lib/sysimage/rpm" in warning


def test_names_sort_in_byte_order_and_records_are_complete(tmp_path: Path) -> None:
    # strcmp on UTF-8, as libguestfs sorts: capitals, then small letters, then the rest.
    blocks = [f"P:{name}\nV:1-r0\nA:x86_64\n" for name in ("é", "b", "a", "A", "a")]
    tree = plant(tmp_path, {"/lib/apk/db/installed": "\n".join(blocks)})

    apps = list_applications(tree, "apk")

    assert [app["app2_name"] for app in apps] == ["A", "a", "a", "b", "é"]
    for record in apps:
        assert tuple(record) == APPLICATION_FIELDS
        assert isinstance(record["app2_epoch"], int)
        assert all(isinstance(v, str) for k, v in record.items() if k != "app2_epoch")


def test_symlink_out_of_the_guest_stays_inside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # The host's /etc/passwd exists; the guest's does not: the link must not reach the host.
    escape = "../../../../../../../../../../etc/passwd"
    tree = plant(tmp_path, symlinks={"/var/lib/dpkg/status": escape})

    with caplog.at_level(logging.WARNING):
        assert list_applications(tree, "deb") == []

    (warning,) = warnings_of(caplog)
    assert "/var/lib/dpkg/status" in warning and "does not exist" in warning


def test_nothing_mounted(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tree = GuestTree(str(tmp_path), lambda: False, lambda path: False)

    with caplog.at_level(logging.WARNING):
        assert list_applications(tree, "deb") == []

    (warning,) = warnings_of(caplog)
    assert "no filesystem is mounted" in warning
