"""A hostile guest's links to host paths lead every writing and copying call into the guest.

``hostile_guest`` holds ``/up -> ../../../..``, ``/abs -> /``, ``/rel/inner -> ../abs``,
``/data/escape -> ../../../../etc``, loops, and ``/boot -> /tmp``. A writable copy of it
gets links to host canaries (a file and a folder the test makes, and a lone host file the
guest has nothing for), files of its own at the canaries' host paths, and a /tmp. Every
call runs through VMCraft; afterwards the canaries must be unchanged (content, mode, owner,
times, listing), and what the calls did is read back through a kernel mount of the image:
links copied as links, never followed; writes landing on the guest's own files.

Host tools: cp, losetup, mount, umount.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path

import pytest
from guest_edits import inside as inside_root
from guest_edits import partition_mounted
from guests import Guest
from writing_support import Canary, HostState, files_under, make_canary, plant_file

from vmcraft import VMCraft
from vmcraft.errors import GuestFileError, GuestFileNotFoundError, GuestPathError

pytestmark = pytest.mark.requires_root

CopyGuest = Callable[[Guest], Guest]
GUEST_FILE = b"the guest's own file at the canary's path\n"
GUEST_INNER = b"the guest's own file at the inner canary's path\n"
GUEST_TMP = b"the guest's own /tmp\n"


@pytest.fixture(scope="module")
def canary(tmp_path_factory: pytest.TempPathFactory) -> Canary:
    return make_canary(tmp_path_factory.mktemp("host-canary"))


def assert_canary_untouched(canary: Canary, before: object, *copies: Path) -> None:
    assert canary.state() == before
    secrets = {canary.file.read_bytes(), canary.inner.read_bytes()}
    for top in copies:
        assert not any(p.read_bytes() in secrets for p in files_under(top))


@pytest.fixture(scope="module")
def lone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A host file in a folder the guest has nothing for."""
    path = tmp_path_factory.mktemp("host-lone") / "lone.txt"
    path.write_bytes(b"a host file the guest lacks\n")
    return path


@pytest.fixture
def hostile(hostile_guest: Guest, writable_copy: CopyGuest, canary: Canary, lone: Path) -> Guest:
    """A copy of the hostile guest with files of its own at the canaries' host paths,
    links to the canaries, and a link to a host file the guest has nothing for."""
    copy = writable_copy(hostile_guest)
    with partition_mounted(copy, "/dev/sda1") as root:
        plant_file(inside_root(root, str(canary.file)), GUEST_FILE)
        plant_file(inside_root(root, str(canary.inner)), GUEST_INNER)
        os.symlink(canary.file, inside_root(root, "/etc/canary-link"))
        os.symlink(lone, inside_root(root, "/etc/lone-link"))
        os.symlink(canary.file, inside_root(root, "/data/canary-link"))
        os.symlink(canary.folder, inside_root(root, "/data/canary-dir-link"))
        plant_file(inside_root(root, "/tmp/marker"), GUEST_TMP)  # where /boot leads
    return copy


@contextlib.contextmanager
def hostile_handle(guest: Guest) -> Iterator[VMCraft]:
    with VMCraft() as g:
        g.add_drive_opts(str(guest.path), format="raw", readonly=False)
        g.launch()
        g.mount("/dev/sda1", "/")
        yield g


def test_hostile_links_lead_every_write_into_the_guest(
    hostile: Guest, canary: Canary, lone: Path, tmp_path: Path
) -> None:
    source, patch, out = tmp_path / "source", tmp_path / "patch", tmp_path / "out"
    source.write_bytes(b"uploaded through a link\n")
    patch.write_bytes(b"XY")
    filled = str(canary.folder / "filled")
    before = (canary.state(), HostState.of(lone))

    with hostile_handle(hostile) as g:
        g.upload(str(source), "/etc/canary-link")
        g.upload_offset(str(patch), "/abs" + str(canary.file), 2)
        g.truncate_size("/rel/inner" + str(canary.inner), 4)
        g.write_append("/up" + str(canary.inner), b"+appended")
        g.fill(0x41, 10, "/data/escape/.." + filled)
        g.download("/etc/canary-link", str(out))
        with pytest.raises(GuestFileError, match="not a regular file"):
            g.touch("/etc/canary-link")
        for call in (
            partial(g.upload, str(source), "/etc/lone-link"),
            partial(g.write_append, "/etc/lone-link", b"x"),
            partial(g.fill, 1, 1, "/etc/lone-link"),
            partial(g.truncate, "/etc/lone-link"),
            partial(g.download, "/etc/lone-link", str(tmp_path / "lone")),
        ):
            with pytest.raises(GuestFileNotFoundError):
                call()
        with pytest.raises(GuestPathError, match="symbolic links"):
            g.upload(str(source), "/loop1")

    assert (canary.state(), HostState.of(lone)) == before
    assert not Path(filled).exists()
    expected = b"upXYaded through a link\n"
    assert out.read_bytes() == expected
    with partition_mounted(hostile, "/dev/sda1", read_only=True) as root:
        assert inside_root(root, str(canary.file)).read_bytes() == expected
        assert inside_root(root, str(canary.inner)).read_bytes() == GUEST_INNER[:4] + b"+appended"
        assert inside_root(root, filled).read_bytes() == b"A" * 10
        assert os.readlink(inside_root(root, "/etc/canary-link")) == str(canary.file)
        assert not inside_root(root, str(lone)).exists()


