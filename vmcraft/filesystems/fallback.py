"""Mounting damaged filesystems: the ladder of ever more careful attempts.

A guest disk copied from a running or crashed VM often has a dirty journal or log. Replaying
it writes to the disk, which a read-only handle must never do, and which fails outright on a
read-only device. Each rung below gives up a little more (the journal's last transactions,
then the journal itself) to get at least a read-only view of the files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from vmcraft.errors import FilesystemError
from vmcraft.filesystems.mount import MountedFilesystem, mount_filesystem

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Rung:
    """One attempt: its name, the options it adds, and the types it applies to (None: all)."""

    name: str
    options: tuple[str, ...]
    fstypes: frozenset[str] | None


LADDER = (
    Rung("normal", (), None),
    Rung("ro-norecovery", ("ro", "norecovery"), frozenset({"ext3", "ext4", "xfs", "btrfs"})),
    Rung("ro-noload", ("ro", "noload"), frozenset({"ext3", "ext4"})),
    Rung("ntfs-ro", ("ro",), frozenset({"ntfs"})),
    # FAT and exFAT have no journal; without a writable driver, read-only is what is left.
    Rung("ro", ("ro",), frozenset({"vfat", "msdos", "exfat"})),
)

MountAttempt = Callable[[list[str]], MountedFilesystem]


def mount_with_fallback(
    attempt: MountAttempt, fstype: str, what: str
) -> tuple[MountedFilesystem, str]:
    """Climb the ladder until a rung mounts, logging each attempt (a failed rung is expected
    on a damaged filesystem, so it is logged at INFO; only running out of rungs is an error).

    Args:
        attempt: Mounts with the extra options given, or raises.
        fstype: The filesystem's type, to skip rungs that do not apply.
        what: The device and mountpoint, for the log.

    Returns:
        The mount and the name of the rung that made it.

    Raises:
        FilesystemError: Every rung failed; the message lists why.
    """
    failures = []
    for rung in LADDER:
        if rung.fstypes is not None and fstype not in rung.fstypes:
            continue
        log.info("mounting %s: trying %s", what, rung.name)
        try:
            return attempt(list(rung.options)), rung.name
        except FilesystemError as e:
            log.info("mounting %s with %s failed: %s", what, rung.name, e)
            failures.append(f"{rung.name}: {e}")
    raise FilesystemError(f"cannot mount {what} at any level: " + "; ".join(failures))


def mount_climbing(
    source: str,
    target: str,
    fstype: str,
    *,
    options: list[str],
    readonly: bool,
    log_dir: str,
    what: str,
) -> tuple[MountedFilesystem, str]:
    """:func:`mount_with_fallback` of one device: each rung's options join ``options``.

    Args are :func:`vmcraft.filesystems.mount.mount_filesystem`'s.

    Returns:
        The mount and the name of the rung that made it.
    """

    def attempt(extra: list[str]) -> MountedFilesystem:
        return mount_filesystem(
            source,
            target,
            fstype,
            options=[*extra, *options],
            readonly=readonly,
            log_dir=log_dir,
            what=what,
        )

    return mount_with_fallback(attempt, fstype, what)
