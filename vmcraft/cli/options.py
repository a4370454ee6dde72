"""Options the subcommands share: which images to open (``-a``) and what to mount (``-m``)."""

from __future__ import annotations

import argparse
import posixpath
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from vmcraft import VMCraft


@dataclass(frozen=True)
class MountRequest:
    """One ``-m DEV[:MOUNTPOINT[:OPTIONS[:FSTYPE]]]``, as virt-cat and guestfish take it."""

    device: str
    mountpoint: str = "/"
    options: str = ""
    fstype: str = ""

    @property
    def depth(self) -> int:
        path = posixpath.normpath(self.mountpoint)
        return 0 if path == "/" else path.count("/")


def parse_mount(text: str) -> MountRequest:
    """Parse ``-m``'s argument; raise ``argparse.ArgumentTypeError`` when it is malformed."""
    device, _, rest = text.partition(":")
    mountpoint, _, rest = rest.partition(":")
    options, _, fstype = rest.partition(":")
    if not device.startswith("/dev/"):
        raise argparse.ArgumentTypeError(f"{text}: the device must be a /dev/ path")
    if mountpoint and not mountpoint.startswith("/"):
        raise argparse.ArgumentTypeError(f"{text}: the mountpoint must be an absolute path")
    return MountRequest(device, mountpoint or "/", options, fstype)


def add_drive_options(parser: argparse.ArgumentParser) -> None:
    """``-a IMAGE`` (repeatable) and ``--format``."""
    parser.add_argument(
        "-a",
        "--add",
        dest="images",
        metavar="IMAGE",
        action="append",
        required=True,
        help="disk image to open, read-only (repeat for a guest with several disks)",
    )
    parser.add_argument(
        "--format",
        metavar="FMT",
        help="format of every image: raw, qcow2, vmdk, vpc (vhd), vhdx or vdi"
        " (default: probe each one)",
    )


def add_mount_options(parser: argparse.ArgumentParser) -> None:
    """``-m DEV[:MOUNTPOINT]`` (repeatable, at least one)."""
    parser.add_argument(
        "-m",
        "--mount",
        dest="mounts",
        metavar="DEV[:MOUNTPOINT]",
        type=parse_mount,
        action="append",
        required=True,
        help="mount a guest device read-only (default mountpoint /); repeatable, parents"
        " are mounted first; DEV:MOUNTPOINT:OPTIONS:FSTYPE passes mount options and a type",
    )


@contextmanager
def open_guest(images: Sequence[str], fmt: str | None) -> Iterator[VMCraft]:
    """A launched, read-only handle on the images; closed (everything released) on exit."""
    with VMCraft() as g:
        for image in images:
            g.add_drive_opts(image, format=fmt, readonly=True)
        g.launch()
        yield g


def mount_requested(g: VMCraft, requests: Sequence[MountRequest]) -> None:
    """Mount read-only, parents before children, in the order given otherwise."""
    for request in sorted(requests, key=lambda r: r.depth):
        options = ",".join(o for o in ("ro", request.options) if o)
        g.mount_vfs(options, request.fstype, request.device, request.mountpoint)
