"""The guest builders make what their manifests say, and the leak guard catches leaks.

Every check reads the image through a route other than the one that built it:
sfdisk --json for tables, blkid -p for signatures, and per filesystem a reader the
builder did not use to write (kernel mounts, mtype, ntfscat, debugfs, exfat-fuse).

Host tools: sfdisk, blkid, losetup, partx, mount, mtype, ntfscat, debugfs, dumpe2fs,
mount.exfat-fuse, ntfs-3g, lvs, qemu-img.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import guests
import pytest
from guests import FsSpec, Guest

pytestmark = pytest.mark.requires_root
CopyGuest = Callable[[Guest], Guest]

ALL_GUESTS = (
    "mbr_guest",
    "gpt_lvm_guest",
    "dirty_ext4_guest",
    "dirty_xfs_guest",
    "dirty_ntfs_guest",
    "hostile_guest",
)
SFDISK_LABELS = {"dos": "msdos", "gpt": "gpt"}
READ_ONLY_OPTIONS = {"ext4": "ro,noload", "xfs": "ro,norecovery", "btrfs": "ro,norecovery"}


@pytest.fixture(params=ALL_GUESTS)
def any_guest(request: pytest.FixtureRequest) -> Guest:
    guest: Guest = request.getfixturevalue(request.param)
    return guest


@contextlib.contextmanager
def block_devices(guest: Guest) -> Iterator[dict[str, str]]:
    """Read-only host block devices for every guest device in the manifest."""
    with guests.loop_device(guest.path, read_only=True, partitions=bool(guest.table)) as loop:
        devices = {name: f"{loop}p{name.removeprefix('/dev/sda')}" for name in guest.partitions}
        if not guest.table:
            devices["/dev/sda"] = loop
        with contextlib.ExitStack() as stack:
            for vg_name in guest.volume_groups:
                devices |= stack.enter_context(_logical_volumes(guest, devices, vg_name))
            yield devices


@contextlib.contextmanager
def _logical_volumes(
    guest: Guest, devices: dict[str, str], vg_name: str
) -> Iterator[dict[str, str]]:
    pvs = [s.device for s in guest.filesystems.values() if s.fstype == "LVM2_member"]
    (pv,) = pvs
    extents = guests.logical_volume_extents(devices[pv], vg_name)
    with contextlib.ExitStack() as stack:
        yield {
            f"/dev/{vg_name}/{lv}": stack.enter_context(
                guests.loop_device(devices[pv], read_only=True, offset=offset, size=size)
            )
            for lv, (offset, size) in extents.items()
        }


def probe(device: str) -> dict[str, str]:
    output = guests.run(["blkid", "-p", "-o", "export", device]).stdout.decode()
    return dict(line.split("=", 1) for line in output.splitlines() if "=" in line)


# ---------------------------------------------------------------- tables and signatures


def test_partition_table_matches_manifest(any_guest: Guest) -> None:
    if any_guest.table is None:
        assert probe(str(any_guest.path)).get("PTTYPE") is None
        assert any_guest.partitions == {}
        return

    table = json.loads(guests.run(["sfdisk", "--json", str(any_guest.path)]).stdout)
    table = table["partitiontable"]
    found = {
        "/dev/sda" + entry["node"].removeprefix(str(any_guest.path)): (
            entry["start"] * guests.SECTOR_SIZE,
            entry["size"] * guests.SECTOR_SIZE,
        )
        for entry in table["partitions"]
    }

    assert SFDISK_LABELS[table["label"]] == any_guest.table
    assert found == any_guest.partitions


def test_signatures_match_manifest(any_guest: Guest) -> None:
    with block_devices(any_guest) as devices:
        for name, spec in any_guest.filesystems.items():
            found = probe(devices[name])

            assert found.get("TYPE") == spec.fstype, name
            assert found.get("LABEL") == spec.label, name
            assert found.get("UUID") == spec.uuid, name


def test_every_partition_but_the_extended_has_a_spec(mbr_guest: Guest) -> None:
    assert set(mbr_guest.partitions) - set(mbr_guest.filesystems) == {"/dev/sda4"}
    assert set(mbr_guest.mountpoints.values()) <= set(mbr_guest.filesystems)


# ---------------------------------------------------------------- file contents


def test_files_read_back(any_guest: Guest, tmp_path: Path) -> None:
    with block_devices(any_guest) as devices:
        for name, spec in any_guest.filesystems.items():
            if spec.files or spec.symlinks or spec.directories:
                mountpoint = tmp_path / name.replace("/", "-")
                read_back(any_guest, name, spec, devices[name], mountpoint)


def read_back(guest: Guest, name: str, spec: FsSpec, device: str, mountpoint: Path) -> None:
    if spec.fstype in READ_ONLY_OPTIONS:
        with guests.mounted(device, mountpoint, READ_ONLY_OPTIONS[spec.fstype]) as root:
            assert_tree(root, spec)
    elif spec.fstype == "vfat":
        start, _ = guest.partitions[name]
        for path, content in spec.files.items():
            drive = f"{guest.path}@@{start}"
            assert guests.run(["mtype", "-i", drive, f"::{path}"]).stdout == content, path
    elif spec.fstype == "ntfs":
        for path, content in spec.files.items():
            assert guests.run(["ntfscat", device, path]).stdout == content, path
    elif spec.fstype == "exfat":
        argv = ["mount.exfat-fuse", "-d", "-o", "ro", device, str(mountpoint)]
        with guests.fuse_mounted(argv, mountpoint, mountpoint.parent / "exfat.log") as root:
            assert_tree(root, spec)
    else:
        pytest.fail(f"no reader for {spec.fstype} on {name}")


def assert_tree(root: Path, spec: FsSpec) -> None:
    for path, content in spec.files.items():
        assert (root / path.lstrip("/")).read_bytes() == content, path
    for path, target in spec.symlinks.items():
        assert os.readlink(root / path.lstrip("/")) == target, path  # never followed
    for path in spec.directories:
        assert (root / path.lstrip("/")).is_dir(), path
    for path in spec.journal_files:
        assert not (root / path.lstrip("/")).exists(), f"{path} is on disk without replay"


def test_ext4_files_read_back_with_debugfs(mbr_guest: Guest) -> None:
    spec = mbr_guest.filesystems["/dev/sda1"]
    with block_devices(mbr_guest) as devices:
        for path, content in spec.files.items():
            output = guests.run(["debugfs", "-R", f"cat {path}", devices["/dev/sda1"]]).stdout

            assert output == content, path


def test_fstab_names_the_manifest_mountpoints(mbr_guest: Guest, gpt_lvm_guest: Guest) -> None:
    for guest in (mbr_guest, gpt_lvm_guest):
        root = guest.filesystems[guest.mountpoints["/"]]
        fstab = root.files["/etc/fstab"].decode()
        targets = {line.split()[1] for line in fstab.splitlines()} - {"none"}

        assert targets == set(guest.mountpoints)


# ---------------------------------------------------------------- dirty guests


def test_dirty_ext4_needs_recovery(
    dirty_ext4_guest: Guest, writable_copy: CopyGuest, tmp_path: Path
) -> None:
    header = guests.run(["dumpe2fs", "-h", str(dirty_ext4_guest.path)]).stdout.decode()
    assert "needs_recovery" in header

    with guests.loop_device(dirty_ext4_guest.path, read_only=True) as loop:
        argv = ["mount", "-o", "ro", loop, str(tmp_path)]
        assert subprocess.run(argv, capture_output=True, check=False).returncode != 0

    copy = writable_copy(dirty_ext4_guest)
    with (
        guests.loop_device(copy.path) as loop,
        guests.mounted(loop, tmp_path / "m") as root,
    ):
        assert_replayed(root, copy.filesystems["/dev/sda"])


def test_dirty_xfs_log_needs_replay(
    dirty_xfs_guest: Guest, writable_copy: CopyGuest, tmp_path: Path
) -> None:
    with guests.loop_device(dirty_xfs_guest.path, read_only=True, partitions=True) as loop:
        refused = subprocess.run(
            ["mount", "-o", "ro", f"{loop}p1", str(tmp_path)], capture_output=True, check=False
        )
        assert refused.returncode != 0

    copy = writable_copy(dirty_xfs_guest)
    with (
        guests.loop_device(copy.path, partitions=True) as loop,
        guests.mounted(f"{loop}p1", tmp_path / "m") as root,
    ):
        assert_replayed(root, copy.filesystems["/dev/sda1"])


def assert_replayed(root: Path, spec: FsSpec) -> None:
    for path, content in {**spec.files, **spec.journal_files}.items():
        assert (root / path.lstrip("/")).read_bytes() == content, path


def test_ntfs_3g_mounts_hibernated_ntfs_read_only(
    dirty_ntfs_guest: Guest, writable_copy: CopyGuest, tmp_path: Path
) -> None:
    copy = writable_copy(dirty_ntfs_guest)
    digest = hashlib.sha256(copy.path.read_bytes()).hexdigest()
    mountpoint = tmp_path / "m"
    log_path = tmp_path / "ntfs-3g.log"

    with guests.loop_device(copy.path, partitions=True) as loop:
        argv = ["ntfs-3g", "-o", "rw,no_detach", f"{loop}p1", str(mountpoint)]
        with guests.fuse_mounted(argv, mountpoint, log_path):
            entry = guests.mount_entry(mountpoint)
            assert entry is not None
            assert entry.options.split(",")[0] == "ro"

    assert "Windows is hibernated" in log_path.read_text()
    assert hashlib.sha256(copy.path.read_bytes()).hexdigest() == digest


# ---------------------------------------------------------------- formats and copies


def test_converted_image_matches_raw(mbr_guest: Guest, mbr_guest_any_format: Guest) -> None:
    assert_same_disk(mbr_guest, mbr_guest_any_format)


def test_converted_lvm_image_matches_raw(
    gpt_lvm_guest: Guest, gpt_lvm_guest_any_format: Guest
) -> None:
    assert_same_disk(gpt_lvm_guest, gpt_lvm_guest_any_format)


@pytest.mark.parametrize("fmt", ["vpc", "vdi"])
def test_convert_to_other_formats(hostile_guest: Guest, fmt: str, tmp_path: Path) -> None:
    assert_same_disk(hostile_guest, guests.convert(hostile_guest, fmt, tmp_path))


def assert_same_disk(raw: Guest, other: Guest) -> None:
    info_output = guests.run(["qemu-img", "info", "--output=json", str(other.path)]).stdout
    info = json.loads(info_output)

    assert info["format"] == other.format
    assert info["virtual-size"] == raw.size
    argv = ["qemu-img", "compare", "-f", "raw", "-F", other.format]
    guests.run([*argv, str(raw.path), str(other.path)])
    assert other.filesystems == raw.filesystems


def test_writable_copy_is_sparse_and_independent(
    hostile_guest: Guest, writable_copy: CopyGuest
) -> None:
    copy = writable_copy(hostile_guest)
    with copy.path.open("r+b") as image:
        image.write(b"scribble")

    assert hostile_guest.path.read_bytes()[:8] != b"scribble"
    assert copy.path.stat().st_blocks * 512 < copy.size
    assert writable_copy(hostile_guest).path != copy.path


# ---------------------------------------------------------------- leak guard


LEAKY_TESTS = """
    import os
    import shutil
    import subprocess
    from pathlib import Path

    import pytest

    RECORD = Path(os.environ["LEAK_RECORD"])


    def test_releases_what_it_takes(tmp_path):
        image = tmp_path / "clean.img"
        image.write_bytes(bytes(1 << 20))
        argv = ["losetup", "--find", "--show", str(image)]
        device = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        subprocess.run(["losetup", "--detach", device.strip()], check=True)


    def test_leaks_a_loop_device(tmp_path):
        image = tmp_path / "leak.img"
        image.write_bytes(bytes(1 << 20))
        argv = ["losetup", "--find", "--show", str(image)]
        device = subprocess.run(argv, check=True, capture_output=True, text=True).stdout
        (RECORD / "loop").write_text(device.strip() + " " + str(image))


    def test_leaks_a_mount(tmp_path):
        mountpoint = tmp_path / "mnt"
        mountpoint.mkdir()
        subprocess.run(["mount", "-t", "tmpfs", "leaktest", str(mountpoint)], check=True)
        (RECORD / "mount").write_text(str(mountpoint))


    def test_leaks_a_process(tmp_path):
        fake = tmp_path / "qemu-nbd"
        shutil.copy("/bin/sleep", fake)
        process = subprocess.Popen([str(fake), "300"])
        (RECORD / "process").write_text(f"{process.pid} {fake}")


    @pytest.mark.requires_tool("vmcraft-no-such-tool")
    def test_skipped_for_a_missing_tool():
        raise AssertionError("should have been skipped")
