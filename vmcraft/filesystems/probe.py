"""What a device holds, as blkid sees it, cached per device.

udev does not run on many hosts (containers, CI, this build machine), so ``lsblk`` shows no
filesystem types: blkid is asked directly, in low-level probe mode, which reads the superblock
itself instead of a possibly stale cache file.

Host tools: blkid.
"""

from __future__ import annotations

import logging
import os

from vmcraft import command
from vmcraft.cache import TTLCache
from vmcraft.errors import CommandError, FilesystemError

log = logging.getLogger(__name__)

BLKID_TTL_S = 120.0
_NOTHING_FOUND = 2
"""blkid's exit status when the device holds nothing it recognises."""


def run_blkid(host_path: str) -> dict[str, str]:
    """Probe one device and return blkid's tags with upper-case keys (TYPE, UUID, LABEL...).

    Raises:
        FilesystemError: blkid could not read the device.
    """
    # NB: without --no-encoding blkid 2.38 escapes blanks, quotes and $ with a backslash and
    # writes bytes over 127 as "M-x", so "Système fs" would come back as "SystM-CM-(me\ fs".
    argv = ["blkid", "--probe", "--no-encoding", "--output", "export", host_path]
    try:
        result = command.run(argv, timeout=30, check=False)
    except CommandError as e:
        raise FilesystemError(f"cannot probe {host_path}: {e.reason}") from e
    if result.returncode == _NOTHING_FOUND:
        if not os.path.exists(host_path):
            # NB: blkid 2.38 exits 2, silently, for a path that does not exist too.
            raise FilesystemError(f"cannot probe {host_path}: no such device")
        return {}
    if result.returncode != 0:
        raise FilesystemError(
            f"cannot probe {host_path}: blkid exit status {result.returncode}: "
            f"{result.stderr.strip()}"
        )
    return _parse_export(result.stdout)


def _parse_export(text: str) -> dict[str, str]:
    tags = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key != "DEVNAME":
            tags[key.upper()] = value
    return tags


class BlkidCache:
    """blkid results by host device, kept ``ttl_s`` seconds unless invalidated sooner."""

    def __init__(self, ttl_s: float = BLKID_TTL_S) -> None:
        self._cache: TTLCache[str, dict[str, str]] = TTLCache(ttl_s)

    @property
    def cache(self) -> TTLCache[str, dict[str, str]]:
        return self._cache

    def probe(self, host_path: str, use_cache: bool = True) -> dict[str, str]:
        """Return a copy of the device's tags, from the cache when it is fresh."""
        tags = self._cache.get_or_compute(host_path, lambda: run_blkid(host_path), use_cache)
        return dict(tags)

    def invalidate(self, host_paths: list[str] | None = None) -> None:
        """Forget the given devices (or every device)."""
        if host_paths is None:
            self._cache.invalidate()
            return
        doomed = set(host_paths)
        self._cache.invalidate(lambda key: key in doomed)
