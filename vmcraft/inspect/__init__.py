"""Operating-system inspection: find the guests on a disk and describe them."""

from __future__ import annotations

from vmcraft.inspect.arch import elf_architecture, guest_architecture
from vmcraft.inspect.linux import OsIdentity, is_linux_root, read_hostname, read_identity
from vmcraft.inspect.osinfo import osinfo_id
from vmcraft.inspect.packages import package_format, package_management

__all__ = [
    "OsIdentity",
    "elf_architecture",
    "guest_architecture",
    "is_linux_root",
    "osinfo_id",
    "package_format",
    "package_management",
    "read_hostname",
    "read_identity",
]
