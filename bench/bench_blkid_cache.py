"""blkid through the handle's cache: a hit against a miss that runs blkid.

For each filesystem of the GPT guest, ``g.blkid(dev, use_cache=False)`` (runs blkid) and
``g.blkid(dev)`` (served from the cache after the first call) are repeated and timed one
call at a time. Target: a miss costs at least 50x a hit.

Run as root: .venv/bin/python bench/bench_blkid_cache.py [-n ROUNDS] [--image-dir DIR]
"""

from __future__ import annotations

import functools

import benchlib
from benchlib import report, teardown, time_call, verdict

from vmcraft import VMCraft

TARGET_RATIO = 50


def main() -> int:
    parser = benchlib.common_arguments(__doc__.splitlines()[0], rounds=50)
    args = parser.parse_args()
    misses: list[float] = []
    hits: list[float] = []

    with benchlib.bench_guest(args.image_dir) as guest, teardown() as stack:
        g = stack.enter_context(VMCraft())
        g.add_drive_opts(str(guest.path), format="qcow2", readonly=True)
        g.launch()
        devices = list(guest.mountpoints.values())
        for device in devices:
            expected = g.blkid(device, use_cache=False)
            if g.blkid(device) != expected:
                raise SystemExit(f"the cached blkid of {device} differs from a fresh one")

        for _ in range(args.rounds):
            for device in devices:
                misses.append(time_call(functools.partial(g.blkid, device, use_cache=False)))
                hits.append(time_call(functools.partial(g.blkid, device)))
        stats = g.get_cache_stats()["blkid"]

    print(f"blkid of {len(devices)} devices, {args.rounds} rounds each:")
    miss = report("miss (use_cache=False)", misses)
    hit = report("hit (cached)", hits)
    ratio = miss / hit
    verdict("miss / hit", ratio, f">= {TARGET_RATIO}", ratio >= TARGET_RATIO)
    print(f"  cache stats: {stats}")
    return 0


if __name__ == "__main__":
    benchlib.run_main(main)
