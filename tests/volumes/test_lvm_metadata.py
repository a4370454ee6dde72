"""Tests for vmcraft.volumes.lvm_metadata against PVs that lvm2 itself wrote.

Recipe: sparse image files attached to loop devices; ``pvcreate``/``vgcreate`` as usual and
``lvcreate --config 'global{activation=0}' -an -Zn -Wn`` (no device-mapper on the CI host); a
thin pool is written with ``vgcfgrestore --force`` from an edited ``vgcfgbackup``. Every
command passes ``--devices`` so that lvm2 looks at nothing else, and turns off lvm2's backups
under /etc/lvm. Expected values come from lvm2's own reports (``pvs/vgs/lvs --reportformat
json``) and ``pvck --dump headers``, never from the code under test.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import shutil
import struct
import subprocess
import uuid as uuidlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vmcraft.errors import VolumeError
from vmcraft.volumes import lvm_config, lvm_metadata
from vmcraft.volumes.lvm_metadata import (
    LogicalVolume,
    Segment,
    VolumeGroup,
    read_pv_label,
    read_volume_groups,
)

MIB = 1024 * 1024
ENV = {**os.environ, "LC_ALL": "C", "LVM_SUPPRESS_FD_WARNINGS": "1"}
# The quotes in the report setting land, escaped, in each metadata's description string.
CONFIG = 'global{activation=0} backup{backup=0 archive=0} report{list_item_separator=","}'
CREATE = ("-an", "-Zn", "-Wn")


def _run(*argv: str) -> str:
    result = subprocess.run(argv, env=ENV, capture_output=True, text=True, timeout=120, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{argv} failed ({result.returncode}): {result.stderr.strip()}")
    return result.stdout


def _lvm(command: str, devices: list[str], *args: str) -> str:
    restrict = [arg for device in devices for arg in ("--devices", device)]
    return _run("lvm", command, "--config", CONFIG, *restrict, *args)


def _report(command: str, devices: list[str], key: str, fields: str, *args: str) -> Any:
    options = ("--reportformat", "json", "--units", "b", "--nosuffix", "-o", fields)
    return json.loads(_lvm(command, devices, *options, *args))["report"][0][key]


def _pvck_headers(device: str) -> dict[str, str]:
    only = f'devices{{use_devicesfile=0 filter=["a|^{device}$|","r|.*|"]}}'
    out = _run("pvck", "--config", only, "--dump", "headers", device)
    fields = {}
    for line in out.splitlines():
        key, _, value = line.strip().partition(" ")
        fields[key] = value
    return fields


class Lab:
    """Image files, the loop devices over them, and the LVM layouts built on those."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.backing: dict[str, Path] = {}
        self.orphan = ""
        self.blank = ""
        token = uuidlib.uuid4().hex[:6]
        self.vg = {key: f"vmct{token}{key}" for key in "abde"}

    def attach(self, name: str, size_mib: int) -> str:
        path = self.root / f"{name}.img"
        with path.open("wb") as f:
            f.truncate(size_mib * MIB)
        device = _run("losetup", "-f", "--show", str(path)).strip()
        self.backing[device] = path
        return device

    def pv(self, name: str, size_mib: int, *args: str) -> str:
        device = self.attach(name, size_mib)
        _lvm("pvcreate", [device], *args, device)
        return device

    def detach_all(self) -> None:
        for device, path in reversed(list(self.backing.items())):
            subprocess.run(["losetup", "-d", device], env=ENV, check=False, timeout=30)
            left = _run("losetup", "-j", str(path)).strip()
            assert not left, f"loop device left attached: {left}"


def _build_linear(lab: Lab) -> None:
    a = lab.pv("a", 64)
    _lvm("vgcreate", [a], lab.vg["a"], a)
    for name, size in (("root", "12M"), ("swap", "8M"), ("home", "20M")):
        _lvm("lvcreate", [a], *CREATE, "-L", size, "-n", name, lab.vg["a"])


