"""mount_in_order: parents before children, siblings side by side, failures contained.

A pure unit test: mount_one only records what it was asked, so the order and the overlap
of calls are exactly what the scheduler did.
"""

from __future__ import annotations

import threading
import time

import pytest

from vmcraft.errors import MountError
from vmcraft.filesystems.ordering import depth, mount_in_order


class Recorder:
    """A mount_one that logs start and end of each call, and fails where told."""

    def __init__(self, failing: tuple[str, ...] = (), barrier: threading.Barrier | None = None):
        self.failing = failing
        self.barrier = barrier
        self.events: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(self, device: str, mountpoint: str) -> None:
        self._log("start", mountpoint)
        if self.barrier is not None and depth(mountpoint) == 1:
            self.barrier.wait()  # every sibling must be running at once to get past this
        time.sleep(0.01)
        self._log("end", mountpoint)
        if mountpoint in self.failing:
            raise MountError(f"cannot mount {device} on {mountpoint}: injected")

    def _log(self, what: str, mountpoint: str) -> None:
        with self._lock:
            self.events.append((what, mountpoint))

    def started(self) -> list[str]:
        return [mp for what, mp in self.events if what == "start"]

    def position(self, what: str, mountpoint: str) -> int:
        return self.events.index((what, mountpoint))


def test_depth() -> None:
    assert depth("/") == 0
    assert depth("/boot") == depth("/boot/") == depth("/boot/../home") == 1
    assert depth("/boot/efi") == 2


def test_parents_before_children_whatever_the_order_given() -> None:
    recorder = Recorder()
    requests = {"/boot/efi": "sda3", "/home/alice": "sda6", "/boot": "sda1", "/": "sda2"}
    results = mount_in_order(requests, recorder, max_workers=4)

    assert results == dict.fromkeys(requests, True)
    assert recorder.started()[0] == "/"
    assert recorder.position("end", "/") < recorder.position("start", "/boot")
    assert recorder.position("end", "/boot") < recorder.position("start", "/boot/efi")
    assert sorted(recorder.started()) == sorted(requests)


def test_siblings_run_in_parallel() -> None:
    siblings = ["/boot", "/home", "/srv", "/var"]
    recorder = Recorder(barrier=threading.Barrier(len(siblings), timeout=10))
    requests = {"/": "a", **{mp: f"dev{mp}" for mp in siblings}, "/var/log": "b"}
    results = mount_in_order(requests, recorder, max_workers=len(siblings))

    assert results == dict.fromkeys(requests, True)
    # A deeper level starts only once every mount of the level above has ended.
    last_sibling_end = max(recorder.position("end", mp) for mp in siblings)
    assert recorder.position("start", "/var/log") > last_sibling_end


def test_one_worker_runs_everything_in_turn() -> None:
    recorder = Recorder()
    requests = {"/": "a", "/boot": "b", "/home": "c"}
    assert mount_in_order(requests, recorder, max_workers=1) == dict.fromkeys(requests, True)
    starts = [i for i, (what, _) in enumerate(recorder.events) if what == "start"]
    ends = [i for i, (what, _) in enumerate(recorder.events) if what == "end"]
    assert all(end == start + 1 for start, end in zip(starts, ends, strict=True))


def test_a_failure_stops_only_its_own_subtree() -> None:
    recorder = Recorder(failing=("/home",))
    requests = {
        "/": "a",
        "/home": "b",
        "/home/alice": "c",
        "/home/alice/data": "d",
        "/srv": "e",
        "/srv/www": "f",
        "/homework": "g",  # a sibling whose name only starts like /home
    }
    results = mount_in_order(requests, recorder)

    assert results == {
        "/": True,
        "/home": False,
        "/home/alice": False,
        "/home/alice/data": False,
        "/srv": True,
        "/srv/www": True,
        "/homework": True,
    }
    assert "/home/alice" not in recorder.started()
    assert "/home/alice/data" not in recorder.started()


def test_a_failed_root_fails_everything_below_it() -> None:
    recorder = Recorder(failing=("/",))
    results = mount_in_order({"/": "a", "/boot": "b", "/a/b/c": "c"}, recorder)
    assert results == {"/": False, "/boot": False, "/a/b/c": False}
    assert recorder.started() == ["/"]


def test_unexpected_errors_are_not_swallowed() -> None:
    def broken(device: str, mountpoint: str) -> None:
        raise TypeError("a bug, not a mount failure")

    with pytest.raises(TypeError, match="a bug"):
        mount_in_order({"/": "a"}, broken)


def test_nothing_to_mount() -> None:
    assert mount_in_order({}, Recorder()) == {}
