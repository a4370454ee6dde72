"""Mounting four filesystems at once against one after another.

One handle on the GPT guest mounts /, /boot, /home and /srv/data (ext4, ext4, xfs, exFAT
through FUSE) with ``mount_all_parallel``, first with four workers, then with one, and
unmounts between rounds; the modes alternate. Parents still go before children, so only
mounts at the same depth overlap. Lower is better; the ratio shows what parallelism buys.

Run as root: .venv/bin/python bench/bench_mount_parallel.py [-n ROUNDS] [--image-dir DIR]
"""

from __future__ import annotations

import benchlib
from benchlib import BenchGuest, report, teardown, verdict

from vmcraft import VMCraft

WORKERS = {"parallel (4 workers)": 4, "sequential (1 worker)": 1}


def timed_mount(g: VMCraft, guest: BenchGuest, workers: int) -> float:
    """Time the mounts, not the unmounts; a Ctrl-C waits for both."""
    with benchlib.deferred_interrupts():
        elapsed = benchlib.time_call(lambda: _mount_all(g, guest, workers))
        g.umount_all()
    return elapsed


def _mount_all(g: VMCraft, guest: BenchGuest, workers: int) -> None:
    results = g.mount_all_parallel(guest.mountpoints, max_workers=workers, readonly=True)
    failed = [mp for mp, ok in results.items() if not ok]
    if failed:
        raise SystemExit(f"could not mount {', '.join(failed)} (run with logging to see why)")


def main() -> int:
    parser = benchlib.common_arguments(__doc__.splitlines()[0], rounds=15)
    args = parser.parse_args()
    samples: dict[str, list[float]] = {name: [] for name in WORKERS}

    with benchlib.bench_guest(args.image_dir) as guest, teardown() as stack:
        g = stack.enter_context(VMCraft())
        g.add_drive_opts(str(guest.path), format="qcow2", readonly=True)
        g.launch()
        for workers in WORKERS.values():
            timed_mount(g, guest, workers)  # warm-up: blkid's cache, the page cache

        for index in range(args.rounds):
            order = list(WORKERS) if index % 2 == 0 else list(reversed(WORKERS))
            for name in order:
                samples[name].append(timed_mount(g, guest, WORKERS[name]))

    print(f"mount_all_parallel of {len(guest.mountpoints)} filesystems, {args.rounds} rounds:")
    parallel = report("parallel (4 workers)", samples["parallel (4 workers)"])
    sequential = report("sequential (1 worker)", samples["sequential (1 worker)"])
    ratio = parallel / sequential
    verdict("parallel / sequential", ratio, "< 1", ratio < 1)
    return 0


if __name__ == "__main__":
    benchlib.run_main(main)
