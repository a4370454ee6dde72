"""Guest disk images for the test suite, built by the same host tools a user has.

Every builder writes a sparse raw image under the work directory it is given and returns
a `Guest` whose manifest holds the values the recipe chose, never values read back from
the image: tests check the image against the manifest through an independent route.
Builders release every loop device, mount and FUSE driver they start, by its own id,
before they return.

Host tools: sfdisk, losetup, partx, mount, umount, mkfs.ext4, mkfs.xfs, mkfs.btrfs,
mkswap, mformat, mcopy, mkntfs, ntfslabel, ntfs-3g, mkfs.exfat, tune.exfat,
mount.exfat-fuse, pvcreate, vgcreate, lvcreate, lvs, pvs, vgs, xfs_io, xfs_logprint,
debugfs, dumpe2fs, cp, qemu-img.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import logging
import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from vmcraft import VMCraft

log = logging.getLogger(__name__)

SECTOR_SIZE = 512
MiB = 1024 * 1024
COMMAND_TIMEOUT = 120  # seconds, for any one host tool
MOUNT_TIMEOUT = 10  # seconds for a FUSE driver to mount or to exit after umount

LVM_CONFIG = "global{activation=0} backup{backup=0 archive=0}"
MBR_LINUX, MBR_FAT16, MBR_EXTENDED, MBR_SWAP, MBR_NTFS = "83", "e", "5", "82", "7"
GPT_LINUX = "0FC63DAF-8483-4772-8E79-3D47D8E4DE47"
GPT_LVM = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
GPT_BASIC_DATA = "EBD0A0A2-B9E5-4433-87C0-68B6B72699C7"

# Host tools each builder runs, for capability checks before building.
REQUIRED_TOOLS: dict[str, tuple[str, ...]] = {
    name: tuple(tools.split())
    for name, tools in {
        "build_mbr_guest": "sfdisk partx mkfs.ext4 mkfs.xfs mkfs.btrfs mkswap mformat mcopy"
        " mkntfs ntfslabel ntfs-3g",
        "build_gpt_lvm_guest": "sfdisk partx mkfs.ext4 mkfs.xfs mkfs.exfat tune.exfat"
        " mount.exfat-fuse pvcreate vgcreate lvcreate lvs pvs vgs",
        "build_dirty_ext4": "mkfs.ext4 debugfs dumpe2fs",
        "build_dirty_xfs": "sfdisk partx mkfs.xfs xfs_io xfs_logprint",
        "build_dirty_ntfs": "sfdisk partx mkntfs ntfslabel ntfs-3g",
        "build_hostile_guest": "sfdisk mkfs.ext4",
        "convert": "qemu-img",
    }.items()
}

IMAGE_SUFFIXES = {
    "raw": "raw",
    "qcow2": "qcow2",
    "vmdk": "vmdk",
    "vhdx": "vhdx",
    "vpc": "vhd",
    "vdi": "vdi",
}


class GuestBuildError(RuntimeError):
    """A host tool failed, or an image did not come out as its recipe says."""


@dataclass(frozen=True)
class FsSpec:
    """One filesystem (or PV, or swap area) of a guest, as its recipe made it.

    `files` are regular files a reader finds without replaying any journal;
    `journal_files` (dirty guests only) exist only once the journal or log is replayed.
    Treat the dicts as read-only: guests are shared by the whole session.
    """

    device: str
    fstype: str
    label: str | None
    uuid: str | None
    files: dict[str, bytes] = field(default_factory=dict)
    symlinks: dict[str, str] = field(default_factory=dict)  # guest path -> link target
    directories: tuple[str, ...] = ()  # empty directories, e.g. mountpoints
    journal_files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class Guest:
    """A guest disk image and the manifest of what its recipe put in it."""

    path: Path
    format: str
    table: str | None
    partitions: dict[str, tuple[int, int]]
    filesystems: dict[str, FsSpec]
    volume_groups: dict[str, list[str]]
    mountpoints: dict[str, str]
    size: int  # virtual disk size in bytes


@dataclass(frozen=True)
class _Partition:
    number: int
    start: int  # bytes
    size: int  # bytes
    type: str  # sfdisk type: an MBR type byte in hex or a GPT type GUID

    @property
    def device(self) -> str:
        return f"/dev/sda{self.number}"

    def script_line(self) -> str:
        start_sectors = self.start // SECTOR_SIZE
        size_sectors = self.size // SECTOR_SIZE
        return f"start={start_sectors}, size={size_sectors}, type={self.type}"


@dataclass(frozen=True)
class MountEntry:
    """One line of /proc/self/mountinfo."""

    mount_id: int
    mountpoint: str
    options: str
    fstype: str
    source: str


# ---------------------------------------------------------------- host plumbing


def run(
    argv: Sequence[str], *, input: bytes | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    """Run one host tool; raise GuestBuildError carrying its stderr if it fails."""
    log.debug("running %s", " ".join(argv))
    full_env = {**os.environ, "LC_ALL": "C", **(env or {})}
    started = time.monotonic()
    try:
        result = subprocess.run(
            list(argv),
            input=input,
            capture_output=True,
            env=full_env,
            timeout=COMMAND_TIMEOUT,
            check=True,
        )
    except subprocess.CalledProcessError as e:
        stderr = e.stderr.decode(errors="replace").strip()
        raise GuestBuildError(f"{argv[0]} exited {e.returncode}: {stderr}") from e
    log.debug("%s took %.3f s", argv[0], time.monotonic() - started)
    return result


@contextlib.contextmanager
def opened(*drives: Guest, readonly: bool = True, **options: float) -> Iterator[VMCraft]:
    """A launched handle with one drive per guest (``options`` go to ``VMCraft()``), closed
    on exit."""
    with VMCraft(**options) as g:
        for guest in drives:
            g.add_drive_opts(str(guest.path), format=guest.format, readonly=readonly)
        g.launch()
        yield g


def sha256(path: Path) -> str:
    """The file's SHA-256, read a MiB at a time (images run to gigabytes)."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def read_mountinfo() -> list[MountEntry]:
    """Parse /proc/self/mountinfo."""
    entries = []
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        tail = fields[fields.index("-") + 1 :]
        entries.append(
            MountEntry(
                mount_id=int(fields[0]),
                mountpoint=_unescape(fields[4]),
                options=fields[5],
                fstype=tail[0],
                source=_unescape(tail[1]),
            )
        )
    return entries


