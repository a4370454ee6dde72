"""The handle's life: calls in the wrong stage, and release of everything on every exit.

Failures inside ``launch`` are injected with a fake ``qemu-storage-daemon`` on PATH.
Signals and the atexit hook are tested in a child Python process that opens a qcow2 copy
of the hostile guest (so a qemu-storage-daemon, a loop device and mounts are involved);
after it ends, /sys/block, /proc/self/mountinfo and /proc must show none of them.

Host tools: qemu-img, qemu-storage-daemon, losetup, partx, mount, umount.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import selectors
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import guests
import pytest
from conftest import skip_unless_tools
from guests import Guest

from vmcraft import VMCraft
from vmcraft.errors import AttachError, ImageError, StateError

pytestmark = pytest.mark.requires_root

REPO_ROOT = Path(__file__).resolve().parents[2]
CHILD_READY_TIMEOUT_S = 60.0
CHILD_EXIT_TIMEOUT_S = 60.0
RELEASE_GRACE_S = 2.0
QSD = "qemu-storage-daemon"


# ---------------------------------------------------------------- what a process owns


@dataclasses.dataclass(frozen=True)
class Owned:
    """Loop devices, mounts and storage daemons whose files lie under one folder."""

    loops: frozenset[tuple[str, str]]  # (device, backing file)
    mounts: frozenset[tuple[int, str]]  # (mount id, mountpoint)
    daemons: frozenset[int]  # pids of qemu-storage-daemon

    def __sub__(self, other: Owned) -> Owned:
        return Owned(
            self.loops - other.loops, self.mounts - other.mounts, self.daemons - other.daemons
        )

    def __bool__(self) -> bool:
        return bool(self.loops or self.mounts or self.daemons)


def is_under(path: str, folder: str) -> bool:
    return path == folder or path.startswith(folder.rstrip("/") + "/")


def owned_under(folder: str) -> Owned:
    loops = set()
    for backing_file in Path("/sys/block").glob("loop*/loop/backing_file"):
        with contextlib.suppress(OSError):
            backing = backing_file.read_text().strip().removesuffix(" (deleted)")
            if is_under(backing, folder):
                loops.add((f"/dev/{backing_file.parts[3]}", backing))
    mounts = {
        (entry.mount_id, entry.mountpoint)
        for entry in guests.read_mountinfo()
        if is_under(entry.mountpoint, folder)
    }
    return Owned(frozenset(loops), frozenset(mounts), frozenset(_daemons_under(folder)))


def _daemons_under(folder: str) -> Iterator[int]:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            argv = Path(entry.path, "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if os.path.basename(argv[0]) == QSD and any(folder in arg for arg in argv):
            yield int(entry.name)


def session_temp() -> str:
    return tempfile.gettempdir()


def vmcraft_workdirs() -> set[str]:
    return {name for name in os.listdir(session_temp()) if name.startswith("vmcraft-")}


@pytest.fixture
def qcow2_guest(hostile_guest: Guest, tmp_path: Path) -> Guest:
    skip_unless_tools("qemu-img", QSD)
    return guests.convert(hostile_guest, "qcow2", tmp_path / "qcow2")


# ---------------------------------------------------------------- calls in the wrong stage


def test_calls_before_launch_raise_state_error() -> None:
    g = VMCraft()
    calls: list[tuple[str, Callable[[], object]]] = [
        ("list_devices", g.list_devices),
        ("list_partitions", g.list_partitions),
        ("list_filesystems", g.list_filesystems),
        ("mount", lambda: g.mount("/dev/sda1", "/")),
        ("mount", lambda: g.mount_ro("/dev/sda1", "/")),
        ("umount", lambda: g.umount("/")),
        ("cat", lambda: g.cat("/etc/hostname")),
        ("read_file", lambda: g.read_file("/etc/hostname")),
        ("write", lambda: g.write("/etc/hostname", b"x")),
        ("ls", lambda: g.ls("/")),
        ("exists", lambda: g.exists("/")),
        ("mkdir_p", lambda: g.mkdir_p("/x")),
        ("shutdown", g.shutdown),
    ]
    for name, call in calls:
        with pytest.raises(StateError, match=rf"^{name}: ") as caught:
            call()
        assert "launch" in str(caught.value), name
        assert isinstance(caught.value, RuntimeError)  # libguestfs callers catch this
    g.close()


def test_calls_after_close_raise_state_error(hostile_guest: Guest) -> None:
    g = VMCraft()
    g.add_drive_opts(str(hostile_guest.path), format="raw", readonly=True)
    g.launch()
    g.mount_ro("/dev/sda1", "/")
    g.close()

    calls: dict[str, Callable[[], object]] = {
        "add_drive_opts": lambda: g.add_drive_opts(str(hostile_guest.path)),
        "launch": g.launch,
        "list_devices": g.list_devices,
        "mount": lambda: g.mount_ro("/dev/sda1", "/"),
        "cat": lambda: g.cat("/etc/hostname"),
        "write": lambda: g.write("/x", b"x"),
        "ls": lambda: g.ls("/"),
    }
    for name, call in calls.items():
        with pytest.raises(StateError, match=rf"^{name}: the handle is closed$"):
            call()


def test_add_drive_after_launch_raises_state_error(hostile_guest: Guest) -> None:
    with VMCraft() as g:
        g.add_drive_opts(str(hostile_guest.path), format="raw", readonly=True)
        g.launch()
        with pytest.raises(StateError, match=r"^add_drive_opts: .*before launch\(\)"):
            g.add_drive_opts(str(hostile_guest.path), format="raw", readonly=True)
        with pytest.raises(StateError, match="add_drive"):
            g.add_drive_ro(str(hostile_guest.path))
        assert g.list_devices() == ["/dev/sda"]


def test_launch_twice_raises_state_error(hostile_guest: Guest) -> None:
    with VMCraft() as g:
        g.add_drive_opts(str(hostile_guest.path), format="raw", readonly=True)
        g.launch()
        with pytest.raises(StateError, match=r"^launch: .*already launched"):
            g.launch()
        assert g.list_devices() == ["/dev/sda"]


def test_launch_without_drives_raises_state_error(hostile_guest: Guest) -> None:
    before = vmcraft_workdirs()
    with VMCraft() as g:
        with pytest.raises(StateError, match="no drives"):
            g.launch()
        assert vmcraft_workdirs() == before
        # The handle is still usable: add a drive and launch.
        g.add_drive_opts(str(hostile_guest.path), format="raw", readonly=True)
        g.launch()
        assert g.list_devices() == ["/dev/sda"]


# ---------------------------------------------------------------- close and shutdown


def test_close_is_idempotent_in_every_stage(hostile_guest: Guest) -> None:
    never_launched = VMCraft()
    never_launched.close()
    never_launched.close()

    g = VMCraft()
    g.add_drive_opts(str(hostile_guest.path), format="raw", readonly=True)
    g.launch()
    g.mount_ro("/dev/sda1", "/")
    g.close()
    g.close()
    with g:
        pass  # __exit__ closes once more


def test_shutdown_then_close_releases_everything(hostile_guest: Guest) -> None:
    before = owned_under(session_temp())
    workdirs = vmcraft_workdirs()
    g = VMCraft()
    g.add_drive_opts(str(hostile_guest.path), format="raw", readonly=True)
    g.launch()
    g.mount_ro("/dev/sda1", "/")
    assert owned_under(session_temp()) - before

    g.shutdown()
    assert not wait_for_release(before)
    assert vmcraft_workdirs() == workdirs
    with pytest.raises(StateError, match="closed"):
        g.cat("/etc/hostname")
    g.close()
    g.close()


def test_with_block_left_by_an_exception_releases_everything(qcow2_guest: Guest) -> None:
    before = owned_under(session_temp())
    workdirs = vmcraft_workdirs()

    with pytest.raises(LookupError, match="raised in the block"), VMCraft() as g:
        g.add_drive_opts(str(qcow2_guest.path), format="qcow2", readonly=True)
        g.launch()
        g.mount_ro("/dev/sda1", "/")
        during = owned_under(session_temp()) - before
        assert during.loops and during.mounts and during.daemons
        raise LookupError("raised in the block")

    assert not wait_for_release(before)
    assert vmcraft_workdirs() == workdirs
    with pytest.raises(StateError, match="closed"):
        g.list_devices()


# ---------------------------------------------------------------- failures inside launch


@pytest.fixture
def fake_qsd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[str], Path]:
    """A factory: put a fake qemu-storage-daemon running ``script`` first on PATH.

    Returns the file where each start of the fake is recorded.
    """

    def install(script: str) -> Path:
        folder = tmp_path / "fake-bin"
        folder.mkdir(exist_ok=True)
        starts = folder / "starts"
        fake = folder / QSD
        fake.write_text(f'#!/bin/sh\necho "$$" >> {starts}\n{script}\n')
        fake.chmod(0o755)
        monkeypatch.setenv("PATH", f"{folder}:{os.environ['PATH']}")
        return starts

    return install


def test_failing_second_drive_leaves_nothing_behind(
    hostile_guest: Guest, qcow2_guest: Guest, fake_qsd: Callable[[str], Path]
) -> None:
    starts = fake_qsd('echo "fake: cannot export" >&2; exit 1')
    before = owned_under(session_temp())
    workdirs = vmcraft_workdirs()

    with VMCraft(attach_attempts=1) as g:
        g.add_drive_opts(str(hostile_guest.path), format="raw", readonly=True)
        g.add_drive_opts(str(qcow2_guest.path), format="qcow2", readonly=True)
        with pytest.raises(AttachError, match="cannot export") as caught:
            g.launch()
        assert isinstance(caught.value, ImageError)
        assert str(qcow2_guest.path) in str(caught.value)

        assert len(starts.read_text().split()) == 1  # attach_attempts=1: no retry
        assert not wait_for_release(before)
        assert vmcraft_workdirs() == workdirs
        with pytest.raises(StateError, match="launch"):
            g.list_devices()


def test_failed_launch_can_be_retried(
    hostile_guest: Guest,
    qcow2_guest: Guest,
    fake_qsd: Callable[[str], Path],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    starts = fake_qsd("exit 1")
    with VMCraft(attach_attempts=2, attach_base_backoff_s=0.0) as g:
        g.add_drive_opts(str(hostile_guest.path), format="raw", readonly=True)
        g.add_drive_opts(str(qcow2_guest.path), format="qcow2", readonly=True)
        with pytest.raises(AttachError):
            g.launch()
        assert len(starts.read_text().split()) == 2
        monkeypatch.undo()  # the real qemu-storage-daemon again

        g.launch()
        assert g.list_devices() == ["/dev/sda", "/dev/sdb"]
        assert g.list_filesystems() == {
            f"/dev/sd{disk}{n}": "ext4" for disk in "ab" for n in (1, 2)
        }
        g.mount_ro("/dev/sdb1", "/")
        assert g.cat("/etc/hostname") == "hostile\n"


def test_interrupt_inside_launch_leaves_nothing_behind(
    hostile_guest: Guest, qcow2_guest: Guest, fake_qsd: Callable[[str], Path]
) -> None:
    # The fake interrupts its parent (this process) and then waits to be stopped.
    starts = fake_qsd("kill -INT $PPID\nexec sleep 60")
    before = owned_under(session_temp())
    workdirs = vmcraft_workdirs()

    try:
        with VMCraft(attach_attempts=1) as g:
            g.add_drive_opts(str(hostile_guest.path), format="raw", readonly=True)
            g.add_drive_opts(str(qcow2_guest.path), format="qcow2", readonly=True)
            with pytest.raises(KeyboardInterrupt):
                g.launch()
                time.sleep(5)  # the signal may land just after launch() gave up
    finally:
        # NB: an interrupt inside Popen() loses the child; stop the fake by its own pid.
        for pid in map(int, starts.read_text().split()):
            with contextlib.suppress(OSError):
                if b"sleep" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)

    assert not wait_for_release(before)
    assert vmcraft_workdirs() == workdirs


def wait_for_release(before: Owned, grace_s: float = RELEASE_GRACE_S) -> Owned:
    """What is still held beyond ``before`` once a detach the kernel deferred is done.

    NB: losetup --detach of a loop device that udev is still probing only marks it for
    autoclear; it goes when the prober closes it (seen with util-linux 2.38, Linux 6.x).
    """
    deadline = time.monotonic() + grace_s
    left = owned_under(session_temp()) - before
    while left and time.monotonic() < deadline:
        time.sleep(0.05)
        left = owned_under(session_temp()) - before
    return left


# ---------------------------------------------------------------- signals and atexit

# The child opens the guest, prints its mountpoints, and waits for a line on stdin (which
# the signal tests never send); then it returns without closing anything.
CHILD = textwrap.dedent(
    """
    import json, sys
    from vmcraft import VMCraft

    image, how = sys.argv[1], sys.argv[2]

    def open_guest(g):
        g.add_drive_opts(image, format="qcow2", readonly=False)
        g.launch()
        g.mount("/dev/sda1", "/")
        g.mount_ro("/dev/sda2", "/data")
        g.write("/child-was-here", "yes\\n")
        print(json.dumps(g.mountpoints()), flush=True)
        sys.stdin.readline()

    def local_handle():
        g = VMCraft()
        open_guest(g)

    if how == "with":
        with VMCraft() as g:
            open_guest(g)
    elif how == "local":
        local_handle()
    elif how == "global":
        g = VMCraft()
        open_guest(g)
    """
)


@dataclasses.dataclass
class ChildRun:
    process: subprocess.Popen[str]
    mountpoints: dict[str, str]
    during: Owned


@contextlib.contextmanager
def child_with_guest(image: Path, how: str) -> Iterator[ChildRun]:
    """Start the child; yield once it has mounted the guest; reap it in any case."""
    env = dict(os.environ)  # TMPDIR and the session token carry over
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    before = owned_under(session_temp())
    process = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(image), how],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = _read_line(process, CHILD_READY_TIMEOUT_S)
        yield ChildRun(process, json.loads(line), owned_under(session_temp()) - before)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(CHILD_EXIT_TIMEOUT_S)


def _read_line(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    with selectors.DefaultSelector() as selector:
        selector.register(process.stdout, selectors.EVENT_READ)
        if not selector.select(timeout):
            raise AssertionError(f"the child did not get ready in {timeout:g} s")
    line = process.stdout.readline()
    if not line:
        stderr = process.stderr.read() if process.stderr else ""
        raise AssertionError(f"the child exited {process.wait()} early:\n{stderr}")
    return line


def assert_released(run: ChildRun, image: Path) -> None:
    assert run.during.loops, "the child set up no loop device"
    assert len(run.during.mounts) >= 3, "the child mounted no export, / and /data"
    assert run.during.daemons, "the child started no qemu-storage-daemon"
    now = owned_under(session_temp())
    deadline = time.monotonic() + RELEASE_GRACE_S
    while (run.during.loops & now.loops) and time.monotonic() < deadline:
        time.sleep(0.05)  # a deferred loop detach, as in wait_for_release
        now = owned_under(session_temp())
    assert not run.during.loops & now.loops
    assert not run.during.mounts & now.mounts
    for pid in run.during.daemons:
        assert not Path(f"/proc/{pid}").exists(), f"{QSD} {pid} outlived its owner"
    assert not [m for _, m in run.during.mounts if os.path.exists(m)], "a mountpoint is left"
    # The qcow2 image is closed and consistent, and holds what the child wrote.
    guests.run(["qemu-img", "check", str(image)])


@pytest.mark.parametrize("how", ["with", "local"])
def test_sigterm_releases_everything(qcow2_guest: Guest, how: str) -> None:
    with child_with_guest(qcow2_guest.path, how) as run:
        assert run.mountpoints == {"/dev/sda1": "/", "/dev/sda2": "/data"}
        run.process.send_signal(signal.SIGTERM)
        _, stderr = run.process.communicate(timeout=CHILD_EXIT_TIMEOUT_S)
        assert run.process.returncode == 128 + signal.SIGTERM, stderr
    assert_released(run, qcow2_guest.path)


@pytest.mark.parametrize("how", ["with", "local"])
def test_sigint_releases_everything(qcow2_guest: Guest, how: str) -> None:
    with child_with_guest(qcow2_guest.path, how) as run:
        run.process.send_signal(signal.SIGINT)
        _, stderr = run.process.communicate(timeout=CHILD_EXIT_TIMEOUT_S)
        # An uncaught KeyboardInterrupt ends Python by SIGINT, as the shell expects.
        assert run.process.returncode == -signal.SIGINT, stderr
        assert "KeyboardInterrupt" in stderr
    assert_released(run, qcow2_guest.path)


@pytest.mark.parametrize("how", ["global", "local"])
def test_exit_without_close_releases_everything(qcow2_guest: Guest, how: str) -> None:
    with child_with_guest(qcow2_guest.path, how) as run:
        _, stderr = run.process.communicate("go on\n", timeout=CHILD_EXIT_TIMEOUT_S)
        assert run.process.returncode == 0, stderr
    assert_released(run, qcow2_guest.path)


def test_child_writes_survive_the_signal(qcow2_guest: Guest) -> None:
    with child_with_guest(qcow2_guest.path, "with") as run:
        run.process.send_signal(signal.SIGTERM)
        run.process.communicate(timeout=CHILD_EXIT_TIMEOUT_S)

    with VMCraft() as g:
        g.add_drive_opts(str(qcow2_guest.path), format="qcow2", readonly=True)
        g.launch()
        g.mount_ro("/dev/sda1", "/")
        assert g.cat("/child-was-here") == "yes\n"
