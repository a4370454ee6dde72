"""The one place that runs external programs.

Every host tool VMCraft uses goes through :func:`run` (wait for it) or :func:`spawn` (a
long-lived child such as a FUSE driver or qemu-storage-daemon). Both take an argv list, never a
shell string, force ``LC_ALL=C`` so that output can be parsed, and log the argv and duration at
DEBUG. A failure becomes :class:`~vmcraft.errors.CommandError`.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from vmcraft.errors import CommandError, ToolMissingError

log = logging.getLogger(__name__)

DEFAULT_TIMEOUT_S = 60.0

_QUIET_ENV = {
    "LC_ALL": "C",
    "LANG": "C",
    # NB: lvm2 2.03 warns about every inherited descriptor on stderr.
    "LVM_SUPPRESS_FD_WARNINGS": "1",
}


@dataclass(frozen=True)
class Result:
    """What a finished program printed and returned."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str


def _environment(extra: Mapping[str, str] | None) -> dict[str, str]:
    env = dict(os.environ)
    env.update(_QUIET_ENV)
    if extra:
        env.update(extra)
    return env


def have_tool(name: str) -> bool:
    """Tell whether a program is on PATH (or /sbin, where root's tools live)."""
    return which(name) is not None


def which(name: str) -> str | None:
    """Find a program on PATH, also looking in the sbin folders a non-login PATH may lack."""
    found = shutil.which(name)
    if found:
        return found
    return shutil.which(name, path="/usr/local/sbin:/usr/sbin:/sbin")


def run(
    argv: Sequence[str],
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    check: bool = True,
    input: bytes | None = None,
    env: Mapping[str, str] | None = None,
) -> Result:
    """Run a program to completion and return its output.

    Args:
        argv: Program and arguments.
        timeout: Seconds before the program is killed and the call fails.
        check: Raise on a non-zero exit status.
        input: Bytes for the program's standard input (none: /dev/null).
        env: Variables added to the environment.

    Raises:
        ToolMissingError: The program is not installed.
        CommandError: It exited non-zero (with ``check``) or ran past ``timeout``.
    """
    argv = [str(a) for a in argv]
    started = time.monotonic()
    try:
        proc = subprocess.run(
            argv,
            input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True,
            timeout=timeout,
            env=_environment(env),
            check=False,
            # NB: a terminal's Ctrl-C goes to its whole process group; a losetup killed
            # half-way could leave a device whose name was never read. The tool finishes
            # (within its timeout) and the handle defers the interrupt until its state is
            # consistent (see vmcraft.api.lifecycle.critical_section).
            start_new_session=True,
        )
    except FileNotFoundError as e:
        raise ToolMissingError(argv) from e
    except subprocess.TimeoutExpired as e:
        stderr = (e.stderr or b"").decode(errors="replace")
        raise CommandError(argv, None, stderr, reason=f"timed out after {timeout:g} s") from e

    elapsed_ms = (time.monotonic() - started) * 1000
    stdout = proc.stdout.decode(errors="replace")
    stderr = proc.stderr.decode(errors="replace")
    log.debug("ran %s -> %d in %.1f ms", argv, proc.returncode, elapsed_ms)
    if stderr.strip():
        log.debug("stderr of %s: %s", argv[0], stderr.strip())
    if check and proc.returncode != 0:
        raise CommandError(argv, proc.returncode, stderr)
    return Result(argv, proc.returncode, stdout, stderr)


class Child:
    """A long-lived program started by :func:`spawn`, owned by whoever started it."""

    def __init__(self, argv: list[str], proc: subprocess.Popen[bytes], log_path: str) -> None:
        self.argv = argv
        self.proc = proc
        self.log_path = log_path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def poll(self) -> int | None:
        """Return the exit status if the child has ended, else None."""
        return self.proc.poll()

    def output(self) -> str:
        """Return what the child has written to stdout and stderr so far."""
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def failure(self, reason: str | None = None) -> CommandError:
        """Build the error that describes this child's failure."""
        return CommandError(self.argv, self.proc.poll(), self.output(), reason=reason)

    def stop(self, timeout: float = 10.0) -> int:
        """Ask the child to end (SIGTERM), kill it if it will not, and reap it."""
        if self.proc.poll() is None:
            self.proc.terminate()
        return self.wait(timeout)

    def wait(self, timeout: float = 10.0) -> int:
        """Reap the child, killing it if it has not ended within ``timeout``."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            log.warning("%s (pid %d) did not exit; killing it", self.argv[0], self.pid)
            self.proc.kill()
            code = self.proc.wait()
        log.debug("%s (pid %d) exited with %d", self.argv[0], self.pid, code)
        return code


def spawn(argv: Sequence[str], *, log_path: str, env: Mapping[str, str] | None = None) -> Child:
    """Start a program in the background as a child of this process.

    Its stdout and stderr go to ``log_path`` so that a failure can be explained later.

    Raises:
        ToolMissingError: The program is not installed.
    """
    argv = [str(a) for a in argv]
    with open(log_path, "ab") as out:
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_environment(env),
                # NB: a terminal's SIGINT must not reach the child before its owner tears
                # it down in order (unmount first, then stop the driver).
                start_new_session=True,
            )
        except FileNotFoundError as e:
            raise ToolMissingError(argv) from e
    log.debug("started %s as pid %d", argv, proc.pid)
    return Child(argv, proc, log_path)
