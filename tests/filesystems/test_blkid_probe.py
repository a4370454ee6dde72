"""blkid probing and its cache, on filesystem images made by mkfs in tmp_path.

blkid reads regular files as well as devices, so these need neither root nor loop devices.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

import pytest

from vmcraft.errors import FilesystemError
from vmcraft.filesystems.probe import BlkidCache, run_blkid

UUID = "7e570009-0000-4000-8000-000000000001"


@pytest.fixture
def ext4_image(tmp_path: Path) -> Path:
    image = tmp_path / "fs.ext4"
    argv = ["mkfs.ext4", "-F", "-q", "-L", "probe-me", "-U", UUID, str(image), "4M"]
    try:
        subprocess.run(argv, check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as e:
        pytest.skip(f"cannot run mkfs.ext4: {e}")
    return image


@pytest.mark.requires_tool("blkid")
def test_tags_of_an_ext4_image(ext4_image: Path) -> None:
    tags = run_blkid(str(ext4_image))
    assert tags["TYPE"] == "ext4"
    assert tags["LABEL"] == "probe-me"
    assert tags["UUID"] == UUID
    assert "DEVNAME" not in tags
    assert all(key == key.upper() for key in tags)


@pytest.mark.requires_tool("blkid")
@pytest.mark.parametrize("label", ["home fs", "Système", 'a$b"c\\d'])
def test_labels_come_back_as_written(tmp_path: Path, label: str) -> None:
    image = tmp_path / "labelled.ext4"
    argv = ["mkfs.ext4", "-F", "-q", "-L", label, str(image), "4M"]
    subprocess.run(argv, check=True, capture_output=True, timeout=60)

    assert run_blkid(str(image))["LABEL"] == label  # not blkid's escaped "home\\ fs"


@pytest.mark.requires_tool("blkid")
def test_nothing_recognised_is_empty(tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1024 * 1024))
    assert run_blkid(str(blank)) == {}


@pytest.mark.requires_tool("blkid")
def test_unreadable_device_raises(tmp_path: Path) -> None:
    with pytest.raises(FilesystemError, match="cannot probe"):
        run_blkid(str(tmp_path / "missing.img"))


@pytest.mark.requires_tool("blkid")
def test_cache_hits_expiry_and_invalidation(ext4_image: Path, tmp_path: Path) -> None:
    blank = tmp_path / "blank.img"
    blank.write_bytes(bytes(1024 * 1024))
    cache = BlkidCache(ttl_s=0.05)

    first = cache.probe(str(ext4_image))
    first["TYPE"] = "changed by the caller"
    assert cache.probe(str(ext4_image))["TYPE"] == "ext4"
    assert cache.cache.stats.as_dict() == {"hits": 1, "misses": 1, "invalidations": 0}

    time.sleep(0.1)
    cache.probe(str(ext4_image))
    assert cache.cache.stats.misses == 2

    cache.probe(str(blank))
    cache.invalidate([str(blank)])
    assert cache.cache.stats.invalidations == 1
    cache.probe(str(ext4_image))  # still cached
    assert cache.cache.stats.hits == 2
    cache.invalidate()
    assert cache.cache.stats.invalidations == 2
    assert cache.probe(str(ext4_image), use_cache=False)["LABEL"] == "probe-me"
    assert cache.cache.stats.misses == 4
