"""The nbd backend: ``qemu-nbd --connect`` to a kernel nbd device.

Only hosts with the nbd module have ``/dev/nbd*``; there the kernel reads the partition table
itself and creates ``/dev/nbd0p1`` and so on.

Host tools: qemu-nbd.
"""

from __future__ import annotations

import glob
import logging
import os
import time

from vmcraft import command
from vmcraft.errors import AttachError, BackendUnavailableError, CommandError

log = logging.getLogger(__name__)

CONNECT_TIMEOUT_S = 15.0
_POLL_S = 0.005


def nbd_devices() -> list[str]:
    """The host's nbd devices, in numeric order."""
    found = [p for p in glob.glob("/dev/nbd*") if p[len("/dev/nbd") :].isdigit()]
    return sorted(found, key=lambda p: int(p[len("/dev/nbd") :]))


def _in_use(device: str) -> bool:
    # NB: the kernel creates /sys/block/nbdN/pid only while a client holds the device.
    return os.path.exists(f"/sys/block/{os.path.basename(device)}/pid")


def _size(device: str) -> int:
    try:
        with open(f"/sys/block/{os.path.basename(device)}/size") as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 0


class NbdConnection:
    """An image served by ``qemu-nbd`` on one of the host's nbd devices."""

    is_block_device = True
    kernel_partitions = True

    def __init__(self, image: str, fmt: str, readonly: bool) -> None:
        self.image = image
        self.format = fmt
        self.readonly = readonly
        self.path = ""
        self._connect()

    def _connect(self) -> None:
        devices = nbd_devices()
        if not devices:
            raise BackendUnavailableError(
                f"cannot attach {self.image} with nbd: this host has no /dev/nbd* devices"
                " (is the nbd module loaded?)"
            )
        free = [d for d in devices if not _in_use(d)]
        if not free:
            raise AttachError(f"cannot attach {self.image} with nbd: every nbd device is busy")

        device = free[0]
        argv = ["qemu-nbd", f"--connect={device}", f"--format={self.format}", "--fork"]
        if self.readonly:
            argv.append("--read-only")
        try:
            command.run([*argv, self.image], timeout=CONNECT_TIMEOUT_S)
        except CommandError as e:
            raise AttachError(f"cannot attach {self.image} to {device}: {e.reason}") from e
        self.path = device

        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while _size(device) == 0:
            if time.monotonic() > deadline:
                self.close()
                raise AttachError(f"{device} did not come up for {self.image}")
            time.sleep(_POLL_S)

    def close(self) -> None:
        """Disconnect the device; idempotent."""
        device, self.path = self.path, ""
        if not device:
            return
        try:
            command.run(["qemu-nbd", "--disconnect", device], timeout=30)
        except CommandError:
            log.warning("cannot disconnect %s", device, exc_info=True)
