"""Private, read-only mounts for inspection, out of the caller's sight.

Inspection looks inside every filesystem of the guest, but must leave the caller's mounts
exactly as they were (libguestfs unmounts everything first; VMCraft does not). So each
filesystem is mounted read-only under a folder of its own in the handle's work folder,
never under the handle's mount root, and released before inspection returns.

This module keeps the folders and the order of release; the mounting itself is the
handle's (a :data:`MountFunction`), since only the layers above may use the mount layer.
"""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType

from vmcraft.guest.files import GuestTree

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Candidate:
    """A guest filesystem inspection may mount.

    Args:
        name: Its guest device name (``/dev/sda2``, ``/dev/VG/LV``).
        host_path: The host block device behind it.
        fstype: Its type, as blkid names it.
        mounted_at: The host folder where the caller already has it mounted, if any.
    """

    name: str
    host_path: str
    fstype: str
    mounted_at: str | None = None


Release = Callable[[], None]
MountFunction = Callable[[Candidate, str, "str | None"], Release]
"""Mounts a candidate read-only on an existing host folder (a btrfs subvolume instead of
the default one when the third argument names it) and returns what unmounts it again,
without raising. Raises :class:`~vmcraft.errors.FilesystemError` when it cannot mount."""


def private_tree(folder: str) -> GuestTree:
    """A guest tree over a private mount: always there, never writable."""
    return GuestTree(folder, lambda: True, lambda host_path: True)


class ScratchMounts:
    """Read-only mounts in private folders, released last-first by :meth:`close`.

    Args:
        workdir: The handle's work folder; the mounts' folders are made inside it.
        mount: How to mount one filesystem.
    """

    def __init__(self, workdir: str, mount: MountFunction) -> None:
        self._workdir = workdir
        self._mount = mount
        self._stack = contextlib.ExitStack()

    def __enter__(self) -> ScratchMounts:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Unmount everything, last mounted first; safe to call again."""
        self._stack.close()

    def new_folder(self) -> str:
        """An empty private folder, removed at close."""
        folder = tempfile.mkdtemp(prefix="inspect-", dir=self._workdir)
        self._stack.callback(_remove_folder, folder)
        return folder

    def mount(self, candidate: Candidate, target: str, subvolume: str | None = None) -> None:
        """Mount ``candidate`` read-only on the existing host folder ``target``.

        Raises:
            FilesystemError: It could not be mounted at all.
        """
        self._stack.callback(self._mount(candidate, target, subvolume))


def _remove_folder(folder: str) -> None:
    try:
        os.rmdir(folder)
    except OSError as e:
        # Still a mountpoint if its unmount failed: never delete into a mounted tree.
        log.warning("cannot remove inspection folder %s: %s", folder, e)
