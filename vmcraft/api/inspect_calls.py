"""Inspection calls of the handle: libguestfs's ``inspect_*`` over VMCraft's inspect layer.

``inspect_os`` looks at every filesystem through private read-only mounts, so the caller's
own mounts stay exactly as they were (libguestfs unmounts them all). Its answer is kept
until the handle is launched again or :meth:`invalidate_partition_cache` is called; the
``inspect_get_*`` calls read that answer, with libguestfs's "unknown" and 0 where nothing
was found and its errors for roots it never returned.
"""

from __future__ import annotations

import functools
import logging
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import dataclass

from vmcraft.api.devices import DeviceCalls
from vmcraft.api.files import FileCalls
from vmcraft.api.mounting import MountCalls
from vmcraft.errors import FilesystemError, InspectionError
from vmcraft.filesystems import fallback
from vmcraft.filesystems.mount import MountedFilesystem, bind_readonly, unmount
from vmcraft.filesystems.ordering import mount_in_order
from vmcraft.guest.files import GuestTree
from vmcraft.inspect.fstab_devices import GuestDevices
from vmcraft.inspect.icon import read_icon
from vmcraft.inspect.inspector import assembled_root, inspect_filesystems
from vmcraft.inspect.inventory import list_root_applications
from vmcraft.inspect.roots import InspectedRoot, WindowsFacts
from vmcraft.inspect.scratch import Candidate, Release
from vmcraft.mountables import BTRFSVOL_PREFIX
from vmcraft.volumes.devices import GuestDevice

log = logging.getLogger(__name__)

PROBE_WORKERS = 4
"""blkid runs at once when inspection probes every device (each mostly waits on I/O)."""


@dataclass(frozen=True)
class _Inspection:
    """The roots ``inspect_os`` found during one launch (its work folder tells which)."""

    workdir: str
    roots: dict[str, InspectedRoot]


