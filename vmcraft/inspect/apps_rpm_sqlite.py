"""The package headers of an ``rpmdb.sqlite`` (rpm 4.16 on: Fedora 33+, RHEL 9, openSUSE).

The database's ``Packages`` table has one row per installed package: ``hnum``, the package
number rpm hands out in increasing order (``AUTOINCREMENT``, so ``sqlite_sequence`` knows
the highest), and ``blob``, the package's header.

rpm keeps the database in WAL mode with a persistent log, so a guest that stopped before
SQLite checkpointed may hold committed packages only in ``rpmdb.sqlite-wal``. When that log
is not empty, the database and its log are copied to a private folder where SQLite replays
the log; otherwise the guest's file is opened immutable, so nothing is ever written next to
it. A damaged file is read as far as it goes, then each remaining package number is looked
up on its own, so damage costs only the rows it touches.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import sqlite3
import tempfile
import urllib.parse
from collections.abc import Iterator

from vmcraft.guest.files import GuestTree
from vmcraft.inspect.apps_base import Damage, DatabaseMissingError, open_guest_file

WAL_SUFFIX = "-wal"
_ALL_ROWS = "SELECT hnum, blob FROM Packages ORDER BY hnum"
_ONE_ROW = "SELECT blob FROM Packages WHERE hnum = ?"
_HIGHEST_NUMBER = "SELECT seq FROM sqlite_sequence WHERE name = 'Packages'"


def sqlite_headers(tree: GuestTree, path: str, damage: Damage) -> Iterator[tuple[int, bytes]]:
    """(package number, header blob) of each row of the database at guest ``path``.

    Raises:
        DatabaseMissingError: Nothing is at ``path``.
        DatabaseError: It cannot be opened or copied.
    """
    with _connect(tree, path) as connection:
        last = 0
        try:
            for number, blob in connection.execute(_ALL_ROWS):
                last = number
                yield from _checked(number, blob, damage)
            return
        except sqlite3.Error as e:
            damage.note(f"sqlite: {e}", e)
        yield from _salvage(connection, last, damage)


def _checked(number: int, blob: object, damage: Damage) -> Iterator[tuple[int, bytes]]:
    if isinstance(blob, bytes):
        yield number, blob
    else:
        damage.note(f"package {number}: a blob of type {type(blob).__name__}")


def _salvage(
    connection: sqlite3.Connection, last: int, damage: Damage
) -> Iterator[tuple[int, bytes]]:
    try:
        row = connection.execute(_HIGHEST_NUMBER).fetchone()
    except sqlite3.Error as e:
        damage.note(f"sqlite: no package count: {e}", e)
        return
    highest = row[0] if row and isinstance(row[0], int) else last

    for number in range(last + 1, highest + 1):
        try:
            found = connection.execute(_ONE_ROW, (number,)).fetchone()
        except sqlite3.Error as e:
            damage.note(f"package {number}: sqlite: {e}", e)
            continue
        if found is not None:  # None: a package erased since
            yield from _checked(number, found[0], damage)


@contextlib.contextmanager
def _connect(tree: GuestTree, path: str) -> Iterator[sqlite3.Connection]:
    with contextlib.ExitStack() as stack:
        if _has_log(tree, path + WAL_SUFFIX):
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="vmcraft-rpmdb-"))
            uri = _uri(_copy_out(tree, path, folder), "mode=rw")
            _copy_out(tree, path + WAL_SUFFIX, folder)
        else:
            with open_guest_file(tree, path):  # a regular file, before SQLite opens it
                uri = _uri(tree.resolve(path), "mode=ro&immutable=1")

        connection = sqlite3.connect(uri, uri=True)
        stack.callback(connection.close)
        # NB: SQLite (3.40) calls a file shorter than its header says malformed, unless
        # writable_schema is on; then it reads what is there. Nothing is ever written.
        connection.execute("PRAGMA writable_schema = ON")
        yield connection


def _has_log(tree: GuestTree, path: str) -> bool:
    try:
        with open_guest_file(tree, path) as fd:
            return os.fstat(fd).st_size > 0
    except DatabaseMissingError:
        return False


def _copy_out(tree: GuestTree, path: str, folder: str) -> str:
    target = os.path.join(folder, os.path.basename(path))
    with (
        open_guest_file(tree, path) as fd,
        open(fd, "rb", closefd=False) as source,
        open(target, "wb") as copy,
    ):
        shutil.copyfileobj(source, copy)
    return target


def _uri(host: str, query: str) -> str:
    return f"file:{urllib.parse.quote(host)}?{query}"
