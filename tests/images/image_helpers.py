"""Shared pieces of the image-layer tests: child daemons, temp folders, fake host tools.

The fakes are shell scripts put first on PATH: they record how they were called and then
either fail, hang, or exec the real program, so that faults come from outside the library
while the successful path stays real.

Host tools: qemu-img, qemu-storage-daemon (the real ones behind the fakes).
"""

from __future__ import annotations

import os
import shlex
import shutil
import tempfile
from pathlib import Path

import guests

QSD = "qemu-storage-daemon"
QSD_COMM = QSD[:15]  # the kernel truncates /proc/PID/comm to 15 characters


def real_tool(name: str) -> str:
    """The host's own program, found before any fake is put on PATH."""
    found = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if found is None:
        raise guests.GuestBuildError(f"{name} is not installed")
    return found


def daemon_children() -> dict[int, list[str]]:
    """qemu-storage-daemon processes whose parent is this test process: pid -> argv."""
    found = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            comm = Path(entry.path, "comm").read_text().strip()
            stat = Path(entry.path, "stat").read_text().rsplit(")", 1)[1].split()
            argv = Path(entry.path, "cmdline").read_bytes().decode(errors="replace")
        except OSError:  # exited while we looked
            continue
        state, parent = stat[0], int(stat[1])
        if comm == QSD_COMM and parent == os.getpid() and state != "Z":
            found[int(entry.name)] = argv.rstrip("\0").split("\0")
    return found


def library_workdirs() -> set[str]:
    """The library's private folders (``vmcraft-*``) in the temp directory."""
    root = Path(tempfile.gettempdir())
    return {p.name for p in root.glob("vmcraft-*") if not p.name.startswith("vmcraft-tests-")}


def write_script(path: Path, body: str) -> Path:
    path.write_text("#!/bin/sh\n" + body)
    path.chmod(0o755)
    return path


def recording_fake(bin_dir: Path, name: str, record: Path) -> Path:
    """A fake ``name`` that appends its argv to ``record`` and execs the real program."""
    real = real_tool(name)
    body = f'printf "%s\\n" "$*" >> {shlex.quote(str(record))}\nexec {shlex.quote(real)} "$@"\n'
    return write_script(bin_dir / name, body)


def path_with(bin_dir: Path) -> str:
    """PATH with bin_dir first."""
    return f"{bin_dir}:{os.environ.get('PATH', '')}"