def _build_spanning(lab: Lab) -> None:
    b1 = lab.pv("b1", 32, "--pvmetadatacopies", "2")
    b2 = lab.pv("b2", 32, "--pvmetadatacopies", "0")
    both, vg = [b1, b2], lab.vg["b"]
    _lvm("vgcreate", both, "-s", "1M", vg, b1, b2)
    _lvm("lvcreate", both, *CREATE, "-i", "2", "-L", "8M", "-n", "stripes", vg)
    _lvm("lvcreate", both, *CREATE, "-L", "40M", "-n", "span", vg)
    _lvm("lvcreate", both, *CREATE, "-L", "2M", "-n", "grown", vg)
    _lvm("lvcreate", both, *CREATE, "-L", "1M", "-n", "plug", vg)
    _lvm("lvextend", both, "-L", "+3M", f"{vg}/grown")


def _build_wrapped(lab: Lab) -> None:
    d = lab.pv("d", 32, "--metadatasize", "16k", "--dataalignment", "64k")
    _lvm("vgcreate", [d], "-s", "1M", lab.vg["d"], d)
    for index in range(4):
        _lvm("lvcreate", [d], *CREATE, "-L", "2M", "-n", f"lv{index}", lab.vg["d"])
    for index in range(80):
        _lvm("lvchange", [d], "--addtag", f"t#{index}", f"{lab.vg['d']}/lv0")
        if _text_wraps(_pvck_headers(d)):
            return
    raise RuntimeError("lvm2 metadata never wrapped around its buffer")


def _text_wraps(headers: dict[str, str]) -> bool:
    offset = int(headers["mda_header_1.raw_locn[0].offset"])
    size = int(headers["mda_header_1.raw_locn[0].size"])
    return offset + size > int(headers["mda_header_1.size"])


THIN_LVS = """
pool {
id = "Pool00-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa"
status = ["READ", "WRITE", "VISIBLE"]
flags = []
segment_count = 1
segment1 {
start_extent = 0
extent_count = 4
type = "thin-pool"
metadata = "pool_tmeta"
pool = "pool_tdata"
transaction_id = 1
chunk_size = 128
discards = "passdown"
zero_new_blocks = 0
}
}
thin {
id = "Thin00-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa"
status = ["READ", "WRITE", "VISIBLE"]
flags = []
segment_count = 1
segment1 {
start_extent = 0
extent_count = 16
type = "thin"
thin_pool = "pool"
transaction_id = 0
device_id = 1
}
}
pool_tmeta {
id = "Tmeta0-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa"
status = ["READ", "WRITE"]
flags = []
segment_count = 1
segment1 {
start_extent = 0
extent_count = 1
type = "striped"
stripe_count = 1
stripes = ["pv0", 10]
}
}
pool_tdata {
id = "Tdata0-aaaa-aaaa-aaaa-aaaa-aaaa-aaaaaa"
status = ["READ", "WRITE"]
flags = []
segment_count = 1
segment1 {
start_extent = 0
extent_count = 4
type = "striped"
stripe_count = 1
stripes = ["pv0", 11]
}
}
"""


def _build_thin(lab: Lab) -> None:
    e = lab.pv("e", 32)
    vg = lab.vg["e"]
    _lvm("vgcreate", [e], "-s", "1M", vg, e)
    _lvm("lvcreate", [e], *CREATE, "-L", "4M", "-n", "plain", vg)

    backup = lab.root / "e.vg"
    _lvm("vgcfgbackup", [e], "-f", str(backup), vg)
    text = backup.read_text()
    anchor = text.index("logical_volumes {") + len("logical_volumes {")
    backup.write_text(text[:anchor] + THIN_LVS + text[anchor:])
    _lvm("vgcfgrestore", [e], "--force", "-f", str(backup), vg)


def _lvm_works(root: Path) -> str | None:
    try:
        _run("pvcreate", "--version")
    except (OSError, RuntimeError) as e:
        return f"lvm2 does not run: {e}"

    probe = root / "probe.img"
    probe.write_bytes(bytes(MIB))
    try:
        device = _run("losetup", "-f", "--show", str(probe)).strip()
    except (OSError, RuntimeError) as e:
        return f"cannot attach a loop device: {e}"
    _run("losetup", "-d", device)
    return None


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    root = tmp_path_factory.mktemp("lvm")
    reason = _lvm_works(root)
    if reason:
        pytest.skip(reason)

    lab = Lab(root)
    try:
        lab.orphan = lab.pv("orphan", 16)
        lab.blank = lab.attach("blank", 4)
        _build_linear(lab)
        _build_spanning(lab)
        _build_wrapped(lab)
        _build_thin(lab)
        yield lab
    finally:
        lab.detach_all()


