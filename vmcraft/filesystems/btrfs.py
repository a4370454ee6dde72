"""The subvolumes of a btrfs filesystem, which libguestfs lists as filesystems of their own.

A btrfs can hold several trees that each mount on their own (Fedora puts ``/`` in ``root``
and ``/home`` in ``home``). btrfs-progs reads them only from a mounted filesystem, so the
top-level tree (``subvolid=5``) is mounted read-only in a private folder for as long as it
takes to ask, and then unmounted. The default subvolume is left out, as in libguestfs: the
device itself already stands for it.

Host tools: btrfs (btrfs-progs), mount, umount.
"""

from __future__ import annotations

import logging
import os
import re
import tempfile

from vmcraft import command
from vmcraft.errors import CommandError, FilesystemError
from vmcraft.filesystems import fallback
from vmcraft.filesystems.mount import MountedFilesystem, unmount

log = logging.getLogger(__name__)

TOP_LEVEL_ID = 5
"""The top-level tree's id: the default subvolume until someone sets another."""

# "ID 256 gen 10 top level 5 path root": the path is the rest of the line, spaces and all.
_LIST_LINE = re.compile(r"^ID (\d+) gen \d+ top level \d+ path (.+)$")
_DEFAULT_LINE = re.compile(r"^ID (\d+)\b")


def list_subvolumes(source: str, workdir: str, what: str) -> list[str]:
    """The paths of the subvolumes of the btrfs on ``source``, default one left out.

    Args:
        source: Host block device holding the btrfs.
        workdir: Private folder for the temporary mount.
        what: How logs and errors name the filesystem (its guest device).

    Raises:
        FilesystemError: The filesystem cannot be mounted or btrfs-progs cannot read it.
    """
    target = tempfile.mkdtemp(prefix="btrfs-", dir=workdir)
    try:
        mounted = _mount_top_level(source, target, what)
        try:
            return _read_subvolumes(target, what)
        finally:
            unmount(mounted)
    finally:
        os.rmdir(target)


def _mount_top_level(source: str, target: str, what: str) -> MountedFilesystem:
    mounted, _ = fallback.mount_climbing(
        source,
        target,
        "btrfs",
        options=[f"subvolid={TOP_LEVEL_ID}"],
        readonly=True,
        log_dir=os.path.dirname(target),
        what=f"{what} (btrfs) to list its subvolumes",
    )
    return mounted


def _read_subvolumes(mountpoint: str, what: str) -> list[str]:
    try:
        default = command.run(["btrfs", "subvolume", "get-default", mountpoint]).stdout
        listed = command.run(["btrfs", "subvolume", "list", mountpoint]).stdout
    except CommandError as e:
        raise FilesystemError(f"cannot list the subvolumes of {what}: {e}") from e

    match = _DEFAULT_LINE.match(default.strip())
    default_id = int(match.group(1)) if match else TOP_LEVEL_ID
    paths = []
    for line in listed.splitlines():
        found = _LIST_LINE.match(line)
        if found is None:
            log.debug("btrfs subvolume list of %s: skipping %r", what, line)
        elif int(found.group(1)) != default_id:
            paths.append(found.group(2))
    return paths
