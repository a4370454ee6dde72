"""Installed RPM packages, from the guest's RPM database, read in Python.

libguestfs asks librpm, run inside the guest; here the database files are read directly.
The database lives in ``/var/lib/rpm`` or, since Fedora 36 and openSUSE's move to it,
``/usr/lib/sysimage/rpm`` (the other is often a symlink to it), in one of three formats:

- ``rpmdb.sqlite`` (rpm 4.16 on: Fedora 33+, RHEL 9): an SQLite table of headers
  (:mod:`vmcraft.inspect.apps_rpm_sqlite`).
- ``Packages`` (rpm up to 4.15: RHEL 7 and 8, SLES 12): a Berkeley DB hash database keyed by
  package number (:mod:`vmcraft.inspect.apps_bdb`); record 0 is rpm's counter, not a package.
- ``Packages.db`` (SUSE's "ndb", SLES 15): not supported; a warning says so.

Headers are decoded by :mod:`vmcraft.inspect.apps_rpm_header`.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Callable, Iterator

from vmcraft.guest.files import GuestTree
from vmcraft.inspect.apps_base import (
    Application,
    Damage,
    DatabaseError,
    DatabaseMissingError,
    open_guest_file,
)
from vmcraft.inspect.apps_bdb import BerkeleyDBError, HashDatabase
from vmcraft.inspect.apps_rpm_header import HeaderError, read_header
from vmcraft.inspect.apps_rpm_sqlite import sqlite_headers
from vmcraft.inspect.guestfiles import is_file

DATABASE_FOLDERS = ("/var/lib/rpm", "/usr/lib/sysimage/rpm")
SQLITE_FILE = "rpmdb.sqlite"
NDB_FILE = "Packages.db"
BDB_FILE = "Packages"
COUNTER_NUMBER = 0  # the Berkeley DB record rpm keeps its next package number in
PACKAGE_NUMBER_SIZE = 4  # Berkeley DB keys: 32 bits in the byte order of the database

HeaderSource = Callable[[GuestTree, str, Damage], Iterator[tuple[int, bytes]]]
"""Yields (package number, header blob) from a database at a guest path."""


def list_rpm_applications(tree: GuestTree) -> list[Application]:
    """The packages in the guest's RPM database.

    Raises:
        DatabaseMissingError: No RPM database was found.
        DatabaseError: The database is of a format that cannot be read.
    """
    path, source = find_database(tree)
    damage = Damage(path)
    apps = []
    for number, blob in source(tree, path, damage):
        try:
            apps.append(read_header(blob))
        except HeaderError as e:
            damage.note(f"package {number}: {e}", e)

    damage.report(len(apps))
    return apps


def find_database(tree: GuestTree) -> tuple[str, HeaderSource]:
    """The guest path of the RPM database and the reader of its format.

    Raises:
        DatabaseMissingError: No folder holds one.
        DatabaseError: It is SUSE's ndb format.
    """
    for folder in DATABASE_FOLDERS:
        for name, source in _FORMATS:
            path = f"{folder}/{name}"
            if not is_file(tree, path):
                continue
            if source is None:
                raise DatabaseError(f"cannot read {path}: rpm's ndb format is not supported")
            return path, source

    names = ", ".join(name for name, _ in _FORMATS)
    raise DatabaseMissingError(f"none of {names} in {' or '.join(DATABASE_FOLDERS)}")


def bdb_headers(tree: GuestTree, path: str, damage: Damage) -> Iterator[tuple[int, bytes]]:
    """The header blobs of a Berkeley DB ``Packages``, in the database's bucket order."""
    with open_guest_file(tree, path) as fd:
        try:
            size = os.fstat(fd).st_size
            database = HashDatabase(lambda offset, length: os.pread(fd, length, offset), size)
        except (BerkeleyDBError, OSError) as e:
            raise DatabaseError(f"cannot read {path}: {e}") from e
        try:
            for key, data in database.records(damage.note):
                number = _package_number(key, database.meta.order)
                if number is None:
                    damage.note(f"a record whose key is {len(key)} bytes long")
                elif number != COUNTER_NUMBER:
                    yield number, data
        except OSError as e:
            damage.note(f"read error: {e}", e)


def _package_number(key: bytes, order: str) -> int | None:
    if len(key) != PACKAGE_NUMBER_SIZE:
        return None
    number: int = struct.unpack(order + "I", key)[0]
    return number


_FORMATS: tuple[tuple[str, HeaderSource | None], ...] = (
    (SQLITE_FILE, sqlite_headers),
    (NDB_FILE, None),
    (BDB_FILE, bdb_headers),
)
"""Database files in the order a folder is searched, with their readers (None: ndb)."""
