"""Real RPM databases for the application tests, made with rpm's own tools.

Packages are built by ``rpmbuild`` from the spec files below (no files, so no compiler),
installed with ``rpm --justdb`` into an SQLite rpmdb, and listed back with ``rpm -qa
--queryformat``: the independent route the tests compare against. The Berkeley DB
``Packages`` file that rpm 4.18 can no longer write is made with Berkeley DB's own
``db_load`` from the same header blobs, keyed by package number as rpm keys them, and read
back with rpm's ``bdb_ro`` backend.
"""

from __future__ import annotations

import sqlite3
import struct
import subprocess
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import pytest

RPM_TOOLS = ("rpm", "rpmbuild", "db5.3_load")
TIMEOUT_S = 120

HELLO_SPEC = """\
Name: hello-vmcraft
Epoch: 3
Version: 1.2.3
Release: 4.fc38
Summary: A tiny package for tests
License: MIT
URL: https://example.org/hello
Vendor: VMCraft Tests
BuildArch: noarch

%description
First line of the description.
Second line.

%files
"""

LIBDEMO_SPEC = """\
Name: libdemo
Version: 2.0
Release: 1.el9
Summary: Café library, built for two architectures
License: MIT
URL: https://example.org/libdemo

%description
A library installed once per architecture.

%files
"""

PLAIN_SPEC = """\
Name: Plain
Version: 0.1
Release: 0
Summary: No URL, no epoch
License: MIT
BuildArch: noarch

%description
Plain.

%files
"""

BULK_COUNT = 36
LONG_TEXT = "Lorem ipsum dolor sit amet, consectetur adipiscing elit. " * 90


def bulk_spec(count: int = BULK_COUNT) -> str:
    """A spec of ``count`` subpackages, every third with a description of 5 KiB."""
    lines = [
        "Name: bulk",
        "Version: 7",
        "Release: 2",
        "Summary: Many packages",
        "License: MIT",
        "BuildArch: noarch",
        "%description",
        "Base.",
    ]
    for n in range(count):
        text = LONG_TEXT if n % 3 == 0 else f"Package number {n}."
        lines += [
            f"%package -n bulk-{n:02d}",
            f"Summary: Bulk package {n}",
            f"%description -n bulk-{n:02d}",
            text,
            f"%files -n bulk-{n:02d}",
        ]
    return "\n".join(lines) + "\n"


def run(argv: Sequence[str]) -> str:
    """Run a tool, failing the test with its stderr when it fails."""
    result = subprocess.run(
        argv, capture_output=True, text=True, timeout=TIMEOUT_S, check=False, stdin=None
    )
    if result.returncode != 0:
        pytest.fail(f"{argv[0]} failed ({result.returncode}): {result.stderr[-2000:]}")
    return result.stdout


def build_rpm(spec: str, top: Path, target: str | None = None) -> list[Path]:
    """Build the packages of one spec under ``top``; return the new .rpm files."""
    specs = top / "SPECS"
    specs.mkdir(parents=True, exist_ok=True)
    spec_file = specs / f"spec{len(list(specs.iterdir()))}.spec"
    spec_file.write_text(spec)
    before = set(top.glob("RPMS/*/*.rpm"))

    argv = ["rpmbuild", "--define", f"_topdir {top}", "-bb", str(spec_file)]
    run([*argv, "--target", target] if target else argv)
    return sorted(set(top.glob("RPMS/*/*.rpm")) - before)


def install_justdb(rpms: Iterable[Path], dbpath: Path) -> None:
    """Record packages in an SQLite rpmdb at ``dbpath`` (made if needed), files untouched."""
    dbpath.mkdir(parents=True, exist_ok=True)
    if not (dbpath / "rpmdb.sqlite").exists():
        run(["rpm", "--dbpath", str(dbpath), "--initdb"])
    argv = ["rpm", "--dbpath", str(dbpath), "-i", "--justdb", "--nodeps", "--ignorearch"]
    run([*argv, *map(str, rpms)])


_FIELD_SEP = "\x1f"
_RECORD_SEP = "\x1e"
_QUERY_TAGS = ("NAME", "EPOCH", "VERSION", "RELEASE", "ARCH", "URL", "SUMMARY", "DESCRIPTION")
QUERIED_FIELDS = (  # the app2 fields of _QUERY_TAGS
    "app2_name",
    "app2_epoch",
    "app2_version",
    "app2_release",
    "app2_arch",
    "app2_url",
    "app2_summary",
    "app2_description",
)


def rpm_query(dbpath: Path, backend: str = "sqlite") -> list[dict[str, str | int]]:
    """What ``rpm -qa`` says of each package, in app2 terms ("(none)" as "" or 0)."""
    query = _FIELD_SEP.join(f"%{{{tag}}}" for tag in _QUERY_TAGS) + _RECORD_SEP
    argv = ["rpm", "--dbpath", str(dbpath), "--define", f"_db_backend {backend}"]
    output = run([*argv, "-qa", "--queryformat", query])

    records = []
    for record in output.split(_RECORD_SEP)[:-1]:
        values = ["" if v == "(none)" else v for v in record.split(_FIELD_SEP)]
        app: dict[str, str | int] = dict(zip(QUERIED_FIELDS, values, strict=True))
        app["app2_epoch"] = int(app["app2_epoch"] or 0)
        records.append(app)
    return records


def header_blobs(sqlite_db: Path) -> list[tuple[int, bytes]]:
    """(package number, header blob) of every row of an rpmdb.sqlite."""
    with sqlite3.connect(f"file:{sqlite_db}?mode=ro", uri=True) as connection:
        return list(connection.execute("SELECT hnum, blob FROM Packages ORDER BY hnum"))


def load_bdb_packages(
    blobs: Sequence[tuple[int, bytes]], path: Path, options: Mapping[str, str] = {}
) -> None:
    """Write a Berkeley DB hash ``Packages`` as rpm keeps it, with ``db_load``.

    Keys are package numbers as 32-bit integers in the database's byte order, and record
    0 holds the next free package number, as in rpm's own databases.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    order = ">" if options.get("db_lorder") == "4321" else "<"  # as on s390x, or x86
    next_number = max((n for n, _ in blobs), default=0) + 1
    records = [(0, struct.pack(order + "I", next_number)), *blobs]
    lines = ["VERSION=3", "format=bytevalue", "type=hash"]
    lines += [f"{key}={value}" for key, value in options.items()]
    lines.append("HEADER=END")
    for number, blob in records:
        lines += [" " + struct.pack(order + "I", number).hex(), " " + blob.hex()]
    lines.append("DATA=END")

    dump = path.with_name(path.name + ".dump")
    dump.write_text("\n".join(lines) + "\n")
    run(["db5.3_load", "-f", str(dump), str(path)])
    dump.unlink()
