"""``vmcraft ls``: list a guest folder, like virt-ls."""

from __future__ import annotations

import argparse
import sys

from vmcraft.cli.options import add_drive_options, add_mount_options, mount_requested, open_guest


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "ls",
        help="list a folder in the guest",
        description="Mount the given guest devices read-only and list a folder, one name a"
        " line, sorted.",
    )
    add_drive_options(parser)
    add_mount_options(parser)
    parser.add_argument("path", metavar="PATH", help="absolute path of a folder in the guest")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_guest(args.images, args.format) as g:
        mount_requested(g, args.mounts)
        names = g.ls(args.path)
    sys.stdout.writelines(f"{name}\n" for name in names)
    return 0
