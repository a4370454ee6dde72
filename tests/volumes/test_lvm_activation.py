"""Asking for device-mapper activation never touches the host's LVM configuration."""

from __future__ import annotations

import glob

import pytest
from guests import Guest

from vmcraft import VMCraft
from vmcraft.volumes.lvm import has_device_mapper

pytestmark = [pytest.mark.requires_root, pytest.mark.requires_tool("vgchange")]


def _host_lvm_files() -> set[str]:
    return set(glob.glob("/etc/lvm/backup/*") + glob.glob("/etc/lvm/archive/*"))


def test_forced_activation_leaves_host_lvm_alone(gpt_lvm_guest: Guest) -> None:
    before = _host_lvm_files()

    with VMCraft(use_device_mapper=True) as g:
        g.add_drive_opts(str(gpt_lvm_guest.path), readonly=True)
        g.launch()
        lvs = g.lvs()
        g.mount_ro("/dev/vg0/root", "/")
        hostname = g.read_file("/etc/hostname")

    assert lvs == ["/dev/vg0/home", "/dev/vg0/root"]
    expected = gpt_lvm_guest.filesystems["/dev/vg0/root"].files["/etc/hostname"]
    assert hostname == expected
    assert _host_lvm_files() == before


def test_device_mapper_is_detected_from_the_kernel_list() -> None:
    with open("/proc/misc") as f:
        listed = any(line.split()[-1] == "device-mapper" for line in f if line.strip())

    assert has_device_mapper() is listed
