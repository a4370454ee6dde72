"""One attached drive as guest devices: the whole disk and its partitions.

Host tools: losetup, partx (through :mod:`vmcraft.volumes.loop`).
"""

from __future__ import annotations

import logging
import os
import time
from contextlib import ExitStack

from vmcraft.errors import VolumeError
from vmcraft.images import RawView
from vmcraft.volumes.devices import GuestDevice
from vmcraft.volumes.loop import LoopDevice, partition_node
from vmcraft.volumes.partitions import PartitionTable, read_partition_table

log = logging.getLogger(__name__)

KERNEL_PARTITION_TIMEOUT_S = 5.0


def _device_size(path: str) -> int:
    with open(path, "rb") as f:
        return f.seek(0, os.SEEK_END)


class MappedDisk:
    """A drive's raw view made into a block device, with a node for every partition."""

    def __init__(self, view: RawView, name: str, readonly: bool) -> None:
        self.name = name
        self.view = view
        self.readonly = readonly
        self.table: PartitionTable | None = None
        self.devices: list[GuestDevice] = []
        self.loop: LoopDevice | None = None
        self.host_path = ""
        self._stack = ExitStack()

        try:
            self._map()
        except BaseException:
            self.close()
            raise

    def _map(self) -> None:
        if self.view.is_block_device:
            host_path = self.view.path
        else:
            self.loop = LoopDevice(self.view.path, readonly=self.readonly)
            self._stack.callback(self.loop.close)
            host_path = self.loop.path
        self.host_path = host_path

        self.table = read_partition_table(host_path)
        size = _device_size(host_path)
        self.devices = [GuestDevice(self.name, host_path, "disk", size, self.readonly)]
        if self.table is None:
            return

        nodes = self._partition_nodes(host_path, [p.number for p in self.table.partitions])
        for part in self.table.partitions:
            self.devices.append(
                GuestDevice(
                    name=f"{self.name}{part.number}",
                    host_path=nodes[part.number],
                    kind="partition",
                    size=part.size,
                    readonly=self.readonly,
                    disk=self.name,
                    partnum=part.number,
                    part_type=part.type,
                    extended=part.extended,
                )
            )

    def _partition_nodes(self, host_path: str, numbers: list[int]) -> dict[int, str]:
        if self.loop is not None:
            return self.loop.add_partitions(numbers)
        if self.view.kernel_partitions:
            return _wait_for_kernel_nodes(host_path, numbers)
        raise VolumeError(f"{host_path} has no partition nodes and is not ours to change")

    def close(self) -> None:
        """Delete the partition nodes and the loop device; idempotent."""
        self._stack.close()


def _wait_for_kernel_nodes(host_path: str, numbers: list[int]) -> dict[int, str]:
    nodes = {n: partition_node(host_path, n) for n in numbers}
    deadline = time.monotonic() + KERNEL_PARTITION_TIMEOUT_S
    while not all(os.path.exists(p) for p in nodes.values()):
        if time.monotonic() > deadline:
            missing = [p for p in nodes.values() if not os.path.exists(p)]
            raise VolumeError(f"the kernel did not create {', '.join(missing)}")
        time.sleep(0.01)
    return nodes
