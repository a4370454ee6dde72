"""The installed applications of an inspected root, in libguestfs's ``application2`` shape.

The package databases are read by :mod:`vmcraft.inspect.applications` (Linux, by package
format) and :mod:`vmcraft.inspect.windows_apps` (the SOFTWARE hive's Uninstall keys); this
module only picks the reader for the root.
"""

from __future__ import annotations

import logging

from vmcraft.guest.files import GuestTree
from vmcraft.inspect.applications import Application, list_applications
from vmcraft.inspect.roots import InspectedRoot
from vmcraft.inspect.windows_apps import list_windows_applications

log = logging.getLogger(__name__)


def list_root_applications(tree: GuestTree, root: InspectedRoot) -> list[Application]:
    """The applications installed in ``root``, whose filesystems are mounted as ``tree``.

    Returns:
        One ``application2`` dict per package (``app2_name``, ``app2_version``...).
    """
    if root.windows is not None:
        if root.windows.software_hive is None:
            log.warning("cannot list applications of %s: no SOFTWARE hive", root.root)
            return []
        return list_windows_applications(tree, root.windows.software_hive)
    return list_applications(tree, root.identity.package_format)
