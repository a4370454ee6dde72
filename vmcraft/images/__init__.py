"""Images: turn one disk image into a raw byte view the host can read.

Raw images are used as they are; other formats are exported by qemu-storage-daemon through
FUSE, or connected to a kernel nbd device where the caller asks for it. Everything that makes
an image unsafe to open is refused here, before qemu touches it.
"""

from __future__ import annotations

import logging
import os

from vmcraft.errors import AttachError, CommandError, ImageError
from vmcraft.images.base import RawView
from vmcraft.images.nbd import NbdConnection, nbd_devices
from vmcraft.images.probe import (
    FORMATS,
    ImageInfo,
    normalize_format,
    probe_image,
    recheck_image,
)
from vmcraft.images.qsd import StorageDaemonExport
from vmcraft.images.raw import RawFile
from vmcraft.retry import RetryPolicy, retry_with_backoff

__all__ = [
    "BACKENDS",
    "FORMATS",
    "ImageInfo",
    "RawView",
    "attach_image",
    "nbd_devices",
    "normalize_format",
    "probe_image",
]

log = logging.getLogger(__name__)

BACKENDS = ("auto", "raw", "qsd", "nbd")
RETRIED = (AttachError, CommandError)
"""Failures of an attempt to attach that may pass on a later attempt."""


def _choose_backend(info: ImageInfo, backend: str) -> str:
    if backend not in BACKENDS:
        raise ImageError(f"unknown backend {backend!r}: expected one of {', '.join(BACKENDS)}")
    if backend == "auto":
        return "raw" if info.format == "raw" else "qsd"
    if backend == "raw" and info.format != "raw":
        raise ImageError(f"cannot use {info.path} ({info.format}) as a raw file")
    return backend


def attach_image(
    info: ImageInfo,
    *,
    readonly: bool,
    workdir: str,
    backend: str = "auto",
    retry: RetryPolicy | None = None,
) -> RawView:
    """Give a probed image a raw byte view, retrying transient failures.

    Args:
        info: The image, as :func:`probe_image` described it.
        readonly: Whether the view refuses writes.
        workdir: A private, empty folder for the backend's files.
        backend: ``auto``, ``raw``, ``qsd`` or ``nbd``.
        retry: Attempts and backoff for the attach.

    Raises:
        AttachError: Every attempt failed.
    """
    chosen = _choose_backend(info, backend)
    recheck_image(info)
    policy = retry or RetryPolicy()
    os.makedirs(workdir, exist_ok=True)

    def attempt() -> RawView:
        if chosen == "raw":
            return RawFile.open(info.path, readonly)
        if chosen == "nbd":
            return NbdConnection(info.path, info.format, readonly)
        return StorageDaemonExport(info.path, info.format, readonly, workdir)

    view = retry_with_backoff(
        attempt,
        max_attempts=policy.max_attempts,
        base_backoff_s=policy.base_backoff_s,
        max_backoff_s=policy.max_backoff_s,
        exceptions=RETRIED,
        describe=f"attaching {info.path} ({info.format}, {chosen})",
    )
    log.debug("attached %s as %s", info.path, view.path)
    return view
