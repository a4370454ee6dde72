"""Mount calls of the handle: guest mountpoints over the private mount root."""

from __future__ import annotations

import logging
import os
import posixpath
from collections.abc import Iterable, Mapping

from vmcraft.api import lifecycle
from vmcraft.api.base import GuestMount, HandleBase
from vmcraft.errors import MountError, VMCraftError
from vmcraft.filesystems import fallback
from vmcraft.filesystems.mount import MountedFilesystem, mount_filesystem, unmount
from vmcraft.filesystems.ordering import mount_in_order
from vmcraft.filesystems.probe import BlkidCache
from vmcraft.guest.paths import check_guest_path, resolve_guest_path
from vmcraft.mountables import split_btrfsvol
from vmcraft.volumes.devices import GuestDevice

log = logging.getLogger(__name__)

_NOT_MOUNTABLE = {"swap": "it is swap space", "LVM2_member": "it is an LVM physical volume"}


class MountCalls(HandleBase):
    """libguestfs's mount calls, plus ``mount_with_fallback`` and ``mount_all_parallel``."""

    _blkid: BlkidCache

    def mount(self, mountable: str, mountpoint: str) -> None:
        """Mount read-write (read-only when the drive is read-only)."""
        self.mount_options("", mountable, mountpoint)

    def mount_ro(self, mountable: str, mountpoint: str) -> None:
        """Mount read-only."""
        self.mount_options("ro", mountable, mountpoint)

    def mount_options(self, options: str, mountable: str, mountpoint: str) -> None:
        """Mount with extra options (comma-separated, as mount's ``-o``)."""
        self.mount_vfs(options, "", mountable, mountpoint)

    def mount_vfs(self, options: str, vfstype: str, mountable: str, mountpoint: str) -> None:
        """Mount with extra options and an explicit type (``""``: probe it).

        Raises:
            DeviceNotFoundError: No such guest device.
            MountError: The mount failed; the message names the device, type and cause.
        """
        self._require_ready("mount")
        name, subvolume = split_btrfsvol(mountable, (d.name for d in self._devices.all()))
        device, fstype = self._mountable(name, vfstype)
        extra = [o for o in options.split(",") if o]
        if subvolume is not None:
            if fstype != "btrfs":
                raise MountError(f"cannot mount {mountable}: {name} holds {fstype}, not btrfs")
            extra.append(f"subvol={subvolume}")
        self._mount_at(device, fstype, mountpoint, extra)

    def mount_with_fallback(self, device: str, mountpoint: str, fstype: str | None = None) -> bool:
        """Mount, falling back to ever safer read-only ways for damaged filesystems.

        The rungs: a normal mount; read-only without journal recovery (ext3/4, xfs, btrfs);
        read-only without loading the journal (ext3/4); ntfs-3g read-only. The rung that
        worked is in :meth:`mount_levels`.

        Returns:
            True when some rung mounted it; False when none did (each failure is logged).
        """
        self._require_ready("mount_with_fallback")
        try:
            found, kind = self._mountable(device, fstype or "")
            self._mount_at(found, kind, mountpoint, None)
        except VMCraftError as e:
            log.warning("cannot mount %s on %s: %s", device, mountpoint, e)
            return False
        return True

    def mount_levels(self) -> dict[str, str]:
        """How each mountpoint was mounted: ``normal``, ``ro-norecovery``, ``ro-noload``..."""
        self._require_ready("mount_levels")
        with self._mount_lock:
            return {m.mountpoint: m.level for m in self._mounts}

    def mount_all_parallel(
        self,
        devices: Mapping[str, str] | Iterable[tuple[str, str]],
        max_workers: int = 4,
        readonly: bool = True,
    ) -> dict[str, bool]:
        """Mount several filesystems: parents before children, siblings in parallel.

        Args:
            devices: ``{mountpoint: device}``, or ``(device, mountpoint)`` pairs.
            max_workers: Mounts running at once.
            readonly: Mount them read-only.

        Returns:
            ``{mountpoint: mounted}``; one failure does not stop the others.
        """
        self._require_ready("mount_all_parallel")
        if isinstance(devices, Mapping):
            requests = dict(devices)
        else:
            requests = {mountpoint: device for device, mountpoint in devices}
        options = "ro" if readonly else ""
        # Workers cannot be interrupted; the caller is, once every mount is recorded.
        with lifecycle.critical_section():
            return mount_in_order(
                requests,
                lambda device, mp: self.mount_options(options, device, mp),
                max_workers=max_workers,
            )

    def umount(self, pathordevice: str) -> None:
        """Unmount by guest mountpoint or by device.

        Raises:
            MountError: Nothing of that name is mounted, or filesystems are mounted below it.
        """
        self._require_ready("umount")
        with self._mount_lock:
            entry = self._find_mount(pathordevice)
            below = [m.mountpoint for m in self._mounts if _is_below(m.mountpoint, entry)]
            if below:
                raise MountError(
                    f"cannot unmount {entry.mountpoint}: {', '.join(below)} mounted below it"
                )
            with lifecycle.critical_section():
                unmount(entry.mounted)
                self._mounts.remove(entry)

    def umount_all(self) -> None:
        """Unmount everything, last mounted first; keeps going past failures."""
        self._require_ready("umount_all")
        with self._mount_lock, lifecycle.critical_section():
            errors = []
            for entry in reversed(list(self._mounts)):
                try:
                    unmount(entry.mounted)
                except MountError as e:
                    errors.append(str(e))
                    continue
                self._mounts.remove(entry)
            if errors:
                raise MountError("; ".join(errors))

    def mounts(self) -> list[str]:
        """The mounted devices, in mount order."""
        self._require_ready("mounts")
        with self._mount_lock:
            return [m.device.name for m in self._mounts]

    def mountpoints(self) -> dict[str, str]:
        """``{device: mountpoint}`` for everything mounted."""
        self._require_ready("mountpoints")
        with self._mount_lock:
            return {m.device.name: m.mountpoint for m in self._mounts}

    def _find_mount(self, pathordevice: str) -> GuestMount:
        normal = posixpath.normpath(pathordevice) if pathordevice.startswith("/") else ""
        for entry in self._mounts:
            if entry.mountpoint == normal:
                return entry
        try:
            device = self._device(pathordevice)
        except VMCraftError:
            device = None
        for entry in self._mounts:
            if device is not None and entry.device is device:
                return entry
        raise MountError(f"cannot unmount {pathordevice}: it is not mounted")

    def _mountable(self, name: str, vfstype: str) -> tuple[GuestDevice, str]:
        device = self._device(name)
        if device.unmapped_reason:
            raise MountError(f"cannot mount {device.name}: {device.unmapped_reason}")
        if device.extended:
            raise MountError(f"cannot mount {device.name}: it is an extended partition")
        fstype = vfstype or self._blkid.probe(device.host_path).get("TYPE", "")
        if not fstype:
            raise MountError(f"cannot mount {device.name}: no filesystem found on it")
        if fstype in _NOT_MOUNTABLE:
            raise MountError(f"cannot mount {device.name}: {_NOT_MOUNTABLE[fstype]}")
        return device, fstype

    def _mount_at(
        self, device: GuestDevice, fstype: str, mountpoint: str, options: list[str] | None
    ) -> None:
        """Mount with ``options``, or climb the fallback ladder when they are None."""
        check_guest_path(mountpoint)
        normal = posixpath.normpath(mountpoint)
        with self._mount_lock:
            target = self._mount_target(normal)
            if any(m.mountpoint == normal for m in self._mounts):
                raise MountError(f"cannot mount {device.name} on {normal}: already mounted")
        what = f"{device.name} ({fstype}) on {normal}"

        def attempt(extra: list[str]) -> MountedFilesystem:
            return mount_filesystem(
                device.host_path,
                target,
                fstype,
                options=extra,
                readonly=device.readonly,
                log_dir=self._workdir,
                what=what,
            )

        with lifecycle.critical_section():
            if options is None:
                mounted, level = fallback.mount_with_fallback(attempt, fstype, what)
            else:
                mounted, level = attempt(options), "normal"
            with self._mount_lock:
                self._mounts.append(GuestMount(normal, device, mounted, level))

    def _mount_target(self, mountpoint: str) -> str:
        if mountpoint == "/":
            return self._root
        if not any(m.mountpoint == "/" for m in self._mounts):
            raise MountError(f"cannot mount on {mountpoint}: nothing is mounted on / yet")
        target = resolve_guest_path(self._root, mountpoint)
        if not os.path.isdir(target):
            raise MountError(f"cannot mount on {mountpoint}: no such folder in the guest")
        return target


def _is_below(mountpoint: str, entry: GuestMount) -> bool:
    if mountpoint == entry.mountpoint:
        return False
    return entry.mountpoint == "/" or mountpoint.startswith(entry.mountpoint + "/")
