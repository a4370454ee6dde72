"""Test-suite foundation: real guest images, capability markers and a leak guard.

Every test session gets its own temp root (TMPDIR points there, so pytest's tmp_path
and the library's temp dirs land in it too) and a session token in the environment.
The leak guard counts a loop device, mount or FUSE/qemu process as this session's
only through them, so concurrent sessions on the same host never trip it, and it
only looks: it never detaches, unmounts or kills anything.

Host tools: losetup (capability probe); guests.py runs the image builders.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import os
import shutil
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import guests
import pytest
from guests import Guest

SESSION_TOKEN_VAR = "VMCRAFT_TEST_SESSION"
KEEP_ROOT_VAR = "VMCRAFT_TEST_KEEP"  # set to 1 to keep the session temp root
GUEST_FORMATS = ("raw", "qcow2", "vmdk", "vhdx")
WATCHED_PROGRAMS = (
    "qemu-storage-daemon",
    "qemu-nbd",
    "nbdfuse",
    "ntfs-3g",
    "lowntfs-3g",
    "fuse2fs",
    "fusefat",
    "exfat-fuse",
    "mount.exfat-fuse",
)
COMM_LENGTH = 15  # the kernel truncates /proc/PID/comm to this
LEAK_GRACE = 0.5  # seconds a just-released resource gets to disappear
PROBE_TIMEOUT = 30

_root_key = pytest.StashKey[Path]()
_baseline_key = pytest.StashKey["Resources"]()
_timings_key = pytest.StashKey[dict[str, float]]()
_exitstatus_key = pytest.StashKey[int]()


# ---------------------------------------------------------------- session setup


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "requires_root: skip unless a loop device can be attached and detached"
    )
    config.addinivalue_line(
        "markers",
        "requires_tool(name, *args): skip unless `name args` can run "
        "(`name --version` by default; explicit args must also exit 0)",
    )
    logging.getLogger("vmcraft").setLevel(logging.DEBUG)
    logging.getLogger("guests").setLevel(logging.DEBUG)

    root = Path(tempfile.mkdtemp(prefix="vmcraft-tests-"))
    os.environ["TMPDIR"] = str(root)
    tempfile.tempdir = None  # recompute from TMPDIR on next use
    os.environ.setdefault(SESSION_TOKEN_VAR, uuid.uuid4().hex)  # nested runs share it
    config.stash[_root_key] = root
    config.stash[_timings_key] = {}


def pytest_sessionstart(session: pytest.Session) -> None:
    session.config.stash[_baseline_key] = take_snapshot(session.config)


@pytest.hookimpl(trylast=True)  # after the runner has torn down session fixtures
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    config = session.config
    baseline = config.stash.get(_baseline_key, None)
    if baseline is not None:
        leaked = _wait_for_leaks(config, baseline)
        if leaked:
            _report_session_leaks(config, leaked)
            session.exitstatus = pytest.ExitCode.TESTS_FAILED
    config.stash[_exitstatus_key] = int(session.exitstatus)


def _report_session_leaks(config: pytest.Config, leaked: Resources) -> None:
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    lines = ["leak guard: left behind since session start:", *leaked.describe()]
    if reporter is None:
        print("\n".join(lines))
        return
    reporter.write_line("")
    for line in lines:
        reporter.write_line(line, red=True, bold=True)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    timings = terminalreporter.config.stash.get(_timings_key, {})
    if timings:
        spent = ", ".join(f"{name} {seconds:.2f} s" for name, seconds in timings.items())
        terminalreporter.write_line(f"guest images built: {spent}")


def pytest_unconfigure(config: pytest.Config) -> None:
    root = config.stash.get(_root_key, None)
    if root is None or not root.exists():
        return
    clean = config.stash.get(_exitstatus_key, 1) in (0, pytest.ExitCode.NO_TESTS_COLLECTED)
    if clean and not os.environ.get(KEEP_ROOT_VAR) and not _is_busy(root):
        shutil.rmtree(root)
    else:
        print(f"vmcraft test files kept in {root}")


def _is_busy(root: Path) -> bool:
    # rmtree would descend into a leaked mount and delete the guest's (or host's) files.
    snapshot = take_snapshot_of([root], token="", own_pid=-1)
    return bool(snapshot.loops or snapshot.mounts)


# ---------------------------------------------------------------- capability markers


@functools.cache
def root_problem() -> str | None:
    """Why this session cannot attach loop devices, or None if it can."""
    with tempfile.TemporaryDirectory(prefix="probe-") as directory:
        probe = Path(directory) / "probe.img"
        probe.write_bytes(bytes(1024 * 1024))
        try:
            with guests.loop_device(probe):
                pass
        except (OSError, guests.GuestBuildError) as e:
            return f"cannot attach a loop device: {e}"
    return None


@functools.cache
def tool_problem(name: str, args: tuple[str, ...] = ()) -> str | None:
    """Why `name args` cannot run here, or None if it can.

    Without args, `name --version` only has to start; explicit args must exit 0.
    """
    argv = [name, *(args or ("--version",))]
    try:
        result = subprocess.run(
            argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=PROBE_TIMEOUT, check=False
        )
    except OSError as e:
        return f"cannot run {name}: {e.strerror}"
    except subprocess.TimeoutExpired:
        return f"`{' '.join(argv)}` did not finish in {PROBE_TIMEOUT} s"
    if args and result.returncode != 0:
        return f"`{' '.join(argv)}` exited {result.returncode}"
    return None


def skip_unless_root() -> None:
    """Skip the calling test or fixture unless loop devices can be attached."""
    problem = root_problem()
    if problem:
        pytest.skip(problem)


def skip_unless_tools(*names: str) -> None:
    """Skip the calling test or fixture unless every named tool can run."""
    for name in names:
        problem = tool_problem(name)
        if problem:
            pytest.skip(problem)


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("requires_root"):
        skip_unless_root()
    for marker in item.iter_markers("requires_tool"):
        problem = tool_problem(marker.args[0], tuple(marker.args[1:]))
        if problem:
            pytest.skip(problem)


# ---------------------------------------------------------------- guest fixtures


def _build(
    config: pytest.Config, factory: pytest.TempPathFactory, builder: Callable[[Path], Guest]
) -> Guest:
    skip_unless_root()
    skip_unless_tools(*guests.REQUIRED_TOOLS[builder.__name__])
    started = time.monotonic()
    guest = builder(factory.mktemp(builder.__name__.removeprefix("build_")))
    config.stash[_timings_key][guest.path.name] = time.monotonic() - started
    return guest


def _in_format(
    config: pytest.Config, factory: pytest.TempPathFactory, guest: Guest, fmt: str
) -> Guest:
    if fmt == guest.format:
        return guest
    skip_unless_tools(*guests.REQUIRED_TOOLS["convert"])
    started = time.monotonic()
    converted = guests.convert(guest, fmt, factory.mktemp(f"{guest.path.stem}-{fmt}"))
    config.stash[_timings_key][converted.path.name] = time.monotonic() - started
    return converted


@pytest.fixture(scope="session")
def mbr_guest(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Guest:
    return _build(pytestconfig, tmp_path_factory, guests.build_mbr_guest)


@pytest.fixture(scope="session")
def gpt_lvm_guest(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Guest:
    return _build(pytestconfig, tmp_path_factory, guests.build_gpt_lvm_guest)


@pytest.fixture(scope="session")
def dirty_ext4_guest(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Guest:
    return _build(pytestconfig, tmp_path_factory, guests.build_dirty_ext4)


@pytest.fixture(scope="session")
def dirty_xfs_guest(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Guest:
    return _build(pytestconfig, tmp_path_factory, guests.build_dirty_xfs)


@pytest.fixture(scope="session")
def dirty_ntfs_guest(
    pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
) -> Guest:
    return _build(pytestconfig, tmp_path_factory, guests.build_dirty_ntfs)


@pytest.fixture(scope="session")
def hostile_guest(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory) -> Guest:
    return _build(pytestconfig, tmp_path_factory, guests.build_hostile_guest)


@pytest.fixture(scope="session", params=GUEST_FORMATS)
def mbr_guest_any_format(
    request: pytest.FixtureRequest, mbr_guest: Guest, tmp_path_factory: pytest.TempPathFactory
) -> Guest:
    return _in_format(request.config, tmp_path_factory, mbr_guest, request.param)


@pytest.fixture(scope="session", params=GUEST_FORMATS)
def gpt_lvm_guest_any_format(
    request: pytest.FixtureRequest,
    gpt_lvm_guest: Guest,
    tmp_path_factory: pytest.TempPathFactory,
) -> Guest:
    return _in_format(request.config, tmp_path_factory, gpt_lvm_guest, request.param)


@pytest.fixture
def writable_copy(tmp_path: Path) -> Callable[[Guest], Guest]:
    """A factory: writable_copy(guest) -> the same guest on a sparse copy in tmp_path."""

    def copy(guest: Guest) -> Guest:
        target = tmp_path / guest.path.name
        counter = 1
        while target.exists():
            target = tmp_path / f"{guest.path.stem}-{counter}{guest.path.suffix}"
            counter += 1
        guests.run(["cp", "--sparse=always", str(guest.path), str(target)])
        return dataclasses.replace(guest, path=target)

    return copy


# ---------------------------------------------------------------- leak guard


@dataclass(frozen=True)
class Resources:
    """Loop devices, mounts and watched processes that this session owns."""

    loops: frozenset[tuple[str, str]]  # (device, backing file)
    mounts: frozenset[tuple[int, str, str, str]]  # (mount id, mountpoint, fstype, source)
    processes: frozenset[tuple[int, int, str]]  # (pid, start time, description)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(
            self.loops - other.loops,
            self.mounts - other.mounts,
            self.processes - other.processes,
        )

    def __bool__(self) -> bool:
        return bool(self.loops or self.mounts or self.processes)

    def describe(self) -> list[str]:
        lines = [f"  loop device {dev} (backing {backing})" for dev, backing in sorted(self.loops)]
        lines += [
            f"  mount {mountpoint} ({fstype} from {source})"
            for _, mountpoint, fstype, source in sorted(self.mounts)
        ]
        lines += [f"  process {pid} {text}" for pid, _, text in sorted(self.processes)]
        return lines


def _owned_roots(config: pytest.Config) -> list[Path]:
    roots = [config.stash[_root_key]]
    if config.option.basetemp:
        roots.append(Path(config.option.basetemp).resolve())
    return roots


def take_snapshot(config: pytest.Config) -> Resources:
    """What this session owns right now."""
    token = os.environ.get(SESSION_TOKEN_VAR, "")
    return take_snapshot_of(_owned_roots(config), token=token, own_pid=os.getpid())


def take_snapshot_of(roots: list[Path], *, token: str, own_pid: int) -> Resources:
    """Loop devices backed by files under roots, mounts on them or under roots, and
    watched processes carrying token in their environment or descending from own_pid."""
    loops = frozenset(_owned_loops(roots))
    loop_names = {device for device, _ in loops}
    mounts = frozenset(
        (entry.mount_id, entry.mountpoint, entry.fstype, entry.source)
        for entry in guests.read_mountinfo()
        if _is_under(entry.mountpoint, roots) or _is_on_loop(entry.source, loop_names)
    )
    return Resources(loops, mounts, frozenset(_owned_processes(token, own_pid)))


def _is_under(path: str, roots: list[Path]) -> bool:
    return any(path == str(root) or path.startswith(f"{root}/") for root in roots)


def _is_on_loop(source: str, loop_names: set[str]) -> bool:
    # /dev/loop3 or one of its partitions, /dev/loop3p1
    return any(
        source == name or (source.startswith(f"{name}p") and source[len(name) + 1 :].isdigit())
        for name in loop_names
    )


def _owned_loops(roots: list[Path]) -> Iterator[tuple[str, str]]:
    attached = list(_attached_loops())
    owned = {dev for dev, file in attached if _is_under(file.removesuffix(" (deleted)"), roots)}
    # An LV without device-mapper is a loop device over an owned loop's partition node.
    owned |= {dev for dev, backing in attached if _is_on_loop(backing, owned)}
    return ((dev, backing) for dev, backing in attached if dev in owned)


def _attached_loops() -> Iterator[tuple[str, str]]:
    for backing_file in Path("/sys/block").glob("loop*/loop/backing_file"):
        try:
            backing = backing_file.read_text().strip()
        except OSError:  # detached while we looked
            continue
        yield f"/dev/{backing_file.parts[3]}", backing


def _owned_processes(token: str, own_pid: int) -> Iterator[tuple[int, int, str]]:
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == own_pid:
            continue
        try:
            found = _watched_process(int(entry.name), token, own_pid)
        except OSError:  # exited while we looked
            continue
        if found:
            yield found


def _watched_process(pid: int, token: str, own_pid: int) -> tuple[int, int, str] | None:
    proc = Path(f"/proc/{pid}")
    comm = (proc / "comm").read_text().strip()
    argv = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
    program = os.path.basename(argv[0]) if argv[0] else comm
    if not any(comm == name[:COMM_LENGTH] or program == name for name in WATCHED_PROGRAMS):
        return None

    state, _, start_time = _stat_fields(pid)
    marked = token and f"{SESSION_TOKEN_VAR}={token}".encode() in _environ(pid)
    if not (marked or _descends_from(pid, own_pid)):
        return None
    command = " ".join(argv).strip() or comm
    if state == "Z":
        command += " (zombie: exited, never waited for)"
    return pid, start_time, command


def _environ(pid: int) -> list[bytes]:
    try:
        return Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except PermissionError:
        return []


def _stat_fields(pid: int) -> tuple[str, int, int]:
    """State, parent pid and start time from /proc/PID/stat."""
    # comm sits in parentheses and may itself contain spaces or parentheses.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return fields[0], int(fields[1]), int(fields[19])


def _descends_from(pid: int, ancestor: int) -> bool:
    for _ in range(64):
        if pid <= 1:
            return False
        try:
            pid = _stat_fields(pid)[1]
        except OSError:
            return False
        if pid == ancestor:
            return True
    return False


def _wait_for_leaks(config: pytest.Config, before: Resources) -> Resources:
    # A FUSE driver may still be exiting right after its umount returned.
    deadline = time.monotonic() + LEAK_GRACE
    leaked = take_snapshot(config) - before
    while leaked and time.monotonic() < deadline:
        time.sleep(0.05)
        leaked = take_snapshot(config) - before
    return leaked


@pytest.fixture(autouse=True)
def leak_guard(request: pytest.FixtureRequest) -> Iterator[None]:
    """Fail a test that leaves a loop device, mount or FUSE/qemu process behind."""
    before = take_snapshot(request.config)
    yield
    leaked = _wait_for_leaks(request.config, before)
    if leaked:
        lines = "\n".join(leaked.describe())
        pytest.fail(f"leak guard: {request.node.nodeid} left behind:\n{lines}", pytrace=False)
