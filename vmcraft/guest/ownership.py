"""Who owns a guest file, who may use it, and its times: chmod, chown, lchown, utimens.

Each call resolves its path inside the guest, refuses a read-only filesystem before
touching anything, and then changes the host path that came out without letting the host
kernel follow a link (``follow_symlinks=False``): a guest's link to a host file can only
ever lead to the guest's own file of that name. Owners are numbers, as the guest's own
passwd and group files define them, never the host's names.
"""

from __future__ import annotations

import os
import time

from vmcraft.errors import GuestFileError
from vmcraft.guest.files import GuestTree, guest_errors

PERMISSION_BITS = 0o7777  # what chmod(2) keeps of a mode: permissions, suid, sgid, sticky
UNCHANGED_ID = -1  # chown(2)'s owner or group that is left as it is
UTIME_NOW = -1  # libguestfs's *nsecs value: set that time to the current time
UTIME_OMIT = -2  # libguestfs's *nsecs value: leave that time as it is
NANOSECONDS = 1_000_000_000

Timespec = tuple[int, int]  # (seconds, nanoseconds), as struct timespec


def chmod(tree: GuestTree, mode: int, path: str) -> None:
    """Change a guest file's permission bits, following links inside the guest.

    As chmod(2), which libguestfs's ``chmod`` calls, the umask does not apply and bits
    above ``0o7777`` (the file type) are ignored.

    Raises:
        GuestFileError: ``mode`` is negative, or the change failed.
    """
    if mode < 0:
        raise GuestFileError(f"cannot chmod {path}: mode {mode} is negative")
    host = tree.writable("cannot chmod", path)

    with guest_errors("cannot chmod", path):
        try:
            os.chmod(host, mode & PERMISSION_BITS, follow_symlinks=False)
        except NotImplementedError as e:  # NB: Linux cannot chmod a link itself
            raise GuestFileError(f"cannot chmod {path}: it is a symbolic link") from e


def chown(tree: GuestTree, owner: int, group: int, path: str) -> None:
    """Change a guest file's numeric owner and group, following links inside the guest.

    Args:
        owner: New user id, or -1 to keep it.
        group: New group id, or -1 to keep it.
    """
    _change_owner(tree, owner, group, path, follow=True)


def lchown(tree: GuestTree, owner: int, group: int, path: str) -> None:
    """Like :func:`chown`, but a final link is changed itself, not what it points to."""
    _change_owner(tree, owner, group, path, follow=False)


def _change_owner(tree: GuestTree, owner: int, group: int, path: str, follow: bool) -> None:
    for kind, number in (("owner", owner), ("group", group)):
        if number < UNCHANGED_ID:
            raise GuestFileError(f"cannot chown {path}: {kind} {number} is not an id or -1")
    host = tree.writable("cannot chown", path, follow_final=follow)

    with guest_errors("cannot chown", path):
        os.chown(host, owner, group, follow_symlinks=False)


def utimens(tree: GuestTree, path: str, atime: Timespec, mtime: Timespec) -> None:
    """Set a guest file's access and modification times to the nanosecond.

    As libguestfs's ``utimens`` (utimensat(2) with ``AT_SYMLINK_NOFOLLOW``), a final link
    gets the times itself.

    Args:
        atime: ``(atsecs, atnsecs)``. An ``atnsecs`` of :data:`UTIME_NOW` (-1) sets the time
            to now, :data:`UTIME_OMIT` (-2) leaves it; ``atsecs`` is then ignored.
        mtime: ``(mtsecs, mtnsecs)``, likewise.

    Raises:
        GuestFileError: A ``*nsecs`` is outside 0..999999999 and not -1 or -2.
    """
    (atsecs, atnsecs), (mtsecs, mtnsecs) = atime, mtime
    for name, nsecs in (("atnsecs", atnsecs), ("mtnsecs", mtnsecs)):
        if not (0 <= nsecs < NANOSECONDS or nsecs in (UTIME_NOW, UTIME_OMIT)):
            raise GuestFileError(f"cannot set times of {path}: {name} {nsecs} is out of range")
    host = tree.writable("cannot set times of", path, follow_final=False)
    if atnsecs == mtnsecs == UTIME_OMIT:
        return  # as utimensat(2): nothing to change, not even the ctime

    with guest_errors("cannot set times of", path):
        current = os.lstat(host)
        now = time.time_ns()
        times = (
            _nanoseconds(atsecs, atnsecs, now, current.st_atime_ns),
            _nanoseconds(mtsecs, mtnsecs, now, current.st_mtime_ns),
        )
        os.utime(host, ns=times, follow_symlinks=False)


def _nanoseconds(secs: int, nsecs: int, now: int, current: int) -> int:
    if nsecs == UTIME_NOW:
        return now
    if nsecs == UTIME_OMIT:
        return current
    return secs * NANOSECONDS + nsecs
