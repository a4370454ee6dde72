"""Releasing every open handle when the process ends, however it ends.

``with VMCraft() as g`` already closes on an exception, and SIGINT arrives as
KeyboardInterrupt, which unwinds through it. Two exits do not: SIGTERM, whose default action
kills the process on the spot, and a handle that was never closed. SIGTERM is turned into
SystemExit so that the stack unwinds, and an atexit hook closes whatever is still open.

An interrupt in the middle of setting something up or tearing it down would leave a loop
device or a mount that nothing records; :func:`critical_section` holds such signals back
until the handle's records match the host again, then delivers them.
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import logging
import signal
import threading
from collections.abc import Iterator
from types import FrameType
from typing import Protocol

log = logging.getLogger(__name__)


class Closable(Protocol):
    def close(self) -> None: ...


# Strong references, in the order of launch: a handle dropped without close() still holds
# loop devices, mounts and daemons, and nothing but this hook will release them.
_open_handles: dict[Closable, None] = {}


def _on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def _close_all() -> None:
    for handle in reversed(list(_open_handles)):
        try:
            handle.close()
        except Exception:
            log.warning("cannot close a handle at exit", exc_info=True)


@functools.cache
def _install() -> None:
    atexit.register(_close_all)

    in_main_thread = threading.current_thread() is threading.main_thread()
    if in_main_thread and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _on_sigterm)


def register(handle: Closable) -> None:
    """Make sure ``handle`` is closed at exit, and that SIGTERM unwinds the stack."""
    _install()
    _open_handles[handle] = None


def unregister(handle: Closable) -> None:
    _open_handles.pop(handle, None)


_DEFERRED_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_section_depth = threading.local()


@contextlib.contextmanager
def critical_section() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while the body runs, then deliver them.

    Only the main thread receives signals; elsewhere, and when nested, this does nothing.
    """
    depth = getattr(_section_depth, "value", 0)
    if depth or threading.current_thread() is not threading.main_thread():
        _section_depth.value = depth + 1
        try:
            yield
        finally:
            _section_depth.value = depth
        return

    pending: list[int] = []
    previous = {sig: signal.getsignal(sig) for sig in _DEFERRED_SIGNALS}
    for sig in _DEFERRED_SIGNALS:
        signal.signal(sig, lambda signum, frame: pending.append(signum))
    _section_depth.value = 1
    try:
        yield
    finally:
        _section_depth.value = 0
        for sig, handler in previous.items():
            signal.signal(sig, signal.SIG_DFL if handler is None else handler)
        for signum in pending[:1]:
            log.info("delivering signal %d held back during setup or teardown", signum)
            signal.raise_signal(signum)
