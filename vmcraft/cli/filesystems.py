"""``vmcraft filesystems``: the guest's disks, partitions, LVs and filesystems."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass
from typing import Any

from vmcraft import VMCraft
from vmcraft.cli.options import add_drive_options, open_guest
from vmcraft.mountables import split_btrfsvol

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB")


@dataclass(frozen=True)
class FilesystemRow:
    """One line of the filesystem table."""

    device: str
    type: str
    label: str
    uuid: str
    size: int


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "filesystems",
        help="list devices, partitions, logical volumes and filesystems",
        description="List the guest's devices, partitions, logical volumes and filesystems"
        " (type, label, UUID, size).",
    )
    add_drive_options(parser)
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_guest(args.images, args.format) as g:
        report = describe(g)
    if args.json:
        json.dump(report, sys.stdout, indent=2)
        sys.stdout.write("\n")
    else:
        sys.stdout.write(format_text(report))
    return 0


def describe(g: VMCraft) -> dict[str, Any]:
    """Everything the subcommand prints, as plain data (sizes in bytes)."""
    names = g.list_devices() + g.list_partitions() + g.lvs()
    rows = [_filesystem_row(g, m, fstype, names) for m, fstype in g.list_filesystems().items()]
    return {
        "devices": g.list_devices(),
        "partitions": g.list_partitions(),
        "logical_volumes": g.lvs(),
        "filesystems": [asdict(row) for row in rows],
    }


def _filesystem_row(g: VMCraft, mountable: str, fstype: str, names: list[str]) -> FilesystemRow:
    # NB: an "unknown" device may be one this host cannot map (a striped LV without
    # device-mapper), which blkid cannot read; it has no tags to show anyway.
    known = fstype != "unknown"
    device, _ = split_btrfsvol(mountable, names)
    return FilesystemRow(
        device=mountable,
        type=fstype,
        label=g.vfs_label(mountable) if known else "",
        uuid=g.vfs_uuid(mountable) if known else "",
        size=g.blockdev_getsize64(device),  # a subvolume: its whole filesystem's device
    )


def format_text(report: dict[str, Any]) -> str:
    """The report as indented lists and an aligned table."""
    lines = []
    for title, key in (
        ("Devices", "devices"),
        ("Partitions", "partitions"),
        ("Logical volumes", "logical_volumes"),
    ):
        names = report[key]
        lines.append(f"{title}:" + ("" if names else " none"))
        lines += [f"  {name}" for name in names]

    table: list[tuple[str, ...]] = [("DEVICE", "TYPE", "LABEL", "UUID", "SIZE")]
    for row in report["filesystems"]:
        cells = (row["device"], row["type"], row["label"], row["uuid"], human_size(row["size"]))
        table.append(tuple(cell or "-" for cell in cells))
    widths = [max(len(row[i]) for row in table) for i in range(len(table[0]))]

    lines.append("")
    for row in table:
        text = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        lines.append(text.rstrip())
    return "\n".join(lines) + "\n"


def human_size(size: int) -> str:
    """``131072`` → ``128.0 KiB``; sizes under a KiB stay in bytes."""
    value, unit = float(size), 0
    while value >= 1024 and unit < len(_UNITS) - 1:
        value, unit = value / 1024, unit + 1
    return f"{size} B" if unit == 0 else f"{value:.1f} {_UNITS[unit]}"
