"""LVM inside the guest: find its volume groups and make its logical volumes reachable.

Metadata is read in Python from the guest's own PVs only, so the host's volume groups and
those of other open images are never scanned, and two images holding the same VG name can be
open at once. Without device-mapper a linear LV is a loop device over its byte range on the
PV; where device-mapper exists, the guest's VGs are activated with lvm2 (scanning only the
guest's PVs) and deactivated again on close.

Host tools: vgchange (only where device-mapper exists), losetup.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from contextlib import ExitStack

from vmcraft import command
from vmcraft.errors import CommandError, VolumeError
from vmcraft.volumes.devices import GuestDevice
from vmcraft.volumes.loop import LoopDevice
from vmcraft.volumes.lvm_metadata import (
    LogicalVolume,
    VolumeGroup,
    read_pv_label,
    read_volume_groups,
)

log = logging.getLogger(__name__)

HOST_UNTOUCHED_CONFIG = "backup{backup=0 archive=0}"
"""lvm2 settings that keep a guest's metadata out of the host's /etc/lvm."""


def has_device_mapper() -> bool:
    """Tell whether the host kernel offers device-mapper.

    NB: lvm2's package creates /dev/mapper/control even where the kernel has no driver
    behind it (Debian 12 on a kernel without modules), so the kernel's own list is asked.
    """
    try:
        with open("/proc/misc") as f:
            return any(line.split()[-1] == "device-mapper" for line in f if line.strip())
    except OSError:
        return False


def find_physical_volumes(devices: Iterable[GuestDevice]) -> list[GuestDevice]:
    """The devices that carry an LVM2 label."""
    found = []
    for device in devices:
        if device.extended or not device.host_path:
            continue
        try:
            if read_pv_label(device.host_path) is not None:
                found.append(device)
        except VolumeError:
            log.warning("cannot read an LVM label on %s", device.name, exc_info=True)
    return found


def _dm_conflict(vg: VolumeGroup) -> bool:
    # An active host VG of the same name owns /dev/VG and the dm names VG-LV.
    return os.path.exists(f"/dev/{vg.name}")


def _check_unique_names(groups: list[VolumeGroup]) -> None:
    # /dev/VG/LV would name two LVs; lvm2 refuses such VGs too until one is renamed.
    seen: dict[str, VolumeGroup] = {}
    for vg in groups:
        other = seen.setdefault(vg.name, vg)
        if other is not vg:
            raise VolumeError(
                f"two volume groups are named {vg.name} (uuids {other.uuid} and {vg.uuid}): "
                "open their images in separate handles"
            )


class LvmMapping:
    """The LVs of the guest's VGs as guest devices, for as long as the mapping is open."""

    def __init__(
        self, pvs: list[GuestDevice], readonly: bool, use_device_mapper: bool | None = None
    ) -> None:
        self.pvs = pvs
        self.readonly = readonly
        self.devices: list[GuestDevice] = []
        self._stack = ExitStack()
        use_dm = has_device_mapper() if use_device_mapper is None else use_device_mapper

        try:
            self.volume_groups = read_volume_groups([pv.host_path for pv in pvs])
            _check_unique_names(self.volume_groups)
            for vg in self.volume_groups:
                if use_dm and not _dm_conflict(vg) and self._activate(vg):
                    continue
                self._map_with_loops(vg)
        except BaseException:
            self.close()
            raise

    def guest_pv_name(self, host_path: str) -> str:
        return next(pv.name for pv in self.pvs if pv.host_path == host_path)

    def _lv_device(self, vg: VolumeGroup, lv: LogicalVolume, host_path: str) -> GuestDevice:
        return GuestDevice(f"/dev/{vg.name}/{lv.name}", host_path, "lv", lv.size, self.readonly)

    def _map_with_loops(self, vg: VolumeGroup) -> None:
        for lv in vg.lvs:
            if not lv.visible:
                continue
            try:
                pv, offset, length = vg.linear_extent(lv)
            except VolumeError as e:
                device = self._lv_device(vg, lv, "")
                device.unmapped_reason = f"{e} and this host has no device-mapper"
                self.devices.append(device)
                continue

            loop = LoopDevice(pv.device, readonly=self.readonly, offset=offset, size=length)
            self._stack.callback(loop.close)
            self.devices.append(self._lv_device(vg, lv, loop.path))

    def _vgchange(self, vg: VolumeGroup, activate: bool) -> None:
        # NB: lvm2 2.03 archives the guest's metadata under the host's /etc/lvm before any
        # change, activation included, unless told not to.
        config = HOST_UNTOUCHED_CONFIG
        if activate and self.readonly:
            names = ",".join(f'"{vg.name}/{lv.name}"' for lv in vg.lvs)
            config += f" activation{{read_only_volume_list=[{names}]}}"

        argv = ["vgchange", "--activate", "y" if activate else "n", "--config", config]
        for pv in vg.pvs:
            argv += ["--devices", pv.device]
        command.run([*argv, vg.name], timeout=60)

    def _activate(self, vg: VolumeGroup) -> bool:
        """Activate with device-mapper; on failure say so and let loops map the LVs."""
        try:
            self._vgchange(vg, activate=True)
        except CommandError as e:
            log.warning(
                "cannot activate volume group %s (%s); mapping linear LVs with loop "
                "devices instead",
                vg.name,
                e.reason,
            )
            return False
        self._stack.callback(self._deactivate, vg)

        for lv in vg.lvs:
            if lv.visible:
                self.devices.append(self._lv_device(vg, lv, f"/dev/{vg.name}/{lv.name}"))
        return True

    def _deactivate(self, vg: VolumeGroup) -> None:
        try:
            self._vgchange(vg, activate=False)
        except CommandError:
            log.warning("cannot deactivate volume group %s", vg.name, exc_info=True)

    def close(self) -> None:
        """Release every LV mapping, last made first; idempotent."""
        self._stack.close()
