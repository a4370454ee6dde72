"""Attaching retries a failing qemu-storage-daemon, and cleans up after every attempt.

A fake ``qemu-storage-daemon`` first on PATH counts its starts in a state file, records
what each attempt found (the files in the drive's folder, the daemons already running),
fails the first N times and then execs the real daemon with the same arguments. Another
fake starts and hangs without ever writing its pidfile, which must end in the readiness
timeout with the child killed and reaped. Backoff is zero: nothing here sleeps.

Host tools: qemu-img, qemu-storage-daemon, losetup.
"""

from __future__ import annotations

import logging
import os
import shlex
from collections.abc import Callable
from pathlib import Path

import guests
import pytest
from image_helpers import (
    QSD,
    QSD_COMM,
    daemon_children,
    library_workdirs,
    path_with,
    real_tool,
    write_script,
)

from vmcraft import VMCraft
from vmcraft.errors import AttachError, BackendUnavailableError
from vmcraft.images import qsd

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_tool(QSD, "-h")]

ATTEMPTS = 3
EXPORT_FILES = {"disk.raw", "qsd.log"}  # what the library makes before each start


# The fake finds the drive folder from --pidfile, and records per attempt:
# "<n> <pid> <live sibling daemons> <files in the drive folder>".
FLAKY = """\
n=$(( $(cat {state} 2>/dev/null || echo 0) + 1 ))
echo "$n" > {state}
prev=""; for arg in "$@"; do [ "$prev" = --pidfile ] && pidfile=$arg; prev=$arg; done
siblings=$(pgrep -P "$PPID" -x {comm} | grep -vx "$$" | wc -l)
echo "$n $$ $siblings $(ls -A "$(dirname "$pidfile")" | tr '\\n' ' ')" >> {record}
if [ "$n" -le {failures} ]; then
    echo "fake failure on start $n" >&2
    exit 1
fi
exec {real} "$@"
"""

HANGING = """\
echo "$$" >> {record}
exec sleep 600  # never writes the pidfile
"""


def install_fake(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, template: str, **fields: object
) -> Path:
    """Put a fake qemu-storage-daemon made from template first on PATH; return its record."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    record = tmp_path / "attempts.log"
    quoted = {name: shlex.quote(str(value)) for name, value in fields.items()}
    body = template.format(
        state=shlex.quote(str(tmp_path / "starts")),
        record=shlex.quote(str(record)),
        comm=QSD_COMM,
        real=shlex.quote(real_tool(QSD)),
        **quoted,
    )
    write_script(bin_dir / QSD, body)
    monkeypatch.setenv("PATH", path_with(bin_dir))
    return record


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "disk.qcow2"
    guests.run(["qemu-img", "create", "-q", "-f", "qcow2", str(path), "8M"])
    return path


@pytest.fixture
def no_backoff() -> Callable[[], VMCraft]:
    return lambda: VMCraft(
        attach_attempts=ATTEMPTS, attach_base_backoff_s=0, attach_max_backoff_s=0
    )


def attempts(record: Path) -> list[tuple[int, int, int, set[str]]]:
    """Per start of the fake: number, pid, sibling daemons alive, files in the drive folder."""
    rows = []
    for line in record.read_text().splitlines():
        number, pid, siblings, *files = line.split()
        rows.append((int(number), int(pid), int(siblings), set(files)))
    return rows


def retry_messages(caplog: pytest.LogCaptureFixture) -> list[str]:
    records = (r for r in caplog.records if r.name == "vmcraft.retry")
    return [r.getMessage() for r in records if r.levelno >= logging.INFO]


def test_two_failures_then_success(
    image: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    no_backoff: Callable[[], VMCraft],
) -> None:
    real = real_tool(QSD)
    record = install_fake(tmp_path, monkeypatch, FLAKY, failures=2)

    with no_backoff() as g:
        g.add_drive_opts(str(image))
        g.launch()
        [(pid, argv)] = daemon_children().items()
        assert argv[0] == real, "the last start exec'd the real daemon"
        assert g.list_filesystems() == {"/dev/sda": "unknown"}
    assert daemon_children() == {}

    starts = attempts(record)
    assert [n for n, *_ in starts] == [1, 2, 3]
    assert starts[-1][1] == pid
    for _, _, siblings, files in starts:
        assert siblings == 0, "a failed attempt's daemon was still running"
        assert files <= EXPORT_FILES, f"an attempt found leftovers: {files - EXPORT_FILES}"
    messages = retry_messages(caplog)
    assert [m for m in messages if "failed on attempt 1 of 3" in m]
    assert [m for m in messages if "failed on attempt 2 of 3" in m]
    assert [m for m in messages if "succeeded on attempt 3" in m]
    assert all(str(image) in m for m in messages)
    assert any("fake failure on start 1" in m for m in messages)


def test_three_failures_give_up_with_attach_error(
    image: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    no_backoff: Callable[[], VMCraft],
) -> None:
    record = install_fake(tmp_path, monkeypatch, FLAKY, failures=3)
    workdirs_before = library_workdirs()

    with no_backoff() as g:
        g.add_drive_opts(str(image))
        with pytest.raises(AttachError) as raised:
            g.launch()

    assert str(image) in str(raised.value)
    assert "fake failure on start 3" in str(raised.value)
    assert len(attempts(record)) == ATTEMPTS
    messages = retry_messages(caplog)
    assert len([m for m in messages if "failed on attempt" in m]) == ATTEMPTS
    assert "giving up" in messages[-1]
    assert daemon_children() == {}
    assert library_workdirs() == workdirs_before


def test_daemon_that_never_gets_ready_is_killed(
    image: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    record = install_fake(tmp_path, monkeypatch, HANGING)
    monkeypatch.setattr(qsd, "READY_TIMEOUT_S", 0.5)
    workdirs_before = library_workdirs()

    with VMCraft(attach_attempts=2, attach_base_backoff_s=0, attach_max_backoff_s=0) as g:
        g.add_drive_opts(str(image))
        with pytest.raises(AttachError, match=r"not ready after 0\.5 s") as raised:
            g.launch()

    assert str(image) in str(raised.value)
    pids = [int(line) for line in record.read_text().split()]
    assert len(pids) == 2, "each attempt started its own daemon"
    for pid in pids:
        assert not os.path.exists(f"/proc/{pid}"), f"hung daemon {pid} was not killed and reaped"
    assert len([m for m in retry_messages(caplog) if "not ready" in m]) == 2
    assert library_workdirs() == workdirs_before


def test_missing_daemon_is_not_retried(
    image: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    no_backoff: Callable[[], VMCraft],
) -> None:
    empty = tmp_path / "empty-bin"
    empty.mkdir()
    workdirs_before = library_workdirs()

    with no_backoff() as g:
        g.add_drive_opts(str(image))
        monkeypatch.setenv("PATH", str(empty))  # qemu-storage-daemon is not installed
        with pytest.raises(BackendUnavailableError) as raised:
            g.launch()

    assert str(image) in str(raised.value)
    assert QSD in str(raised.value)
    assert not [m for m in retry_messages(caplog) if "failed on attempt" in m]
    assert library_workdirs() == workdirs_before