def _devices(lab: Lab, *names: str) -> list[str]:
    by_name = {path.stem: device for device, path in lab.backing.items()}
    return [by_name[name] for name in names]


# -- comparison with lvm2's reports ----------------------------------------------------------


def _lvs_row(
    vg: VolumeGroup, lv: LogicalVolume, segment: Segment
) -> tuple[str, str, str, int, str, int, int, str, str]:
    name = lv.name if lv.visible else f"[{lv.name}]"
    segtype, ranges = segment.type, "*"
    if segment.type == "striped":
        segtype = "linear" if len(segment.stripes) == 1 else "striped"
        per_stripe = segment.extent_count // len(segment.stripes)
        ranges = " ".join(
            f"{vg.pv_by_uuid(area.pv_uuid).device}:{area.pv_start_extent}-"
            f"{area.pv_start_extent + per_stripe - 1}"
            for area in segment.stripes
        )
    writable = "w" if "WRITE" in lv.status else "r"
    return (
        vg.name,
        name,
        lv.uuid,
        lv.size,
        writable,
        segment.start_extent,
        segment.extent_count,
        segtype,
        ranges,
    )


def _assert_matches_lvm(groups: list[VolumeGroup], devices: list[str]) -> None:
    vgs = _report("vgs", devices, "vg", "vg_name,vg_uuid,vg_extent_size,vg_seqno")
    assert [(vg.name, vg.uuid, vg.extent_size, vg.seqno) for vg in groups] == sorted(
        (row["vg_name"], row["vg_uuid"], int(row["vg_extent_size"]), int(row["vg_seqno"]))
        for row in vgs
    )

    fields = "pv_name,pv_uuid,vg_name,dev_size,pe_start,pv_pe_count"
    pvs = [row for row in _report("pvs", devices, "pv", fields) if row["vg_name"]]
    ours = [
        (pv.device, pv.uuid, pv.vg_name, pv.size, pv.pe_start, pv.pe_count)
        for vg in groups
        for pv in vg.pvs
    ]
    assert sorted(ours) == sorted(
        (
            row["pv_name"],
            row["pv_uuid"],
            row["vg_name"],
            int(row["dev_size"]),
            int(row["pe_start"]),
            int(row["pv_pe_count"]),
        )
        for row in pvs
    )

    fields = "vg_name,lv_name,lv_uuid,lv_size,lv_attr,seg_start_pe,seg_size_pe,segtype,"
    segments = _report("lvs", devices, "seg", fields + "seg_pe_ranges", "-a", "--segments")
    theirs = [
        (
            row["vg_name"],
            row["lv_name"],
            row["lv_uuid"],
            int(row["lv_size"]),
            row["lv_attr"][1],
            int(row["seg_start_pe"]),
            int(row["seg_size_pe"]),
            row["segtype"],
            row["seg_pe_ranges"] if row["segtype"] in ("linear", "striped") else "*",
        )
        for row in segments
    ]
    our_segments = [_lvs_row(vg, lv, seg) for vg in groups for lv in vg.lvs for seg in lv.segments]
    assert sorted(our_segments) == sorted(theirs)
    for vg in groups:
        for lv in vg.lvs:
            assert lv.visible == ("VISIBLE" in lv.status)


def _linear_extent_by_lvm(devices: list[str], lv_path: str) -> tuple[str, int, int]:
    fields = "vg_extent_size,seg_pe_ranges,seg_size_pe"
    [row] = _report("lvs", devices, "seg", fields, "--segments", lv_path)
    device, _, extents = row["seg_pe_ranges"].partition(":")
    first_pe = int(extents.split("-")[0])
    [pv] = [
        pv for pv in _report("pvs", devices, "pv", "pv_name,pe_start") if pv["pv_name"] == device
    ]
    extent_size = int(row["vg_extent_size"])
    return (
        device,
        int(pv["pe_start"]) + first_pe * extent_size,
        int(row["seg_size_pe"]) * extent_size,
    )


# -- tests against lvm2-written PVs ----------------------------------------------------------


