"""The nbd backend: refused clearly where the host has no nbd devices, used where it has.

Whether nbd works is found by trying it once per session: ``qemu-nbd --connect`` of a
small image to a free ``/dev/nbdN``, then ``--disconnect``. The build host has no nbd
module, so there only the refusal runs; on a host with nbd the real attach runs instead.

Host tools: qemu-img, qemu-nbd, losetup, mount.
"""

from __future__ import annotations

import functools
import os
import subprocess
import tempfile
import time
from pathlib import Path

import guests
import pytest
from guests import Guest
from image_helpers import daemon_children, library_workdirs

from vmcraft import VMCraft
from vmcraft.errors import BackendUnavailableError, ImageError
from vmcraft.images import nbd_devices

CONNECT_TIMEOUT = 10  # seconds for an nbd device to show the image's size


def _nbd_size(device: str) -> int:
    return int(Path(f"/sys/block/{os.path.basename(device)}/size").read_text())


def _free_nbd_device() -> str | None:
    for device in nbd_devices():
        if not os.path.exists(f"/sys/block/{os.path.basename(device)}/pid"):
            return device
    return None


@functools.cache
def nbd_problem() -> str | None:
    """Why qemu-nbd cannot connect an image to a kernel nbd device here, or None."""
    device = _free_nbd_device()
    if device is None:
        return "no free /dev/nbd* device (no nbd module)"
    with tempfile.TemporaryDirectory(prefix="nbd-probe-") as directory:
        image = Path(directory) / "probe.qcow2"
        try:
            guests.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "1M"])
            guests.run(["qemu-nbd", f"--connect={device}", "--read-only", "--fork", str(image)])
        except (OSError, guests.GuestBuildError) as e:
            return f"qemu-nbd --connect failed: {e}"
        try:
            deadline = time.monotonic() + CONNECT_TIMEOUT
            while _nbd_size(device) == 0:
                if time.monotonic() > deadline:
                    return f"{device} never showed the image"
                time.sleep(0.05)
        finally:
            subprocess.run(["qemu-nbd", "--disconnect", device], capture_output=True, check=False)
    return None


@pytest.fixture(scope="session")
def nbd_host() -> None:
    """Skip unless qemu-nbd can connect here; ahead of the guest fixtures, so that a host
    without nbd builds nothing for nothing."""
    problem = nbd_problem()
    if problem:
        pytest.skip(problem)


@pytest.fixture
def qcow2_image(tmp_path: Path) -> Path:
    image = tmp_path / "disk.qcow2"
    guests.run(["qemu-img", "create", "-q", "-f", "qcow2", str(image), "16M"])
    return image


def test_nbd_backend_without_nbd_devices_is_refused(
    qcow2_image: Path, caplog: pytest.LogCaptureFixture
) -> None:
    if nbd_devices():
        pytest.skip("this host has nbd devices")
    workdirs_before = library_workdirs()

    with VMCraft() as g:  # default backoff: a retry would take seconds
        g.add_drive_opts(str(qcow2_image), backend="nbd")
        started = time.monotonic()
        with pytest.raises(BackendUnavailableError) as raised:
            g.launch()
        elapsed = time.monotonic() - started

    message = str(raised.value)
    assert str(qcow2_image) in message
    assert "nbd" in message
    assert "/dev/nbd" in message
    assert elapsed < 1.0, "an unavailable backend must not be retried"
    assert not [r for r in caplog.records if "failed on attempt" in r.getMessage()]
    assert daemon_children() == {}
    assert library_workdirs() == workdirs_before


def test_unknown_backend_is_refused(qcow2_image: Path) -> None:
    with VMCraft() as g:
        g.add_drive_opts(str(qcow2_image), backend="bogus")
        with pytest.raises(ImageError, match="unknown backend 'bogus'"):
            g.launch()


@pytest.mark.requires_root
@pytest.mark.requires_tool("qemu-nbd")
def test_nbd_backend_shows_the_guest(nbd_host: None, mbr_guest: Guest, tmp_path: Path) -> None:
    image = tmp_path / "mbr.qcow2"
    guests.run(["qemu-img", "convert", "-O", "qcow2", str(mbr_guest.path), str(image)])

    with VMCraft() as g:
        g.add_drive_opts(str(image), backend="nbd")
        g.launch()
        used = [d for d in nbd_devices() if os.path.exists(f"/sys/block/{d[5:]}/pid")]
        assert used, "no nbd device is connected"
        assert daemon_children() == {}, "nbd needs no qemu-storage-daemon"
        assert g.list_partitions() == sorted(mbr_guest.partitions, key=lambda n: int(n[8:]))
        expected = {dev: spec.fstype for dev, spec in mbr_guest.filesystems.items()}
        assert g.list_filesystems() == expected
        g.mount_ro("/dev/sda1", "/")
        assert g.read_file("/vmlinuz") == mbr_guest.filesystems["/dev/sda1"].files["/vmlinuz"]

    for device in used:
        assert not os.path.exists(f"/sys/block/{device[5:]}/pid"), f"{device} stayed connected"
