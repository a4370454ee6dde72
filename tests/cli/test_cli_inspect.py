"""``vmcraft inspect``, run in-process on real guest images.

What the XML must look like is virt-inspector's document (guestfs-tools' inspector.c and its
expected-*.xml files): element order, what is left out, sort orders and libxml2's layout.
"""

from __future__ import annotations

import json
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from guests import Guest

from vmcraft.cli.inspect import to_xml
from vmcraft.cli.main import main

ROOT = "/dev/vg0/root"
# virt-inspector's elements for a Linux root whose architecture is unknown and that has no
# icon: <arch> and <icon> are left out, the Windows elements too.
LINUX_ELEMENTS = [
    "root",
    "name",
    "distro",
    "major_version",
    "minor_version",
    "package_format",
    "package_management",
    "hostname",
    "osinfo",
    "mountpoints",
    "filesystems",
    "applications",
]


def _inspect(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    status = main(["inspect", *argv])
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_json_report_of_an_lvm_guest(
    gpt_lvm_guest: Guest, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _inspect(capsys, "-a", str(gpt_lvm_guest.path))

    assert status == 0
    [system] = json.loads(out)["operatingsystems"]
    assert system["root"] == ROOT
    assert (system["type"], system["distro"], system["osinfo"]) == ("linux", "debian", "debian12")
    assert (system["major_version"], system["minor_version"]) == (12, 0)
    assert system["arch"] == "unknown"
    assert system["windows_systemroot"] is None
    assert system["hostname"] == "gpt-lvm-guest"
    assert system["mountpoints"] == gpt_lvm_guest.mountpoints
    assert list(system["mountpoints"]) == sorted(
        gpt_lvm_guest.mountpoints, key=lambda m: (len(m), m)
    )
    devices = [fs["device"] for fs in system["filesystems"]]
    assert devices == sorted(set(gpt_lvm_guest.mountpoints.values()))
    by_device = {fs["device"]: fs for fs in system["filesystems"]}
    for device in devices:
        spec = gpt_lvm_guest.filesystems[device]
        assert (by_device[device]["type"], by_device[device]["label"]) == (spec.fstype, spec.label)
    assert system["applications"] == []  # the guest has no package database
    assert system["icon"] is None


def test_xml_has_virt_inspectors_elements_in_its_order(
    gpt_lvm_guest: Guest, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _inspect(capsys, "-a", str(gpt_lvm_guest.path), "--xml")

    assert status == 0
    assert out.startswith('<?xml version="1.0"?>\n<operatingsystems>\n  <operatingsystem>\n')
    [system] = ET.fromstring(out)
    assert [child.tag for child in system] == LINUX_ELEMENTS
    assert system.findtext("root") == ROOT
    assert system.findtext("name") == "linux"
    mountpoints = [(m.get("dev"), m.text) for m in system.iter("mountpoint")]
    assert mountpoints == [
        (device, mountpoint)
        for mountpoint, device in sorted(
            gpt_lvm_guest.mountpoints.items(), key=lambda item: (len(item[0]), item[0])
        )
    ]
    boot = system.find("filesystems/filesystem[@dev='/dev/sda1']")
    assert boot is not None
    assert [child.tag for child in boot] == ["type", "label", "uuid"]
    assert "  <applications/>\n" in out  # libxml2's empty element


def test_xml_without_applications(gpt_lvm_guest: Guest, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, _ = _inspect(capsys, "-a", str(gpt_lvm_guest.path), "--xml", "--no-applications")

    assert status == 0
    [system] = ET.fromstring(out)
    assert [child.tag for child in system] == LINUX_ELEMENTS[:-1]


def test_a_second_disk_without_an_os_adds_no_root(
    gpt_lvm_guest: Guest, mbr_guest: Guest, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, _ = _inspect(capsys, "-a", str(gpt_lvm_guest.path), "-a", str(mbr_guest.path))

    assert status == 0
    assert [s["root"] for s in json.loads(out)["operatingsystems"]] == [ROOT]


def test_a_disk_without_an_os_is_an_empty_list_as_in_virt_inspector(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    image = tmp_path / "data.raw"
    with image.open("wb") as f:
        f.truncate(16 << 20)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True)

    assert _inspect(capsys, "-a", str(image))[:2] == (0, '{\n  "operatingsystems": []\n}\n')
    status, out, err = _inspect(capsys, "-a", str(image), "--xml")

    assert status == 0
    assert out == '<?xml version="1.0"?>\n<operatingsystems/>\n'
    assert "no operating system found" in err


def test_a_missing_image_is_one_line_and_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out, err = _inspect(capsys, "-a", str(tmp_path / "missing.qcow2"), "--xml")

    assert status == 1
    assert out == ""
    assert err.count("\n") == 1 and "missing.qcow2" in err


def _windows_report() -> dict[str, object]:
    app = dict.fromkeys(("release", "arch", "source_package", "summary", "description", "url"), "")
    return {
        "root": "/dev/sda2",
        "type": "windows",
        "arch": "x86_64",
        "distro": "windows",
        "product_name": "Windows 10 Pro",
        "product_variant": "Client",
        "major_version": 10,
        "minor_version": 0,
        "package_format": "unknown",
        "package_management": "unknown",
        "windows_systemroot": "/Windows",
        "windows_current_control_set": "ControlSet001",
        "hostname": "WIN10",
        "osinfo": "win10",
        "build_id": "19045",
        "format": "installed",
        "mountpoints": {"/": "/dev/sda2"},
        "filesystems": [{"device": "/dev/sda2", "type": "ntfs", "label": "", "uuid": "ABCD"}],
        "drive_mappings": {"c": "/dev/sda2", "D": "/dev/sda3", "E": "/dev/sdb1"},
        "applications": [
            app
            | {
                "name": "Tools & <Things>",
                "display_name": 'The "tools"\x01',
                "epoch": 0,
                "version": "1.0",
                "install_path": "C:\\Tools",
                "publisher": "",
            }
        ],
        "icon": None,
    }


def test_windows_xml_order_and_escaping() -> None:
    text = to_xml([_windows_report()])

    [system] = ET.fromstring(text)
    assert [child.tag for child in system] == [
        "root",
        "name",
        "arch",
        "distro",
        "product_name",
        "product_variant",
        "major_version",
        "minor_version",
        "windows_systemroot",
        "windows_current_control_set",
        "hostname",
        "osinfo",
        "mountpoints",
        "filesystems",
        "drive_mappings",
        "applications",
    ]
    letters = [(m.get("name"), m.text) for m in system.iter("drive_mapping")]
    assert letters == [("c", "/dev/sda2"), ("D", "/dev/sda3"), ("E", "/dev/sdb1")]
    [app] = system.iter("application")
    assert [child.tag for child in app] == ["name", "display_name", "version", "install_path"]
    assert app.findtext("name") == "Tools & <Things>"
    assert app.findtext("display_name") == 'The "tools"'  # the control character is dropped
    filesystem = system.find("filesystems/filesystem")
    assert filesystem is not None and [child.tag for child in filesystem] == ["type", "uuid"]
