"""What the package-database readers share: the app2 record, guest files, damage reports.

Each reader (dpkg, RPM, pacman, apk) turns one database into libguestfs's ``application2``
records. They open guest files only through :func:`open_guest_file`, which resolves the path
inside the guest and refuses anything but a regular file, and they collect what they could
not read in a :class:`Damage` so that a damaged database yields one warning plus whatever
it still holds, never an empty list that passes for "nothing installed".
"""

from __future__ import annotations

import contextlib
import logging
import os
import stat
from collections.abc import Iterator

from vmcraft.errors import GuestFileError, InspectionError
from vmcraft.guest.files import GuestTree

log = logging.getLogger(__name__)

Application = dict[str, str | int]
"""One installed package as libguestfs's ``application2`` struct, keyed by field name."""

APPLICATION_FIELDS = (
    "app2_name",
    "app2_display_name",
    "app2_epoch",
    "app2_version",
    "app2_release",
    "app2_arch",
    "app2_install_path",
    "app2_trans_path",
    "app2_publisher",
    "app2_url",
    "app2_source_package",
    "app2_summary",
    "app2_description",
    "app2_spare1",
    "app2_spare2",
    "app2_spare3",
    "app2_spare4",
)
"""The fields in guestfs(3)'s order; strings are "" and the epoch 0 where unknown."""

_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
_MAX_REASONS = 3  # problems quoted in a warning; the rest are only counted


class DatabaseError(InspectionError):
    """A package database cannot be read at all (unreadable, unknown format)."""


class DatabaseMissingError(DatabaseError):
    """The package database of the guest's package format is not there."""


def application(
    name: str,
    *,
    epoch: int = 0,
    version: str = "",
    release: str = "",
    arch: str = "",
    url: str = "",
    source_package: str = "",
    summary: str = "",
    description: str = "",
) -> Application:
    """An app2 record with every field present, as libguestfs fills one for a Linux package."""
    record: Application = dict.fromkeys(APPLICATION_FIELDS, "")
    record.update(
        app2_name=name,
        app2_epoch=epoch,
        app2_version=version,
        app2_release=release,
        app2_arch=arch,
        app2_url=url,
        app2_source_package=source_package,
        app2_summary=summary,
        app2_description=description,
    )
    return record


def split_version(text: str) -> tuple[int, str, str] | None:
    """``[epoch:]version[-release]`` split as libguestfs splits it, or None for a bad epoch.

    The epoch ends at the first colon and the release starts at the first hyphen after it
    (libguestfs's rule for dpkg, pacman and apk alike, though dpkg itself splits at the
    last hyphen).
    """
    epoch_text, colon, rest = text.partition(":")
    if not colon:
        epoch_text, rest = "0", text
    if not (epoch_text.isascii() and epoch_text.isdigit()) or int(epoch_text) >= 2**31:
        return None

    version, _, release = rest.partition("-")
    return int(epoch_text), version, release


@contextlib.contextmanager
def open_guest_file(tree: GuestTree, path: str) -> Iterator[int]:
    """A descriptor on the regular file at guest ``path``, resolved inside the guest.

    Raises:
        DatabaseMissingError: Nothing is at ``path``.
        DatabaseError: It cannot be opened or is no regular file.
    """
    try:
        fd = os.open(tree.resolve(path), _OPEN_FLAGS)
    except (FileNotFoundError, NotADirectoryError) as e:
        raise DatabaseMissingError(f"{path} does not exist") from e
    except (GuestFileError, OSError) as e:
        raise DatabaseError(f"cannot open {path}: {e}") from e

    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise DatabaseError(f"cannot read {path}: not a regular file")
        yield fd
    finally:
        os.close(fd)


def read_guest_file(tree: GuestTree, path: str, max_size: int) -> bytes:
    """The whole regular file at guest ``path``, refused when larger than ``max_size``.

    Raises:
        DatabaseMissingError: Nothing is at ``path``.
        DatabaseError: It cannot be read, is no regular file, or is too large.
    """
    with open_guest_file(tree, path) as fd:
        size = os.fstat(fd).st_size
        if size > max_size:
            raise DatabaseError(f"cannot read {path}: {size} bytes, more than {max_size}")
        try:
            with open(fd, "rb", closefd=False) as f:
                return f.read(max_size + 1)
        except OSError as e:
            raise DatabaseError(f"cannot read {path}: {e}") from e


class Damage:
    """The problems met while reading one package database, reported in one warning.

    Args:
        database: Guest path of the database, named in the warning.
    """

    def __init__(self, database: str) -> None:
        self.database = database
        self.reasons: list[str] = []
        self.count = 0

    def note(self, reason: str, error: BaseException | None = None) -> None:
        """Remember one problem; the traceback of ``error``, if any, goes to DEBUG."""
        self.count += 1
        if len(self.reasons) < _MAX_REASONS and reason not in self.reasons:
            self.reasons.append(reason)
        if error is not None:
            log.debug("problem in %s: %s", self.database, reason, exc_info=error)

    def report(self, found: int) -> None:
        """Log the one warning this database deserves, if any, having read ``found``."""
        if self.count:
            more = self.count - len(self.reasons)
            extra = f" (and {more} more problems)" if more > 0 else ""
            log.warning(
                "package database %s is damaged: %s%s; listing the %d packages read",
                self.database,
                "; ".join(self.reasons),
                extra,
                found,
            )
        elif found == 0:
            log.warning("package database %s lists no installed package", self.database)
