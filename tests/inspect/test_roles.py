"""Which role a filesystem plays, in libguestfs's ``check_filesystem`` order.

libguestfs (daemon/inspect_fs.ml) tries its tests one after the other and the first that
matches decides: a GRUB ``/boot``; FreeBSD, NetBSD, OpenBSD, Hurd, Minix, Linux and
CoreOS roots; ``/usr/local``; Linux and CoreOS ``/usr``; ``/var``; a Windows root or data
volume; FreeDOS; MS-DOS. Its type tests look at the last component without following a
symlink, and a guest whose files are broken or hostile still gets an answer.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from planted_guests import FSTAB, X86_64_PROGRAM, guest_os, plant, plant_linux

from vmcraft.inspect.roles import OTHER, Finding, Role, classify

FREEBSD_ROOT: dict[str, str | bytes] = {
    "/etc/freebsd-update.conf": "Components src world kernel\n",
    "/etc/fstab": "/dev/ada0p2 / ufs rw 1 1\n",
    "/bin/sh": X86_64_PROGRAM,
}
NETBSD_MARKERS = {"/netbsd": b"kernel", "/etc/release": "NetBSD 9.3 (GENERIC)\n"}
OPENBSD_MARKERS = {"/bsd": b"kernel", "/etc/motd": "OpenBSD 7.4 (GENERIC.MP)\n"}
HURD_MARKERS = {f"/hurd/{name}": b"translator" for name in ("console", "hello", "null")}
MINIX_MARKERS = {"/service/vm": b"server", "/etc/version": "3.3.0\n"}
FREEDOS_MARKER = {"/FDOS/FREEDOS.BSS": b"boot sector"}

DOS_ARCH = {"arch": "i386"}  # libguestfs takes DOS as needing an i386


def os_type(finding: Finding) -> str | None:
    return None if finding.identity is None else finding.identity.type


# ----------------------------------------------------------------- ruled out as no OS


@pytest.mark.parametrize("grub_file", ["/grub/menu.lst", "/grub/grub.conf", "/grub2/grub.cfg"])
def test_grub_boot_is_ruled_out_first(tmp_path: Path, grub_file: str) -> None:
    tree = plant(tmp_path, {**FREEBSD_ROOT, grub_file: "default 0\n"})

    assert classify(tree) == OTHER


def test_grub_file_that_is_a_symlink_rules_nothing_out(tmp_path: Path) -> None:
    tree = plant(
        tmp_path, {**FREEBSD_ROOT, "/grub/real.conf": "x\n"}, {"/grub/grub.conf": "real.conf"}
    )

    assert os_type(classify(tree)) == "freebsd"


@pytest.mark.parametrize(
    ("files", "folders"),
    [
        pytest.param({"/grub/grub.conf": "default 0\n"}, (), id="grub-boot"),
        pytest.param({}, ("/etc", "/bin", "/share"), id="usr-local"),
        pytest.param({}, ("/log", "/run", "/spool"), id="var"),
        pytest.param({}, ("/System Volume Information",), id="windows-volume"),
        pytest.param({}, ("/system volume information",), id="windows-volume-any-case"),
    ],
)
def test_shapes_settled_before_dos(
    tmp_path: Path, files: dict[str, str], folders: tuple[str, ...]
) -> None:
    # Each of these is decided before the DOS tests, so DOS files on it make no root.
    tree = plant(tmp_path, {**FREEDOS_MARKER, **files}, folders=folders)

    assert classify(tree) == OTHER


def test_var_and_usr_local_are_no_os(tmp_path: Path) -> None:
    var = plant(tmp_path / "var", {"/lib/dpkg/status": ""}, folders=("/log", "/run", "/spool"))
    local = plant(tmp_path / "local", folders=("/etc", "/bin", "/share", "/lib"))

    assert (classify(var), classify(local)) == (OTHER, OTHER)


def test_empty_filesystem(tmp_path: Path) -> None:
    assert classify(plant(tmp_path)) == OTHER


def test_usr_shape_of_old_libguestfs_is_no_usr(tmp_path: Path) -> None:
    # libguestfs's C code took /etc + /bin + /share + /local for a /usr; its daemon wants
    # /src instead, as a real /usr has no /etc.
    tree = plant(tmp_path, folders=("/etc", "/bin", "/share", "/local"))

    assert classify(tree) == OTHER


def test_usr_with_an_fstab_is_no_usr(tmp_path: Path) -> None:
    tree = plant(tmp_path, {"/etc/fstab": FSTAB}, folders=("/bin", "/local", "/share", "/src"))

    assert classify(tree).role is Role.ROOT  # /etc, /bin and /etc/fstab: a Linux root


# ------------------------------------------------------------------------- precedence


@pytest.mark.parametrize(
    ("markers", "expected"),
    [
        pytest.param({**NETBSD_MARKERS, **OPENBSD_MARKERS}, "freebsd", id="freebsd-first"),
        pytest.param({**HURD_MARKERS, **MINIX_MARKERS}, "freebsd", id="freebsd-over-hurd"),
    ],
)
def test_freebsd_wins(tmp_path: Path, markers: dict[str, str | bytes], expected: str) -> None:
    assert os_type(classify(plant(tmp_path, {**FREEBSD_ROOT, **markers}))) == expected


@pytest.mark.parametrize(
    ("markers", "expected"),
    [
        pytest.param({**NETBSD_MARKERS, **OPENBSD_MARKERS}, "netbsd", id="netbsd-over-openbsd"),
        pytest.param({**OPENBSD_MARKERS, **HURD_MARKERS}, "openbsd", id="openbsd-over-hurd"),
        pytest.param({**HURD_MARKERS, **MINIX_MARKERS}, "hurd", id="hurd-over-minix"),
        pytest.param(HURD_MARKERS, "hurd", id="hurd-over-linux"),
        pytest.param(MINIX_MARKERS, "minix", id="minix-over-linux"),
    ],
)
def test_order_among_unix_roots(
    tmp_path: Path, markers: dict[str, str | bytes], expected: str
) -> None:
    # A Linux root (/etc, /bin, /etc/fstab) that also holds another system's markers.
    assert os_type(classify(plant_linux(tmp_path, markers))) == expected


def test_linux_root_wins_over_coreos_root(tmp_path: Path) -> None:
    coreos = {"/etc/coreos/update.conf": "GROUP=stable\n", "/etc/hosts": "127.0.0.1 lo\n"}
    tree = plant(tmp_path, coreos, {"/bin": "usr/bin"}, folders=("/root", "/home", "/usr/bin"))

    finding = classify(tree)

    assert (os_type(finding), finding.fstab_os_type) == ("linux", "linux")
    assert finding.fixed_mountpoint is None


def test_linux_usr_wins_over_coreos_usr(tmp_path: Path) -> None:
    tree = plant(tmp_path, folders=("/bin", "/local", "/share/coreos", "/src"))

    finding = classify(tree)

    assert finding.role is Role.USR
    assert finding.fixed_mountpoint is None  # only libguestfs's CoreOS /usr test sets one


# -------------------------------------------------------------------------------- DOS


@pytest.mark.parametrize(
    ("files", "distro", "osinfo"),
    [
        pytest.param(FREEDOS_MARKER, "freedos", "unknown", id="freedos"),
        pytest.param({"/fdos/Freedos.bss": b"x"}, "freedos", "unknown", id="freedos-any-case"),
        pytest.param({"/DOS/COMMAND.COM": b"MZ"}, "msdos", "msdos6.22", id="msdos"),
        pytest.param({"/dos/command.com": b"MZ"}, "msdos", "msdos6.22", id="msdos-any-case"),
    ],
)
def test_dos_roots(tmp_path: Path, files: dict[str, bytes], distro: str, osinfo: str) -> None:
    identity = guest_os("dos", distro, osinfo=osinfo, **DOS_ARCH)

    assert classify(plant(tmp_path, files)) == Finding(Role.ROOT, identity)


@pytest.mark.parametrize(
    ("files", "folders"),
    [
        pytest.param({"/KERNEL.SYS": b"x", "/COMMAND.COM": b"MZ"}, (), id="freedos-kernel-only"),
        pytest.param({"/IO.SYS": b"x", "/MSDOS.SYS": b"x"}, (), id="msdos-system-files-only"),
        pytest.param({}, ("/FDOS/FREEDOS.BSS",), id="marker-is-a-folder"),
        pytest.param({"/FDOS": b"not a folder"}, (), id="fdos-is-a-file"),
    ],
)
def test_not_dos(tmp_path: Path, files: dict[str, bytes], folders: tuple[str, ...]) -> None:
    # libguestfs looks only for \FDOS\FREEDOS.BSS and \DOS\COMMAND.COM.
    assert classify(plant(tmp_path, files, folders=folders)) == OTHER


# --------------------------------------------------------------- broken and hostile guests


def test_markers_must_be_regular_files(tmp_path: Path) -> None:
    # A NetBSD kernel that is a symlink fails the NetBSD test; /etc, /bin and /etc/fstab
    # still make a Linux root.
    files = {"/netbsd.real": b"kernel", "/etc/release": "NetBSD 9.3\n", "/etc/fstab": FSTAB}
    tree = plant(tmp_path, files, {"/netbsd": "netbsd.real"}, folders=("/bin",))

    assert os_type(classify(tree)) == "linux"


def test_release_files_that_are_folders(tmp_path: Path) -> None:
    tree = plant(tmp_path, FREEBSD_ROOT, folders=("/etc/motd", "/etc/rc.conf"))

    assert classify(tree).identity == guest_os("freebsd", "freebsd", osinfo="freebsd0.0")


def test_release_files_in_symlink_loops(tmp_path: Path) -> None:
    loops = {"/etc/motd": "motd", "/etc/rc.conf": "rc.conf.d", "/etc/rc.conf.d": "rc.conf"}
    tree = plant(tmp_path, FREEBSD_ROOT, loops)

    assert classify(tree).identity == guest_os("freebsd", "freebsd", osinfo="freebsd0.0")


def test_hurd_marker_in_a_symlink_loop_is_no_marker(tmp_path: Path) -> None:
    files = {path: data for path, data in HURD_MARKERS.items() if path != "/hurd/console"}
    tree = plant(tmp_path, files, {"/hurd/console": "/hurd/console"})

    assert classify(tree) == OTHER


def test_symlinks_resolve_inside_the_guest(tmp_path: Path) -> None:
    # libguestfs reads release files in a chroot: ".." stops at the guest's own root, so
    # the decoy next to the guest on the host is never read.
    plant(tmp_path, {"/usr/share/motd": "FreeBSD 99.9-DECOY\n"})
    motd = {"/usr/share/motd": "FreeBSD 12.4-RELEASE GENERIC\n"}
    escape = {"/etc/motd": "../../usr/share/motd"}
    tree = plant(tmp_path / "guest", {**FREEBSD_ROOT, **motd}, escape)

    identity = classify(tree).identity

    assert identity is not None
    assert (identity.major_version, identity.minor_version) == (12, 4)


@pytest.mark.parametrize(
    ("files", "expected_type"),
    [
        pytest.param({**FREEBSD_ROOT, "/etc/motd": bytes(range(256))}, "freebsd", id="motd"),
        pytest.param(
            {**NETBSD_MARKERS, "/etc/release": b"\xff\xfe\x80NetBSD\n", "/etc/fstab": FSTAB},
            "netbsd",
            id="netbsd-release",
        ),
        pytest.param(
            {**MINIX_MARKERS, "/etc/version": b"\x00\x9f\n3.3", "/etc/fstab": FSTAB},
            "minix",
            id="minix-version",
        ),
        pytest.param({**HURD_MARKERS, "/etc/os-release": b"ID=\xc3\x28\n"}, "hurd", id="hurd"),
    ],
)
def test_garbage_release_files_give_no_version(
    tmp_path: Path, files: dict[str, str | bytes], expected_type: str
) -> None:
    tree = plant(tmp_path, files, folders=("/bin",))

    identity = classify(tree).identity

    assert identity is not None
    assert identity.type == expected_type
    assert (identity.major_version, identity.minor_version) == (0, 0)


def test_oversized_motd_is_not_read(tmp_path: Path) -> None:
    # libguestfs reads release files of about 2 MiB at most.
    motd = "FreeBSD 13.2-RELEASE\n" + "x" * (3 * 1024 * 1024)
    tree = plant(tmp_path, {**FREEBSD_ROOT, "/etc/motd": motd})

    assert classify(tree).identity == guest_os("freebsd", "freebsd", osinfo="freebsd0.0")
