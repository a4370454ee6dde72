"""Open, mount and read a guest: VMCraft against the same job done with host tools by hand.

Each round opens the qcow2 guest cold, mounts its LVM root and /boot read-only, reads two
files and releases everything. VMCraft does it through its handle; the baseline runs the
host tools a person would (qemu-storage-daemon FUSE export, losetup, partx, pvs/lvs to find
the LV's offset, mount) straight from subprocess. The two alternate, and which goes first
alternates too, so neither profits from the other's warm caches. Target: VMCraft's median
at most 1.5x the baseline's.

Run as root: .venv/bin/python bench/bench_open.py [-n ROUNDS] [--image-dir DIR]
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import benchlib
from benchlib import BenchGuest, alternate, report, teardown, verdict

from vmcraft import VMCraft

TARGET_RATIO = 1.5
FILES = ("/etc/hostname", "/boot/grub/grub.cfg")
COMMAND_TIMEOUT_S = 60
READY_TIMEOUT_S = 15
_ENV = {**os.environ, "LC_ALL": "C", "LVM_SUPPRESS_FD_WARNINGS": "1"}


def with_vmcraft(guest: BenchGuest) -> list[bytes]:
    with teardown() as stack:
        g = stack.enter_context(VMCraft())
        g.add_drive_opts(str(guest.path), format="qcow2", readonly=True)
        g.launch()
        g.mount_ro(guest.mountpoints["/"], "/")
        g.mount_ro(guest.mountpoints["/boot"], "/boot")
        return [g.read_file(path) for path in FILES]


# ---------------------------------------------------------------- the baseline, by hand


def run(*argv: str | Path) -> str:
    result = subprocess.run(
        [str(a) for a in argv],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        env=_ENV,
        timeout=COMMAND_TIMEOUT_S,
        check=False,
    )
    if result.returncode != 0:
        stderr = result.stderr.decode(errors="replace").strip()
        raise RuntimeError(f"{argv[0]} exited {result.returncode}: {stderr}")
    return result.stdout.decode()


def with_host_tools(guest: BenchGuest) -> list[bytes]:
    with teardown() as stack:
        work = Path(tempfile.mkdtemp(prefix="vmcraft-baseline-"))
        stack.callback(shutil.rmtree, work, ignore_errors=True)

        export = export_image(stack, guest.path, work)
        disk = attach(stack, export)
        add_partitions(stack, disk)

        offset, size = lv_range(disk, benchlib.VG, "root")
        lv = attach(stack, export, "-o", str(offset), "--sizelimit", str(size))

        root = work / "root"
        root.mkdir()
        mount(stack, lv, root)
        mount(stack, f"{disk}p1", root / "boot")
        return [(root / path.lstrip("/")).read_bytes() for path in FILES]


def export_image(stack: ExitStack, image: Path, work: Path) -> Path:
    """Export the qcow2 as a raw file with qemu-storage-daemon; ready once its pidfile is."""
    export, pidfile = work / "disk.raw", work / "qsd.pid"
    export.touch()
    argv = [
        "qemu-storage-daemon", "--pidfile", str(pidfile),
        "--blockdev", f"driver=file,node-name=f0,filename={image},read-only=on",
        "--blockdev", "driver=qcow2,node-name=d0,file=f0,read-only=on",
        "--export", f"type=fuse,id=e0,node-name=d0,mountpoint={export},writable=off",
    ]  # fmt: skip
    daemon = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C must not stop it before the loops on it are gone
    )
    stack.callback(stop, daemon)

    deadline = time.monotonic() + READY_TIMEOUT_S
    while not pidfile.exists():
        if daemon.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"qemu-storage-daemon did not export {image}")
        time.sleep(0.002)
    return export


def stop(daemon: subprocess.Popen[bytes]) -> None:
    daemon.terminate()
    try:
        daemon.wait(READY_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        daemon.kill()
        daemon.wait()


def attach(stack: ExitStack, backing: Path, *options: str) -> str:
    device = run("losetup", "-f", "--show", "-r", *options, backing).strip()
    stack.callback(run, "losetup", "-d", device)
    return device


def add_partitions(stack: ExitStack, disk: str) -> None:
    # A careful script on a shared host: a previous user of this loop number may have left
    # its partition nodes behind, and another process's brief open of a node makes partx -d
    # fail with EBUSY.
    if any(Path(f"/sys/class/block/{Path(disk).name}").glob("*p[0-9]*")):
        run("partx", "-d", disk)
    run("partx", "-a", disk)
    stack.callback(retried, "partx", "-d", disk)


def retried(*argv: str, attempts: int = 5) -> None:
    for attempt in range(1, attempts + 1):
        try:
            run(*argv)
            return
        except RuntimeError:
            if attempt == attempts:
                raise
            time.sleep(0.02 * attempt)


def lv_range(disk: str, vg: str, lv: str) -> tuple[int, int]:
    """Where an LV lies on the disk, in bytes, as pvs and lvs report it."""
    pv = f"{disk}p2"
    pv_start = int(Path(f"/sys/class/block/{Path(pv).name}/start").read_text()) * 512
    pe_start = int(lvm_report("pvs", pv, "pv", "-o", "pe_start", pv)[0]["pe_start"])
    fields = "lv_name,seg_pe_ranges,seg_size_pe,vg_extent_size"
    rows = lvm_report("lvs", pv, "lv", "-o", fields, vg)
    row = next(r for r in rows if r["lv_name"] == lv)
    extent_size = int(row["vg_extent_size"])
    first_pe = int(row["seg_pe_ranges"].rsplit(":", 1)[1].split("-")[0])
    offset = pv_start + pe_start + first_pe * extent_size
    return offset, int(row["seg_size_pe"]) * extent_size


def lvm_report(command: str, pv: str, kind: str, *args: str) -> list[dict[str, str]]:
    out = run(
        command, "--devices", pv, "--readonly", "--reportformat", "json",
        "--units", "b", "--nosuffix", *args,
    )  # fmt: skip
    rows: list[dict[str, str]] = json.loads(out)["report"][0][kind]
    return rows


def mount(stack: ExitStack, device: str, target: Path) -> None:
    run("mount", "-o", "ro", device, target)
    stack.callback(run, "umount", target)


# ---------------------------------------------------------------- the comparison


def main() -> int:
    parser = benchlib.common_arguments(__doc__.splitlines()[0], rounds=15)
    args = parser.parse_args()

    with benchlib.bench_guest(args.image_dir) as guest:
        expected = with_host_tools(guest)
        if with_vmcraft(guest) != expected:
            raise SystemExit("VMCraft and the baseline read different bytes")

        jobs = {"vmcraft": with_vmcraft, "host tools": with_host_tools}
        samples = alternate(jobs, guest, args.rounds)

    print(f"open + mount root and /boot + read 2 files + close, {args.rounds} rounds:")
    ours = report("vmcraft", samples["vmcraft"])
    theirs = report("host tools (baseline)", samples["host tools"])
    ratio = ours / theirs
    verdict("vmcraft / baseline", ratio, f"<= {TARGET_RATIO}", ratio <= TARGET_RATIO)
    return 0


if __name__ == "__main__":
    benchlib.run_main(main)
