"""``vmcraft cat``: print guest files, like virt-cat."""

from __future__ import annotations

import argparse
import sys

from vmcraft.cli.options import add_drive_options, add_mount_options, mount_requested, open_guest


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "cat",
        help="print files from the guest",
        description="Mount the given guest devices read-only and print files to stdout.",
    )
    add_drive_options(parser)
    add_mount_options(parser)
    parser.add_argument("paths", metavar="PATH", nargs="+", help="absolute path in the guest")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    with open_guest(args.images, args.format) as g:
        mount_requested(g, args.mounts)
        for path in args.paths:
            sys.stdout.buffer.write(g.read_file(path))
            sys.stdout.buffer.flush()
    return 0