def test_checksums_agree_with_lvm2(lab: Lab) -> None:
    [a] = _devices(lab, "a")
    headers = _pvck_headers(a)
    raw = lab.backing[a].read_bytes()[: 2 * MIB]

    sector = int(headers["label_header.sector"]) * 512
    assert lvm_metadata._lvm_crc(raw[sector + 20 : sector + 512]) == int(
        headers["label_header.crc"], 16
    )
    mda = int(headers["mda_header_1.start"])
    assert lvm_metadata._lvm_crc(raw[mda + 4 : mda + 512]) == int(
        headers["mda_header_1.checksum"], 16
    )
    text_at = mda + int(headers["mda_header_1.raw_locn[0].offset"])
    text = raw[text_at : text_at + int(headers["mda_header_1.raw_locn[0].size"])]
    assert lvm_metadata._lvm_crc(text) == int(headers["mda_header_1.raw_locn[0].checksum"], 16)


def test_vg_with_three_linear_lvs(lab: Lab) -> None:
    devices = _devices(lab, "a")
    groups = read_volume_groups(devices)

    _assert_matches_lvm(groups, devices)
    [vg] = groups
    assert sorted(lv.name for lv in vg.lvs) == ["home", "root", "swap"]
    assert all(lv.is_linear and lv.visible for lv in vg.lvs)


def test_linear_extent_agrees_with_seg_pe_ranges(lab: Lab) -> None:
    for names in (("a",), ("b1", "b2"), ("d",)):
        devices = _devices(lab, *names)
        [vg] = read_volume_groups(devices)
        for lv in (lv for lv in vg.lvs if lv.is_linear):
            pv, offset, length = vg.linear_extent(lv)
            assert (pv.device, offset, length) == _linear_extent_by_lvm(
                devices, f"{vg.name}/{lv.name}"
            )


def test_linear_extent_holds_a_filesystem(lab: Lab) -> None:
    [vg] = read_volume_groups(_devices(lab, "a"))
    [home] = [lv for lv in vg.lvs if lv.name == "home"]
    pv, offset, length = vg.linear_extent(home)
    image, fs_uuid = lab.backing[pv.device], str(uuidlib.uuid4())
    _run(
        "mkfs.ext4",
        "-q",
        "-F",
        "-U",
        fs_uuid,
        "-E",
        f"offset={offset}",
        str(image),
        f"{length // 1024}k",
    )

    window = _run(
        "losetup", "-f", "--show", "-r", "-o", str(offset), "--sizelimit", str(length), str(image)
    ).strip()
    try:
        probe = _run("blkid", "-p", "-o", "export", window)
        size = int(_run("blockdev", "--getsize64", window))
    finally:
        _run("losetup", "-d", window)
    assert f"UUID={fs_uuid}" in probe.splitlines()
    assert size == length


def test_vg_over_two_pvs(lab: Lab) -> None:
    devices = _devices(lab, "b1", "b2")
    groups = read_volume_groups(devices)

    _assert_matches_lvm(groups, devices)
    [vg] = groups
    lvs = {lv.name: lv for lv in vg.lvs}
    span_pvs = {seg.stripes[0].pv_uuid for seg in lvs["span"].segments}
    assert len(lvs["span"].segments) == 2 and len(span_pvs) == 2
    assert len(lvs["grown"].segments) == 2
    assert [len(seg.stripes) for seg in lvs["stripes"].segments] == [2]
    with pytest.raises(VolumeError, match=rf"^LV {vg.name}/stripes is striped over 2 PVs$"):
        vg.linear_extent(lvs["stripes"])
    with pytest.raises(VolumeError, match=rf"^LV {vg.name}/span has 2 segments$"):
        vg.linear_extent(lvs["span"])


def test_pv_without_metadata_area_reads_as_orphan(lab: Lab) -> None:
    [b2] = _devices(lab, "b2")
    [row] = _report("pvs", [b2], "pv", "pv_uuid,dev_size")

    pv = read_pv_label(b2)

    assert pv is not None and pv.vg_name is None
    assert (pv.uuid, pv.size) == (row["pv_uuid"], int(row["dev_size"]))
    assert read_volume_groups([b2]) == []


