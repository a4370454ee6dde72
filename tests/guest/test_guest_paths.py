"""The guest-path resolver on a plain folder tree: symlinks and ``..`` stay inside the guest.

The tree is built in ``tmp_path`` with ``os.symlink``; no root is needed, except for the
last test, which asks the kernel itself (``chroot`` + ``stat``) how a guest would resolve
the same paths and compares inodes.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from vmcraft.errors import GuestFileError, GuestPathError, VMCraftError
from vmcraft.guest.paths import MAX_SYMLINKS, check_guest_path, resolve_guest_path

CHAIN_LENGTH = 45  # links c0 -> c1 -> ... -> c44 -> /a/b
RANDOM_SEED = 20240611
RANDOM_PATHS = 3000

DIRECTORIES = ("a", "a/b", "c", "d/e")
FILES = {"f": b"top\n", "a/g": b"in a\n", "a/b/h": b"in b\n", "c/k": b"in c\n"}
LINKS = {
    "abs": "/a/b",
    "rel": "a/b",
    "up": "../../../..",
    "dotdot": "..",
    "loop1": "loop2",
    "loop2": "loop1",
    "self": "self",
    "a/b/back": "../../c",
    "a/esc": "../../../../..",
    "a/etc": "/etc",
    "dangling": "/missing/x",
    "filelink": "f",
    "linktolink": "abs",
    "root": "/",
    "d/e/deep": "../../a/./b/../b",
    "hostetc": "/etc/../etc",
}
NAMES = (
    "..",
    ".",
    "",
    "a",
    "b",
    "c",
    "d",
    "e",
    "f",
    "g",
    "h",
    "k",
    "missing",
    *(name.rsplit("/", 1)[-1] for name in LINKS),
    "c0",
    "c5",
)
# Names that lead somewhere, weighted up so that most random paths reach a real inode.
WALKABLE = ("..", "a", "b", "c", "abs", "rel", "up", "root", "back", "dotdot", "linktolink")
CHOICES = NAMES + WALKABLE * 3


def build_tree(root: Path) -> Path:
    for folder in DIRECTORIES:
        (root / folder).mkdir(parents=True, exist_ok=True)
    for name, content in FILES.items():
        (root / name).write_bytes(content)
    for name, target in LINKS.items():
        os.symlink(target, root / name)
    for i in range(CHAIN_LENGTH):
        target = f"c{i + 1}" if i + 1 < CHAIN_LENGTH else "/a/b"
        os.symlink(target, root / f"c{i}")
    return root


@pytest.fixture
def tree(tmp_path: Path) -> str:
    return str(build_tree(tmp_path / "guest"))


def host(root: str, *parts: str) -> str:
    return os.path.join(root, *parts)


# ---------------------------------------------------------------- single cases


def test_absolute_link_resolves_against_guest_root(tree: str) -> None:
    assert resolve_guest_path(tree, "/abs") == host(tree, "a", "b")
    assert resolve_guest_path(tree, "/abs/h") == host(tree, "a", "b", "h")
    assert resolve_guest_path(tree, "/linktolink/h") == host(tree, "a", "b", "h")
    assert resolve_guest_path(tree, "/root/root/a") == host(tree, "a")


def test_link_to_host_path_stays_in_guest(tree: str) -> None:
    # /etc exists on the host, not in the guest: the guest's (missing) /etc is named.
    assert resolve_guest_path(tree, "/a/etc/passwd") == host(tree, "etc", "passwd")
    assert resolve_guest_path(tree, "/hostetc/shadow") == host(tree, "etc", "shadow")


def test_relative_link_resolves_from_its_folder(tree: str) -> None:
    assert resolve_guest_path(tree, "/rel") == host(tree, "a", "b")
    assert resolve_guest_path(tree, "/a/b/back/k") == host(tree, "c", "k")
    assert resolve_guest_path(tree, "/filelink") == host(tree, "f")
    assert resolve_guest_path(tree, "/d/e/deep/h") == host(tree, "a", "b", "h")


def test_dotdot_after_link_climbs_from_the_target(tree: str) -> None:
    # /abs is /a/b, so /abs/.. is /a, not the folder holding the link.
    assert resolve_guest_path(tree, "/abs/..") == host(tree, "a")
    assert resolve_guest_path(tree, "/abs/../g") == host(tree, "a", "g")


@pytest.mark.parametrize(
    "path",
    ["/..", "/../..", "/../../../etc/..", "/a/../../..", "/up", "/a/esc", "/dotdot", "/."],
)
def test_dotdot_above_root_clamps_at_root(tree: str, path: str) -> None:
    assert resolve_guest_path(tree, path) == tree


def test_climbing_then_descending_stays_in_guest(tree: str) -> None:
    assert resolve_guest_path(tree, "/../../etc/passwd") == host(tree, "etc", "passwd")
    assert resolve_guest_path(tree, "/up/a/g") == host(tree, "a", "g")
    assert resolve_guest_path(tree, "/a/esc/etc/shadow") == host(tree, "etc", "shadow")


@pytest.mark.parametrize("path", ["/loop1", "/loop2/x", "/self", "/a/../self/..", "/c0/../loop1"])
def test_link_loop_is_a_path_error(tree: str, path: str) -> None:
    with pytest.raises(GuestPathError, match="too many levels of symbolic links") as caught:
        resolve_guest_path(tree, path)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, VMCraftError)
    assert path in str(caught.value)


def test_chain_of_max_links_resolves_and_one_more_fails(tree: str) -> None:
    # c{i} starts a chain of CHAIN_LENGTH - i links, the last of them pointing at /a/b.
    exactly_max = f"/c{CHAIN_LENGTH - MAX_SYMLINKS}"
    one_more = f"/c{CHAIN_LENGTH - MAX_SYMLINKS - 1}"

    assert MAX_SYMLINKS == 40  # Linux's limit, include/linux/namei.h MAXSYMLINKS
    assert resolve_guest_path(tree, exactly_max) == host(tree, "a", "b")
    assert resolve_guest_path(tree, f"{exactly_max}/h") == host(tree, "a", "b", "h")
    with pytest.raises(GuestPathError):
        resolve_guest_path(tree, one_more)


def test_links_are_counted_across_the_whole_path(tree: str) -> None:
    # linktolink -> abs -> /a/b is 2 links; the chain from c{i} is CHAIN_LENGTH - i more.
    start = CHAIN_LENGTH - (MAX_SYMLINKS - 2)
    assert resolve_guest_path(tree, f"/linktolink/../../c{start}") == host(tree, "a", "b")
    with pytest.raises(GuestPathError):
        resolve_guest_path(tree, f"/linktolink/../../c{start - 1}")
    with pytest.raises(GuestPathError):
        resolve_guest_path(tree, f"/linktolink/../../linktolink/../../c{start + 1}")


@pytest.mark.parametrize("path", ["", "etc/passwd", "./etc", "../etc", "~/x", " /etc"])
def test_non_absolute_path_is_rejected(tree: str, path: str) -> None:
    with pytest.raises(GuestPathError, match="not absolute") as caught:
        resolve_guest_path(tree, path)
    assert isinstance(caught.value, ValueError)
    with pytest.raises(GuestPathError):
        check_guest_path(path)


@pytest.mark.parametrize("path", ["/etc/\0passwd", "/\0", "/a\0/../f", "\0/etc"])
def test_nul_byte_is_rejected(tree: str, path: str) -> None:
    with pytest.raises(GuestPathError) as caught:
        resolve_guest_path(tree, path)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, GuestFileError)


@pytest.mark.parametrize("value", [b"/etc", None, 3, Path("/etc")])
def test_non_string_path_is_rejected(tree: str, value: object) -> None:
    with pytest.raises(GuestPathError, match="must be a string"):
        check_guest_path(value)  # type: ignore[arg-type]


def test_check_guest_path_returns_a_good_path() -> None:
    assert check_guest_path("/etc/fstab") == "/etc/fstab"
    assert check_guest_path("/") == "/"


def test_follow_final_false_keeps_the_final_link(tree: str) -> None:
    for name in ("abs", "rel", "up", "loop1", "self", "dangling", "root"):
        assert resolve_guest_path(tree, f"/{name}", follow_final=False) == host(tree, name)
    assert resolve_guest_path(tree, "/abs/back", follow_final=False) == host(tree, "a", "b", "back")
    # Links before the final component are still followed.
    assert resolve_guest_path(tree, "/rel/back", follow_final=False) == host(tree, "a", "b", "back")


def test_follow_final_false_still_resolves_dotdot(tree: str) -> None:
    assert resolve_guest_path(tree, "/abs/..", follow_final=False) == host(tree, "a")
    with pytest.raises(GuestPathError):
        resolve_guest_path(tree, "/loop1/x", follow_final=False)


def test_nonexistent_components_are_kept(tree: str) -> None:
    assert resolve_guest_path(tree, "/missing") == host(tree, "missing")
    assert resolve_guest_path(tree, "/missing/x/y") == host(tree, "missing", "x", "y")
    assert resolve_guest_path(tree, "/abs/new-file") == host(tree, "a", "b", "new-file")
    assert resolve_guest_path(tree, "/dangling") == host(tree, "missing", "x")
    assert resolve_guest_path(tree, "/dangling/../y") == host(tree, "missing", "y")
    assert resolve_guest_path(tree, "/f/below-a-file") == host(tree, "f", "below-a-file")


def test_redundant_slashes_and_dots_are_ignored(tree: str) -> None:
    assert resolve_guest_path(tree, "//a///./b//h") == host(tree, "a", "b", "h")
    assert resolve_guest_path(tree, "//a///./b//") == host(tree, "a", "b")
    assert resolve_guest_path(tree, "/") == tree


def test_trailing_slash_names_a_folder(tree: str) -> None:
    # POSIX, and libguestfs 1.48: lstat("/link-to-dir/") is the folder, and
    # lstat("/file/") fails with ENOTDIR; the slash stays so that the kernel says so.
    assert resolve_guest_path(tree, "/abs/", follow_final=False) == host(tree, "a", "b")
    assert resolve_guest_path(tree, "/abs/.", follow_final=False) == host(tree, "a", "b")
    assert resolve_guest_path(tree, "/a/b/h/") == host(tree, "a", "b", "h") + "/"
    assert resolve_guest_path(tree, "/filelink/", follow_final=False) == host(tree, "f") + "/"
    assert resolve_guest_path(tree, "/missing/") == host(tree, "missing")
    with pytest.raises(NotADirectoryError):
        os.lstat(resolve_guest_path(tree, "/a/b/h/"))
    # Calls that change the final component ignore the slash: rm_rf("/abs/") takes the link.
    unchanged = resolve_guest_path(tree, "/abs/", follow_final=False, slash_names_folder=False)
    assert unchanged == host(tree, "abs")


def test_root_with_trailing_slash(tree: str) -> None:
    assert resolve_guest_path(tree + "/", "/up/abs") == host(tree, "a", "b")


# ---------------------------------------------------------------- random paths


def random_paths(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return ["/" + "/".join(rng.choices(CHOICES, k=rng.randint(1, 6))) for _ in range(count)]


def is_within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


@pytest.mark.parametrize("follow_final", [True, False])
def test_random_paths_never_leave_the_root(tree: str, follow_final: bool) -> None:
    resolved = errors = 0
    for path in random_paths(RANDOM_PATHS, RANDOM_SEED):
        try:
            result = resolve_guest_path(tree, path, follow_final)
        except GuestPathError:
            errors += 1
            continue
        resolved += 1
        assert is_within(result, tree), path
        assert ".." not in result.split("/"), path
        # No symlink is left for the host to follow out of the tree, but possibly the final.
        parent = result if follow_final or result == tree else os.path.dirname(result)
        assert is_within(os.path.realpath(parent), tree), path
    # The generator must exercise both outcomes, or it tests nothing.
    assert resolved > RANDOM_PATHS // 2
    assert errors > 0


def test_random_paths_follow_every_link(tree: str) -> None:
    for path in random_paths(RANDOM_PATHS, RANDOM_SEED + 1):
        try:
            result = resolve_guest_path(tree, path)
        except GuestPathError:
            continue
        assert os.path.realpath(result) == result, path


# ---------------------------------------------------------------- the kernel as oracle

_CHROOT_STAT = """
import json, os, sys
paths = json.load(sys.stdin)
os.chroot(sys.argv[1])
os.chdir("/")
out = {}
for p in paths:
    try:
        st = os.stat(p)
        out[p] = [st.st_dev, st.st_ino]
    except OSError as e:
        out[p] = e.errno
