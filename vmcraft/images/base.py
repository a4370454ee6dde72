"""What every image backend hands to the next layer: a raw byte view of one disk."""

from __future__ import annotations

from typing import Protocol


class RawView(Protocol):
    """A disk's bytes as the host can read them.

    ``path`` is either a regular file (the image itself, or a FUSE export of it) or a block
    device (``/dev/nbd0``). ``kernel_partitions`` is true when the kernel itself creates the
    partition nodes of that block device.
    """

    path: str
    readonly: bool
    is_block_device: bool
    kernel_partitions: bool

    def close(self) -> None:
        """Release the view; idempotent."""