def test_missing_pv_is_warned_about(lab: Lab, caplog: pytest.LogCaptureFixture) -> None:
    b1, b2 = _devices(lab, "b1", "b2")
    [missing] = _report("pvs", [b2], "pv", "pv_uuid")

    with caplog.at_level(logging.WARNING, logger=lvm_metadata.__name__):
        [vg] = read_volume_groups([b1])

    assert [pv.device for pv in vg.pvs] == [b1]
    assert {lv.name for lv in vg.lvs} == {"stripes", "span", "grown", "plug"}
    assert missing["pv_uuid"] in caplog.text
    with pytest.raises(VolumeError, match="no PV"):
        vg.pv_by_uuid(missing["pv_uuid"])


def test_orphan_pv(lab: Lab) -> None:
    orphan = lab.orphan
    [row] = _report("pvs", [orphan], "pv", "pv_uuid,dev_size,pe_start,pv_pe_count,vg_name")

    pv = read_pv_label(orphan)

    assert pv == lvm_metadata.PhysicalVolume(
        orphan,
        row["pv_uuid"],
        int(row["dev_size"]),
        int(row["pe_start"]),
        int(row["pv_pe_count"]),
        None,
    )
    assert row["vg_name"] == ""
    assert read_volume_groups([orphan]) == []


def test_pv_label_in_a_vg(lab: Lab) -> None:
    [a] = _devices(lab, "a")
    fields = "pv_uuid,dev_size,pe_start,pv_pe_count,vg_name"
    [row] = _report("pvs", [a], "pv", fields)

    pv = read_pv_label(a)

    assert pv == lvm_metadata.PhysicalVolume(
        a,
        row["pv_uuid"],
        int(row["dev_size"]),
        int(row["pe_start"]),
        int(row["pv_pe_count"]),
        row["vg_name"],
    )


def test_devices_without_a_label_are_skipped(lab: Lab) -> None:
    blank = lab.blank
    [a] = _devices(lab, "a")

    assert read_pv_label(blank) is None
    assert [vg.name for vg in read_volume_groups([blank, a, a])] == [lab.vg["a"]]


def test_image_file_reads_like_its_loop_device(lab: Lab) -> None:
    [a] = _devices(lab, "a")
    image = str(lab.backing[a])

    [by_loop] = read_volume_groups([a])
    [by_file] = read_volume_groups([image])

    moved = tuple(dataclasses.replace(pv, device=image) for pv in by_loop.pvs)
    assert by_file == dataclasses.replace(by_loop, pvs=moved)


def test_metadata_wrapped_around_its_buffer(lab: Lab) -> None:
    devices = _devices(lab, "d")
    assert _text_wraps(_pvck_headers(devices[0]))

    groups = read_volume_groups(devices)

    _assert_matches_lvm(groups, devices)
    assert groups[0].seqno > 10


def test_thin_and_hidden_lvs(lab: Lab) -> None:
    devices = _devices(lab, "e")
    groups = read_volume_groups(devices)

    _assert_matches_lvm(groups, devices)
    [vg] = groups
    lvs = {lv.name: lv for lv in vg.lvs}
    assert [seg.stripes for seg in lvs["thin"].segments] == [()]
    assert not lvs["pool_tdata"].visible and lvs["pool_tdata"].is_linear
    with pytest.raises(VolumeError, match=rf"^LV {vg.name}/thin is thin$"):
        vg.linear_extent(lvs["thin"])
    with pytest.raises(VolumeError, match=rf"^LV {vg.name}/pool is thin-pool$"):
        vg.linear_extent(lvs["pool"])


# -- corruption ------------------------------------------------------------------------------


def _corrupted_copy(lab: Lab, name: str, offset: int) -> str:
    [device] = _devices(lab, name)
    copy = lab.root / f"{name}-corrupt-{offset}.img"
    shutil.copyfile(lab.backing[device], copy)
    with copy.open("r+b") as f:
        f.seek(offset)
        byte = f.read(1)
        f.seek(offset)
        f.write(bytes([byte[0] ^ 0x20]))
    return str(copy)


def _text_offset(lab: Lab, name: str) -> int:
    headers = _pvck_headers(*_devices(lab, name))
    return int(headers["mda_header_1.start"]) + int(headers["mda_header_1.raw_locn[0].offset"])


def test_flipped_byte_in_metadata_text(lab: Lab) -> None:
    copy = _corrupted_copy(lab, "a", _text_offset(lab, "a") + 100)

    with pytest.raises(
        VolumeError, match=rf"^corrupt LVM metadata on {re.escape(str(copy))}: .*checksum"
    ):
        read_volume_groups([copy])
    with pytest.raises(VolumeError, match="checksum mismatch"):
        read_pv_label(copy)