print(json.dumps(out))
"""


def kernel_stat_in_chroot(root: str, paths: list[str]) -> dict[str, list[int] | int]:
    result = subprocess.run(
        [sys.executable, "-I", "-c", _CHROOT_STAT, root],
        input=json.dumps(paths).encode(),
        capture_output=True,
        timeout=60,
        check=False,
    )
    if result.returncode != 0:
        if b"PermissionError" in result.stderr:
            pytest.skip("chroot needs CAP_SYS_CHROOT")
        raise AssertionError(result.stderr.decode(errors="replace"))
    found: dict[str, list[int] | int] = json.loads(result.stdout)
    return found


def test_resolution_matches_the_kernel_in_a_chroot(tree: str) -> None:
    paths = random_paths(RANDOM_PATHS, RANDOM_SEED + 2)
    kernel = kernel_stat_in_chroot(tree, paths)
    compared = loops = 0

    for path, outcome in kernel.items():
        if outcome == 40:  # ELOOP: the kernel gave up, so must we
            with pytest.raises(GuestPathError):
                resolve_guest_path(tree, path)
            loops += 1
        elif isinstance(outcome, list):
            st = os.stat(resolve_guest_path(tree, path))
            assert [st.st_dev, st.st_ino] == outcome, path
            compared += 1
        # ENOENT/ENOTDIR: the resolver keeps missing components; nothing to compare.
    assert compared > 100
    assert loops > 10
