"""Mounting several filesystems at once: parents first, siblings side by side.

A later mount of ``/`` would hide an earlier ``/boot``, so mountpoints are mounted by depth,
each depth only after the one above it is done; mounts at the same depth do not depend on
each other and run in parallel (each is mostly waiting on a program or the kernel).
"""

from __future__ import annotations

import logging
import posixpath
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor

from vmcraft.errors import VMCraftError

log = logging.getLogger(__name__)


def depth(mountpoint: str) -> int:
    """How many components a normalised guest path has (``/`` is 0)."""
    path = posixpath.normpath(mountpoint)
    return 0 if path == "/" else path.count("/")


def _has_failed_ancestor(mountpoint: str, failed: set[str]) -> str | None:
    path = posixpath.normpath(mountpoint)
    while path != "/":
        path = posixpath.dirname(path)
        if path in failed:
            return path
    return None


def mount_in_order(
    requests: Mapping[str, str],
    mount_one: Callable[[str, str], None],
    max_workers: int = 4,
) -> dict[str, bool]:
    """Mount every ``{mountpoint: device}``, parents before children.

    A mount that fails is reported as False without stopping the others; the filesystems that
    would have been mounted inside it are not tried and are False too.
    """
    results: dict[str, bool] = {}
    failed: set[str] = set()
    levels = sorted({depth(mp) for mp in requests})

    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        for level in levels:
            batch = [mp for mp in requests if depth(mp) == level]
            runnable = []
            for mp in batch:
                parent = _has_failed_ancestor(mp, failed)
                if parent is not None:
                    log.warning("not mounting %s: %s failed to mount", mp, parent)
                    results[mp] = False
                    failed.add(posixpath.normpath(mp))
                else:
                    runnable.append(mp)

            futures = {mp: pool.submit(mount_one, requests[mp], mp) for mp in runnable}
            for mp, future in futures.items():
                try:
                    future.result()
                    results[mp] = True
                except VMCraftError as e:
                    log.warning("cannot mount %s on %s: %s", requests[mp], mp, e)
                    results[mp] = False
                    failed.add(posixpath.normpath(mp))
    return results