def test_second_metadata_copy_stands_in_for_a_corrupt_first(
    lab: Lab, caplog: pytest.LogCaptureFixture
) -> None:
    [b1] = _devices(lab, "b1")
    assert "mda_header_2.start" in _pvck_headers(b1)
    copy = _corrupted_copy(lab, "b1", _text_offset(lab, "b1") + 100)

    with caplog.at_level(logging.WARNING, logger=lvm_metadata.__name__):
        [vg] = read_volume_groups([copy])

    [expected] = read_volume_groups([b1])
    moved = tuple(dataclasses.replace(pv, device=copy) for pv in expected.pvs)
    assert vg == dataclasses.replace(expected, pvs=moved)
    assert f"{copy}: using another copy" in caplog.text


def test_flipped_byte_in_metadata_header(lab: Lab) -> None:
    start = int(_pvck_headers(*_devices(lab, "a"))["mda_header_1.start"])
    copy = _corrupted_copy(lab, "a", start + 300)

    with pytest.raises(
        VolumeError, match=rf"^corrupt LVM metadata on {re.escape(str(copy))}: .*checksum"
    ):
        read_volume_groups([copy])


def test_flipped_byte_in_label(lab: Lab) -> None:
    sector = int(_pvck_headers(*_devices(lab, "a"))["label_header.sector"])
    copy = _corrupted_copy(lab, "a", sector * 512 + 40)

    with pytest.raises(
        VolumeError, match=rf"^corrupt LVM metadata on {re.escape(str(copy))}: label"
    ):
        read_pv_label(copy)


def test_bad_syntax_under_valid_checksums(lab: Lab) -> None:
    [a] = _devices(lab, "a")
    headers = _pvck_headers(a)
    mda = int(headers["mda_header_1.start"])
    copy = lab.root / "a-syntax.img"
    shutil.copyfile(lab.backing[a], copy)
    image = bytearray(copy.read_bytes())

    text_at = mda + int(headers["mda_header_1.raw_locn[0].offset"])
    size = int(headers["mda_header_1.raw_locn[0].size"])
    text = bytes(image[text_at : text_at + size]).replace(
        b"physical_volumes {", b"physical_volumes ["
    )
    image[text_at : text_at + size] = text
    struct.pack_into("<I", image, mda + 56, lvm_metadata._lvm_crc(text))
    struct.pack_into("<I", image, mda, lvm_metadata._lvm_crc(bytes(image[mda + 4 : mda + 512])))
    copy.write_bytes(image)

    with pytest.raises(
        VolumeError, match=rf"^corrupt LVM metadata on {re.escape(str(copy))}: line \d+"
    ):
        read_volume_groups([str(copy)])


def test_same_pv_on_two_devices(lab: Lab) -> None:
    [a] = _devices(lab, "a")

    with pytest.raises(VolumeError, match="is on both"):
        read_volume_groups([a, str(lab.backing[a])])


def test_unreadable_device() -> None:
    with pytest.raises(VolumeError, match=r"^cannot read /nonexistent/pv: "):
        read_pv_label("/nonexistent/pv")


# -- the configuration syntax, without devices -----------------------------------------------


def test_parser_reads_lvm_syntax() -> None:
    text = (
        'vg { # the group\nid = "a\\"b\\\\c#d"\nseqno = 7\nlist = ["x", 1, -2]\n'
        'empty = []\nsub { n = 0 }\n}\ncontents = "Text"  # trailing\n'
    )

    root = lvm_config.parse_config(text)

    vg = root.child("vg")
    assert vg.values == {"id": 'a"b\\c#d', "seqno": 7, "list": ["x", 1, -2], "empty": []}
    assert vg.child("sub").values == {"n": 0}
    assert root.values == {"contents": "Text"}


@pytest.mark.parametrize(
    "text",
    ['vg { id = "open', "vg { seqno = 1", "vg }", "vg { seqno = }", "a = b", "a {" * 100],
)
def test_parser_rejects_broken_text(text: str) -> None:
    with pytest.raises(ValueError, match="line 1"):
        lvm_config.parse_config(text)
