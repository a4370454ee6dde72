"""The public handle: ``VMCraft``, with libguestfs's call names over VMCraft's layers."""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from contextlib import ExitStack
from types import TracebackType

from vmcraft.api import lifecycle
from vmcraft.api.base import Drive, Stage
from vmcraft.api.devices import PARTITION_TTL_S, DeviceCalls
from vmcraft.api.directories_calls import DirectoryCalls
from vmcraft.api.files import FileCalls
from vmcraft.api.inspect_calls import InspectCalls
from vmcraft.api.metadata_calls import MetadataCalls
from vmcraft.api.mounting import MountCalls
from vmcraft.api.reading_calls import ReadingCalls
from vmcraft.api.writing_calls import WritingCalls
from vmcraft.errors import MountError, StateError
from vmcraft.filesystems.probe import BLKID_TTL_S
from vmcraft.images import attach_image, probe_image
from vmcraft.retry import RetryPolicy
from vmcraft.volumes.devices import DeviceMap, drive_name
from vmcraft.volumes.disk import MappedDisk
from vmcraft.volumes.lvm import LvmMapping, find_physical_volumes

log = logging.getLogger(__name__)


class VMCraft(
    InspectCalls,
    ReadingCalls,
    WritingCalls,
    DirectoryCalls,
    MetadataCalls,
    DeviceCalls,
    MountCalls,
    FileCalls,
):
    """A handle on one guest: its drives, devices, filesystems and files.

    Use it as a context manager; everything it creates is released on exit.

    Args:
        attach_attempts: Attempts to attach each drive before giving up.
        attach_base_backoff_s: Wait after the first failed attempt, doubled each time.
        attach_max_backoff_s: Longest wait between attempts.
        partition_ttl_s: How long listed partitions stay cached.
        blkid_ttl_s: How long blkid results stay cached.
        use_device_mapper: Activate LVM with device-mapper (None: where the host has it).

    Example:
        >>> with VMCraft() as g:
        ...     g.add_drive_opts("disk.qcow2", readonly=True)
        ...     g.launch()
        ...     g.mount_ro("/dev/sda1", "/")
        ...     print(g.cat("/etc/hostname"))
    """

    def __init__(
        self,
        *,
        attach_attempts: int = 3,
        attach_base_backoff_s: float = 2.0,
        attach_max_backoff_s: float = 10.0,
        partition_ttl_s: float = PARTITION_TTL_S,
        blkid_ttl_s: float = BLKID_TTL_S,
        use_device_mapper: bool | None = None,
    ) -> None:
        super().__init__(partition_ttl_s=partition_ttl_s, blkid_ttl_s=blkid_ttl_s)
        self.attach_retry = RetryPolicy(
            attach_attempts, attach_base_backoff_s, attach_max_backoff_s
        )
        self.use_device_mapper = use_device_mapper
        self._stack = ExitStack()

    def __enter__(self) -> VMCraft:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def add_drive_opts(
        self,
        filename: str,
        format: str | None = None,
        readonly: bool = True,
        *,
        backend: str = "auto",
        allow_backing: bool = False,
    ) -> None:
        """Add a disk image; the first becomes ``/dev/sda``, the next ``/dev/sdb``...

        Args:
            filename: The image file.
            format: raw, qcow2, vmdk, vpc (vhd), vhdx or vdi; None to probe it.
            readonly: Open it so that no byte of it can change.
            backend: ``auto`` (raw files directly, others through qemu-storage-daemon),
                ``qsd`` or ``nbd`` (qemu-nbd, where the host has nbd devices).
            allow_backing: Trust backing files or extents outside the image's folder.

        Raises:
            StateError: Called after launch().
            ImageError: The file is missing, empty, corrupt, unsafe or not of ``format``.
        """
        self._require_config("add_drive_opts")
        info = probe_image(os.fspath(filename), format, allow_backing)
        name = drive_name(len(self._drives))
        self._drives.append(Drive(info, readonly, backend, name))
        log.debug("added %s (%s) as %s", info.path, info.format, name)

    def add_drive(self, filename: str, format: str | None = None, readonly: bool = False) -> None:
        """Add a disk image, writable unless ``readonly`` (libguestfs's default)."""
        self.add_drive_opts(filename, format, readonly)

    def add_drive_ro(self, filename: str, format: str | None = None) -> None:
        """Add a disk image read-only."""
        self.add_drive_opts(filename, format, readonly=True)

    def launch(self) -> None:
        """Attach every drive and map its partitions and logical volumes.

        On failure everything made so far is released before the error propagates.

        Raises:
            StateError: Called twice, after close(), or with no drives.
            ImageError, VolumeError: A drive could not be attached or mapped.
        """
        if self._stage is Stage.READY:
            raise StateError("launch: the handle is already launched")
        self._require_config("launch")
        if not self._drives:
            raise StateError("launch: no drives have been added")
        lifecycle.register(self)
        with lifecycle.critical_section():
            try:
                self._launch()
            except BaseException:
                self._release()
                lifecycle.unregister(self)
                raise
            self._stage = Stage.READY

    def _launch(self) -> None:
        self._workdir = tempfile.mkdtemp(prefix="vmcraft-")
        self._stack.callback(shutil.rmtree, self._workdir, ignore_errors=True)
        self._root = os.path.join(self._workdir, "root")
        os.mkdir(self._root, 0o755)

        for index, drive in enumerate(self._drives):
            view = attach_image(
                drive.info,
                readonly=drive.readonly,
                workdir=os.path.join(self._workdir, f"drive{index}"),
                backend=drive.backend,
                retry=self.attach_retry,
            )
            self._stack.callback(view.close)
            disk = MappedDisk(view, drive.name, drive.readonly)
            self._stack.callback(disk.close)
            self._disks[drive.name] = disk
            for device in disk.devices:
                self._devices.add(device)

        self._map_lvm()

    def _map_lvm(self) -> None:
        pvs = find_physical_volumes(self._devices.all())
        if not pvs:
            return
        readonly = any(pv.readonly for pv in pvs)
        self._lvm = LvmMapping(pvs, readonly, self.use_device_mapper)
        self._stack.callback(self._lvm.close)
        for device in self._lvm.devices:
            self._devices.add(device)

    def shutdown(self) -> None:
        """Unmount everything and release every drive, in reverse order of creation."""
        if self._stage is Stage.CONFIG:
            raise StateError("shutdown: the handle was never launched")
        with lifecycle.critical_section():
            self._release()
            self._stage = Stage.CLOSED
            lifecycle.unregister(self)

    def close(self) -> None:
        """Shut down if launched and forget the drives; safe to call any number of times."""
        if self._stage is Stage.READY:
            self.shutdown()
        self._stage = Stage.CLOSED
        lifecycle.unregister(self)

    def _release(self) -> None:
        try:
            if self._mounts:
                self.umount_all()
        except MountError:
            log.warning("some filesystems stayed mounted at shutdown", exc_info=True)
        finally:
            self._stack.close()
            self._disks.clear()
            self._lvm = None
            # A later launch may get other loop numbers: forget the host paths of this one.
            self._devices = DeviceMap()
            self._partition_cache.invalidate()
            self._blkid.invalidate()
