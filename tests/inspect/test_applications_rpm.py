"""RPM applications from a real SQLite rpmdb, made by rpm itself (see rpmdb_builder.py).

Every listing is compared with what ``rpm -qa --queryformat`` prints for the same database,
and a few packages with the values their spec files set. libguestfs asks librpm for name,
epoch, version, release, arch, URL, summary and description only, so the publisher and the
source package stay "".
"""

from __future__ import annotations

import logging
import shutil
import sqlite3
import struct
from pathlib import Path

import pytest
import rpmdb_builder as rb
from conftest import skip_unless_tools
from planted_guests import plant, tree_of

from vmcraft.inspect.applications import list_applications
from vmcraft.inspect.apps_rpm_header import HeaderError, read_header

RPMDB = "/var/lib/rpm/rpmdb.sqlite"
RPM_LEAD_SIZE = 96  # the obsolete fixed-size lead that opens a package file
HEADER_ALIGNMENT = 8  # the signature header is padded to it
SQLITE_PAGE_SIZE = 4096  # rpm's choice


@pytest.fixture(scope="module")
def rpms(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[Path]]:
    """Package files by spec: hello, libdemo (x86_64 and i686), plain, bulk."""
    skip_unless_tools(*rb.RPM_TOOLS)
    top = tmp_path_factory.mktemp("rpmbuild")
    return {
        "hello": rb.build_rpm(rb.HELLO_SPEC, top),
        "libdemo": rb.build_rpm(rb.LIBDEMO_SPEC, top, "x86_64")
        + rb.build_rpm(rb.LIBDEMO_SPEC, top, "i686"),
        "plain": rb.build_rpm(rb.PLAIN_SPEC, top),
        "bulk": rb.build_rpm(rb.bulk_spec(), top),
    }


