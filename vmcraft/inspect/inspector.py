"""Find the operating systems on a guest's filesystems, as libguestfs's ``inspect_os`` does.

Every filesystem is mounted read-only in a private folder (:mod:`vmcraft.inspect.scratch`),
classified (:mod:`vmcraft.inspect.roles`) and released again; several at once, since each
mostly waits on mount(8) or a FUSE driver. A root's mountpoints come from its fstab,
resolved against the guest's devices. Then libguestfs's three merges run, in its order:
a CoreOS root takes its version from the newest CoreOS ``/usr``; a BSD root seen twice (as
its MBR slice and as the partition inside it) is kept once; a Linux root fills what it does
not know from a ``/usr`` filesystem its fstab mounts.

Beyond libguestfs, which lists every btrfs subvolume, only the subvolumes at the top of a
btrfs filesystem are tried, and only when the filesystem itself is not a root: that finds
the usual layouts (``@``, ``root``) without a root per snapshot.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
from collections.abc import Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from vmcraft.errors import FilesystemError, GuestPathError, InspectionError
from vmcraft.guest.files import GuestTree
from vmcraft.guest.paths import resolve_guest_path
from vmcraft.inspect.fstab import FstabMount, parse_fstab, resolve_fstab
from vmcraft.inspect.fstab_devices import GuestDevices
from vmcraft.inspect.guestfiles import read_small_file
from vmcraft.inspect.linux import OsIdentity
from vmcraft.inspect.roles import Finding, PartitionIds, Role, classify, partition_ids
from vmcraft.inspect.roots import InspectedRoot, merge_identity
from vmcraft.inspect.scratch import Candidate, MountFunction, ScratchMounts, private_tree
from vmcraft.inspect.unix import with_derived_fields
from vmcraft.mountables import btrfsvol, split_btrfsvol

log = logging.getLogger(__name__)

MAX_WORKERS = 4
UNKNOWN = "unknown"
NOT_INSPECTED_TYPES = frozenset({"swap", "unknown", "exfat"})
"""Types never mounted for inspection: no OS root or ``/usr`` can live on them."""
BTRFS_SUBVOLUME_INODE = 256
"""The inode number of every btrfs subvolume's top folder (BTRFS_FIRST_FREE_OBJECTID)."""
BSD_TYPES = frozenset({"freebsd", "netbsd", "openbsd"})


@dataclass(frozen=True)
class _Found:
    """One inspected filesystem (or btrfs subvolume) and what it is."""

    mountable: str
    fstype: str
    finding: Finding
    fstab: tuple[FstabMount, ...] = ()

    @property
    def identity(self) -> OsIdentity:
        """The OS the filesystem belongs to (roots and ``/usr`` filesystems only)."""
        if self.finding.identity is None:
            raise InspectionError(f"{self.mountable} belongs to no operating system")
        return self.finding.identity

    @property
    def distro(self) -> str:
        return self.finding.identity.distro if self.finding.identity else UNKNOWN

    @property
    def os_type(self) -> str:
        return self.finding.identity.type if self.finding.identity else UNKNOWN


@dataclass(frozen=True)
class _Context:
    devices: GuestDevices
    disks: PartitionIds
    workdir: str
    mount: MountFunction


def inspect_filesystems(
    candidates: Sequence[Candidate],
    devices: GuestDevices,
    workdir: str,
    mount: MountFunction,
    max_workers: int = MAX_WORKERS,
) -> list[InspectedRoot]:
    """Inspect every candidate filesystem and return the roots found, in device order.

    Args:
        candidates: The guest's filesystems (swap and unknown ones are passed over).
        devices: The guest's devices and blkid tags, to resolve fstab entries.
        workdir: A private folder for the temporary mounts.
        mount: How to mount one filesystem read-only.
        max_workers: Filesystems inspected at once.
    """
    wanted = [c for c in candidates if c.fstype not in NOT_INSPECTED_TYPES]
    context = _Context(devices, partition_ids(devices), workdir, mount)
    with ThreadPoolExecutor(max_workers=max(1, max_workers)) as pool:
        batches = list(pool.map(lambda c: _inspect_candidate(c, context), wanted))
    found = [item for batch in batches for item in batch]

    found = _collect_coreos(found)
    found = _without_bsd_shadow_roots(found)
    found = [_with_linux_usr(item, found) for item in found]
    return [_as_root(item) for item in found if item.finding.role is Role.ROOT]


