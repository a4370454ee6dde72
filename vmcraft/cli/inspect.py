"""``vmcraft inspect``: the operating systems on a guest's disks, as JSON or virt-inspector XML.

The XML is virt-inspector's document: the same elements in the same order, with the same
things left out (a value inspection could not find, an empty optional field, a Windows-only
element on another OS) and the same sort orders, so that a consumer of virt-inspector's output
can read VMCraft's instead. JSON carries the same facts without omissions, for scripts.
"""

from __future__ import annotations

import argparse
import base64
import json
import logging
import re
import sys
from collections.abc import Iterator
from typing import Any

from vmcraft import VMCraft
from vmcraft.cli.options import add_drive_options, open_guest
from vmcraft.errors import InspectionError

log = logging.getLogger(__name__)

UNKNOWN = "unknown"

# Identity fields in virt-inspector's order: (report key, XML element, inspect_get_* call).
_IDENTITY = (
    ("type", "name", "inspect_get_type"),
    ("arch", "arch", "inspect_get_arch"),
    ("distro", "distro", "inspect_get_distro"),
    ("product_name", "product_name", "inspect_get_product_name"),
    ("product_variant", "product_variant", "inspect_get_product_variant"),
    ("major_version", "major_version", "inspect_get_major_version"),
    ("minor_version", "minor_version", "inspect_get_minor_version"),
    ("package_format", "package_format", "inspect_get_package_format"),
    ("package_management", "package_management", "inspect_get_package_management"),
)
_WINDOWS = (
    ("windows_systemroot", "inspect_get_windows_systemroot"),
    ("windows_current_control_set", "inspect_get_windows_current_control_set"),
)
_AFTER_WINDOWS = (
    ("hostname", "hostname", "inspect_get_hostname"),
    ("osinfo", "osinfo", "inspect_get_osinfo"),
)
# Application fields in virt-inspector's order; the report drops libguestfs's ``app2_``.
_APPLICATION_FIELDS = (
    "name",
    "display_name",
    "epoch",
    "version",
    "release",
    "arch",
    "install_path",
    "publisher",
    "url",
    "source_package",
    "summary",
    "description",
)
_BASE64_LINE = 72
# Characters XML 1.0 cannot carry at all, even escaped; a package description may hold them.
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "inspect",
        help="find the operating systems on the disks and describe them",
        description="Find the operating systems on a guest's disks and describe each one:"
        " type, distribution, version, architecture, hostname, mountpoints, filesystems,"
        " drive letters and installed applications. Prints JSON, or virt-inspector's XML"
        " with --xml.",
    )
    add_drive_options(parser)
    parser.add_argument(
        "--xml", action="store_true", help="print virt-inspector's XML instead of JSON"
    )
    parser.add_argument(
        "--no-applications",
        dest="applications",
        action="store_false",
        help="leave out the installed applications (faster)",
    )
    parser.add_argument(
        "--no-icon", dest="icon", action="store_false", help="leave out the OS's icon"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_guest(args.images, args.format) as g:
        report = describe(g, applications=args.applications, icon=args.icon)
    if not report:  # as virt-inspector: an empty list, not an error
        log.warning("no operating system found on %s", ", ".join(args.images))

    if args.xml:
        sys.stdout.write(to_xml(report))
    else:
        json.dump({"operatingsystems": report}, sys.stdout, indent=2, ensure_ascii=False)
        sys.stdout.write("\n")
    return 0


def describe(g: VMCraft, applications: bool = True, icon: bool = True) -> list[dict[str, Any]]:
    """Every root ``inspect_os`` finds, described as plain data in virt-inspector's order."""
    return [_describe_root(g, root, applications, icon) for root in g.inspect_os()]


def _describe_root(g: VMCraft, root: str, applications: bool, icon: bool) -> dict[str, Any]:
    report: dict[str, Any] = {"root": root}
    for key, _, call in _IDENTITY:
        report[key] = getattr(g, call)(root)
    for key, call in _WINDOWS:
        report[key] = _windows_value(g, call, root)
    for key, _, call in _AFTER_WINDOWS:
        report[key] = getattr(g, call)(root)
    report["build_id"] = g.inspect_get_build_id(root)
    report["format"] = g.inspect_get_format(root)

    report["mountpoints"] = _by_length(g.inspect_get_mountpoints(root))
    report["filesystems"] = [_filesystem(g, fs) for fs in sorted(g.inspect_get_filesystems(root))]
    mappings = g.inspect_get_drive_mappings(root)
    report["drive_mappings"] = {k: mappings[k] for k in sorted(mappings, key=str.casefold)}

    if applications:
        report["applications"] = [_application(a) for a in g.inspect_list_applications2(root)]
    if icon:
        png = g.inspect_get_icon(root, favicon=False)
        report["icon"] = base64.b64encode(png).decode("ascii") if png else None
    return report


def _windows_value(g: VMCraft, call: str, root: str) -> str | None:
    # These calls fail on other systems, and on a Windows root whose hives could not be read.
    try:
        value: str = getattr(g, call)(root)
    except InspectionError:
        return None
    return value


def _by_length(mountpoints: dict[str, str]) -> dict[str, str]:
    """Shortest mountpoint first, then by name: parents before children, a stable order."""
    return {m: mountpoints[m] for m in sorted(mountpoints, key=lambda m: (len(m), m))}


def _filesystem(g: VMCraft, mountable: str) -> dict[str, str]:
    # NB: the three values come from one cached blkid probe.
    return {
        "device": mountable,
        "type": g.vfs_type(mountable),
        "label": g.vfs_label(mountable),
        "uuid": g.vfs_uuid(mountable),
    }


def _application(app: dict[str, str | int]) -> dict[str, str | int]:
    return {field: app[f"app2_{field}"] for field in _APPLICATION_FIELDS}


# ---------------------------------------------------------------- virt-inspector XML


def to_xml(report: list[dict[str, Any]]) -> str:
    """The report as virt-inspector prints it (libxml2's layout: two-space indent)."""
    lines = ['<?xml version="1.0"?>']
    systems = _Node("operatingsystems", children=[_os_element(r) for r in report])
    lines += _lines(systems, 0)
    return "\n".join(lines) + "\n"


def _os_element(report: dict[str, Any]) -> _Node:
    children: list[_Node] = [_Node("root", text=report["root"])]
    for key, element, _ in _IDENTITY:
        value = report[key]
        if key in ("major_version", "minor_version"):
            children.append(_Node(element, text=str(value)))
        elif value != UNKNOWN:
            children.append(_Node(element, text=value))
    for key, _ in _WINDOWS:
        if report[key] is not None:
            children.append(_Node(key, text=report[key]))
    for key, element, _ in _AFTER_WINDOWS:
        if report[key] != UNKNOWN:
            children.append(_Node(element, text=report[key]))

    mountpoints = [
        _Node("mountpoint", {"dev": device}, text=mountpoint)
        for mountpoint, device in report["mountpoints"].items()
    ]
    children.append(_Node("mountpoints", children=mountpoints))
    children.append(_Node("filesystems", children=[_fs_node(fs) for fs in report["filesystems"]]))
    if report["drive_mappings"]:
        mappings = [
            _Node("drive_mapping", {"name": letter}, text=device)
            for letter, device in report["drive_mappings"].items()
        ]
        children.append(_Node("drive_mappings", children=mappings))

    if "applications" in report:
        apps = [_app_node(app) for app in report["applications"]]
        children.append(_Node("applications", children=apps))
    if report.get("icon"):
        children.append(_Node("icon", text=_wrapped(report["icon"]), verbatim=True))
    return _Node("operatingsystem", children=children)


def _wrapped(text: str) -> str:
    # libxml2's base64 writer ends a line every 72 characters with CR LF; match it byte
    # for byte (the text is base64, so nothing in it needs escaping).
    return "\r\n".join(text[i : i + _BASE64_LINE] for i in range(0, len(text), _BASE64_LINE))


def _fs_node(fs: dict[str, str]) -> _Node:
    fields = [_Node(key, text=fs[key]) for key in ("type", "label", "uuid") if fs[key]]
    return _Node("filesystem", {"dev": fs["device"]}, children=fields)


def _app_node(app: dict[str, str | int]) -> _Node:
    fields = []
    for field in _APPLICATION_FIELDS:
        value = app[field]
        if field == "name" or (value != 0 if field == "epoch" else value):
            fields.append(_Node(field, text=str(value)))
    return _Node("application", children=fields)


class _Node:
    """One XML element: text or children, never both (virt-inspector's document has no mix)."""

    def __init__(
        self,
        tag: str,
        attributes: dict[str, str] | None = None,
        text: str | None = None,
        children: list[_Node] | None = None,
        verbatim: bool = False,
    ) -> None:
        self.tag = tag
        self.verbatim = verbatim
        self.attributes = attributes or {}
        self.text = text
        self.children = children or []


def _lines(node: _Node, depth: int) -> Iterator[str]:
    indent = "  " * depth
    attributes = "".join(f' {k}="{_escape_attribute(v)}"' for k, v in node.attributes.items())
    if node.text is not None:
        text = node.text if node.verbatim else _escape_text(node.text)
        yield f"{indent}<{node.tag}{attributes}>{text}</{node.tag}>"
    elif not node.children:
        yield f"{indent}<{node.tag}{attributes}/>"
    else:
        yield f"{indent}<{node.tag}{attributes}>"
        for child in node.children:
            yield from _lines(child, depth + 1)
        yield f"{indent}</{node.tag}>"


def _escape_text(text: str) -> str:
    text = _NOT_XML.sub("", text)
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("\r", "&#13;")


def _escape_attribute(value: str) -> str:
    value = _escape_text(value).replace('"', "&quot;")
    return value.replace("\n", "&#10;").replace("\t", "&#9;")
