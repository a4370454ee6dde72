"""The qemu-storage-daemon backend: any qemu format exported as a raw file through FUSE.

The daemon runs as this process's child, in the foreground, so that its exit can be waited
for: it unlinks its pidfile only after closing and unlocking the image, which makes the pidfile
the readiness signal and its disappearance the proof that the image is released.

Host tools: qemu-storage-daemon (FUSE export), umount.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time

from vmcraft import command, mounts
from vmcraft.errors import AttachError, BackendUnavailableError, CommandError, ToolMissingError

log = logging.getLogger(__name__)

READY_TIMEOUT_S = 15.0
_POLL_S = 0.002


class StorageDaemonExport:
    """A qemu image exported as ``workdir/disk.raw`` by a qemu-storage-daemon child."""

    is_block_device = False
    kernel_partitions = False

    def __init__(self, image: str, fmt: str, readonly: bool, workdir: str) -> None:
        self.image = image
        self.format = fmt
        self.readonly = readonly
        self.path = os.path.join(workdir, "disk.raw")
        self._pidfile = os.path.join(workdir, "qsd.pid")
        self._child: command.Child | None = None
        self._start(os.path.join(workdir, "qsd.log"))

    def _argv(self) -> list[str]:
        ro = "on" if self.readonly else "off"
        writable = "off" if self.readonly else "on"
        return [
            "qemu-storage-daemon",
            "--pidfile", self._pidfile,
            "--blockdev",
            f"driver=file,node-name=file0,filename={_escape(self.image)},read-only={ro}",
            "--blockdev",
            f"driver={self.format},node-name=disk0,file=file0,read-only={ro}",
            "--export",
            f"type=fuse,id=export0,node-name=disk0,mountpoint={_escape(self.path)},"
            f"writable={writable}",
        ]  # fmt: skip

    def _start(self, log_path: str) -> None:
        with open(self.path, "wb"):
            pass  # NB: a FUSE export's mountpoint must be an existing regular file.
        try:
            self._child = command.spawn(self._argv(), log_path=log_path)
        except ToolMissingError as e:
            os.unlink(self.path)  # not worth retrying: no attempt can find the program
            raise BackendUnavailableError(
                f"cannot export image {self.image} ({self.format}): {e.argv[0]} {e.reason}"
            ) from e

        try:
            self._wait_ready()
        except BaseException:
            self.close()
            raise

    def _wait_ready(self) -> None:
        assert self._child is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not os.path.exists(self._pidfile):
            if self._child.poll() is not None:
                raise AttachError(
                    f"cannot export image {self.image} ({self.format}): "
                    f"{self._child.failure().reason}"
                )
            if time.monotonic() > deadline:
                raise AttachError(
                    f"cannot export image {self.image} ({self.format}): qemu-storage-daemon"
                    f" was not ready after {READY_TIMEOUT_S:g} s"
                )
            time.sleep(_POLL_S)

    def close(self) -> None:
        """Stop the daemon, wait for it, and make sure the export is gone."""
        child, self._child = self._child, None
        if child is None:
            return

        child.stop()
        if mounts.is_mountpoint(self.path):
            log.warning("export %s outlived its daemon; unmounting it", self.path)
            try:
                command.run(["umount", "-l", self.path], timeout=30)
            except CommandError:
                log.warning("cannot unmount stale export %s", self.path, exc_info=True)

        for leftover in (self.path, self._pidfile):
            with contextlib.suppress(FileNotFoundError):
                os.unlink(leftover)


def _escape(value: str) -> str:
    # qemu's option syntax doubles a comma to keep it inside a value.
    return value.replace(",", ",,")
