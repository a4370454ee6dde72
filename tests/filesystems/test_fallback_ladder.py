"""The fallback ladder's rungs per filesystem type, with a fake mount attempt.

The real ladder on dirty ext4, xfs and NTFS images is tested through the handle in
tests/api/test_mounting.py; here each rung's options and the logging are pinned down.
"""

from __future__ import annotations

import logging

import pytest

from vmcraft.errors import DriverMissingError, FilesystemError, MountError
from vmcraft.filesystems.drivers import Driver
from vmcraft.filesystems.fallback import mount_with_fallback
from vmcraft.filesystems.mount import MountedFilesystem


class Attempts:
    """A mount attempt that fails until ``succeed_on`` tries have been made."""

    def __init__(self, succeed_on: int | None = None) -> None:
        self.succeed_on = succeed_on
        self.options: list[list[str]] = []

    def __call__(self, extra: list[str]) -> MountedFilesystem:
        self.options.append(extra)
        if len(self.options) == self.succeed_on:
            driver = Driver("ext4", "mount", fuse=False)
            return MountedFilesystem("/dev/x", "/mnt", "ext4", extra, driver)
        raise MountError(f"refused with {extra}")


@pytest.mark.parametrize(
    ("fstype", "expected"),
    [
        ("ext4", [[], ["ro", "norecovery"], ["ro", "noload"]]),
        ("ext3", [[], ["ro", "norecovery"], ["ro", "noload"]]),
        ("xfs", [[], ["ro", "norecovery"]]),
        ("btrfs", [[], ["ro", "norecovery"]]),
        ("ntfs", [[], ["ro"]]),
        ("vfat", [[], ["ro"]]),
        ("exfat", [[], ["ro"]]),
        ("swap", [[]]),
    ],
)
def test_rungs_per_type(fstype: str, expected: list[list[str]]) -> None:
    attempts = Attempts()
    with pytest.raises(FilesystemError, match="at any level") as failure:
        mount_with_fallback(attempts, fstype, f"/dev/x ({fstype}) on /")
    assert attempts.options == expected
    assert "refused with []" in str(failure.value)


@pytest.mark.parametrize(
    ("fstype", "tries", "level"),
    [
        ("ext4", 1, "normal"),
        ("ext4", 2, "ro-norecovery"),
        ("ext4", 3, "ro-noload"),
        ("xfs", 2, "ro-norecovery"),
        ("ntfs", 2, "ntfs-ro"),
    ],
)
def test_first_rung_that_mounts_wins(fstype: str, tries: int, level: str) -> None:
    attempts = Attempts(succeed_on=tries)
    mounted, got = mount_with_fallback(attempts, fstype, "/dev/x on /")
    assert got == level
    assert mounted.options == attempts.options[-1]
    assert len(attempts.options) == tries


def test_each_attempt_is_logged_and_a_failed_rung_is_no_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.INFO, logger="vmcraft.filesystems.fallback"):
        mount_with_fallback(Attempts(succeed_on=3), "ext4", "/dev/sdb1 (ext4) on /")
    lines = [(r.levelname, r.getMessage()) for r in caplog.records]
    assert lines == [
        ("INFO", "mounting /dev/sdb1 (ext4) on /: trying normal"),
        ("INFO", "mounting /dev/sdb1 (ext4) on / with normal failed: refused with []"),
        ("INFO", "mounting /dev/sdb1 (ext4) on /: trying ro-norecovery"),
        (
            "INFO",
            "mounting /dev/sdb1 (ext4) on / with ro-norecovery failed: "
            "refused with ['ro', 'norecovery']",
        ),
        ("INFO", "mounting /dev/sdb1 (ext4) on /: trying ro-noload"),
    ]


def test_a_missing_driver_is_a_failed_rung() -> None:
    def attempt(extra: list[str]) -> MountedFilesystem:
        raise DriverMissingError("this host has no driver for zfs")

    with pytest.raises(FilesystemError, match="no driver for zfs"):
        mount_with_fallback(attempt, "zfs", "/dev/x (zfs) on /")