def _unescape(field_text: str) -> str:
    # mountinfo escapes only space, tab, newline and backslash, as \ooo octal.
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match[1], 8)), field_text)


def mount_entry(mountpoint: Path) -> MountEntry | None:
    """The topmost mount on mountpoint, or None."""
    matches = [e for e in read_mountinfo() if e.mountpoint == str(mountpoint)]
    return matches[-1] if matches else None


@contextlib.contextmanager
def loop_device(
    image: Path | str,
    *,
    read_only: bool = False,
    offset: int = 0,
    size: int | None = None,
    partitions: bool = False,
) -> Iterator[str]:
    """Attach image (a file or a block device) to a new loop device.

    With partitions, also add the partition nodes (/dev/loopNpM), and remove them again
    before detaching.
    """
    argv = ["losetup", "--find", "--show"]
    if read_only:
        argv.append("--read-only")
    if offset:
        argv += ["--offset", str(offset)]
    if size is not None:
        argv += ["--sizelimit", str(size)]
    device = run([*argv, str(image)]).stdout.decode().strip()

    try:
        if partitions:
            # NB: this kernel has no partition parsers; partx adds nodes through BLKPG.
            run(["partx", "--add", device])
        yield device
    finally:
        if partitions:
            _remove_partition_nodes(device)
        run(["losetup", "--detach", device])


def _remove_partition_nodes(device: str) -> None:
    try:
        run(["partx", "--delete", device])
    except GuestBuildError as e:
        log.warning("cannot remove partition nodes of %s: %s", device, e)


@contextlib.contextmanager
def mounted(source: str, mountpoint: Path, options: str | None = None) -> Iterator[Path]:
    """Mount source on mountpoint (created if missing) with the kernel."""
    mountpoint.mkdir(parents=True, exist_ok=True)
    argv = ["mount", *(["-o", options] if options else []), source, str(mountpoint)]
    run(argv)
    try:
        yield mountpoint
    finally:
        run(["umount", str(mountpoint)])


@contextlib.contextmanager
def fuse_mounted(argv: Sequence[str], mountpoint: Path, log_path: Path) -> Iterator[Path]:
    """Run a FUSE driver in the foreground as a child; umount and wait for it after.

    argv must keep the driver attached (`ntfs-3g -o no_detach`, `mount.exfat-fuse -d`)
    and end with the mountpoint. The driver's output goes to log_path.
    """
    mountpoint.mkdir(parents=True, exist_ok=True)
    log.debug("starting %s", " ".join(argv))
    with log_path.open("ab") as log_file:
        process = subprocess.Popen(
            list(argv), stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT
        )

    try:
        _wait_for_mount(mountpoint, process, argv[0], log_path)
        yield mountpoint
    finally:
        _stop_fuse_driver(mountpoint, process, argv[0])


def _wait_for_mount(
    mountpoint: Path, process: subprocess.Popen[bytes], name: str, log_path: Path
) -> None:
    deadline = time.monotonic() + MOUNT_TIMEOUT
    while mount_entry(mountpoint) is None:
        if process.poll() is not None:
            tail = log_path.read_text(errors="replace")[-2000:]
            raise GuestBuildError(f"{name} exited {process.returncode}: {tail}")
        if time.monotonic() > deadline:
            raise GuestBuildError(f"{name} did not mount {mountpoint}")
        time.sleep(0.02)


