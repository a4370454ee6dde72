"""RPM applications from a Berkeley DB ``Packages`` file, as RHEL 7 and 8 keep them.

The files are written by Berkeley DB 5.3's own ``db_load`` (rpmdb_builder.py) with the
header blobs of a real rpmdb, in the layouts a guest may have: rpm's usual 4 KiB pages,
small pages that push every header onto overflow pages and spread the packages over many
buckets, big-endian numbers (a database written on s390x or ppc64), and page checksums.
The expected listing is what rpm's own ``bdb_ro`` backend reads from the same file.
"""

from __future__ import annotations

import logging
import struct
from pathlib import Path

import pytest
import rpmdb_builder as rb
from conftest import skip_unless_tools
from planted_guests import plant, tree_of

from vmcraft.inspect.applications import list_applications

PACKAGES = "/var/lib/rpm/Packages"
META_LAST_PAGE = 32  # byte offsets in the metadata page (Berkeley DB's DBMETA)
META_PAGE_SIZE = 20
PAGE_TYPE = 25  # ...and in every page header
P_OVERFLOW = 7
LAYOUTS = {
    "rpm-default": {},
    "small-pages": {"db_pagesize": "512"},
    "big-endian": {"db_lorder": "4321", "db_pagesize": "1024"},
    "checksums": {"chksum": "1", "db_pagesize": "512"},
}


@pytest.fixture(scope="module")
def sqlite_rpmdb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An rpmdb.sqlite folder with the packages of every test spec."""
    skip_unless_tools(*rb.RPM_TOOLS)
    top = tmp_path_factory.mktemp("rpmbuild")
    rpms = rb.build_rpm(rb.HELLO_SPEC, top) + rb.build_rpm(rb.LIBDEMO_SPEC, top, "i686")
    rpms += rb.build_rpm(rb.PLAIN_SPEC, top) + rb.build_rpm(rb.bulk_spec(), top)
    dbpath = tmp_path_factory.mktemp("rpmdb")
    rb.install_justdb(rpms, dbpath)
    return dbpath


def bdb_guest(root: Path, sqlite_rpmdb: Path, layout: str) -> Path:
    """A guest whose /var/lib/rpm/Packages holds the packages in the given layout."""
    packages = root / PACKAGES.lstrip("/")
    blobs = rb.header_blobs(sqlite_rpmdb / "rpmdb.sqlite")
    rb.load_bdb_packages(blobs, packages, LAYOUTS[layout])
    return packages


def as_rpm_reports(apps: list[dict[str, str | int]]) -> list[tuple[str | int, ...]]:
    return sorted(tuple(app[key] for key in rb.QUERIED_FIELDS) for app in apps)


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]


@pytest.mark.parametrize("layout", LAYOUTS)
def test_layouts_list_what_rpm_lists(
    layout: str, sqlite_rpmdb: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    packages = bdb_guest(tmp_path, sqlite_rpmdb, layout)
    # NB: rpm 4.18's bdb_ro cannot read pages with checksums; rpm itself never wrote them.
    backend = "sqlite" if layout == "checksums" else "bdb_ro"
    dbpath = sqlite_rpmdb if layout == "checksums" else packages.parent
    expected = rb.rpm_query(dbpath, backend)

    with caplog.at_level(logging.WARNING):
        apps = list_applications(tree_of(tmp_path), "rpm")

    assert len(apps) == len(expected) == 39
    assert as_rpm_reports(apps) == as_rpm_reports(expected)
    assert warnings_of(caplog) == []


def test_sqlite_wins_over_a_leftover_berkeley_db(sqlite_rpmdb: Path, tmp_path: Path) -> None:
    bdb_guest(tmp_path, sqlite_rpmdb, "rpm-default")
    (tmp_path / "var/lib/rpm/rpmdb.sqlite").write_bytes(
        (sqlite_rpmdb / "rpmdb.sqlite").read_bytes()
    )

    apps = list_applications(tree_of(tmp_path), "rpm")

    assert len(apps) == 39


def test_truncated_file_lists_the_packages_before_the_cut(
    sqlite_rpmdb: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    packages = bdb_guest(tmp_path, sqlite_rpmdb, "small-pages")
    full = {app["app2_name"] for app in rb.rpm_query(packages.parent, "bdb_ro")}
    with open(packages, "r+b") as f:
        f.truncate(packages.stat().st_size // 2)

    with caplog.at_level(logging.WARNING):
        apps = list_applications(tree_of(tmp_path), "rpm")

    names = {app["app2_name"] for app in apps}
    assert names < full and names, "some packages lie before the cut, some after"
    (warning,) = warnings_of(caplog)
    assert PACKAGES in warning and "truncated" in warning


def test_broken_overflow_chain_costs_one_package(
    sqlite_rpmdb: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    packages = bdb_guest(tmp_path, sqlite_rpmdb, "small-pages")
    data = bytearray(packages.read_bytes())
    page_size = struct.unpack_from("<I", data, META_PAGE_SIZE)[0]
    last = struct.unpack_from("<I", data, META_LAST_PAGE)[0]
    overflow = [n for n in range(1, last + 1) if data[n * page_size + PAGE_TYPE] == P_OVERFLOW]
    # Each overflow page belongs to the chain of one header: turn one into something else.
    data[overflow[-1] * page_size + PAGE_TYPE] = 0xEE
    packages.write_bytes(bytes(data))

    with caplog.at_level(logging.WARNING):
        apps = list_applications(tree_of(tmp_path), "rpm")

    assert len(apps) == 38
    (warning,) = warnings_of(caplog)
    assert PACKAGES in warning and "overflow chain" in warning


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"\0" * 8192, "no Berkeley DB hash magic"),
        (b"not a database", "too few"),
        (bytes(12) + struct.pack("<I", 0x053162) + bytes(4080), "no Berkeley DB hash magic"),
    ],
    ids=["zeroes", "short", "btree-magic"],
)
def test_file_that_is_no_hash_database(
    content: bytes, reason: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    tree = plant(tmp_path, {PACKAGES: content})

    with caplog.at_level(logging.WARNING):
        assert list_applications(tree, "rpm") == []

    (warning,) = warnings_of(caplog)
    assert PACKAGES in warning and reason in warning


def test_suse_ndb_database_is_reported(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    tree = plant(tmp_path, {"/usr/lib/sysimage/rpm/Packages.db": b"RpmP" + bytes(4092)})

    with caplog.at_level(logging.WARNING):
        assert list_applications(tree, "rpm") == []

    (warning,) = warnings_of(caplog)
    assert "/usr/lib/sysimage/rpm/Packages.db" in warning and "ndb" in warning
