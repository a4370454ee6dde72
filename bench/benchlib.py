"""What the benchmarks share: the guest image, the timing loop, and a teardown Ctrl-C can't cut.

The guest comes from the test suite's own recipe (tests/guests.py), so the benchmarks measure
the same kind of image the tests check. Everything a benchmark creates is pushed on the
ExitStack of :func:`teardown` and released in reverse order; a Ctrl-C is acted on only
between rounds and after teardowns (see :func:`run_main`), and SIGTERM unwinds the same way.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))

import guests  # noqa: E402  (tests/guests.py, found through the path set above)

GPT_IMAGE = "gpt-lvm.qcow2"
_CHILD_MARK = "VMCRAFT_BENCH_CHILD"
VG = "vg0"


@dataclass(frozen=True)
class BenchGuest:
    """The benchmark guest: a qcow2 with GPT, /boot on sda1, LVM root and home on sda2."""

    path: Path
    mountpoints: dict[str, str]  # guest mountpoint -> guest device


_deferring: list[bool] = []
"""Not empty while interrupts are deferred, so that nested blocks leave it to the outer one."""


@contextlib.contextmanager
def deferred_interrupts() -> Iterator[None]:
    """Hold Ctrl-C back for the length of the block, then act on it (nesting is allowed)."""
    if _deferring:
        yield
        return

    arrived: list[int] = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: arrived.append(signum))
    _deferring.append(True)
    try:
        yield
    finally:
        _deferring.pop()
        signal.signal(signal.SIGINT, previous)
    if arrived:
        raise KeyboardInterrupt


@contextlib.contextmanager
def teardown() -> Iterator[ExitStack]:
    """An ExitStack whose unwinding Ctrl-C does not cut short: it is acted on afterwards."""
    stack = ExitStack()
    try:
        yield stack
    finally:
        with deferred_interrupts():
            stack.close()


def run_main(main: Callable[[], int]) -> None:
    """Run a benchmark's main() in a child of its own session, and exit with its status.

    A terminal's Ctrl-C goes to every process of the foreground group: it would kill host
    tools halfway (a loop device attached but not yet recorded, a mount made but not yet
    known). So the work runs in a new session, where no host tool sees that signal; this
    process only forwards it (and SIGTERM, as SIGINT) to the benchmark, which acts on it
    between rounds, once what the round made is released.
    """
    if os.environ.get(_CHILD_MARK) != "1":
        raise SystemExit(_supervise())

    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        status = main()
    except KeyboardInterrupt:
        print("interrupted; everything the benchmark made was released", file=sys.stderr)
        status = 130
    raise SystemExit(status)


def _supervise() -> int:
    argv = [sys.executable, sys.argv[0], *sys.argv[1:]]
    env = {**os.environ, _CHILD_MARK: "1"}
    child = subprocess.Popen(argv, env=env, start_new_session=True)

    def forward(signum: int, frame: FrameType | None) -> None:
        child.send_signal(signal.SIGINT)  # SIGTERM too: stop at the next safe point

    signal.signal(signal.SIGINT, forward)
    signal.signal(signal.SIGTERM, forward)
    status = child.wait()
    return 128 - status if status < 0 else status


def _exit_on_sigterm(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def common_arguments(description: str, rounds: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "-n", "--rounds", type=int, default=rounds, help=f"rounds (default {rounds})"
    )
    parser.add_argument(
        "--image-dir",
        type=Path,
        help="keep the guest image here and reuse it next time (default: a temporary"
        " folder, removed at exit)",
    )
    return parser


@contextlib.contextmanager
def bench_guest(image_dir: Path | None) -> Iterator[BenchGuest]:
    """Build the guest (or reuse it from ``image_dir``); remove it after unless kept."""
    if os.geteuid() != 0:
        sys.exit("benchmarks need root: they attach loop devices and mount filesystems")

    with teardown() as stack:
        if image_dir is None:
            work = Path(tempfile.mkdtemp(prefix="vmcraft-bench-"))
            stack.callback(shutil.rmtree, work, ignore_errors=True)
        else:
            work = image_dir
            work.mkdir(parents=True, exist_ok=True)
        yield BenchGuest(_build_or_reuse(work), _gpt_mountpoints())


def _gpt_mountpoints() -> dict[str, str]:
    return {
        "/": f"/dev/{VG}/root",
        "/boot": "/dev/sda1",
        "/home": f"/dev/{VG}/home",
        "/srv/data": "/dev/sda3",
    }


def _build_or_reuse(work: Path) -> Path:
    image = work / GPT_IMAGE
    if image.exists():
        print(f"reusing {image}")
        return image

    started = time.perf_counter()
    scratch = work / "build"
    with deferred_interrupts():  # the recipe is not interruptible halfway: about a second
        try:
            raw = guests.build_gpt_lvm_guest(scratch, vg_name=VG)
            qcow2 = guests.convert(raw, "qcow2", scratch)
            qcow2.path.rename(image)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)
    print(f"built {image} in {time.perf_counter() - started:.2f} s")
    return image


def time_call(job: Callable[[], object]) -> float:
    """Seconds one call of ``job`` takes; a Ctrl-C meanwhile is acted on after it."""
    with deferred_interrupts():
        started = time.perf_counter()
        job()
        return time.perf_counter() - started


def alternate(
    jobs: dict[str, Callable[[BenchGuest], object]], guest: BenchGuest, rounds: int
) -> dict[str, list[float]]:
    """Time each job once a round, in turns (forward, then backward), so that no job always
    runs right after the same other one and rides on the caches it warmed."""
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    for index in range(rounds):
        order = list(jobs) if index % 2 == 0 else list(reversed(jobs))
        for name in order:
            samples[name].append(time_call(functools.partial(jobs[name], guest)))
    return samples


def report(name: str, samples: list[float]) -> float:
    """Print a line of figures for ``samples`` (seconds); return the median in ms."""
    ms = sorted(s * 1000 for s in samples)
    median = statistics.median(ms)
    print(
        f"  {name:<28} median {median:9.3f} ms   min {ms[0]:9.3f}   max {ms[-1]:9.3f}"
        f"   (n={len(ms)})"
    )
    return median


def verdict(label: str, ratio: float, target: str, met: bool) -> None:
    print(f"  {label}: {ratio:.2f}x  (target {target}: {'met' if met else 'NOT met'})")
