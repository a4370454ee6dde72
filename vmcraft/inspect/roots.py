"""What inspection found: each operating system, by the mountable of its root.

The mountpoint and filesystem lists keep libguestfs's rules: they come from the root's
fstab in file order; a root with no usable fstab (Windows, a Linux whose fstab names nothing
of this guest) has just itself on ``/``; swap and ``none`` entries are filesystems but have
no mountpoint.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from vmcraft.inspect.fstab import FstabMount
from vmcraft.inspect.linux import OsIdentity

UNKNOWN = "unknown"


@dataclass(frozen=True)
class WindowsFacts:
    """The Windows-only parts of an inspected root; None where not found."""

    systemroot: str
    current_control_set: str | None = None
    software_hive: str | None = None
    system_hive: str | None = None
    drive_mappings: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class InspectedRoot:
    """One operating system found on the disks.

    Args:
        root: The mountable of its root filesystem (``/dev/sda2``, ``/dev/VG/LV``,
            ``btrfsvol:/dev/sda2/@``).
        fstype: The root filesystem's type.
        identity: Type, distro, versions... as libguestfs reports them.
        fstab: The guest's own view of its filesystems, resolved to this guest's devices.
        windows: The Windows-only facts, for a Windows root.
    """

    root: str
    fstype: str
    identity: OsIdentity
    fstab: tuple[FstabMount, ...] = ()
    windows: WindowsFacts | None = None

    @property
    def mountpoints(self) -> dict[str, str]:
        """``{mountpoint: mountable}``, in fstab order (libguestfs's ``get_mountpoints``)."""
        if not self.fstab:
            return {"/": self.root}
        return {
            m.mountpoint: m.mountable
            for m in self.fstab
            if m.mountpoint.startswith("/") and m.vfstype != "swap"
        }

    @property
    def filesystems(self) -> list[str]:
        """Every filesystem the root's fstab names, swap included (``get_filesystems``)."""
        if not self.fstab:
            return [self.root]
        return [m.mountable for m in self.fstab]


def merge_identity(child: OsIdentity, parent: OsIdentity) -> OsIdentity:
    """Fill what ``parent`` does not know from ``child``, as libguestfs merges a ``/usr``.

    A version counts as unknown when both numbers are 0.
    """
    updates: dict[str, object] = {}
    for name in OsIdentity.__dataclass_fields__:
        if name in ("major_version", "minor_version"):
            continue
        if getattr(parent, name) == UNKNOWN and getattr(child, name) != UNKNOWN:
            updates[name] = getattr(child, name)

    unknown_version = (parent.major_version, parent.minor_version) == (0, 0)
    if unknown_version:
        updates["major_version"] = child.major_version
        updates["minor_version"] = child.minor_version
    return dataclasses.replace(parent, **updates)  # type: ignore[arg-type]
