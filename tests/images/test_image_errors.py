"""Bad input gives the right VMCraftError, naming the file and the cause, and leaves nothing.

Each case is a file a user could hand the library by mistake: a path that is missing, a
folder, an empty file, random bytes, a qcow2 cut short, a qcow2 declared as something
else. The leak guard checks loop devices, mounts and daemons after every test; these tests
also check that no private ``vmcraft-*`` folder stays in the temp directory.

Host tools: qemu-img, qemu-storage-daemon, losetup, blkid.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Iterator
from pathlib import Path

import guests
import pytest
from image_helpers import daemon_children, library_workdirs

from vmcraft import VMCraft
from vmcraft.errors import (
    DeviceNotFoundError,
    ImageError,
    ImageFormatError,
    ImageNotFoundError,
    StateError,
    VMCraftError,
)
from vmcraft.images import probe_image

MiB = 1024 * 1024
QCOW2_HEADER_V3 = 104  # bytes of a version 3 qcow2 header before its extensions


@pytest.fixture(autouse=True)
def no_library_folders_left() -> Iterator[None]:
    before = library_workdirs()
    yield
    assert library_workdirs() == before, "a vmcraft-* temp folder was left behind"


@pytest.fixture
def qcow2_image(tmp_path: Path) -> Path:
    image = tmp_path / "disk.qcow2"
    guests.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"])
    return image


def add_drive_error(path: Path, **options: object) -> VMCraftError:
    with VMCraft() as g, pytest.raises(VMCraftError) as raised:
        g.add_drive_opts(str(path), **options)  # type: ignore[arg-type]
    return raised.value


def launch_error(path: Path, **options: object) -> VMCraftError:
    with VMCraft(attach_base_backoff_s=0, attach_max_backoff_s=0) as g:
        g.add_drive_opts(str(path), **options)  # type: ignore[arg-type]
        with pytest.raises(VMCraftError) as raised:
            g.launch()
    return raised.value


# ---------------------------------------------------------------- refused by add_drive_opts


def test_missing_file(tmp_path: Path) -> None:
    missing = tmp_path / "no-such.qcow2"

    error = add_drive_error(missing)

    assert isinstance(error, ImageNotFoundError)
    assert isinstance(error, FileNotFoundError)
    assert isinstance(error, RuntimeError)  # what libguestfs callers catch
    assert str(missing) in str(error)
    assert "no such file" in str(error)


def test_directory(tmp_path: Path) -> None:
    error = add_drive_error(tmp_path)

    assert isinstance(error, ImageFormatError)
    assert isinstance(error, ValueError)
    assert str(tmp_path) in str(error)
    assert "directory" in str(error)


def test_empty_file(tmp_path: Path) -> None:
    empty = tmp_path / "empty.img"
    empty.touch()

    error = add_drive_error(empty)

    assert isinstance(error, ImageFormatError)
    assert str(empty) in str(error)
    assert "empty" in str(error)


@pytest.mark.parametrize(
    ("length", "cause"),
    [(16, "truncated"), (100, "too short")],
    ids=["before-backing-fields", "inside-v3-header"],
)
def test_truncated_qcow2(qcow2_image: Path, tmp_path: Path, length: int, cause: str) -> None:
    cut = tmp_path / "cut.qcow2"
    cut.write_bytes(qcow2_image.read_bytes()[:length])
    assert length < QCOW2_HEADER_V3

    error = add_drive_error(cut)

    assert isinstance(error, ImageFormatError)
    assert str(cut) in str(error)
    assert cause in str(error)


def test_qcow2_backing_name_past_the_end_of_any_file(qcow2_image: Path) -> None:
    with qcow2_image.open("r+b") as f:
        f.seek(8)  # backing_file_offset (u64), backing_file_size (u32)
        f.write(struct.pack(">QI", 2**64 - 1, 16))

    error = add_drive_error(qcow2_image)

    assert isinstance(error, ImageFormatError)
    assert str(qcow2_image) in str(error)


def test_qcow2_backing_name_ends_at_nul(tmp_path: Path) -> None:
    # qemu reads the name as a C string: only "base.raw" counts.
    (tmp_path / "base.raw").write_bytes(bytes(MiB))
    image = tmp_path / "nul.qcow2"
    create = ["qemu-img", "create", "-q", "-f", "qcow2", "-u", "-b", "base.raw", "-F", "raw"]
    guests.run([*create, str(image), "1M"])
    with image.open("r+b") as f:
        (offset,) = struct.unpack_from(">Q", f.read(20), 8)
        f.seek(offset)
        f.write(b"base.raw\0/../x")
        f.seek(16)
        f.write(struct.pack(">I", len(b"base.raw\0/../x")))

    info = probe_image(str(image))

    assert info.referenced_files == [str(tmp_path / "base.raw")]


def test_qcow2_declared_as_vmdk(qcow2_image: Path) -> None:
    error = add_drive_error(qcow2_image, format="vmdk")

    assert isinstance(error, ImageFormatError)
    assert str(qcow2_image) in str(error)
    assert "vmdk" in str(error)
    assert "qcow2" in str(error)


def test_unknown_format_name(qcow2_image: Path) -> None:
    error = add_drive_error(qcow2_image, format="bogus")

    assert isinstance(error, ImageFormatError)
    assert isinstance(error, ValueError)
    assert str(qcow2_image) in str(error)
    assert "'bogus'" in str(error)


def test_a_refused_drive_is_not_added(tmp_path: Path, qcow2_image: Path) -> None:
    with VMCraft() as g:
        with pytest.raises(ImageNotFoundError):
            g.add_drive_opts(str(tmp_path / "missing.raw"))
        g.add_drive_opts(str(qcow2_image))
        g.launch()
        assert g.list_devices() == ["/dev/sda"]  # the refused drive took no letter


# ---------------------------------------------------------------- opens, but holds nothing


@pytest.mark.requires_root
def test_random_bytes_open_as_an_unknown_raw_disk(tmp_path: Path) -> None:
    noise = random.Random(20241203).randbytes(MiB)
    assert noise[510:512] != b"\x55\xaa", "the noise must not look like an MBR"
    image = tmp_path / "noise.img"
    image.write_bytes(noise)

    with VMCraft() as g:
        g.add_drive_opts(str(image))
        g.launch()
        assert daemon_children() == {}, "raw needs no qemu-storage-daemon"
        assert g.list_devices() == ["/dev/sda"]
        assert g.list_partitions() == []
        # libguestfs: a whole disk without a partition table or filesystem is "unknown".
        assert g.list_filesystems() == {"/dev/sda": "unknown"}
        assert g.vfs_type("/dev/sda") == ""


@pytest.mark.requires_root
@pytest.mark.parametrize("name", ["/dev/sdz", "/dev/sda1", "/dev/sdb", "sda"])
def test_unknown_device_after_launch(qcow2_image: Path, name: str) -> None:
    with VMCraft() as g:
        g.add_drive_opts(str(qcow2_image))
        g.launch()
        with pytest.raises(DeviceNotFoundError) as raised:
            g.blkid(name)

    assert isinstance(raised.value, ValueError)
    assert name in str(raised.value)


# ---------------------------------------------------------------- launch fails, cleanly


def test_launch_without_drives() -> None:
    with VMCraft() as g, pytest.raises(StateError, match="no drives"):
        g.launch()


@pytest.mark.requires_root
def test_raw_backend_refuses_a_qcow2_at_launch(qcow2_image: Path) -> None:
    error = launch_error(qcow2_image, backend="raw")

    assert isinstance(error, ImageError)
    assert str(qcow2_image) in str(error)
    assert "qcow2" in str(error)
    assert daemon_children() == {}


@pytest.mark.requires_root
@pytest.mark.requires_tool("qemu-storage-daemon", "-h")
def test_failed_second_drive_releases_the_first(qcow2_image: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken.qcow2"
    broken.write_bytes(qcow2_image.read_bytes())

    with VMCraft(attach_base_backoff_s=0, attach_max_backoff_s=0) as g:
        g.add_drive_opts(str(qcow2_image))
        g.add_drive_opts(str(broken))
        # Changed after probing: the check at launch finds no qcow2 magic any more.
        with broken.open("r+b") as f:
            f.write(b"\0" * 4)

        with pytest.raises(ImageFormatError) as raised:
            g.launch()

        assert str(broken) in str(raised.value)
        assert daemon_children() == {}, "the first drive's daemon outlived the failure"
        with pytest.raises(StateError):
            g.list_devices()
