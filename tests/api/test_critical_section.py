"""Signals that arrive while a handle changes the host are held back, then delivered."""

from __future__ import annotations

import os
import signal
import threading

import pytest

from vmcraft.api.lifecycle import critical_section


def test_sigint_inside_is_raised_after_the_section() -> None:
    reached_end = False

    with pytest.raises(KeyboardInterrupt), critical_section():
        os.kill(os.getpid(), signal.SIGINT)
        reached_end = True

    assert reached_end


def test_handlers_are_restored() -> None:
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

    with critical_section():
        pass

    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before


def test_nested_sections_deliver_once_at_the_outermost_end() -> None:
    steps = []

    with pytest.raises(KeyboardInterrupt), critical_section():
        with critical_section():
            os.kill(os.getpid(), signal.SIGINT)
            steps.append("inner")
        steps.append("outer")

    assert steps == ["inner", "outer"]


def test_other_threads_run_the_body_unchanged() -> None:
    seen = []

    def body() -> None:
        with critical_section():
            seen.append(signal.getsignal(signal.SIGINT))

    worker = threading.Thread(target=body)
    worker.start()
    worker.join()

    assert seen == [signal.getsignal(signal.SIGINT)]
