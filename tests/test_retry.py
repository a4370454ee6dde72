"""Backoff arithmetic and the retry loop, with an injected sleep: nothing here waits.

Expected delays follow the policy's definition: after attempt n fails, wait
base * 2**(n-1), plus up to a quarter of that as jitter, never more than the cap.
"""

from __future__ import annotations

import logging
import random

import pytest

from vmcraft import VMCraft
from vmcraft.retry import RetryPolicy, retry_with_backoff

JITTER = 0.25  # the largest jitter, as a fraction of the delay


class Transient(Exception):
    pass


class Flaky:
    """An operation that raises the given exceptions in turn, then returns "done"."""

    def __init__(self, *failures: BaseException) -> None:
        self.failures = list(failures)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.failures:
            raise self.failures.pop(0)
        return "done"


class Sleeps(list[float]):
    """A stand-in for time.sleep that only records the delays it was asked for."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: low)


@pytest.fixture
def full_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(random, "uniform", lambda low, high: high)


# ---------------------------------------------------------------- RetryPolicy


@pytest.mark.usefixtures("no_jitter")
def test_backoff_doubles_after_each_failure() -> None:
    policy = RetryPolicy(max_attempts=6, base_backoff_s=0.5, max_backoff_s=100)

    assert [policy.backoff_s(n) for n in range(1, 6)] == [0.5, 1.0, 2.0, 4.0, 8.0]


@pytest.mark.usefixtures("no_jitter")
def test_backoff_stops_growing_at_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_backoff_s=1, max_backoff_s=5)

    assert [policy.backoff_s(n) for n in range(1, 7)] == [1, 2, 4, 5, 5, 5]


@pytest.mark.usefixtures("full_jitter")
def test_jitter_adds_at_most_a_quarter_and_never_passes_the_cap() -> None:
    policy = RetryPolicy(max_attempts=10, base_backoff_s=1, max_backoff_s=5)

    assert [policy.backoff_s(n) for n in range(1, 6)] == [1.25, 2.5, 5, 5, 5]


def test_jitter_stays_within_bounds() -> None:
    policy = RetryPolicy(max_attempts=10, base_backoff_s=2.0, max_backoff_s=10.0)

    for attempt in range(1, 6):
        exact = min(2.0 * 2 ** (attempt - 1), 10.0)
        samples = [policy.backoff_s(attempt) for _ in range(200)]
        assert all(exact <= s <= min(exact * (1 + JITTER), 10.0) for s in samples)
        if exact < 10.0:
            assert len(set(samples)) > 1, "jitter should spread retries apart"


def test_zero_backoff_means_no_wait() -> None:
    policy = RetryPolicy(max_attempts=5, base_backoff_s=0, max_backoff_s=0)

    assert {policy.backoff_s(n) for n in range(1, 5)} == {0.0}


def test_many_attempts_do_not_overflow() -> None:
    policy = RetryPolicy(max_attempts=5000, base_backoff_s=1, max_backoff_s=7)

    assert policy.backoff_s(4000) == pytest.approx(7)


@pytest.mark.parametrize(
    ("attempts", "base", "cap"), [(0, 1.0, 1.0), (-1, 1.0, 1.0), (3, -1.0, 1.0), (3, 1.0, -1.0)]
)
def test_invalid_policy_is_refused(attempts: int, base: float, cap: float) -> None:
    with pytest.raises(ValueError):
        RetryPolicy(attempts, base, cap)


def test_handle_refuses_an_invalid_policy() -> None:
    with pytest.raises(ValueError, match="max_attempts"):
        VMCraft(attach_attempts=0)


# ---------------------------------------------------------------- retry_with_backoff


@pytest.mark.usefixtures("no_jitter")
def test_retries_until_success() -> None:
    operation, sleeps = Flaky(Transient("one"), Transient("two")), Sleeps()

    result = retry_with_backoff(
        operation, max_attempts=3, base_backoff_s=1, max_backoff_s=10, sleep=sleeps
    )

    assert result == "done"
    assert operation.calls == 3
    assert sleeps == [1, 2]


@pytest.mark.usefixtures("no_jitter")
def test_gives_up_with_the_last_exception() -> None:
    last = Transient("three")
    operation, sleeps = Flaky(Transient("one"), Transient("two"), last), Sleeps()

    with pytest.raises(Transient) as raised:
        retry_with_backoff(
            operation, max_attempts=3, base_backoff_s=1, max_backoff_s=10, sleep=sleeps
        )

    assert raised.value is last
    assert operation.calls == 3
    assert sleeps == [1, 2], "no wait after the last attempt"


def test_real_jitter_reaches_the_injected_sleep() -> None:
    operation, sleeps = Flaky(*(Transient(str(n)) for n in range(4))), Sleeps()

    retry_with_backoff(operation, max_attempts=5, base_backoff_s=1, max_backoff_s=3, sleep=sleeps)

    bounds = [(1, 1.25), (2, 2.5), (3, 3), (3, 3)]
    assert len(sleeps) == 4
    assert all(low <= s <= high for s, (low, high) in zip(sleeps, bounds, strict=True))


def test_exceptions_not_listed_are_not_retried() -> None:
    operation, sleeps = Flaky(KeyError("not transient")), Sleeps()

    with pytest.raises(KeyError):
        retry_with_backoff(operation, max_attempts=5, exceptions=(Transient,), sleep=sleeps)

    assert operation.calls == 1
    assert sleeps == []


def test_a_listed_exception_then_an_unlisted_one_stops_the_retries() -> None:
    operation, sleeps = Flaky(Transient("once"), LookupError("then this")), Sleeps()

    with pytest.raises(LookupError):
        retry_with_backoff(operation, max_attempts=5, exceptions=(Transient,), sleep=sleeps)

    assert operation.calls == 2
    assert len(sleeps) == 1


def test_interrupt_is_never_retried() -> None:
    operation, sleeps = Flaky(KeyboardInterrupt()), Sleeps()

    with pytest.raises(KeyboardInterrupt):
        retry_with_backoff(operation, max_attempts=5, sleep=sleeps)

    assert operation.calls == 1
    assert sleeps == []


def test_one_attempt_means_no_retry() -> None:
    operation, sleeps = Flaky(Transient("only")), Sleeps()

    with pytest.raises(Transient):
        retry_with_backoff(operation, max_attempts=1, sleep=sleeps)

    assert operation.calls == 1
    assert sleeps == []


def test_zero_attempts_is_refused_before_calling() -> None:
    operation = Flaky()

    with pytest.raises(ValueError):
        retry_with_backoff(operation, max_attempts=0, sleep=Sleeps())

    assert operation.calls == 0


@pytest.mark.usefixtures("no_jitter")
def test_every_attempt_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    operation = Flaky(Transient("boom 1"), Transient("boom 2"))

    with caplog.at_level(logging.INFO, logger="vmcraft"):
        retry_with_backoff(
            operation, max_attempts=3, base_backoff_s=1, describe="frobbing x", sleep=Sleeps()
        )

    messages = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO]
    assert messages == [
        "frobbing x failed on attempt 1 of 3: boom 1; retrying in 1.00 s",
        "frobbing x failed on attempt 2 of 3: boom 2; retrying in 2.00 s",
        "frobbing x succeeded on attempt 3",
    ]
    assert {r.name for r in caplog.records} == {"vmcraft.retry"}


def test_giving_up_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    operation = Flaky(Transient("boom 1"), Transient("boom 2"))

    with caplog.at_level(logging.INFO, logger="vmcraft"), pytest.raises(Transient):
        retry_with_backoff(operation, max_attempts=2, describe="frobbing y", sleep=Sleeps())

    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[-1].getMessage() == "frobbing y failed on attempt 2 of 2: boom 2; giving up"


def test_first_time_success_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    sleeps = Sleeps()

    with caplog.at_level(logging.INFO, logger="vmcraft"):
        assert retry_with_backoff(Flaky(), sleep=sleeps) == "done"

    assert [r for r in caplog.records if r.levelno >= logging.INFO] == []
    assert sleeps == []