class InspectCalls(DeviceCalls, MountCalls, FileCalls):
    """libguestfs's ``inspect_os`` and ``inspect_get_*`` calls."""

    _inspection: _Inspection | None = None

    def inspect_os(self, use_cache: bool = True) -> list[str]:
        """Find the operating systems on the guest's disks.

        Every filesystem is mounted read-only in a private folder and released again; the
        caller's mounts are not touched. Nothing found is not an error.

        Args:
            use_cache: Return the previous answer of this launch if there is one.

        Returns:
            The mountables of the roots found (``/dev/sda2``, ``/dev/VG/LV``...).
        """
        self._require_ready("inspect_os")
        found = self._current_inspection() if use_cache else None
        if found is None:
            devices = self._guest_devices()  # first: it probes in parallel, filling the cache
            roots = inspect_filesystems(
                self._candidates(), devices, self._workdir, self._mount_privately
            )
            found = _Inspection(self._workdir, {r.root: r for r in roots})
            self._inspection = found
        return list(found.roots)

    def inspect_get_roots(self) -> list[str]:
        """The roots the last ``inspect_os`` found, or ``[]`` before it has run."""
        self._require_ready("inspect_get_roots")
        found = self._current_inspection()
        return list(found.roots) if found else []

    def invalidate_partition_cache(self, device: str | None = None) -> None:
        """Forget cached partitions and blkid results, and the inspection built on them."""
        super().invalidate_partition_cache(device)
        self._inspection = None

    def _current_inspection(self) -> _Inspection | None:
        found = self._inspection
        return found if found is not None and found.workdir == self._workdir else None

    def _candidates(self) -> list[Candidate]:
        with self._mount_lock:
            mounted: dict[str, str] = {}
            for entry in self._mounts:
                mounted.setdefault(entry.device.name, entry.mounted.target)

        candidates = []
        for name, fstype in self.list_filesystems().items():
            if name.startswith(BTRFSVOL_PREFIX):
                continue  # the inspector walks a btrfs's subvolumes itself
            device = self._device(name)
            candidates.append(Candidate(name, device.host_path, fstype, mounted.get(name)))
        return candidates

    def _guest_devices(self) -> GuestDevices:
        # A partitioned disk holds no filesystem for fstab to name: not worth a blkid run.
        mapped = [d for d in self._devices.all() if d.host_path and not self._is_partitioned(d)]
        with ThreadPoolExecutor(max_workers=PROBE_WORKERS) as pool:
            probed = list(pool.map(self._probe_or_none, mapped))

        tags = {}
        for device, found in zip(mapped, probed, strict=True):
            if found is not None:
                tags[device.name] = found
        return GuestDevices(tuple(self.list_devices()), tags)

    def _probe_or_none(self, device: GuestDevice) -> dict[str, str] | None:
        try:
            return self._blkid.probe(device.host_path)
        except FilesystemError as e:
            log.warning("inspection ignores %s: %s", device.name, e)
            return None

    def _inspected(self, root: str, call: str) -> InspectedRoot:
        self._require_ready(call)
        found = self._current_inspection()
        if found is None:
            raise InspectionError(f"{call}: no inspection data: call inspect_os first")
        if root not in found.roots:
            raise InspectionError(
                f"{call}: {root}: root device not found: only call this function with a "
                "root device previously returned by inspect_os"
            )
        return found.roots[root]

    # ---------------------------------------------------------------- what the OS is

    def inspect_get_type(self, root: str) -> str:
        """``linux``, ``windows``, ``freebsd``, ``netbsd``, ``openbsd``, ``hurd``, ``dos``,
        ``minix`` or ``unknown``."""
        return self._inspected(root, "inspect_get_type").identity.type

    def inspect_get_distro(self, root: str) -> str:
        """libguestfs's distro name (``debian``, ``fedora``, ``windows``...) or ``unknown``."""
        return self._inspected(root, "inspect_get_distro").identity.distro

    def inspect_get_product_name(self, root: str) -> str:
        """The product name as the guest gives it, or ``unknown``."""
        return self._inspected(root, "inspect_get_product_name").identity.product_name

    def inspect_get_product_variant(self, root: str) -> str:
        """Windows's installation type (``Client``, ``Server``...), else ``unknown``."""
        return self._inspected(root, "inspect_get_product_variant").identity.product_variant

    def inspect_get_major_version(self, root: str) -> int:
        """The major version, or 0."""
        return self._inspected(root, "inspect_get_major_version").identity.major_version

    def inspect_get_minor_version(self, root: str) -> int:
        """The minor version, or 0."""
        return self._inspected(root, "inspect_get_minor_version").identity.minor_version

    def inspect_get_arch(self, root: str) -> str:
        """``x86_64``, ``i386``, ``aarch64``... or ``unknown``."""
        return self._inspected(root, "inspect_get_arch").identity.arch

    def inspect_get_hostname(self, root: str) -> str:
        """The configured hostname, or ``unknown``."""
        return self._inspected(root, "inspect_get_hostname").identity.hostname

    def inspect_get_build_id(self, root: str) -> str:
        """The build id (os-release's ``BUILD_ID``, Windows's build number) or ``unknown``."""
        return self._inspected(root, "inspect_get_build_id").identity.build_id

    def inspect_get_osinfo(self, root: str) -> str:
        """The libosinfo short id (``debian12``, ``win11``...) or ``unknown``."""
        return self._inspected(root, "inspect_get_osinfo").identity.osinfo

    def inspect_get_package_format(self, root: str) -> str:
        """``rpm``, ``deb``, ``pacman``, ``apk``... or ``unknown``."""
        return self._inspected(root, "inspect_get_package_format").identity.package_format

    def inspect_get_package_management(self, root: str) -> str:
        """``dnf``, ``yum``, ``apt``, ``zypper``... or ``unknown``."""
        found = self._inspected(root, "inspect_get_package_management")
        return found.identity.package_management

    def inspect_get_format(self, root: str) -> str:
        """Always ``installed`` (libguestfs no longer inspects install discs)."""
        self._inspected(root, "inspect_get_format")
        return "installed"

    # ---------------------------------------------------------------- where it lives

    def inspect_get_mountpoints(self, root: str) -> dict[str, str]:
        """``{mountpoint: mountable}`` from the guest's fstab (just ``/`` without one)."""
        return self._inspected(root, "inspect_get_mountpoints").mountpoints

    def inspect_get_filesystems(self, root: str) -> list[str]:
        """Every filesystem the guest's fstab uses, swap included."""
        return self._inspected(root, "inspect_get_filesystems").filesystems

    def inspect_get_drive_mappings(self, root: str) -> dict[str, str]:
        """Windows drive letters: ``{"C": "/dev/sda2"}``; empty for other systems."""
        windows = self._inspected(root, "inspect_get_drive_mappings").windows
        return dict(windows.drive_mappings) if windows else {}

    def inspect_get_windows_systemroot(self, root: str) -> str:
        """The system root folder (``/Windows``).

        Raises:
            InspectionError: Not a Windows guest.
        """
        found = self._windows(root, "inspect_get_windows_systemroot", "systemroot")
        return found.systemroot

    def inspect_get_windows_current_control_set(self, root: str) -> str:
        """The current control set (``ControlSet001``).

        Raises:
            InspectionError: Not a Windows guest, or the SYSTEM hive did not say.
        """
        call = "inspect_get_windows_current_control_set"
        value = self._windows(root, call, "CurrentControlSet").current_control_set
        return self._windows_value(value, call, "CurrentControlSet could not be determined")

    def inspect_get_windows_software_hive(self, root: str) -> str:
        """The guest path of the SOFTWARE hive.

        Raises:
            InspectionError: Not a Windows guest, or the hive is missing.
        """
        call = "inspect_get_windows_software_hive"
        value = self._windows(root, call, "software hive").software_hive
        return self._windows_value(value, call, "software hive not found")

    def inspect_get_windows_system_hive(self, root: str) -> str:
        """The guest path of the SYSTEM hive.

        Raises:
            InspectionError: Not a Windows guest, or the hive is missing.
        """
        call = "inspect_get_windows_system_hive"
        value = self._windows(root, call, "system hive").system_hive
        return self._windows_value(value, call, "system hive not found")

    def _windows(self, root: str, call: str, what: str) -> WindowsFacts:
        windows = self._inspected(root, call).windows
        if windows is None:
            raise InspectionError(f"{call}: {root}: not a Windows guest ({what} unknown)")
        return windows

    @staticmethod
    def _windows_value(value: str | None, call: str, missing: str) -> str:
        if value is None:
            raise InspectionError(f"{call}: not a Windows guest, or {missing}")
        return value

    # ---------------------------------------------------------------- inside the OS

    def inspect_list_applications2(self, root: str) -> list[dict[str, str | int]]:
        """The installed applications, as libguestfs's ``application2`` dicts.

        The root's filesystems are mounted privately and read-only for the reading, so
        (unlike libguestfs) nothing needs to be mounted first.
        """
        found = self._inspected(root, "inspect_list_applications2")
        with self._assembled(found) as tree:
            return [dict(app) for app in list_root_applications(tree, found)]

    def inspect_get_icon(self, root: str, favicon: bool = True, highquality: bool = False) -> bytes:
        """The guest's icon as PNG bytes; ``b""`` when it has none that is cheap to get.

        Args:
            root: A root from ``inspect_os``.
            favicon: Try ``/etc/favicon.png`` first.
            highquality: Only a large icon will do.
        """
        found = self._inspected(root, "inspect_get_icon")
        if found.identity.type not in ("linux", "hurd"):
            return b""
        with self._assembled(found) as tree:
            return read_icon(tree, found.identity, favicon, highquality)

    def _assembled(self, root: InspectedRoot) -> AbstractContextManager[GuestTree]:
        candidates = {c.name: c for c in self._candidates()}
        return assembled_root(root, candidates, self._workdir, self._mount_privately)

    def _mount_privately(self, candidate: Candidate, target: str, subvolume: str | None) -> Release:
        """Mount read-only on a private folder for inspection (a :data:`MountFunction`).

        A filesystem the caller has mounted cannot be mounted twice (mount(8): "already
        mounted"); it is bind-mounted read-only from the caller's mount, which takes that
        one filesystem and none of the mounts below it. btrfs is the exception: it mounts
        as often as asked, and the caller's mount may show a subvolume, not the default.
        """
        if candidate.mounted_at is None or candidate.fstype == "btrfs":
            mounted = _mount_readonly(candidate, target, subvolume, self._workdir)
        else:
            what = f"{candidate.name} for inspection"
            mounted = bind_readonly(candidate.mounted_at, target, what)
        return functools.partial(_release, mounted)

    def inspect_mount_root(self, root: str, readonly: bool = True) -> dict[str, bool]:
        """Mount a root's filesystems where its fstab puts them, as virt tools' ``-i`` does.

        Parents go before children, siblings in parallel; btrfs subvolumes are mounted with
        ``subvol=``.

        Returns:
            ``{mountpoint: mounted}``; a failure does not stop the others.
        """
        found = self._inspected(root, "inspect_mount_root")
        requests = {"/": found.root, **found.mountpoints}

        def mount_one(mountable: str, mountpoint: str) -> None:
            self.mount_options("ro" if readonly else "", mountable, mountpoint)

        return mount_in_order(requests, mount_one)


def _mount_readonly(
    candidate: Candidate, target: str, subvolume: str | None, workdir: str
) -> MountedFilesystem:
    mounted, level = fallback.mount_climbing(
        candidate.host_path,
        target,
        candidate.fstype,
        options=[f"subvol={subvolume}"] if subvolume else [],
        readonly=True,
        log_dir=workdir,
        what=f"{candidate.name} ({candidate.fstype}) for inspection",
    )
    if level != "normal":
        log.info("inspecting %s mounted %s", candidate.name, level)
    return mounted


def _release(mounted: MountedFilesystem) -> None:
    try:
        unmount(mounted)
    except FilesystemError as e:
        log.warning("inspection cannot unmount %s: %s", mounted.target, e)
