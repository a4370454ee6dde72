"""Image headers that name host files are refused before any qemu process opens them.

A qcow2 backing file or data file, a vmdk extent or parent hint makes qemu open another
file. Every crafted header here names something outside the image's folder, in one of the
ways qemu 7.2 reads such names (absolute, `..`, a protocol prefix, a symlink, a chain of
images, the corners of qemu's vmdk descriptor parser). The library must refuse each one
in its own header parsing: fakes of qemu-img and qemu-storage-daemon first on PATH record
every call, and must record none. Legitimate chains open: beside the image without
asking, and elsewhere with ``allow_backing=True``.

Host tools: qemu-img, qemu-storage-daemon, sfdisk, mkfs.ext4, losetup, mount.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Callable
from pathlib import Path

import guests
import pytest
from guests import sha256
from image_helpers import daemon_children, path_with, recording_fake, write_script

from vmcraft import VMCraft
from vmcraft.errors import UnsafeImageError
from vmcraft.images import probe_image

MiB = 1024 * 1024
HOST_FILE = "/etc/passwd"
DATA_FILE_EXTENSION = 0x44415441  # qcow2 spec: header extension "external data file name"
BASE_SIZE = "16M"
PARTITION_SECTORS = 28672  # sda1 from sector 2048 to a MiB before the end
BASE_FILE = ("/hello.txt", b"hello from the base image\n")


# ---------------------------------------------------------------- builders


def qemu_img(*args: str) -> None:
    guests.run(["qemu-img", *args])


def create_qcow2(image: Path, backing: str, backing_format: str = "raw", size: str = "1M") -> Path:
    """A qcow2 whose header names backing as given (-u: qemu-img never opens it)."""
    argv = ["create", "-q", "-f", "qcow2", "-u", "-b", backing, "-F", backing_format]
    qemu_img(*argv, str(image), size)
    return image


def set_qcow2_data_file(image: Path, name: str) -> None:
    """Rewrite the external data file name in a qcow2 v3 header extension."""
    with image.open("r+b") as f:
        header = f.read(104)
        (start,) = struct.unpack_from(">I", header, 100)  # header_length
        f.seek(start)
        kind, length = struct.unpack(">II", f.read(8))
        assert kind == DATA_FILE_EXTENSION, "qemu-img wrote the data file extension first"
        assert len(name) <= (length + 7) // 8 * 8
        f.seek(start)
        encoded = name.encode()
        f.write(
            struct.pack(">II", kind, len(encoded)) + encoded.ljust((length + 7) // 8 * 8, b"\0")
        )


def vmdk_descriptor(extent_lines: str, extra: str = "") -> str:
    return (
        "# Disk DescriptorFile\n"
        "version=1\n"
        "CID=fffffffe\n"
        "parentCID=ffffffff\n"
        'createType="monolithicFlat"\n'
        f"{extra}"
        "\n# Extent description\n"
        f"{extent_lines}\n"
        '\nddb.adapterType = "ide"\n'
    )


def write_vmdk(image: Path, extent_lines: str, extra: str = "") -> Path:
    image.write_text(vmdk_descriptor(extent_lines, extra))
    return image


def sparse_vmdk_with_descriptor(image: Path, descriptor: str) -> Path:
    """A sparse vmdk whose capacity is 0, so that qemu reads extents from its descriptor."""
    qemu_img("create", "-q", "-f", "vmdk", str(image), "1M")
    with image.open("r+b") as f:
        header = f.read(44)
        _, offset_sectors, size_sectors = struct.unpack_from("<QQQ", header, 20)
        encoded = descriptor.encode()
        assert len(encoded) <= size_sectors * 512
        f.seek(12)
        f.write(struct.pack("<Q", 0))  # capacity
        f.seek(offset_sectors * 512)
        f.write(encoded.ljust(size_sectors * 512, b"\0"))
    return image


def build_base_disk(path: Path) -> Path:
    """A 16 MiB raw disk: msdos table, sda1 ext4 holding BASE_FILE."""
    path.parent.mkdir(parents=True, exist_ok=True)
    guests.run(["truncate", "--size", BASE_SIZE, str(path)])
    table = f"label: dos\nunit: sectors\nstart=2048, size={PARTITION_SECTORS}, type=83\n"
    guests.run(
        ["sfdisk", "--quiet", "--no-reread", "--no-tell-kernel", str(path)], input=table.encode()
    )
    seed = path.parent / f"seed-{path.stem}"
    seed.mkdir()
    (seed / BASE_FILE[0].lstrip("/")).write_bytes(BASE_FILE[1])
    mkfs = ["mkfs.ext4", "-F", "-q", "-L", "base", "-d", str(seed), "-E", f"offset={MiB}"]
    guests.run([*mkfs, str(path), f"{PARTITION_SECTORS * 512 // 1024}k"])
    return path


# ---------------------------------------------------------------- crafted headers


def backing_absolute(folder: Path) -> tuple[Path, str]:
    return create_qcow2(folder / "abs.qcow2", HOST_FILE), HOST_FILE


def backing_in_parent_folder(folder: Path) -> tuple[Path, str]:
    (folder.parent / "outside.raw").write_bytes(bytes(MiB))
    return create_qcow2(folder / "up.qcow2", "../outside.raw"), "../outside.raw"


def backing_file_protocol(folder: Path) -> tuple[Path, str]:
    name = f"file:{HOST_FILE}"  # qemu opens the host file: the colon comes before a slash
    return create_qcow2(folder / "proto.qcow2", name), name


def backing_json(folder: Path) -> tuple[Path, str]:
    name = "json:" + json.dumps({"driver": "file", "filename": HOST_FILE})
    return create_qcow2(folder / "json.qcow2", name), name


def backing_through_symlink(folder: Path) -> tuple[Path, str]:
    (folder / "etc").symlink_to("/etc")
    return create_qcow2(folder / "link.qcow2", "etc/passwd"), "etc/passwd"


def backing_through_non_utf8_symlink(folder: Path) -> tuple[Path, str]:
    link = os.fsdecode(b"\xff")  # a name that is not UTF-8, kept as a surrogate escape
    (folder / link).symlink_to("/etc")
    return create_qcow2(folder / "bytes.qcow2", f"{link}/passwd"), "passwd"


def backing_dotdot_after_symlink(folder: Path) -> tuple[Path, str]:
    # The kernel resolves "deep/.." after following deep: outside/secret.raw, not ./secret.raw.
    outside = folder.parent / "outside"
    (outside / "deeper").mkdir(parents=True)
    (outside / "secret.raw").write_bytes(b"secret".ljust(MiB, b"\0"))
    (folder / "deep").symlink_to(outside / "deeper")
    (folder / "secret.raw").write_bytes(bytes(MiB))  # the decoy a lexical `..` finds
    name = "deep/../secret.raw"
    return create_qcow2(folder / "dotdot.qcow2", name), name


def backing_chain(folder: Path) -> tuple[Path, str]:
    create_qcow2(folder / "base.qcow2", HOST_FILE)
    return create_qcow2(folder / "top.qcow2", "base.qcow2", "qcow2"), HOST_FILE


def chain_to_unmarked_vmdk(folder: Path) -> tuple[Path, str]:
    # qemu's vmdk driver reads any text as a descriptor; this one lacks the usual first line.
    text = vmdk_descriptor(f'RW 2048 FLAT "{HOST_FILE}" 0').replace("# Disk DescriptorFile\n", "")
    (folder / "plain.txt").write_text(text)
    return create_qcow2(folder / "chain.qcow2", "plain.txt", "vmdk"), HOST_FILE


def data_file_absolute(folder: Path) -> tuple[Path, str]:
    image = folder / "data.qcow2"
    placeholder = folder / ("d" * len(HOST_FILE))
    qemu_img("create", "-q", "-f", "qcow2", "-o", f"data_file={placeholder}", str(image), "1M")
    set_qcow2_data_file(image, HOST_FILE)
    return image, HOST_FILE


def vmdk_flat_dotdot(folder: Path) -> tuple[Path, str]:
    name = "../../etc/hostname"
    return write_vmdk(folder / "dotdot.vmdk", f'RW 2048 FLAT "{name}" 0'), name


def vmdk_flat_absolute(folder: Path) -> tuple[Path, str]:
    name = "/etc/hostname"
    return write_vmdk(folder / "abs.vmdk", f'RW 2048 FLAT "{name}" 0'), name


def vmdk_signed_sector_count(folder: Path) -> tuple[Path, str]:
    return write_vmdk(folder / "signed.vmdk", f'RW +2048 FLAT "{HOST_FILE}" 0'), HOST_FILE


def vmdk_extent_split_over_lines(folder: Path) -> tuple[Path, str]:
    lines = f'RW\n2048\nFLAT\n  "{HOST_FILE}" 0'  # sscanf skips newlines like spaces
    return write_vmdk(folder / "split.vmdk", lines), HOST_FILE


def vmdk_extent_without_closing_quote(folder: Path) -> tuple[Path, str]:
    lines = f'RW 2048 VMFS "{HOST_FILE}\n'  # qemu opens a VMFS extent named this way
    return write_vmdk(folder / "unclosed.vmdk", lines), HOST_FILE


def vmdk_extent_past_64_kib(folder: Path) -> tuple[Path, str]:
    padding = "# padding\n" * 8000  # qemu reads up to 1 MiB of descriptor
    lines = f'{padding}RW 2048 FLAT "{HOST_FILE}" 0'
    return write_vmdk(folder / "long.vmdk", lines), HOST_FILE


def vmdk_parent_hint_in_comment(folder: Path) -> tuple[Path, str]:
    (folder / "own-flat.raw").write_bytes(bytes(MiB))
    extra = f'# parentFileNameHint="{HOST_FILE}"\n'  # qemu finds it with strstr
    return write_vmdk(folder / "hint.vmdk", 'RW 2048 FLAT "own-flat.raw" 0', extra), HOST_FILE


def vmdk_sparse_embedded_descriptor(folder: Path) -> tuple[Path, str]:
    descriptor = vmdk_descriptor(f'RW 2048 FLAT "{HOST_FILE}" 0')
    return sparse_vmdk_with_descriptor(folder / "embedded.vmdk", descriptor), HOST_FILE


CRAFTED: dict[str, Callable[[Path], tuple[Path, str]]] = {
    f.__name__: f
    for f in (
        backing_absolute,
        backing_in_parent_folder,
        backing_file_protocol,
        backing_json,
        backing_through_symlink,
        backing_through_non_utf8_symlink,
        backing_dotdot_after_symlink,
        backing_chain,
        chain_to_unmarked_vmdk,
        data_file_absolute,
        vmdk_flat_dotdot,
        vmdk_flat_absolute,
        vmdk_signed_sector_count,
        vmdk_extent_split_over_lines,
        vmdk_extent_without_closing_quote,
        vmdk_extent_past_64_kib,
        vmdk_parent_hint_in_comment,
        vmdk_sparse_embedded_descriptor,
    )
}


# ---------------------------------------------------------------- fixtures


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    images = tmp_path / "images"
    images.mkdir()
    return images


@pytest.fixture
def watch_qemu(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], Path]:
    """watch_qemu() puts recording fakes of qemu's programs first on PATH (call it after
    building the images) and returns their call log."""

    def watch() -> Path:
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        record = tmp_path / "qemu-calls.log"
        for name in ("qemu-img", "qemu-storage-daemon", "qemu-nbd"):
            recording_fake(bin_dir, name, record)
        monkeypatch.setenv("PATH", path_with(bin_dir))
        return record

    return watch


def calls(record: Path) -> list[str]:
    return record.read_text().splitlines() if record.exists() else []


# ---------------------------------------------------------------- refused


@pytest.mark.parametrize("craft", list(CRAFTED))
def test_header_naming_a_host_file_is_refused_before_qemu(
    folder: Path, watch_qemu: Callable[[], Path], craft: str
) -> None:
    image, named = CRAFTED[craft](folder)
    qemu_calls = watch_qemu()

    with VMCraft() as g, pytest.raises(UnsafeImageError) as raised:
        g.add_drive_opts(str(image))

    assert isinstance(raised.value, PermissionError)
    assert str(image) in str(raised.value)
    assert named in str(raised.value)
    assert calls(qemu_calls) == [], "qemu ran before the header was refused"


@pytest.mark.parametrize("craft", ["backing_absolute", "vmdk_flat_absolute", "backing_chain"])
def test_refused_for_every_declared_format_that_reads_the_header(
    folder: Path, watch_qemu: Callable[[], Path], craft: str
) -> None:
    image, _ = CRAFTED[craft](folder)
    fmt = "vmdk" if craft.startswith("vmdk") else "qcow2"
    qemu_calls = watch_qemu()

    with pytest.raises(UnsafeImageError):
        probe_image(str(image), fmt)

    assert calls(qemu_calls) == []


def test_qemu_img_report_is_checked_too(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Our header parser finds nothing here; a fake qemu-img then reports a backing file.
    image = folder / "clean.qcow2"
    qemu_img("create", "-q", "-f", "qcow2", str(image), "1M")
    report = {"virtual-size": MiB, "format": "qcow2", "backing-filename": "/etc/shadow"}
    bin_dir = tmp_path / "fake-bin"
    bin_dir.mkdir()
    write_script(bin_dir / "qemu-img", f"cat <<'EOF'\n{json.dumps(report)}\nEOF\n")
    monkeypatch.setenv("PATH", path_with(bin_dir))

    with pytest.raises(UnsafeImageError, match="/etc/shadow"):
        probe_image(str(image))


# ---------------------------------------------------------------- what opens


@pytest.mark.requires_root
@pytest.mark.requires_tool("qemu-storage-daemon", "-h")
def test_backing_file_beside_the_image_opens(folder: Path) -> None:
    base = build_base_disk(folder / "base.raw")
    overlay = create_qcow2(folder / "overlay.qcow2", "base.raw", size=BASE_SIZE)
    before = sha256(base)

    with VMCraft() as g:
        g.add_drive_opts(str(overlay))
        g.launch()
        g.mount_ro("/dev/sda1", "/")
        assert g.read_file(BASE_FILE[0]) == BASE_FILE[1]

    assert sha256(base) == before


@pytest.mark.requires_root
@pytest.mark.requires_tool("qemu-storage-daemon", "-h")
def test_backing_file_in_a_sibling_folder_needs_allow_backing(tmp_path: Path) -> None:
    base = build_base_disk(tmp_path / "bases" / "base.raw")
    before = sha256(base)
    overlays = tmp_path / "overlays"
    overlays.mkdir()
    overlay = create_qcow2(overlays / "overlay.qcow2", "../bases/base.raw", size=BASE_SIZE)

    with VMCraft() as g, pytest.raises(UnsafeImageError, match=r"\.\./bases/base\.raw"):
        g.add_drive_opts(str(overlay))

    with VMCraft() as g:
        g.add_drive_opts(str(overlay), allow_backing=True)
        g.launch()
        [argv] = daemon_children().values()
        assert any(str(overlay) in arg for arg in argv)
        g.mount_ro("/dev/sda1", "/")
        assert g.read_file(BASE_FILE[0]) == BASE_FILE[1]
    assert sha256(base) == before
    assert str(base) in probe_image(str(overlay), allow_backing=True).referenced_files


def test_backing_name_is_resolved_where_qemu_resolves_it(
    tmp_path: Path, watch_qemu: Callable[[], Path]
) -> None:
    # qemu joins "base.raw" to the folder of the path it was given, the symlink's.
    real, linked = tmp_path / "real", tmp_path / "linked"
    real.mkdir()
    linked.mkdir()
    create_qcow2(real / "disk.qcow2", "base.raw")
    (real / "base.raw").write_bytes(bytes(MiB))
    (tmp_path / "secret.raw").write_bytes(b"secret".ljust(MiB, b"\0"))
    (linked / "disk.qcow2").symlink_to(real / "disk.qcow2")
    (linked / "base.raw").symlink_to(tmp_path / "secret.raw")
    qemu_calls = watch_qemu()

    with pytest.raises(UnsafeImageError, match=r"base\.raw"):
        probe_image(str(linked / "disk.qcow2"))
    assert calls(qemu_calls) == []

    (linked / "base.raw").unlink()
    (linked / "base.raw").write_bytes(bytes(MiB))  # beside the link, where qemu looks
    info = probe_image(str(linked / "disk.qcow2"))
    assert info.referenced_files == [str(linked / "base.raw")]


def test_relative_data_file_is_opened_from_the_working_directory(
    folder: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # NB: qemu 7.2 opens a relative data file name from its working directory.
    image = folder / "data.qcow2"
    monkeypatch.chdir(folder)
    qemu_img("create", "-q", "-f", "qcow2", "-o", "data_file=disk.data", str(image), "1M")
    assert (folder / "disk.data").exists()

    assert probe_image(str(image)).referenced_files == [str(folder / "disk.data")]

    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "disk.data").write_bytes(bytes(MiB))
    monkeypatch.chdir(elsewhere)
    with pytest.raises(UnsafeImageError, match=r"disk\.data"):
        probe_image(str(image))


def test_allow_backing_trusts_a_protocol_name(folder: Path, watch_qemu: Callable[[], Path]) -> None:
    image, _ = backing_file_protocol(folder)
    qemu_calls = watch_qemu()

    info = probe_image(str(image), allow_backing=True)

    assert f"file:{HOST_FILE}" in info.referenced_files
    [info_call] = calls(qemu_calls)  # qemu-img info, and nothing opened the name
    assert info_call.startswith("info ")
