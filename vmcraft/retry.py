"""Retrying operations that fail for passing reasons, such as a daemon that loses a race."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")

_MAX_DOUBLINGS = 64


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how patiently to retry.

    The wait before attempt ``n + 1`` is ``base_backoff_s * 2**(n - 1)`` with up to a
    quarter of it added as jitter, so that several processes retrying together do not stay
    in step, and never more than ``max_backoff_s``.
    """

    max_attempts: int = 3
    base_backoff_s: float = 2.0
    max_backoff_s: float = 10.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        if self.base_backoff_s < 0 or self.max_backoff_s < 0:
            raise ValueError("backoff times cannot be negative")

    def backoff_s(self, failed_attempt: int) -> float:
        """Seconds to wait after the given (1-based) attempt failed."""
        # The exponent is bounded: 2.0 ** 1024 overflows a float.
        growth = 2.0 ** min(failed_attempt - 1, _MAX_DOUBLINGS)
        delay = min(self.base_backoff_s * growth, self.max_backoff_s)
        return float(min(delay + random.uniform(0, delay / 4), self.max_backoff_s))


def retry_with_backoff(
    operation: Callable[[], T],
    *,
    max_attempts: int = 3,
    base_backoff_s: float = 2.0,
    max_backoff_s: float = 10.0,
    exceptions: tuple[type[BaseException], ...] = (Exception,),
    describe: str = "operation",
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Call ``operation`` until it succeeds or ``max_attempts`` calls have failed.

    The operation must leave nothing behind when it raises: each attempt starts clean.
    Exceptions outside ``exceptions`` are not retried.

    Raises:
        The last attempt's exception.
    """
    policy = RetryPolicy(max_attempts, base_backoff_s, max_backoff_s)
    for attempt in range(1, policy.max_attempts + 1):
        try:
            result = operation()
        except exceptions as e:
            if attempt == policy.max_attempts:
                log.warning(
                    "%s failed on attempt %d of %d: %s; giving up",
                    describe,
                    attempt,
                    policy.max_attempts,
                    e,
                )
                raise
            delay = policy.backoff_s(attempt)
            log.warning(
                "%s failed on attempt %d of %d: %s; retrying in %.2f s",
                describe,
                attempt,
                policy.max_attempts,
                e,
                delay,
            )
            log.debug("traceback of the failed attempt", exc_info=True)
            sleep(delay)
        else:
            if attempt > 1:
                log.info("%s succeeded on attempt %d", describe, attempt)
            return result
    raise AssertionError("unreachable")  # pragma: no cover
