"""Helpers for the guest tests: change or read a guest image without VMCraft.

What a test plants in an image (owners, modes, FIFOs, links to host paths) and what it
checks afterwards goes through a kernel mount of a loop device, so that VMCraft's own
code is never the judge of what VMCraft did.

Host tools: losetup, partx, mount, umount (through guests.py).
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
from collections.abc import Iterator
from pathlib import Path

import guests
from guests import Guest

_counter = itertools.count()


@contextlib.contextmanager
def partition_mounted(guest: Guest, device: str, *, read_only: bool = False) -> Iterator[Path]:
    """Mount one partition of a guest's raw image with the kernel, next to the image.

    The loop device covers the partition's byte range from the manifest, so no partition
    nodes are needed (a loop number reused from another session may carry stale ones).
    """
    start, size = guest.partitions[device]
    mountpoint = guest.path.parent / f"mnt-{guest.path.stem}-{device[5:]}-{next(_counter)}"
    options = "ro" if read_only else None
    with (
        guests.loop_device(guest.path, read_only=read_only, offset=start, size=size) as loop,
        guests.mounted(loop, mountpoint, options) as mounted,
    ):
        yield mounted
    mountpoint.rmdir()


def inside(root: Path, guest_path: str) -> Path:
    """The host path of an absolute guest path under a mounted root (no link following)."""
    return root / guest_path.lstrip("/")


def mount_snapshot() -> set[tuple[int, str]]:
    """What is mounted now; the kernel reuses a mount id, so the mountpoint goes with it."""
    return {(entry.mount_id, entry.mountpoint) for entry in guests.read_mountinfo()}


def new_mounts(before: set[tuple[int, str]]) -> list[guests.MountEntry]:
    """Mounts made under this session's temp root since ``before``, in mount order.

    Other sessions may mount at the same time; their mounts lie elsewhere.
    """
    root = tempfile.gettempdir().rstrip("/") + "/"
    return [
        entry
        for entry in guests.read_mountinfo()
        if (entry.mount_id, entry.mountpoint) not in before and entry.mountpoint.startswith(root)
    ]