def test_hostile_links_are_copied_as_links(
    hostile: Guest, hostile_guest: Guest, canary: Canary, tmp_path: Path
) -> None:
    spec = hostile_guest.filesystems["/dev/sda1"]
    before = canary.state()
    out, via_abs, via_boot = tmp_path / "out", tmp_path / "via-abs", tmp_path / "via-boot"
    for folder in (out, via_abs, via_boot):
        folder.mkdir()

    with hostile_handle(hostile) as g:
        g.cp_a("/data", "/data-archive")
        g.cp_r("/rel", "/rel-plain")
        g.copy_out("/", str(out))
        g.copy_out("/abs", str(via_abs))  # /abs -> / is the guest's root
        g.copy_out("/boot", str(via_boot))  # /boot -> /tmp: the guest's /tmp

    assert os.readlink(out / "data" / "escape") == spec.symlinks["/data/escape"]
    assert os.readlink(out / "data" / "canary-link") == str(canary.file)
    assert os.readlink(out / "boot") == "/tmp"
    for guest_path, target in spec.symlinks.items():
        assert os.readlink(out / guest_path.lstrip("/")) == target
    copied = {"/" + str(p.relative_to(out)): p.read_bytes() for p in files_under(out)}
    own = {str(canary.file): GUEST_FILE, str(canary.inner): GUEST_INNER, "/tmp/marker": GUEST_TMP}
    assert copied == spec.files | own  # nothing but the guest's own files came out
    assert (via_abs / "abs" / "etc" / "hostname").read_bytes() == spec.files["/etc/hostname"]
    assert (via_boot / "boot" / "marker").read_bytes() == GUEST_TMP
    assert_canary_untouched(canary, before, out, via_abs, via_boot)

    with partition_mounted(hostile, "/dev/sda1", read_only=True) as root:
        archive = inside_root(root, "/data-archive")
        assert os.readlink(archive / "escape") == spec.symlinks["/data/escape"]
        assert os.readlink(archive / "canary-dir-link") == str(canary.folder)
        assert os.readlink(inside_root(root, "/rel-plain/inner")) == "../abs"
        assert files_under(archive) == []


def test_hostile_copy_in_mv_and_rename_stay_inside(
    hostile: Guest, canary: Canary, tmp_path: Path
) -> None:
    host_tree = tmp_path / "unique-vmcraft-tree"
    host_tree.mkdir()
    (host_tree / "payload").write_bytes(b"payload\n")
    before = canary.state()

    with hostile_handle(hostile) as g:
        g.copy_in(str(host_tree), "/up")  # /up -> ../../../.. is the guest's root
        g.copy_in(str(host_tree), "/boot")  # /boot -> /tmp: the guest's /tmp
        g.mv("/data/canary-link", "/moved-link")
        g.rename("/data/canary-dir-link", "/renamed-link")

    assert not Path("/unique-vmcraft-tree").exists()
    assert not Path("/tmp/unique-vmcraft-tree").exists()
    with partition_mounted(hostile, "/dev/sda1", read_only=True) as root:
        for folder in ("/", "/tmp"):
            payload = inside_root(root, folder) / "unique-vmcraft-tree" / "payload"
            assert payload.read_bytes() == b"payload\n"
        assert os.readlink(inside_root(root, "/moved-link")) == str(canary.file)
        assert os.readlink(inside_root(root, "/renamed-link")) == str(canary.folder)
        assert not inside_root(root, "/data/canary-link").is_symlink()
    assert canary.state() == before