@pytest.fixture(scope="module")
def rpmdb(rpms: dict[str, list[Path]], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding an rpmdb.sqlite with every package installed."""
    dbpath = tmp_path_factory.mktemp("rpmdb")
    rb.install_justdb([rpm for files in rpms.values() for rpm in files], dbpath)
    return dbpath


def by_name(apps: list[dict[str, str | int]]) -> list[tuple[str | int, ...]]:
    """Records as comparable tuples, in a stable order (the arch breaks name ties)."""
    return sorted(tuple(app.values()) for app in apps)


def rpm_view(apps: list[dict[str, str | int]]) -> list[dict[str, str | int]]:
    """Only the fields rpm_query reports, for comparing with it."""
    return [{key: app[key] for key in rb.QUERIED_FIELDS} for app in apps]


def guest_with_rpmdb(root: Path, dbpath: Path, folder: str = "/var/lib/rpm") -> Path:
    target = root / folder.lstrip("/")
    target.mkdir(parents=True)
    shutil.copy(dbpath / "rpmdb.sqlite", target / "rpmdb.sqlite")
    return target / "rpmdb.sqlite"


def test_every_package_as_rpm_lists_it(rpmdb: Path, tmp_path: Path) -> None:
    db = guest_with_rpmdb(tmp_path, rpmdb)

    apps = list_applications(tree_of(tmp_path), "rpm")

    assert [p.name for p in db.parent.iterdir()] == ["rpmdb.sqlite"], "no -shm, no -journal"

    expected = rb.rpm_query(rpmdb)
    assert len(apps) == len(expected) == 40
    assert by_name(rpm_view(apps)) == by_name(expected)
    names = [app["app2_name"] for app in apps]
    assert names == sorted(names)  # byte order: "Plain" before "bulk-00"
    assert names[0] == "Plain"


def test_fields_from_the_spec_file(rpmdb: Path, tmp_path: Path) -> None:
    guest_with_rpmdb(tmp_path, rpmdb)

    apps = list_applications(tree_of(tmp_path), "rpm")

    hello = next(app for app in apps if app["app2_name"] == "hello-vmcraft")
    assert hello == {
        "app2_name": "hello-vmcraft",
        "app2_display_name": "",
        "app2_epoch": 3,
        "app2_version": "1.2.3",
        "app2_release": "4.fc38",
        "app2_arch": "noarch",
        "app2_install_path": "",
        "app2_trans_path": "",
        "app2_publisher": "",  # libguestfs does not report the Vendor
        "app2_url": "https://example.org/hello",
        "app2_source_package": "",  # ...nor the source rpm
        "app2_summary": "A tiny package for tests",
        "app2_description": "First line of the description.\nSecond line.",
        "app2_spare1": "",
        "app2_spare2": "",
        "app2_spare3": "",
        "app2_spare4": "",
    }
    plain = next(app for app in apps if app["app2_name"] == "Plain")
    assert (plain["app2_epoch"], plain["app2_url"], plain["app2_release"]) == (0, "", "0")


def test_one_name_installed_for_two_architectures(rpmdb: Path, tmp_path: Path) -> None:
    guest_with_rpmdb(tmp_path, rpmdb)

    apps = list_applications(tree_of(tmp_path), "rpm")

    libdemo = [app for app in apps if app["app2_name"] == "libdemo"]
    assert sorted(str(app["app2_arch"]) for app in libdemo) == ["i686", "x86_64"]
    assert {app["app2_summary"] for app in libdemo} == {"Café library, built for two architectures"}


def test_database_under_usr_lib_sysimage(rpmdb: Path, tmp_path: Path) -> None:
    # Fedora 36 on: the database moved, and /var/lib/rpm became a symlink to it.
    guest_with_rpmdb(tmp_path, rpmdb, "/usr/lib/sysimage/rpm")
    tree = plant(tmp_path, symlinks={"/var/lib/rpm": "../../usr/lib/sysimage/rpm"})

    assert len(list_applications(tree, "rpm")) == 40
    (tmp_path / "var/lib/rpm").unlink()
    assert len(list_applications(tree, "rpm")) == 40


def test_committed_packages_still_in_the_write_ahead_log(
    rpmdb: Path, rpms: dict[str, list[Path]], tmp_path: Path
) -> None:
    # A guest stopped before SQLite checkpointed: the last package is only in the log.
    work = tmp_path / "work"
    rb.install_justdb(rpms["hello"], work)
    extra = rb.header_blobs(rpmdb / "rpmdb.sqlite")
    plain_blob = next(blob for _, blob in extra if read_header(blob)["app2_name"] == "Plain")

    connection = sqlite3.connect(work / "rpmdb.sqlite")
    try:
        connection.execute("PRAGMA wal_autocheckpoint = 0")
        connection.execute("INSERT INTO Packages (blob) VALUES (?)", (plain_blob,))
        connection.commit()
        guest = tmp_path / "guest/var/lib/rpm"
        guest.mkdir(parents=True)
        for name in ("rpmdb.sqlite", "rpmdb.sqlite-wal"):
            shutil.copy(work / name, guest / name)
    finally:
        connection.close()

    apps = list_applications(tree_of(tmp_path / "guest"), "rpm")

    assert [app["app2_name"] for app in apps] == ["Plain", "hello-vmcraft"]
    assert not list((guest).glob("*-shm")), "the guest's folder must stay untouched"


def test_header_of_the_package_file_gives_the_same_record(
    rpms: dict[str, list[Path]], rpmdb: Path
) -> None:
    data = rpms["hello"][0].read_bytes()
    signature_entries, signature_size = struct.unpack_from(">II", data, RPM_LEAD_SIZE + 8)
    signature_end = RPM_LEAD_SIZE + 16 + 16 * signature_entries + signature_size
    header_start = -(-signature_end // HEADER_ALIGNMENT) * HEADER_ALIGNMENT
    assert data[header_start : header_start + 4] == bytes.fromhex("8eade801")

    from_file = read_header(data[header_start:])

    from_db = [read_header(blob) for _, blob in rb.header_blobs(rpmdb / "rpmdb.sqlite")]
    assert from_file in from_db


@pytest.mark.parametrize(
    "blob",
    [b"", b"\0\0\0\1", bytes(8), struct.pack(">II", 1, 100) + bytes(16), b"\xff" * 64],
    ids=["empty", "short", "no-entries", "truncated-store", "implausible"],
)
def test_malformed_headers_are_refused(blob: bytes) -> None:
    with pytest.raises(HeaderError):
        read_header(blob)


def test_a_damaged_header_costs_only_its_package(
    rpmdb: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = guest_with_rpmdb(tmp_path, rpmdb)
    with sqlite3.connect(db) as connection:
        (victim,) = connection.execute("SELECT min(hnum) FROM Packages").fetchone()
        connection.execute(
            "UPDATE Packages SET blob = substr(blob, 1, 99) WHERE hnum = ?", (victim,)
        )
    connection.close()
    argv = ["rpm", "--dbpath", str(rpmdb), "-q", "--querybynumber", str(victim)]
    victim_name = rb.run([*argv, "--queryformat", "%{NAME}"])

    with caplog.at_level(logging.WARNING):
        apps = list_applications(tree_of(tmp_path), "rpm")

    assert len(apps) == 39
    assert victim_name not in [app["app2_name"] for app in apps]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert RPMDB in warnings[0] and f"package {victim}: truncated" in warnings[0]


def test_truncated_sqlite_database(
    rpmdb: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    db = guest_with_rpmdb(tmp_path, rpmdb)
    full = {app["app2_name"] for app in rb.rpm_query(rpmdb)}
    # The headers come after rpm's 50 empty tables and indexes: cut into the headers.
    with open(db, "r+b") as f:
        f.truncate(db.stat().st_size * 4 // 5 // SQLITE_PAGE_SIZE * SQLITE_PAGE_SIZE)

    with caplog.at_level(logging.WARNING):
        apps = list_applications(tree_of(tmp_path), "rpm")

    names = {app["app2_name"] for app in apps}
    assert names < full and names, "some packages lie before the cut, some after"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and RPMDB in warnings[0]


def test_file_that_is_no_sqlite_database(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tree = plant(tmp_path, {RPMDB: b"SQLite format 2\0" + bytes(4080)})

    with caplog.at_level(logging.WARNING):
        assert list_applications(tree, "rpm") == []

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and RPMDB in warnings[0]