def _inspect_candidate(candidate: Candidate, context: _Context) -> list[_Found]:
    with ScratchMounts(context.workdir, context.mount) as scratch:
        folder = scratch.new_folder()
        try:
            scratch.mount(candidate, folder)
        except FilesystemError as e:
            log.warning("inspection skips %s: %s", candidate.name, e)
            log.debug("cannot mount %s", candidate.name, exc_info=e)
            return []

        found = [_examine(private_tree(folder), candidate.name, candidate.fstype, context)]
        if candidate.fstype == "btrfs" and found[0].finding.role is not Role.ROOT:
            found += _examine_subvolumes(folder, candidate.name, context)
        return found


def _examine(tree: GuestTree, mountable: str, fstype: str, context: _Context) -> _Found:
    finding = classify(tree, context.disks)
    log.debug("inspection: %s is %s", mountable, finding.role.value)
    if finding.fstab_os_type is not None:
        fstab = _read_fstab(tree, context.devices, mountable, finding.fstab_os_type)
    elif finding.fixed_mountpoint is not None:
        fstab = (FstabMount(mountable, finding.fixed_mountpoint, fstype),)
    else:
        fstab = ()
    return _Found(mountable, fstype, finding, fstab)


def _read_fstab(
    tree: GuestTree, devices: GuestDevices, root: str, os_type: str
) -> tuple[FstabMount, ...]:
    text = read_small_file(tree, "/etc/fstab")
    if text is None:
        return ()
    return tuple(resolve_fstab(parse_fstab(text), devices, root, os_type))


def _examine_subvolumes(folder: str, device: str, context: _Context) -> list[_Found]:
    try:
        with os.scandir(folder) as entries:
            subvolumes = sorted((e for e in entries if _is_subvolume(e)), key=lambda e: e.name)
    except OSError as e:
        log.warning("inspection skips the subvolumes of %s: %s", device, e)
        return []

    return [
        _examine(private_tree(entry.path), btrfsvol(device, entry.name), "btrfs", context)
        for entry in subvolumes
    ]


def _is_subvolume(entry: os.DirEntry[str]) -> bool:
    return entry.is_dir(follow_symlinks=False) and entry.inode() == BTRFS_SUBVOLUME_INODE


# ---------------------------------------------------------------- libguestfs's merges


def _merge(child: _Found, parent: _Found) -> _Found:
    identity = merge_identity(child.identity, parent.identity)
    finding = dataclasses.replace(parent.finding, identity=identity)
    return dataclasses.replace(parent, finding=finding, fstab=child.fstab + parent.fstab)


def _collect_coreos(found: list[_Found]) -> list[_Found]:
    """Merge the newest CoreOS ``/usr`` into the CoreOS root (libguestfs picks by version)."""
    roots = [f for f in found if f.finding.role is Role.ROOT and f.distro == "coreos"]
    usrs = [f for f in found if f.finding.role is Role.USR and f.distro == "coreos"]
    if not roots or not usrs:
        return found
    if len(roots) > 1:
        log.warning("several CoreOS roots found; their /usr filesystems are not merged")
        return found

    newest = max(usrs, key=_version)
    merged = _merge(newest, roots[0])
    return [merged if f is roots[0] else f for f in found if f not in usrs]


def _version(item: _Found) -> tuple[int, int]:
    return item.identity.major_version, item.identity.minor_version


