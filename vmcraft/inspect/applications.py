"""The applications installed in a Linux guest, as libguestfs's ``inspect_list_applications2``.

The guest's package format (``inspect_get_package_format``) picks the database: dpkg's
status file, the RPM database (SQLite or Berkeley DB), pacman's local database or apk's
installed database, each read in Python by its own module. Records are libguestfs's
``application2`` dicts with every field present, sorted by name as libguestfs sorts them
(byte order; packages of one name keep the database's order).

libguestfs returns an empty list, silently, when it does not know the package format.
Here a guest's applications are never an empty list that passes for "nothing installed"
without a warning: a format without a reader, a missing or unreadable database, and a
database that yields nothing each log one warning; a damaged one logs one warning and
yields what it still holds. Windows applications come from the registry, elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from vmcraft.guest.files import GuestTree
from vmcraft.inspect.apps_apk import list_apk_applications
from vmcraft.inspect.apps_base import APPLICATION_FIELDS, Application, DatabaseError
from vmcraft.inspect.apps_dpkg import list_dpkg_applications
from vmcraft.inspect.apps_pacman import list_pacman_applications
from vmcraft.inspect.apps_rpm import list_rpm_applications

log = logging.getLogger(__name__)

__all__ = ["APPLICATION_FIELDS", "Application", "list_applications"]

LISTERS: dict[str, Callable[[GuestTree], list[Application]]] = {
    "deb": list_dpkg_applications,
    "rpm": list_rpm_applications,
    "pacman": list_pacman_applications,
    "apk": list_apk_applications,
}
"""The reader of each package format, by libguestfs's format name."""


def list_applications(tree: GuestTree, package_format: str) -> list[Application]:
    """The packages installed in a Linux guest whose filesystems are mounted at ``tree``.

    Args:
        tree: The guest's files, with every filesystem of its root mounted.
        package_format: The guest's package format as ``inspect_get_package_format``
            gives it: ``deb``, ``rpm``, ``pacman``, ``apk``... or ``unknown``.

    Returns:
        app2 dicts (:data:`APPLICATION_FIELDS`; "" and 0 where unknown), sorted by name.
        Empty, with a warning logged, when the packages cannot be listed.
    """
    lister = LISTERS.get(package_format)
    if lister is None:
        log.warning("cannot list applications: no reader for package format %s", package_format)
        return []

    try:
        apps = lister(tree)
    except DatabaseError as e:
        log.warning("cannot list applications: %s", e)
        log.debug("listing %s applications failed", package_format, exc_info=e)
        return []
    return sorted(apps, key=_name)


def _name(app: Application) -> str:
    return str(app["app2_name"])
