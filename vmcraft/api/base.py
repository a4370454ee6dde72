"""State every part of the handle shares, and the checks on the handle's life stage."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from enum import Enum

from vmcraft.errors import StateError
from vmcraft.filesystems.mount import MountedFilesystem
from vmcraft.images import ImageInfo
from vmcraft.volumes.devices import DeviceMap, GuestDevice

DEFAULT_UMASK = 0o022
"""The umask the handle applies to what it creates until ``umask()`` changes it."""


class Stage(Enum):
    CONFIG = "config"
    READY = "ready"
    CLOSED = "closed"


@dataclass
class Drive:
    """A drive added to the handle, before and after launch."""

    info: ImageInfo
    readonly: bool
    backend: str
    name: str


@dataclass
class GuestMount:
    """A filesystem mounted at a guest mountpoint, and how it was mounted."""

    mountpoint: str
    device: GuestDevice
    mounted: MountedFilesystem
    level: str


class HandleBase:
    """The handle's shared state; the mixins in this package add the calls."""

    def __init__(self) -> None:
        self._stage = Stage.CONFIG
        self._drives: list[Drive] = []
        self._devices = DeviceMap()
        self._mounts: list[GuestMount] = []
        self._mount_lock = threading.RLock()
        self._workdir = ""
        self._root = ""
        self._umask = DEFAULT_UMASK

    def _require_config(self, call: str) -> None:
        if self._stage is Stage.CLOSED:
            raise StateError(f"{call}: the handle is closed")
        if self._stage is not Stage.CONFIG:
            raise StateError(f"{call}: must be called before launch()")

    def _require_ready(self, call: str) -> None:
        if self._stage is Stage.CONFIG:
            raise StateError(f"{call}: call launch() first")
        if self._stage is Stage.CLOSED:
            raise StateError(f"{call}: the handle is closed")

    def _device(self, name: str) -> GuestDevice:
        return self._devices.find(name)
