"""The raw backend: a raw image file is already its own byte view."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass


@dataclass
class RawFile:
    """A raw image (or host block device) used as it is."""

    path: str
    readonly: bool
    is_block_device: bool = False
    kernel_partitions: bool = False

    @classmethod
    def open(cls, path: str, readonly: bool) -> RawFile:
        is_block = stat.S_ISBLK(os.stat(path).st_mode)
        return cls(path, readonly, is_block_device=is_block, kernel_partitions=is_block)

    def close(self) -> None:
        """Nothing to release: the file was never changed into anything."""
