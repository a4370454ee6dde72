"""The ``vmcraft`` entry point: parse the command line, set up logging, run a subcommand.

Library errors end the program with one line on stderr (``vmcraft: <message>``) and exit
status 1; ``-v`` shows what VMCraft does, ``-vv`` every host command it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from importlib import metadata

from vmcraft.cli import cat, filesystems, inspect, ls
from vmcraft.errors import VMCraftError

PROG = "vmcraft"
EXIT_ERROR = 1
EXIT_INTERRUPTED = 130
SUBCOMMANDS = (filesystems, inspect, cat, ls)

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    """The parser for every subcommand; each one sets ``run`` to its handler."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Open virtual-machine disk images read-only and look inside them,"
        " with host tools instead of an appliance VM.",
    )
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help="log what is done (-vv: also every host command)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(title="subcommands", metavar="SUBCOMMAND")
    subparsers.required = True
    for module in SUBCOMMANDS:
        module.register(subparsers)
    return parser


def _version() -> str:
    try:
        return metadata.version("vmcraft")
    except metadata.PackageNotFoundError:
        return "unknown"


def setup_logging(verbosity: int) -> None:
    """Log to stderr: warnings by default, INFO with -v, DEBUG with -vv."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbosity, logging.DEBUG)
    handler = logging.StreamHandler(sys.stderr)
    handler.setLevel(level)  # NB: a library logger set lower (by an embedding app) stays quiet.
    handler.setFormatter(logging.Formatter(f"{PROG}: %(levelname)s: %(name)s: %(message)s"))
    handler.set_name(PROG)
    root = logging.getLogger()
    for old in [h for h in root.handlers if h.get_name() == PROG]:
        root.removeHandler(old)  # main() run twice in one process logs each record once
    root.addHandler(handler)
    root.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: ``sys.argv[1:]``); return the exit status."""
    args = build_parser().parse_args(argv)
    setup_logging(args.verbose)
    handler: Callable[[argparse.Namespace], int] = args.run

    try:
        return handler(args)
    except VMCraftError as e:
        log.debug("%s failed", PROG, exc_info=True)
        print(f"{PROG}: {e}", file=sys.stderr)
        return EXIT_ERROR
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (| head): not an error; keep Python from complaining
        # again when it flushes stdout at exit.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_ERROR


if __name__ == "__main__":
    sys.exit(main())
