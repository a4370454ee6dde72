"""Mounting one filesystem, with the kernel's driver or a FUSE driver run as a child.

Every guest filesystem is mounted ``nosuid,nodev``: nothing a guest contains may become a
set-uid program or a device node on the host. FUSE drivers run in the foreground as children
of this process and are waited for after unmounting, so that their last writes are on disk
before the image underneath is closed.

Host tools: mount, umount, ntfs-3g, fuse2fs, fusefat, mount.exfat-fuse.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field

from vmcraft import command, mounts
from vmcraft.errors import CommandError, DriverMissingError, MountError
from vmcraft.filesystems.drivers import Driver, choose_driver

log = logging.getLogger(__name__)

SAFETY_OPTIONS = ("nosuid", "nodev")
FUSE_READY_TIMEOUT_S = 15.0
UMOUNT_ATTEMPTS = 5
_DMESG_HINT = "dmesg(1) may have more information"
_TOOL_PREFIX = re.compile(r"^u?mount: (/[^:]*: )?")


@dataclass
class MountedFilesystem:
    """One filesystem mounted by VMCraft, and what is needed to take it down again."""

    source: str
    target: str
    fstype: str
    options: list[str]
    driver: Driver
    child: command.Child | None = field(default=None, repr=False)

    @property
    def readonly(self) -> bool:
        return "ro" in self.options


def build_options(options: list[str], readonly: bool, fstype: str) -> list[str]:
    """Add the options every guest mount gets, dropping those a read-only mount forbids."""
    wanted = [o for o in options if o and o not in ("rw", "ro", "suid", "dev", "exec")]
    if readonly or "ro" in options:
        wanted.insert(0, "ro")
    if fstype == "xfs" and "nouuid" not in wanted:
        wanted.append("nouuid")  # NB: two clones of one xfs share a UUID; the kernel refuses.
    for safety in SAFETY_OPTIONS:
        if safety not in wanted:
            wanted.append(safety)
    return wanted


def _fuse_argv(driver: Driver, source: str, target: str, options: list[str]) -> list[str]:
    joined = ",".join(options)
    if driver.program == "ntfs-3g":
        return ["ntfs-3g", "-o", f"no_detach,{joined}", source, target]
    if driver.program == "mount.exfat-fuse":
        return ["mount.exfat-fuse", "-d", "-o", joined, source, target]
    return [driver.program, "-f", "-o", joined, source, target]


def mount_filesystem(
    source: str,
    target: str,
    fstype: str,
    *,
    options: list[str],
    readonly: bool,
    log_dir: str,
    what: str = "",
) -> MountedFilesystem:
    """Mount ``source`` (a host device) at ``target`` (a host folder).

    Args:
        source: Host block device.
        target: Existing host folder.
        fstype: Filesystem type as blkid names it.
        options: Mount options asked for (``nosuid,nodev`` are always added).
        readonly: Mount read-only whatever the options say.
        log_dir: Where a FUSE driver's output goes.
        what: How error messages name the mount (default: source, type and target).

    Raises:
        DriverMissingError: No driver can mount this type as asked.
        MountError: The mount failed.
    """
    effective = build_options(options, readonly, fstype)
    what = what or f"{source} ({fstype}) on {target}"
    try:
        driver = choose_driver(fstype, readonly="ro" in effective)
    except DriverMissingError as e:
        raise DriverMissingError(f"cannot mount {what}: {e}") from e
    if not driver.fuse:
        _kernel_mount(source, target, driver.fstype, effective, what)
        return MountedFilesystem(source, target, driver.fstype, effective, driver)

    log_path = os.path.join(log_dir, f"{driver.program}-{os.path.basename(source)}.log")
    child = command.spawn(_fuse_argv(driver, source, target, effective), log_path=log_path)
    mounted = MountedFilesystem(source, target, driver.fstype, effective, driver, child)
    _wait_for_fuse(mounted, what)
    if "ro" not in effective and _mounted_readonly(target):
        # NB: ntfs-3g 2022.10 mounts a hibernated or unclean volume read-only and exits 0.
        unmount(mounted)
        raise MountError(
            f"cannot mount {what} read-write: {driver.program} could only mount it "
            "read-only (hibernated or unclean?)"
        )
    return mounted


def _mounted_readonly(target: str) -> bool:
    real = os.path.realpath(target)
    entry = next((m for m in reversed(mounts.read_mounts()) if m.target == real), None)
    return entry is not None and "ro" in entry.options.split(",")


def _kernel_mount(source: str, target: str, fstype: str, options: list[str], what: str) -> None:
    argv = ["mount", "-t", fstype, "-o", ",".join(options), source, target]
    try:
        command.run(argv, timeout=120)
    except CommandError as e:
        raise MountError(f"cannot mount {what}: {_why(e)}") from e


def _why(error: CommandError) -> str:
    # NB: util-linux 2.38 ends every failed mount with a hint to read dmesg; the cause is
    # the line before it, as "mount: TARGET: cause."
    lines = [ln for ln in error.stderr.splitlines() if ln.strip() and _DMESG_HINT not in ln]
    if not lines:
        return error.reason
    return _TOOL_PREFIX.sub("", lines[-1].strip()).rstrip(".")


def _wait_for_fuse(mounted: MountedFilesystem, what: str) -> None:
    child = mounted.child
    if child is None:
        return
    deadline = time.monotonic() + FUSE_READY_TIMEOUT_S
    while not mounts.is_mountpoint(mounted.target):
        if child.poll() is not None or time.monotonic() > deadline:
            child.stop()
            output = child.output().strip().splitlines()
            detail = output[-1] if output else f"exit status {child.poll()}"
            raise MountError(f"cannot mount {what} with {child.argv[0]}: {detail}")
        time.sleep(0.002)


BIND_DRIVER = Driver("none", "mount", fuse=False)


def bind_readonly(source: str, target: str, what: str) -> MountedFilesystem:
    """Show the folder ``source`` again, read-only, at ``target`` (``mount --bind``).

    Only that one filesystem is shown, none of the mounts below it.

    Raises:
        MountError: The bind mount failed.
    """
    options = ["ro", *SAFETY_OPTIONS]
    argv = ["mount", "--bind", "-o", ",".join(options), source, target]
    try:
        command.run(argv, timeout=120)
    except CommandError as e:
        raise MountError(f"cannot bind {what} (mounted at {source}): {_why(e)}") from e
    return MountedFilesystem(source, target, "none", options, BIND_DRIVER)


def unmount(mounted: MountedFilesystem) -> None:
    """Unmount, retrying while the filesystem is busy, then wait for a FUSE driver.

    Raises:
        MountError: The filesystem stayed busy.
    """
    for attempt in range(1, UMOUNT_ATTEMPTS + 1):
        try:
            command.run(["umount", mounted.target], timeout=120)
            break
        except CommandError as e:
            if not mounts.is_mountpoint(mounted.target):
                break
            if attempt == UMOUNT_ATTEMPTS:
                raise MountError(f"cannot unmount {mounted.target}: {_why(e)}") from e
            time.sleep(0.05 * attempt)

    if mounted.child is not None:
        code = mounted.child.wait(timeout=60)
        if code not in mounted.driver.clean_exits:
            log.warning("%s for %s exited with %d", mounted.driver.program, mounted.source, code)
