"""A small time-limited cache with hit and miss counters.

Probing a device (blkid, partition tables) costs a program run each time; results stay valid
until VMCraft itself changes the device, which invalidates them, or until the TTL runs out
for changes made by someone else.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


@dataclass
class CacheStats:
    hits: int = 0
    misses: int = 0
    invalidations: int = 0

    def as_dict(self) -> dict[str, int]:
        return {"hits": self.hits, "misses": self.misses, "invalidations": self.invalidations}


class TTLCache(Generic[K, V]):
    """Values that expire ``ttl_s`` seconds after they were stored."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl_s = ttl_s
        self.stats = CacheStats()
        self._clock = clock
        self._entries: dict[K, tuple[float, V]] = {}
        self._lock = threading.Lock()

    def get_or_compute(self, key: K, compute: Callable[[], V], use_cache: bool = True) -> V:
        """Return the cached value for ``key``, computing and storing it when absent or stale."""
        now = self._clock()
        with self._lock:
            entry = self._entries.get(key)
            if use_cache and entry is not None and now - entry[0] < self.ttl_s:
                self.stats.hits += 1
                return entry[1]
            self.stats.misses += 1

        value = compute()

        with self._lock:
            self._entries[key] = (self._clock(), value)
        return value

    def invalidate(self, predicate: Callable[[K], bool] | None = None) -> None:
        """Drop every entry, or those whose key satisfies ``predicate``."""
        with self._lock:
            doomed = [k for k in self._entries if predicate is None or predicate(k)]
            for key in doomed:
                del self._entries[key]
            self.stats.invalidations += len(doomed)