def _stop_fuse_driver(mountpoint: Path, process: subprocess.Popen[bytes], name: str) -> None:
    # Unmount even if the driver died: its dead mount would otherwise stay behind.
    if mount_entry(mountpoint) is not None:
        run(["umount", str(mountpoint)])

    try:
        process.wait(timeout=MOUNT_TIMEOUT)
    except subprocess.TimeoutExpired:
        log.warning("%s did not exit after umount; killing it", name)
        process.kill()
        process.wait()
    if process.returncode:
        log.warning("%s exited %s", name, process.returncode)


# ---------------------------------------------------------------- recipe steps


def _new_image(path: Path, size: int) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    run(["truncate", "--size", str(size), str(path)])
    return path


def _write_table(image: Path, label: str, partitions: Sequence[_Partition]) -> None:
    lines = [f"label: {label}", "unit: sectors"]
    if label == "dos":
        lines.append("label-id: 0x7e570001")
    lines += [p.script_line() for p in partitions]
    run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(image)],
        input="\n".join(lines).encode() + b"\n",
    )


def populate(root: Path, spec: FsSpec) -> None:
    """Create spec's directories, files and symlinks under root."""
    for directory in spec.directories:
        _inside(root, directory).mkdir(parents=True, exist_ok=True)
    for guest_path, content in spec.files.items():
        target = _inside(root, guest_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
    for guest_path, link_target in spec.symlinks.items():
        link = _inside(root, guest_path)
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to(link_target)


def _inside(root: Path, guest_path: str) -> Path:
    return root / guest_path.lstrip("/")


def _seed_directory(spec: FsSpec, scratch: Path) -> Path:
    seed = scratch / ("seed" + spec.device.replace("/", "-"))
    seed.mkdir(parents=True)
    populate(seed, spec)
    return seed


def _make_ext4(
    target: str,
    spec: FsSpec,
    scratch: Path,
    *,
    offset: int = 0,
    size: int | None = None,
    block_size: int | None = None,
) -> None:
    argv = ["mkfs.ext4", "-F", "-q", "-L", spec.label or "", "-U", spec.uuid or "random"]
    if block_size:
        argv += ["-b", str(block_size)]
    argv += ["-d", str(_seed_directory(spec, scratch))]
    if offset:
        argv += ["-E", f"offset={offset}"]
    argv.append(target)
    if size is not None:
        argv.append(f"{size // 1024}k")
    run(argv)


def _make_xfs(device: str, spec: FsSpec, scratch: Path) -> None:
    run(["mkfs.xfs", "-q", "-f", "-L", spec.label or "", "-m", f"uuid={spec.uuid}", device])
    with mounted(device, scratch / ("mnt" + spec.device.replace("/", "-"))) as root:
        populate(root, spec)


def _make_btrfs(device: str, spec: FsSpec, scratch: Path) -> None:
    seed = _seed_directory(spec, scratch)
    run(
        [
            "mkfs.btrfs",
            "-q",
            "-f",
            "-L",
            spec.label or "",
            "-U",
            spec.uuid or "",
            "--rootdir",
            str(seed),
            device,
        ]
    )


def _make_swap(device: str, spec: FsSpec) -> None:
    run(["mkswap", "-L", spec.label or "", "-U", spec.uuid or "", device])


def _make_vfat(image: Path, partition: _Partition, spec: FsSpec, scratch: Path) -> None:
    # NB: no vfat driver in this kernel; mtools writes the image at a byte offset.
    drive = f"{image}@@{partition.start}"
    serial = (spec.uuid or "").replace("-", "")
    sectors = partition.size // SECTOR_SIZE
    run(["mformat", "-i", drive, "-T", str(sectors), "-N", serial, "-v", spec.label or "", "::"])

    seed = _seed_directory(spec, scratch)
    entries = [str(p) for p in sorted(seed.iterdir())]
    if entries:
        run(["mcopy", "-s", "-Q", "-i", drive, *entries, "::/"])


def _make_ntfs(device: str, spec: FsSpec, scratch: Path) -> None:
    run(["mkntfs", "-Q", "-F", "-q", "-L", spec.label or "", device])
    run(["ntfslabel", f"--new-serial={spec.uuid}", device])

    mountpoint = scratch / ("mnt" + spec.device.replace("/", "-"))
    argv = ["ntfs-3g", "-o", "no_detach", device, str(mountpoint)]
    with fuse_mounted(argv, mountpoint, scratch / "ntfs-3g.log") as root:
        populate(root, spec)


def _make_exfat(device: str, spec: FsSpec, scratch: Path) -> None:
    run(["mkfs.exfat", "-L", spec.label or "", device])
    run(["tune.exfat", "-I", "0x" + (spec.uuid or "").replace("-", ""), device])

    mountpoint = scratch / ("mnt" + spec.device.replace("/", "-"))
    argv = ["mount.exfat-fuse", "-d", device, str(mountpoint)]  # -d keeps it attached
    with fuse_mounted(argv, mountpoint, scratch / "exfat-fuse.log") as root:
        populate(root, spec)


def _lvm(argv: Sequence[str], pv: str) -> subprocess.CompletedProcess[bytes]:
    # NB: no device-mapper here: activation stays off, and --devices keeps LVM from
    # scanning (and colliding with) any other image's PVs. No backups into host /etc/lvm.
    full = [argv[0], "--config", LVM_CONFIG, "--devices", pv, *argv[1:]]
    return run(full, env={"LVM_SUPPRESS_FD_WARNINGS": "1"})


def _make_volume_group(
    pv: str, pv_uuid: str, vg_name: str, volumes: Sequence[tuple[str, int]]
) -> None:
    _lvm(["pvcreate", "-q", "--uuid", pv_uuid, "--norestorefile", pv], pv)
    _lvm(["vgcreate", "-q", vg_name, pv], pv)
    for lv_name, size in volumes:
        argv = ["lvcreate", "-q", "-an", "-Zn", "-Wn", "-n", lv_name, "-L", f"{size}b", vg_name]
        _lvm(argv, pv)


def _report(argv: Sequence[str], pv: str, kind: str) -> list[dict[str, str]]:
    full = [*argv, "--reportformat", "json", "--units", "b", "--nosuffix"]
    rows: list[dict[str, str]] = json.loads(_lvm(full, pv).stdout)["report"][0][kind]
    return rows


def logical_volume_extents(pv: str, vg_name: str) -> dict[str, tuple[int, int]]:
    """LV name -> (byte offset inside the PV, byte size) of each one-segment linear LV."""
    pe_start = int(_report(["pvs", "-o", "pe_start", pv], pv, "pv")[0]["pe_start"])
    vg_rows = _report(["vgs", "-o", "vg_extent_size", vg_name], pv, "vg")
    extent_size = int(vg_rows[0]["vg_extent_size"])
    lv_fields = "lv_name,seg_pe_ranges,seg_size_pe"
    extents = {}
    for row in _report(["lvs", "-o", lv_fields, vg_name], pv, "lv"):
        if row["lv_name"] in extents:
            raise GuestBuildError(f"LV {vg_name}/{row['lv_name']} has more than one segment")
        first_pe = int(row["seg_pe_ranges"].rsplit(":", 1)[1].split("-")[0])
        offset = pe_start + first_pe * extent_size
        extents[row["lv_name"]] = (offset, int(row["seg_size_pe"]) * extent_size)
    return extents


def _sync_to_journal(root: Path, spec: FsSpec) -> None:
    # Write and fsync, but never sync(2): sync also writes the metadata home, while
    # fsync leaves it only in the log, which is what a dirty guest needs (xfs; ext4
    # writes it home at umount anyway, see build_dirty_ext4).
    for guest_path, content in spec.journal_files.items():
        target = _inside(root, guest_path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        for path in (target, *target.relative_to(root).parents):
            _fsync(root / path)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _shut_down(mountpoint: Path) -> None:
    # FS_IOC_GOINGDOWN with LOGFLUSH: commit the log, then stop all writes, so the
    # later umount leaves the log dirty.
    run(["xfs_io", "-x", "-c", "shutdown -f", str(mountpoint)])


def _partition_map(partitions: Sequence[_Partition]) -> dict[str, tuple[int, int]]:
    return {p.device: (p.start, p.size) for p in partitions}


# ---------------------------------------------------------------- the guests


_MBR_PARTITIONS = (
    _Partition(1, 1 * MiB, 32 * MiB, MBR_LINUX),
    _Partition(2, 33 * MiB, 300 * MiB, MBR_LINUX),  # xfsprogs 6.1: at least 300 MiB
    _Partition(3, 333 * MiB, 32 * MiB, MBR_FAT16),
    _Partition(4, 365 * MiB, 187 * MiB, MBR_EXTENDED),
    _Partition(5, 366 * MiB, 120 * MiB, MBR_LINUX),  # btrfs-progs 6.2: at least 109 MiB
    _Partition(6, 487 * MiB, 32 * MiB, MBR_SWAP),
    _Partition(7, 520 * MiB, 32 * MiB, MBR_NTFS),
)
_MBR_SIZE = 553 * MiB

_MBR_FSTAB = b"""\
LABEL=root / xfs defaults 0 1
UUID=7e570001-0000-4000-8000-000000000001 /boot ext4 defaults 0 2
LABEL=ESP /boot/efi vfat umask=0077 0 2
UUID=7e570001-0000-4000-8000-000000000005 /home btrfs defaults 0 0
LABEL=swap none swap sw 0 0
/dev/sda7 /srv/win ntfs-3g defaults 0 0
"""

BLOB = bytes(range(256)) * 512  # 128 KiB spanning many blocks, every byte value


def _mbr_specs() -> dict[str, FsSpec]:
    return {
        "/dev/sda1": FsSpec(
            "/dev/sda1",
            "ext4",
            "boot",
            "7e570001-0000-4000-8000-000000000001",
            files={
                "/grub/grub.cfg": b"set root=(hd0,msdos1)\nlinux /vmlinuz root=LABEL=root\n",
                "/vmlinuz": b"not a kernel\n",
            },
            directories=("/efi",),
        ),
        "/dev/sda2": FsSpec(
            "/dev/sda2",
            "xfs",
            "root",
            "7e570001-0000-4000-8000-000000000002",
            files={
                "/etc/fstab": _MBR_FSTAB,
                "/etc/hostname": b"mbr-guest\n",
                "/etc/os-release": b'ID=fedora\nVERSION_ID=39\nNAME="Fedora Linux"\n',
                "/var/lib/blob.bin": BLOB,
            },
            directories=("/boot", "/home", "/srv/win", "/tmp"),
        ),
        "/dev/sda3": FsSpec(
            "/dev/sda3",
            "vfat",
            "ESP",
            "1234-ABCD",
            files={"/EFI/BOOT/hello.txt": b"hello from the ESP\n"},
        ),
        "/dev/sda5": FsSpec(
            "/dev/sda5",
            "btrfs",
            "home",
            "7e570001-0000-4000-8000-000000000005",
            files={"/alice/notes.txt": b"alice's notes\n", "/alice/blob.bin": BLOB},
        ),
        "/dev/sda6": FsSpec("/dev/sda6", "swap", "swap", "7e570001-0000-4000-8000-000000000006"),
        "/dev/sda7": FsSpec(
            "/dev/sda7",
            "ntfs",
            "winvol",
            "0123456789ABCDEF",
            files={"/Users/Public/readme.txt": b"hello from NTFS\r\n"},
        ),
    }


def build_mbr_guest(workdir: Path) -> Guest:
    """An MBR disk with every common filesystem, four primaries and three logicals.

    sda1 ext4 LABEL=boot (/boot), sda2 xfs LABEL=root (/), sda3 vfat LABEL=ESP
    (/boot/efi), sda4 extended, sda5 btrfs LABEL=home (/home), sda6 swap LABEL=swap,
    sda7 ntfs LABEL=winvol (/srv/win). /etc/fstab names them by LABEL, UUID and path.
    """
    image = _new_image(workdir / "mbr.raw", _MBR_SIZE)
    _write_table(image, "dos", _MBR_PARTITIONS)
    specs = _mbr_specs()
    scratch = workdir / "scratch-mbr"

    with loop_device(image, partitions=True) as loop:
        _make_ext4(f"{loop}p1", specs["/dev/sda1"], scratch)
        _make_xfs(f"{loop}p2", specs["/dev/sda2"], scratch)
        _make_btrfs(f"{loop}p5", specs["/dev/sda5"], scratch)
        _make_swap(f"{loop}p6", specs["/dev/sda6"])
        _make_ntfs(f"{loop}p7", specs["/dev/sda7"], scratch)
    _make_vfat(image, _MBR_PARTITIONS[2], specs["/dev/sda3"], scratch)

    return Guest(
        path=image,
        format="raw",
        table="msdos",
        partitions=_partition_map(_MBR_PARTITIONS),
        filesystems=specs,
        volume_groups={},
        mountpoints={
            "/": "/dev/sda2",
            "/boot": "/dev/sda1",
            "/boot/efi": "/dev/sda3",
            "/home": "/dev/sda5",
            "/srv/win": "/dev/sda7",
        },
        size=_MBR_SIZE,
    )


_GPT_PARTITIONS = (
    _Partition(1, 1 * MiB, 32 * MiB, GPT_LINUX),
    _Partition(2, 33 * MiB, 420 * MiB, GPT_LVM),
    _Partition(3, 453 * MiB, 16 * MiB, GPT_BASIC_DATA),
)
_GPT_SIZE = 470 * MiB  # a MiB past the last partition for the backup GPT
_GPT_VOLUMES = (("root", 100 * MiB), ("home", 300 * MiB))  # xfs needs 300 MiB
GPT_PV_UUID = "vmcrft-pv00-0000-0000-0000-0000-gpt001"  # LVM's 6-4-4-4-4-4-6 form


def _gpt_specs(vg_name: str) -> dict[str, FsSpec]:
    fstab = (
        f"/dev/mapper/{vg_name}-root / ext4 errors=remount-ro 0 1\n"
        "LABEL=boot /boot ext4 defaults 0 2\n"
        f"/dev/{vg_name}/home /home xfs defaults 0 2\n"
        "UUID=5EED-DA7A /srv/data exfat defaults,nofail 0 0\n"
    ).encode()
    return {
        "/dev/sda1": FsSpec(
            "/dev/sda1",
            "ext4",
            "boot",
            "7e570002-0000-4000-8000-000000000001",
            files={
                "/vmlinuz-6.1.0-test": b"not a kernel\n",
                "/grub/grub.cfg": b"linux /vmlinuz-6.1.0-test root=/dev/mapper/vg0-root\n",
            },
        ),
        "/dev/sda2": FsSpec("/dev/sda2", "LVM2_member", None, GPT_PV_UUID),
        f"/dev/{vg_name}/root": FsSpec(
            f"/dev/{vg_name}/root",
            "ext4",
            "root",
            "7e570002-0000-4000-8000-000000000010",
            files={
                "/etc/fstab": fstab,
                "/etc/hostname": b"gpt-lvm-guest\n",
                "/etc/os-release": b'ID=debian\nVERSION_ID="12"\nNAME="Debian GNU/Linux"\n',
                "/bin/true": b"#!/bin/sh\nexit 0\n",
            },
            directories=("/boot", "/home", "/srv/data"),
        ),
        f"/dev/{vg_name}/home": FsSpec(
            f"/dev/{vg_name}/home",
            "xfs",
            "home",
            "7e570002-0000-4000-8000-000000000011",
            files={"/bob/notes.txt": b"bob's notes\n", "/bob/blob.bin": BLOB},
        ),
        "/dev/sda3": FsSpec(
            "/dev/sda3",
            "exfat",
            "DATA",
            "5EED-DA7A",
            files={"/shared/readme.txt": b"hello from exFAT\n"},
        ),
    }


def build_gpt_lvm_guest(workdir: Path, vg_name: str = "vg0") -> Guest:
    """A GPT disk with /boot, an LVM PV holding root and home, and an exFAT data partition.

    sda1 ext4 LABEL=boot (/boot), sda2 PV of VG vg_name with linear LVs root (ext4
    LABEL=root, /) and home (xfs LABEL=home, /home), sda3 exfat LABEL=DATA (/srv/data).
    The LVs were made without device-mapper: each filesystem went in through a loop
    device at the LV's byte range.
    """
    image = _new_image(workdir / "gpt-lvm.raw", _GPT_SIZE)
    _write_table(image, "gpt", _GPT_PARTITIONS)
    specs = _gpt_specs(vg_name)
    scratch = workdir / "scratch-gpt"
    pv_start = _GPT_PARTITIONS[1].start

    with loop_device(image, partitions=True) as loop:
        _make_ext4(f"{loop}p1", specs["/dev/sda1"], scratch)
        _make_exfat(f"{loop}p3", specs["/dev/sda3"], scratch)
        _make_volume_group(f"{loop}p2", GPT_PV_UUID, vg_name, _GPT_VOLUMES)
        extents = logical_volume_extents(f"{loop}p2", vg_name)

    for lv_name, make in (("root", _make_ext4), ("home", _make_xfs)):
        offset, size = extents[lv_name]
        with loop_device(image, offset=pv_start + offset, size=size) as lv_device:
            make(lv_device, specs[f"/dev/{vg_name}/{lv_name}"], scratch)

    return Guest(
        path=image,
        format="raw",
        table="gpt",
        partitions=_partition_map(_GPT_PARTITIONS),
        filesystems=specs,
        volume_groups={vg_name: [name for name, _ in _GPT_VOLUMES]},
        mountpoints={
            "/": f"/dev/{vg_name}/root",
            "/boot": "/dev/sda1",
            "/home": f"/dev/{vg_name}/home",
            "/srv/data": "/dev/sda3",
        },
        size=_GPT_SIZE,
    )


_DIRTY_BASE_FILES = {
    "/etc/hostname": b"dirty-guest\n",
    "/etc/fstab": b"LABEL=dirty / auto defaults 0 1\n",
}
_DIRTY_JOURNAL_FILES = {
    "/pending/in-journal.txt": b"written, fsynced, then the filesystem was shut down\n",
    "/pending/blob.bin": BLOB,
}


def build_dirty_ext4(workdir: Path) -> Guest:
    """A whole-disk ext4 (no partition table, /dev/sda) whose journal needs recovery.

    `files` were written by mkfs and are in place. `journal_files` exist only in one
    committed journal transaction: the recipe writes them into a scratch copy with
    debugfs, and journals every block that changed into the real image with debugfs's
    journal writer, which also sets needs_recovery. A read-only loop device makes
    `mount -o ro` fail; `ro,noload` mounts it without them; a read-write mount or
    e2fsck replays them.

    NB: the kernel route (fsync, then `xfs_io -x -c "shutdown -f"`, then umount) also
    leaves needs_recovery set on Linux 6.18, but the kernel still writes the journaled
    metadata home when the device closes, so the files show up without any replay.
    """
    size = 64 * MiB
    image = _new_image(workdir / "dirty-ext4.raw", size)
    spec = FsSpec(
        "/dev/sda",
        "ext4",
        "dirty",
        "7e570003-0000-4000-8000-000000000001",
        files=dict(_DIRTY_BASE_FILES),
        journal_files=dict(_DIRTY_JOURNAL_FILES),
    )
    scratch = workdir / "scratch-dirty-ext4"
    _make_ext4(str(image), spec, scratch, block_size=EXT4_DIRTY_BLOCK_SIZE)

    after = scratch / "after-replay.raw"
    run(["cp", "--sparse=always", str(image), str(after)])
    _debugfs_write_files(after, spec.journal_files, scratch)
    _journal_changed_blocks(image, after, EXT4_DIRTY_BLOCK_SIZE, scratch)

    features = run(["dumpe2fs", "-h", str(image)]).stdout.decode()
    if "needs_recovery" not in features:
        raise GuestBuildError(f"{image}: ext4 journal came out clean")
    return _single_filesystem_guest(image, None, {}, spec, size)


EXT4_DIRTY_BLOCK_SIZE = 1024


def _debugfs_write_files(image: Path, files: dict[str, bytes], scratch: Path) -> None:
    directories = sorted({str(p) for path in files for p in Path(path).parents} - {"/"})
    commands = [f"mkdir {directory}" for directory in directories]
    for number, (guest_path, content) in enumerate(files.items()):
        source = scratch / f"journal-file-{number}"
        source.write_bytes(content)
        commands.append(f"write {source} {guest_path}")
    _debugfs(image, commands, scratch / "write.debugfs")


def _journal_changed_blocks(image: Path, after: Path, block_size: int, scratch: Path) -> None:
    """Write every block where after differs from image as one journal transaction."""
    numbers, blocks = [], []
    with image.open("rb") as old, after.open("rb") as new:
        for number in range(image.stat().st_size // block_size):
            block = new.read(block_size)
            if old.read(block_size) != block:
                numbers.append(str(number))
                blocks.append(block)

    data = scratch / "journal-blocks.bin"
    data.write_bytes(b"".join(blocks))
    commands = ["journal_open", f"journal_write -b {','.join(numbers)} {data}", "journal_close"]
    _debugfs(image, commands, scratch / "journal.debugfs")


def _debugfs(image: Path, commands: list[str], script: Path) -> None:
    # NB: debugfs -f exits 0 even when a command fails; errors show only on stderr.
    script.write_text("\n".join(commands) + "\n")
    result = run(["debugfs", "-w", "-f", str(script), str(image)])
    errors = [
        line
        for line in result.stderr.decode(errors="replace").splitlines()
        if line and not line.startswith("debugfs ")
    ]
    if errors:
        raise GuestBuildError(f"debugfs on {image}: {'; '.join(errors)}")


def build_dirty_xfs(workdir: Path) -> Guest:
    """An MBR disk whose one partition is an xfs with a dirty log.

    `files` were written and cleanly unmounted; `journal_files` were then fsynced
    and the filesystem shut down, so they exist only in the log. On a read-only loop
    device `mount -o ro` fails and `ro,norecovery` mounts it without them.
    """
    partition = _Partition(1, 1 * MiB, 300 * MiB, MBR_LINUX)
    size = 302 * MiB
    image = _new_image(workdir / "dirty-xfs.raw", size)
    _write_table(image, "dos", [partition])
    spec = FsSpec(
        "/dev/sda1",
        "xfs",
        "dirty",
        "7e570004-0000-4000-8000-000000000001",
        files=dict(_DIRTY_BASE_FILES),
        journal_files=dict(_DIRTY_JOURNAL_FILES),
    )
    scratch = workdir / "scratch-dirty-xfs"

    with loop_device(image, partitions=True) as loop:
        device = f"{loop}p1"
        _make_xfs(device, spec, scratch)
        with mounted(device, scratch / "mnt") as root:
            _sync_to_journal(root, spec)
            _shut_down(root)
        logprint = run(["xfs_logprint", "-t", device]).stdout.decode()

    if "<DIRTY>" not in logprint:
        raise GuestBuildError(f"{image}: xfs log came out clean")
    return _single_filesystem_guest(image, "msdos", _partition_map([partition]), spec, size)


HIBERFILE_HEADER = b"hibr" + bytes(4092)


def build_dirty_ntfs(workdir: Path) -> Guest:
    """An MBR disk whose one NTFS partition looks hibernated.

    /hiberfil.sys begins with b"hibr". ntfs-3g 2022.10.3 then prints "Windows is
    hibernated, refused to mount." and "Could not mount read-write, trying read-only",
    and mounts read-only with exit status 0, even for `-o rw`: a caller sees the
    refusal only in mountinfo's options. `-o ro` mounts it silently;
    `-o remove_hiberfile` would delete the file and mount read-write.
    The volume's dirty flag is left clear.
    """
    partition = _Partition(1, 1 * MiB, 32 * MiB, MBR_NTFS)
    size = 34 * MiB
    image = _new_image(workdir / "dirty-ntfs.raw", size)
    _write_table(image, "dos", [partition])
    spec = FsSpec(
        "/dev/sda1",
        "ntfs",
        "hibernated",
        "0123456789ABCDE0",
        files={
            "/hiberfil.sys": HIBERFILE_HEADER,
            "/Windows/System32/config/readme.txt": b"not a registry hive\r\n",
        },
    )

    with loop_device(image, partitions=True) as loop:
        _make_ntfs(f"{loop}p1", spec, workdir / "scratch-dirty-ntfs")
    return _single_filesystem_guest(image, "msdos", _partition_map([partition]), spec, size)


def _hostile_specs() -> tuple[FsSpec, FsSpec]:
    root = FsSpec(
        "/dev/sda1",
        "ext4",
        "hroot",
        "7e570005-0000-4000-8000-000000000001",
        files={
            "/etc/hostname": b"hostile\n",
            "/etc/hosts": b"127.0.0.1 localhost\n127.0.1.1 hostile\n",
            "/etc/fstab": b"LABEL=hroot / ext4 defaults 0 1\nLABEL=hboot /boot ext4 defaults 0 2\n",
        },
        symlinks={
            "/etc/passwd-link": "/etc/shadow",
            "/up": "../../../..",
            "/loop1": "loop2",
            "/loop2": "loop1",
            "/selfloop": "selfloop",
            "/boot": "/tmp",
            "/data/escape": "../../../../etc",
            "/abs": "/",
            "/rel/inner": "../abs",
        },
    )
    boot = FsSpec(
        "/dev/sda2",
        "ext4",
        "hboot",
        "7e570005-0000-4000-8000-000000000002",
        files={"/vmlinuz-hostile": b"not a kernel either\n"},
    )
    return root, boot


def build_hostile_guest(workdir: Path) -> Guest:
    """An MBR disk whose root ext4 is full of symlinks that point out of the guest.

    sda1 ext4 LABEL=hroot (/) holds absolute, relative, looping and self-referencing
    symlinks; its /boot is a symlink to /tmp, yet /etc/fstab mounts sda2 (ext4
    LABEL=hboot) there: mounting it must not land on the host's /tmp.
    Built with `mkfs.ext4 -d -E offset=`, needing no loop device.
    """
    partitions = (
        _Partition(1, 1 * MiB, 40 * MiB, MBR_LINUX),
        _Partition(2, 41 * MiB, 16 * MiB, MBR_LINUX),
    )
    size = 58 * MiB
    image = _new_image(workdir / "hostile.raw", size)
    _write_table(image, "dos", partitions)
    root, boot = _hostile_specs()
    scratch = workdir / "scratch-hostile"

    for partition, spec in zip(partitions, (root, boot), strict=True):
        _make_ext4(str(image), spec, scratch, offset=partition.start, size=partition.size)
    return Guest(
        path=image,
        format="raw",
        table="msdos",
        partitions=_partition_map(partitions),
        filesystems={root.device: root, boot.device: boot},
        volume_groups={},
        mountpoints={"/": root.device, "/boot": boot.device},
        size=size,
    )


def _single_filesystem_guest(
    image: Path,
    table: str | None,
    partitions: dict[str, tuple[int, int]],
    spec: FsSpec,
    size: int,
) -> Guest:
    return Guest(
        path=image,
        format="raw",
        table=table,
        partitions=partitions,
        filesystems={spec.device: spec},
        volume_groups={},
        mountpoints={"/": spec.device},
        size=size,
    )


def convert(guest: Guest, fmt: str, workdir: Path) -> Guest:
    """Convert guest's image with qemu-img into fmt; the manifest carries over.

    fmt is a qemu driver name: raw, qcow2, vmdk, vhdx, vpc (VHD) or vdi.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    target = workdir / f"{guest.path.stem}.{IMAGE_SUFFIXES[fmt]}"
    if target == guest.path:
        target = workdir / f"{guest.path.stem}-copy.{IMAGE_SUFFIXES[fmt]}"

    argv = ["qemu-img", "convert", "-f", guest.format, "-O", fmt]
    if fmt == "vpc":
        argv += ["-o", "force_size=on"]  # else vpc rounds the size to CHS geometry
    run([*argv, str(guest.path), str(target)])
    return dataclasses.replace(guest, path=target, format=fmt)