def _without_bsd_shadow_roots(found: list[_Found]) -> list[_Found]:
    """Drop a BSD root on a primary MBR partition when the same BSD shows up elsewhere too.

    The slice (``/dev/sda1``) and the disklabel partition in it (``/dev/sda5``) are the
    same filesystem; libguestfs keeps the latter.
    """
    primary = next((f for f in found if _is_bsd_root(f) and _is_primary(f.mountable)), None)
    if primary is None:
        return found
    others = [f for f in found if f is not primary]
    if any(_is_bsd_root(f) and f.os_type == primary.os_type for f in others):
        return others
    return found


def _is_bsd_root(item: _Found) -> bool:
    return item.finding.role is Role.ROOT and item.os_type in BSD_TYPES


def _is_primary(mountable: str) -> bool:
    name = mountable.removeprefix("/dev/")
    return len(name) == 4 and name[0] in "hsv" and name[1] == "d" and name[3] in "1234"


def _with_linux_usr(item: _Found, found: list[_Found]) -> _Found:
    """Fill a Linux root's blanks from a ``/usr`` of the same distro that its fstab mounts."""
    if item.finding.role is not Role.ROOT or item.distro in (UNKNOWN, "coreos"):
        return item
    mounted = {m.mountable for m in item.fstab}
    for usr in found:
        if usr.finding.role is not Role.USR or usr.distro not in (item.distro, UNKNOWN):
            continue
        if usr.mountable in mounted:
            return _merge(usr, item)
    return item


def _as_root(item: _Found) -> InspectedRoot:
    identity = _refresh_derived(item.identity)
    return InspectedRoot(item.mountable, item.fstype, identity, item.fstab, item.finding.windows)


def _refresh_derived(identity: OsIdentity) -> OsIdentity:
    # A merge may have brought the version: work out osinfo (and, if still unknown, the
    # package fields) from the merged facts, as libguestfs's osinfo is computed on demand.
    derived = with_derived_fields(identity, None)
    keep_packages = identity.package_format != UNKNOWN
    return dataclasses.replace(
        identity,
        osinfo=derived.osinfo,
        package_format=identity.package_format if keep_packages else derived.package_format,
        package_management=(
            identity.package_management
            if identity.package_management != UNKNOWN
            else derived.package_management
        ),
    )


# ---------------------------------------------------------------- a root, assembled


@contextlib.contextmanager
def assembled_root(
    root: InspectedRoot, candidates: Mapping[str, Candidate], workdir: str, mount: MountFunction
) -> Iterator[GuestTree]:
    """The root with its filesystems mounted as its fstab says, privately and read-only.

    Filesystems that cannot be mounted are left out with a warning, as long as the root
    itself mounts.

    Raises:
        InspectionError: The root filesystem itself cannot be mounted.
    """
    requests = dict(root.mountpoints)
    requests["/"] = root.root
    with ScratchMounts(workdir, mount) as scratch:
        folder = scratch.new_folder()
        for mountpoint in sorted(requests, key=_depth):
            try:
                _mount_one(scratch, folder, mountpoint, requests[mountpoint], candidates)
            except (FilesystemError, GuestPathError) as e:
                if mountpoint == "/":
                    raise InspectionError(f"cannot mount the root {root.root}: {e}") from e
                log.warning("reading %s without %s: %s", root.root, mountpoint, e)
        yield private_tree(folder)


def _depth(mountpoint: str) -> int:
    return len([c for c in mountpoint.split("/") if c])


def _mount_one(
    scratch: ScratchMounts,
    folder: str,
    mountpoint: str,
    mountable: str,
    candidates: Mapping[str, Candidate],
) -> None:
    device, subvolume = split_btrfsvol(mountable, candidates)
    candidate = candidates.get(device)
    if candidate is None:
        raise FilesystemError(f"{mountable} is no filesystem of this guest")

    target = folder if mountpoint == "/" else resolve_guest_path(folder, mountpoint)
    if not os.path.isdir(target):
        raise FilesystemError(f"{mountpoint} is no folder in the guest")
    scratch.mount(candidate, target, subvolume)
