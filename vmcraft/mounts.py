"""What the host's mount table says, read from /proc/self/mountinfo."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class MountEntry:
    mount_id: int
    target: str
    fstype: str
    source: str
    options: str


def _unescape(field: str) -> str:
    # mountinfo escapes space, tab, newline and backslash as three octal digits.
    out, i = [], 0
    while i < len(field):
        if field[i] == "\\" and i + 3 < len(field) + 1 and field[i + 1 : i + 4].isdigit():
            out.append(chr(int(field[i + 1 : i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return "".join(out)


def read_mounts() -> list[MountEntry]:
    """Every mount in this process's namespace, in the order they were made."""
    entries = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            fields = left.split()
            fstype, source, *rest = right.split()
            options = fields[5] + "," + (rest[0] if rest else "")
            entries.append(
                MountEntry(int(fields[0]), _unescape(fields[4]), fstype, _unescape(source), options)
            )
    return entries


def is_mountpoint(path: str) -> bool:
    """Tell whether something is mounted exactly at ``path``."""
    real = os.path.realpath(path)
    return any(m.target == real for m in read_mounts())


def mounts_below(folder: str) -> list[MountEntry]:
    """Mounts at or below ``folder``, deepest last."""
    real = os.path.realpath(folder)
    prefix = real.rstrip("/") + "/"
    return [m for m in read_mounts() if m.target == real or m.target.startswith(prefix)]
