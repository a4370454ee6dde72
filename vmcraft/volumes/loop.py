"""Loop devices and their partition nodes.

This host's kernel (like many container hosts) has no partition-table parsers, so
``losetup -P`` creates nothing; ``partx -a`` asks the kernel for the nodes (BLKPG) instead,
which works everywhere. Every loop device is released by its own name, partitions first:
a loop number reused with stale partition nodes would show the next user the wrong disk.

Host tools: losetup, partx.
"""

from __future__ import annotations

import logging
import os
import time

from vmcraft import command
from vmcraft.errors import CommandError, VolumeError

log = logging.getLogger(__name__)

_SETUP_ATTEMPTS = 5
"""``losetup -f`` can lose the race for a free device to another process; try again."""


def _losetup(argv: list[str]) -> str:
    for attempt in range(1, _SETUP_ATTEMPTS + 1):
        try:
            return command.run(argv, timeout=30).stdout.strip()
        except CommandError as e:
            busy = "busy" in e.stderr.lower() or "resource temporarily" in e.stderr.lower()
            if not busy or attempt == _SETUP_ATTEMPTS:
                raise
            log.debug("losetup lost a race for a free device (attempt %d)", attempt)
            time.sleep(0.01 * attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def partition_node(device: str, number: int) -> str:
    """The kernel's name for partition ``number`` of ``device`` (``/dev/loop3p1``)."""
    separator = "p" if device[-1].isdigit() else ""
    return f"{device}{separator}{number}"


class LoopDevice:
    """A loop device over a file (or a byte range of it) that this process set up."""

    def __init__(
        self, backing: str, *, readonly: bool, offset: int = 0, size: int | None = None
    ) -> None:
        self.backing = backing
        self.readonly = readonly
        self.offset = offset
        self.size = size
        self._partitions: list[int] = []

        argv = ["losetup", "--find", "--show"]
        if readonly:
            argv.append("--read-only")
        if offset:
            argv += ["--offset", str(offset)]
        if size is not None:
            argv += ["--sizelimit", str(size)]
        try:
            self.path = _losetup([*argv, backing])
        except CommandError as e:
            raise VolumeError(f"cannot set up a loop device for {backing}: {e.reason}") from e
        log.debug("set up %s over %s (offset %d, size %s)", self.path, backing, offset, size)

    def add_partitions(self, numbers: list[int]) -> dict[int, str]:
        """Create the kernel's partition nodes and return them by partition number.

        Raises:
            VolumeError: partx failed, or a node did not appear.
        """
        if not numbers:
            return {}
        self._drop_stale_partitions()
        try:
            command.run(["partx", "--add", self.path], timeout=30)
        except CommandError as e:
            raise VolumeError(f"cannot add partitions of {self.path}: {e.reason}") from e
        self._partitions = list(numbers)

        nodes = {n: partition_node(self.path, n) for n in numbers}
        missing = [p for p in nodes.values() if not os.path.exists(p)]
        if missing:
            raise VolumeError(f"partx did not create {', '.join(missing)}")
        return nodes

    def _drop_stale_partitions(self) -> None:
        # A previous owner of this loop number may have detached it without deleting its
        # partition nodes; the device is ours now, so they are ours to drop.
        name = os.path.basename(self.path)
        if any(e.startswith(name + "p") for e in os.listdir(f"/sys/block/{name}")):
            log.warning("%s has stale partition nodes; deleting them", self.path)
            command.run(["partx", "--delete", self.path], timeout=30, check=False)

    def close(self) -> None:
        """Delete the partition nodes, then the loop device; idempotent."""
        path, self.path = getattr(self, "path", ""), ""
        if not path:
            return

        if self._partitions:
            try:
                command.run(["partx", "--delete", path], timeout=30)
            except CommandError:
                log.warning("cannot delete the partitions of %s", path, exc_info=True)
        try:
            command.run(["losetup", "--detach", path], timeout=30)
        except CommandError:
            log.warning("cannot detach %s", path, exc_info=True)
