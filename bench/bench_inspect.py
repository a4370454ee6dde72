"""Inspect a multi-filesystem qcow2 guest end to end: open, inspect_os, every get_*, close.

The guest is the benchmarks' GPT + LVM qcow2 (sda1 ext4 /boot, LVs root ext4 and home xfs,
sda3 exFAT): inspection mounts each filesystem read-only in a private folder, classifies
it and reads the root's release files, hostname, ELF header and fstab. To show what
inspection itself costs, the same open → close without inspecting is timed too; the two
alternate so that neither rides on the other's warm caches.

Run as root: .venv/bin/python bench/bench_inspect.py [-n ROUNDS] [--image-dir DIR]
"""

from __future__ import annotations

import benchlib
from benchlib import BenchGuest, alternate, report, teardown

from vmcraft import VMCraft

GETTERS = (
    "inspect_get_type",
    "inspect_get_distro",
    "inspect_get_product_name",
    "inspect_get_product_variant",
    "inspect_get_major_version",
    "inspect_get_minor_version",
    "inspect_get_arch",
    "inspect_get_hostname",
    "inspect_get_build_id",
    "inspect_get_osinfo",
    "inspect_get_package_format",
    "inspect_get_package_management",
    "inspect_get_mountpoints",
    "inspect_get_filesystems",
    "inspect_get_format",
    "inspect_get_drive_mappings",
)


def inspect_guest(guest: BenchGuest) -> dict[str, dict[str, object]]:
    """Open the guest, inspect it, ask every inspect_get_* of each root, close it."""
    with teardown() as stack:
        g = stack.enter_context(VMCraft())
        g.add_drive_opts(str(guest.path), format="qcow2", readonly=True)
        g.launch()
        return {root: {name: getattr(g, name)(root) for name in GETTERS} for root in g.inspect_os()}


def open_and_close(guest: BenchGuest) -> None:
    with teardown() as stack:
        g = stack.enter_context(VMCraft())
        g.add_drive_opts(str(guest.path), format="qcow2", readonly=True)
        g.launch()


def main() -> int:
    parser = benchlib.common_arguments(__doc__.splitlines()[0], rounds=15)
    args = parser.parse_args()

    with benchlib.bench_guest(args.image_dir) as guest:
        found = inspect_guest(guest)  # warm-up, and a check of what is measured
        if list(found) != [guest.mountpoints["/"]]:
            raise SystemExit(f"expected one root {guest.mountpoints['/']}, found {list(found)}")
        root = found[guest.mountpoints["/"]]
        print(f"root {guest.mountpoints['/']}: {root['inspect_get_distro']}, mountpoints")
        print(f"  {root['inspect_get_mountpoints']}")

        jobs = {"open+inspect+get_*+close": inspect_guest, "open+close": open_and_close}
        samples = alternate(jobs, guest, args.rounds)

    print(f"{args.rounds} rounds:")
    full = report("open+inspect+get_*+close", samples["open+inspect+get_*+close"])
    bare = report("open+close (no inspection)", samples["open+close"])
    print(f"  inspection itself: about {full - bare:.1f} ms of the median")
    return 0


if __name__ == "__main__":
    benchlib.run_main(main)
