"""Windows system roots, identity, drive letters and applications, as libguestfs finds them.

Guests are folders planted with hives that hivexsh wrote from the specs in
windows_guests.py, and one real NTFS image read through the handle. Expected values come
from the specs and from libguestfs's documented rules: the first system root of
``/windows``, ``/winnt``... holding ``system32/config`` and ``system32/cmd.exe``; version
from CurrentMajor/MinorVersionNumber, else CurrentVersion; hostname from the current
control set; a drive letter per ``\\DosDevices\\X:`` whose blob names an attached MBR
partition (disk signature + byte offset) or GPT partition (GUID); one application per
Uninstall subkey with a string DisplayName, sorted by key name.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import guests
import pytest
from conftest import skip_unless_root, skip_unless_tools
from inspect_support import app2
from planted_guests import plant
from windows_guests import (
    DISK_ID,
    GPT_PARTITION_GUID,
    IMAGE_FILE_MACHINE_AMD64,
    IMAGE_FILE_MACHINE_ARM64,
    IMAGE_FILE_MACHINE_I386,
    PARTITION_START,
    REQUIRED_TOOLS,
    WINDOWS_7_SOFTWARE,
    WINDOWS_10_SOFTWARE,
    WINDOWS_10_SYSTEM,
    HiveSpec,
    build_hive,
    build_windows_guest,
    dword,
    pe_program,
    sz,
)

from vmcraft import VMCraft
from vmcraft.inspect.windows import (
    WindowsIdentity,
    is_windows_root,
    pe_architecture,
    read_windows_identity,
)
from vmcraft.inspect.windows_apps import list_windows_applications

pytestmark = pytest.mark.requires_tool("hivexsh", "-f", "/dev/null")

CONFIG = "/Windows/System32/config"
CMD_EXE = pe_program(IMAGE_FILE_MACHINE_AMD64)
PARTITIONS = {
    "/dev/sda1": (DISK_ID, PARTITION_START),
    "/dev/sda2": (DISK_ID, PARTITION_START + 512 * 1024 * 1024),
    "/dev/sdb1": ("11223345", PARTITION_START),  # one digit away from drive E's disk
}
GPT_GUIDS = {"/dev/sdc1": "C12A7328-F81F-11D2-BA4B-00A0C93EC93B", "/dev/sdc2": GPT_PARTITION_GUID}

WINDOWS_10 = WindowsIdentity(
    systemroot="/Windows",
    arch="x86_64",
    product_name="Windows 10 Pro",
    product_variant="Client",
    major_version=10,
    minor_version=0,
    build_id="19045",
    hostname="WIN10-VMCRAFT",
    current_control_set="ControlSet001",
    software_hive=f"{CONFIG}/SOFTWARE",
    system_hive=f"{CONFIG}/SYSTEM",
    drive_mappings={"C": "/dev/sda1", "D": "/dev/sdc2"},
)


def app(name: str, display_name: str, **fields: str) -> dict[str, str | int]:
    """A Windows application: the Uninstall subkey's name, its DisplayName and the rest."""
    return app2(name, display_name=display_name, **fields)


WINDOWS_10_APPLICATIONS = [
    app(
        "7-Zip",
        "7-Zip 22.01 (x64)",
        version="22.01",
        install_path="C:\\Program Files\\7-Zip\\",
        publisher="Igor Pavlov",
        url="https://www.7-zip.org/",
    ),
    app("7-Zip", "7-Zip 9.20", version="9.20"),  # the WOW6432Node one, after the native one
    app(
        "Notepad++",
        "Notepad++ (32-bit x86)",
        version="8.5.4",
        publisher="Notepad++ Team",
        url="https://notepad-plus-plus.org/",
    ),
    app(
        "{90160000-008C-0000-1000-0000000FF1CE}",
        "Office 16 Click-to-Run Extensibility Component",
        version="16.0.16529.20154",
        install_path="%ProgramFiles%\\Microsoft Office",
        publisher="Microsoft Corporation",
        description="Installed with Office",
    ),
    app("Ünïcode Tööl", "Ünïcode Tööl 1.0 ☃", publisher="Société Exemple"),
]


