"""The applications installed on a Windows guest, from its SOFTWARE hive.

libguestfs's rule: every subkey of ``Microsoft\\Windows\\CurrentVersion\\Uninstall``, and
of the same path under ``WOW6432Node`` (32-bit programs on 64-bit Windows), that has a
string value ``DisplayName`` is one application. The subkey's name stands in for a package
name (the display name depends on the installation's language); ``DisplayVersion``,
``InstallLocation``, ``Publisher``, ``URLInfoAbout`` and ``Comments`` fill the rest, and a
missing or non-string value reads as ``""``. The list is sorted by name.
"""

from __future__ import annotations

import logging

from vmcraft.guest.files import GuestTree
from vmcraft.inspect.apps_base import APPLICATION_FIELDS, Application
from vmcraft.inspect.registry import Key
from vmcraft.inspect.windows import open_hive_root, string_value, subkey_at, values_by_name

log = logging.getLogger(__name__)

UNINSTALL_KEYS = (
    ("Microsoft", "Windows", "CurrentVersion", "Uninstall"),
    ("WOW6432Node", "Microsoft", "Windows", "CurrentVersion", "Uninstall"),
)

_VALUE_FIELDS = {
    "app2_version": "displayversion",
    "app2_install_path": "installlocation",
    "app2_publisher": "publisher",
    "app2_url": "urlinfoabout",
    "app2_description": "comments",
}
"""app2 field -> the value filling it, lowercased: hivex looks values up ignoring case."""


def list_windows_applications(tree: GuestTree, software_hive_path: str) -> list[Application]:
    """The applications the SOFTWARE hive lists, as libguestfs's ``app2`` dicts.

    Args:
        tree: The guest's filesystem holding the hive.
        software_hive_path: The hive's guest path, as ``read_windows_identity`` found it.

    Returns:
        One dict per application, sorted by ``app2_name``; ``app2_epoch`` is 0 and every
        field without a source is ``""``. A hive that cannot be opened gives an empty
        list and a warning; broken keys inside it are skipped with a warning.
    """
    root = open_hive_root(tree, software_hive_path)
    if root is None:
        return []

    applications = [
        application
        for path in UNINSTALL_KEYS
        for key in _subkeys(subkey_at(root, *path))
        if (application := _application(key)) is not None
    ]
    return sorted(applications, key=lambda application: str(application["app2_name"]))


def _subkeys(key: Key | None) -> list[Key]:
    return key.subkeys() if key is not None else []


def _application(key: Key) -> Application | None:
    values = values_by_name(key, fold_case=True)
    display_name = string_value(values.get("displayname"))
    if display_name is None:
        return None

    application: Application = dict.fromkeys(APPLICATION_FIELDS, "")
    application["app2_epoch"] = 0
    application["app2_name"] = key.name
    application["app2_display_name"] = display_name
    for app2_field, value_name in _VALUE_FIELDS.items():
        application[app2_field] = string_value(values.get(value_name)) or ""
    return application
