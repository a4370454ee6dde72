"""VMCraft: open virtual-machine disk images and work inside them, without an appliance VM."""

from __future__ import annotations

import logging

from vmcraft.api.handle import VMCraft
from vmcraft.errors import (
    AttachError,
    CommandError,
    DeviceNotFoundError,
    FilesystemError,
    GuestArgumentError,
    GuestFileError,
    GuestFileNotFoundError,
    GuestPathError,
    ImageError,
    ImageFormatError,
    ImageNotFoundError,
    InspectionError,
    MountError,
    ReadOnlyError,
    StateError,
    SymlinkLoopError,
    UnsafeImageError,
    VMCraftError,
    VolumeError,
)
from vmcraft.retry import retry_with_backoff

__all__ = [
    "AttachError",
    "CommandError",
    "DeviceNotFoundError",
    "FilesystemError",
    "GuestArgumentError",
    "GuestFileError",
    "GuestFileNotFoundError",
    "GuestPathError",
    "ImageError",
    "ImageFormatError",
    "ImageNotFoundError",
    "InspectionError",
    "MountError",
    "ReadOnlyError",
    "StateError",
    "SymlinkLoopError",
    "UnsafeImageError",
    "VMCraft",
    "VMCraftError",
    "VolumeError",
    "retry_with_backoff",
]

logging.getLogger(__name__).addHandler(logging.NullHandler())