@pytest.fixture(scope="module")
def hives(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("windows-hives")
    specs = {
        "SOFTWARE": WINDOWS_10_SOFTWARE,
        "SYSTEM": WINDOWS_10_SYSTEM,
        "WIN7": WINDOWS_7_SOFTWARE,
    }
    return {n: build_hive(folder / n, s, folder / "scratch").read_bytes() for n, s in specs.items()}


def windows_tree(root: Path, hives: dict[str, bytes], **replaced: bytes | None) -> Path:
    """A Windows 10 system root planted under root; a None in ``replaced`` leaves it out."""
    files = {
        f"{CONFIG}/SOFTWARE": hives["SOFTWARE"],
        f"{CONFIG}/SYSTEM": hives["SYSTEM"],
        "/Windows/System32/cmd.exe": CMD_EXE,
    }
    for name, content in replaced.items():
        files.pop(f"{CONFIG}/{name}")
        if content is not None:
            files[f"{CONFIG}/{name}"] = content
    plant(root, files)
    return root


# ---------------------------------------------------------------- cmd.exe


@pytest.mark.parametrize(
    ("machine", "expected"),
    [
        (IMAGE_FILE_MACHINE_AMD64, "x86_64"),
        (IMAGE_FILE_MACHINE_I386, "i386"),
        (IMAGE_FILE_MACHINE_ARM64, "aarch64"),
        (0x0EBC, "unknown"),  # EFI byte code: no name
    ],
)
def test_pe_machine_names(machine: int, expected: str) -> None:
    assert pe_architecture(pe_program(machine)) == expected


@pytest.mark.parametrize(
    "head",
    [
        b"",
        b"MZ",
        b"\x7fELF" + bytes(60),
        CMD_EXE[:0x3C] + b"\xff\xff\xff\x7f" + CMD_EXE[0x40:],  # e_lfanew far past the end
        CMD_EXE.replace(b"PE\0\0", b"NE\0\0"),
        CMD_EXE[:0x84],  # cut inside the COFF header
    ],
)
def test_what_is_not_a_pe_program_has_no_architecture(head: bytes) -> None:
    assert pe_architecture(head) == "unknown"


# ---------------------------------------------------------------- system roots


@pytest.mark.parametrize(
    ("config", "cmd_exe", "expected"),
    [
        ("/Windows/System32/config", "/Windows/System32/cmd.exe", "/Windows"),
        ("/WINNT/SYSTEM32/CONFIG", "/WINNT/SYSTEM32/CMD.EXE", "/WINNT"),
        ("/windows/system32/config", "/windows/system32/Cmd.Exe", "/windows"),
        ("/ReactOS/system32/config", "/ReactOS/system32/cmd.exe", "/ReactOS"),
    ],
)
def test_systemroot_is_found_whatever_its_case(
    tmp_path: Path, config: str, cmd_exe: str, expected: str
) -> None:
    tree = plant(tmp_path, {cmd_exe: CMD_EXE}, folders=(config,))

    assert is_windows_root(tree) == expected


@pytest.mark.parametrize(
    ("files", "folders"),
    [
        ({}, ("/Windows/System32/config",)),  # no cmd.exe
        ({"/Windows/System32/config": b""}, ("/Windows/System32/cmd.exe",)),  # swapped
        ({"/Program Files/app.exe": CMD_EXE}, ("/System Volume Information",)),  # data disk
        ({"/Win/System32/cmd.exe": CMD_EXE}, ("/Win/System/config",)),  # config elsewhere
    ],
)
def test_what_is_not_a_systemroot(
    tmp_path: Path, files: dict[str, bytes], folders: tuple[str, ...]
) -> None:
    assert is_windows_root(plant(tmp_path, files, folders=folders)) is None


def test_systemroot_named_in_boot_ini(tmp_path: Path) -> None:
    boot_ini = (
        "[boot loader]\r\ntimeout=30\r\ndefault=multi(0)disk(0)rdisk(0)partition(1)\\MYWIN\r\n"
        "[operating systems]\r\n"
        'multi(0)disk(0)rdisk(0)partition(1)\\GONE="Windows that was removed"\r\n'
        'multi(0)disk(0)rdisk(0)partition(1)\\MYWIN="Windows XP Professional" /fastdetect\r\n'
    )
    files = {"/boot.ini": boot_ini, "/MyWin/System32/cmd.exe": CMD_EXE}
    tree = plant(tmp_path, files, folders=("/MyWin/System32/config",))

    assert is_windows_root(tree) == "/MyWin"


# ---------------------------------------------------------------- identity


def test_windows_10_identity(tmp_path: Path, hives: dict[str, bytes]) -> None:
    tree = plant(windows_tree(tmp_path, hives))

    assert read_windows_identity(tree, "/Windows", PARTITIONS, GPT_GUIDS) == WINDOWS_10


def test_windows_7_version_comes_from_current_version(
    tmp_path: Path, hives: dict[str, bytes]
) -> None:
    tree = plant(windows_tree(tmp_path, hives, SOFTWARE=hives["WIN7"]))

    identity = read_windows_identity(tree, "/Windows")

    assert (identity.product_name, identity.major_version, identity.minor_version) == (
        "Windows 7 Professional",
        6,
        1,
    )
    assert (identity.build_id, identity.product_variant) == ("7601", "unknown")
    assert identity.drive_mappings == {}  # no partitions given: nothing to map to


@pytest.mark.parametrize(
    ("values", "version", "variant"),
    [
        ({"CurrentMajorVersionNumber": dword(10), "CurrentVersion": sz("6.3")}, (6, 3), "Client"),
        ({"CurrentVersion": sz("10")}, (10, 0), "Client"),
        ({"CurrentVersion": sz("none")}, (0, 0), "Client"),
        # libguestfs reads nothing more once both version forms are missing
        ({"CurrentMajorVersionNumber": dword(10)}, (0, 0), "unknown"),
    ],
)
def test_version_fallbacks(
    tmp_path: Path,
    hives: dict[str, bytes],
    values: dict[str, object],
    version: tuple[int, int],
    variant: str,
) -> None:
    spec: HiveSpec = {
        r"Microsoft\Windows NT\CurrentVersion": {"InstallationType": sz("Client"), **values}
    }
    software = build_hive(tmp_path / "SOFTWARE", spec, tmp_path / "scratch").read_bytes()
    tree = plant(windows_tree(tmp_path / "guest", hives, SOFTWARE=software))

    identity = read_windows_identity(tree, "/Windows")

    assert (identity.major_version, identity.minor_version) == version
    assert identity.product_variant == variant


def test_hive_paths_keep_the_guest_spelling(tmp_path: Path, hives: dict[str, bytes]) -> None:
    files = {
        "/WINDOWS/system32/CONFIG/software": hives["SOFTWARE"],
        "/WINDOWS/system32/CONFIG/System": hives["SYSTEM"],
        "/WINDOWS/system32/CMD.EXE": pe_program(IMAGE_FILE_MACHINE_I386),
    }
    tree = plant(tmp_path, files)

    identity = read_windows_identity(tree, str(is_windows_root(tree)))

    assert identity.systemroot == "/WINDOWS" and identity.arch == "i386"
    assert identity.software_hive == "/WINDOWS/system32/CONFIG/software"
    assert identity.system_hive == "/WINDOWS/system32/CONFIG/System"
    assert identity.hostname == "WIN10-VMCRAFT"


def test_without_a_system_hive_no_registry_is_read(tmp_path: Path, hives: dict[str, bytes]) -> None:
    tree = plant(windows_tree(tmp_path, hives, SYSTEM=None))

    assert read_windows_identity(tree, "/Windows") == WindowsIdentity(
        systemroot="/Windows", arch="x86_64", software_hive=f"{CONFIG}/SOFTWARE"
    )


def test_a_hive_that_is_a_symlink_is_not_used(tmp_path: Path, hives: dict[str, bytes]) -> None:
    windows_tree(tmp_path, hives, SOFTWARE=None)
    (tmp_path / CONFIG.lstrip("/") / "SOFTWARE").symlink_to("/etc/passwd")

    identity = read_windows_identity(plant(tmp_path), "/Windows")

    assert identity.software_hive is None and identity.product_name == "unknown"


def test_a_corrupt_hive_costs_only_its_own_fields(
    tmp_path: Path, hives: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    broken = hives["SOFTWARE"][:4096] + b"\xa5" * (len(hives["SOFTWARE"]) - 4096)
    tree = plant(windows_tree(tmp_path, hives, SOFTWARE=broken))

    with caplog.at_level(logging.WARNING, logger="vmcraft"):
        identity = read_windows_identity(tree, "/Windows", PARTITIONS, GPT_GUIDS)

    assert identity == WindowsIdentity(
        systemroot="/Windows",
        arch="x86_64",
        hostname="WIN10-VMCRAFT",
        current_control_set="ControlSet001",
        software_hive=f"{CONFIG}/SOFTWARE",
        system_hive=f"{CONFIG}/SYSTEM",
        drive_mappings={"C": "/dev/sda1", "D": "/dev/sdc2"},
    )
    assert f"{CONFIG}/SOFTWARE" in caplog.text


# ---------------------------------------------------------------- applications


def test_applications_from_both_uninstall_keys(tmp_path: Path, hives: dict[str, bytes]) -> None:
    tree = plant(windows_tree(tmp_path, hives))

    assert list_windows_applications(tree, f"{CONFIG}/SOFTWARE") == WINDOWS_10_APPLICATIONS


def test_applications_of_an_unreadable_hive(
    tmp_path: Path, hives: dict[str, bytes], caplog: pytest.LogCaptureFixture
) -> None:
    tree = plant(windows_tree(tmp_path, hives, SOFTWARE=b"regf" + bytes(100)))

    with caplog.at_level(logging.WARNING, logger="vmcraft"):
        assert list_windows_applications(tree, f"{CONFIG}/SOFTWARE") == []
    assert "not a registry hive" in caplog.text


# ---------------------------------------------------------------- a real NTFS guest


@pytest.fixture(scope="module")
def windows_guest(tmp_path_factory: pytest.TempPathFactory) -> guests.Guest:
    skip_unless_root()
    skip_unless_tools(*REQUIRED_TOOLS)
    return build_windows_guest(tmp_path_factory.mktemp("windows-guest"))


def test_the_image_has_the_table_the_recipe_wrote(windows_guest: guests.Guest) -> None:
    table = json.loads(guests.run(["sfdisk", "--json", str(windows_guest.path)]).stdout)
    table = table["partitiontable"]

    assert table["label"] == "dos" and table["id"] == f"0x{DISK_ID}"
    assert table["partitions"][0]["start"] * 512 == PARTITION_START


@pytest.mark.requires_root
def test_windows_guest_through_the_handle(windows_guest: guests.Guest) -> None:
    with VMCraft() as g:
        g.add_drive_opts(str(windows_guest.path), format="raw", readonly=True)
        g.launch()
        g.mount_ro("/dev/sda1", "/")
        tree = g._tree("test")

        systemroot = is_windows_root(tree)
        assert systemroot == "/Windows"
        identity = read_windows_identity(tree, systemroot, {"/dev/sda1": (DISK_ID, 1 << 20)})
        applications = list_windows_applications(tree, str(identity.software_hive))

    assert identity == WindowsIdentity(**{**vars(WINDOWS_10), "drive_mappings": {"C": "/dev/sda1"}})
    assert applications == WINDOWS_10_APPLICATIONS