"""


def test_leak_guard_names_what_an_inner_session_leaked(tmp_path: Path) -> None:
    here = Path(__file__).parent
    for name in ("conftest.py", "guests.py"):
        shutil.copy(here / name, tmp_path / name)
    (tmp_path / "test_leaky.py").write_text(textwrap.dedent(LEAKY_TESTS))
    record = tmp_path / "record"
    record.mkdir()

    try:
        result = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
            cwd=tmp_path,
            env={**os.environ, "LEAK_RECORD": str(record)},
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        loop_device, mountpoint, pid = release_inner_leaks(record)

    output = result.stdout + result.stderr
    assert result.returncode == pytest.ExitCode.TESTS_FAILED, output
    assert "4 passed, 1 skipped, 3 errors" in output, output  # 3 pass, then leak
    assert f"loop device {loop_device} " in output, output
    assert f"mount {mountpoint} (tmpfs" in output, output
    assert f"process {pid} " in output, output
    assert "left behind since session start" in output, output


def release_inner_leaks(record: Path) -> tuple[str, str, str]:
    """Undo what the inner session leaked, each by its own id after checking it."""
    loop_device, image = _recorded(record / "loop", 2)
    if loop_device and _backing_file(loop_device) == image:
        guests.run(["losetup", "--detach", loop_device])

    (mountpoint,) = _recorded(record / "mount", 1)
    entry = guests.mount_entry(Path(mountpoint)) if mountpoint else None
    if entry is not None and entry.source == "leaktest":
        guests.run(["umount", mountpoint])

    pid, fake = _recorded(record / "process", 2)
    if pid and _argv0(int(pid)) == fake:
        os.kill(int(pid), signal.SIGKILL)
    return loop_device, mountpoint, pid


def _recorded(path: Path, count: int) -> list[str]:
    return path.read_text().split() if path.exists() else [""] * count


def _backing_file(loop_device: str) -> str:
    path = Path(f"/sys/block/{Path(loop_device).name}/loop/backing_file")
    return path.read_text().strip() if path.exists() else ""


def _argv0(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except OSError:
        return ""
