"""The Unix roots that are not plain Linux, and the pieces of a Linux split over filesystems.

libguestfs recognises FreeBSD, NetBSD, OpenBSD, GNU/Hurd and Minix roots, CoreOS (whose
root holds only ``/etc`` and whose version lives on a separate ``/usr``), a Linux ``/usr``
on a filesystem of its own, and MS-DOS and FreeDOS. Each reader here gives what
libguestfs's matching ``check_*`` gives, from the same files.

Two libguestfs slips are not repeated: it reports OpenBSD as ``freebsd``, and reads
OpenBSD's hostname from ``/etc/rc.conf`` although OpenBSD keeps it in ``/etc/myname``.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re

from vmcraft.errors import GuestFileError
from vmcraft.guest.files import GuestTree
from vmcraft.inspect.arch import guest_architecture
from vmcraft.inspect.guestfiles import is_file, read_small_file
from vmcraft.inspect.linux import OsIdentity, read_hostname, read_hostname_file
from vmcraft.inspect.osinfo import osinfo_id
from vmcraft.inspect.packages import package_format, package_management
from vmcraft.inspect.release import (
    ReleaseFacts,
    ReleaseParser,
    parse_generic,
    parse_lsb_release,
    parse_os_release,
)

log = logging.getLogger(__name__)

UNKNOWN = "unknown"

_RC_CONF_HOSTNAME = re.compile(r"^hostname=(.*)$")

HURD_RELEASE_TESTS: tuple[tuple[str, ReleaseParser], ...] = (
    ("/etc/os-release", parse_os_release),
    ("/etc/debian_version", parse_generic("debian")),
)


def blank_identity(os_type: str, distro: str = UNKNOWN) -> OsIdentity:
    """An OS of a known type about which nothing else is known yet."""
    return OsIdentity(
        type=os_type,
        distro=distro,
        product_name=UNKNOWN,
        product_variant=UNKNOWN,
        major_version=0,
        minor_version=0,
        arch=UNKNOWN,
        hostname=UNKNOWN,
        build_id=UNKNOWN,
        osinfo=UNKNOWN,
        package_format=UNKNOWN,
        package_management=UNKNOWN,
    )


def with_facts(identity: OsIdentity, facts: ReleaseFacts) -> OsIdentity:
    """Fill in what release files said; the distro only where they named one."""
    major, minor = facts.version or (identity.major_version, identity.minor_version)
    return dataclasses.replace(
        identity,
        distro=facts.distro or identity.distro,
        product_name=facts.product_name or identity.product_name,
        major_version=major,
        minor_version=minor,
        build_id=facts.build_id or identity.build_id,
    )


def with_derived_fields(identity: OsIdentity, tree: GuestTree | None) -> OsIdentity:
    """Work out osinfo, package format and manager from distro and version.

    Args:
        identity: What is known so far.
        tree: The filesystem holding ``/usr/bin/dnf``, or None when it is not at hand.
    """
    dnf = tree is not None and is_file(tree, "/usr/bin/dnf")
    major, minor = identity.major_version, identity.minor_version
    return dataclasses.replace(
        identity,
        osinfo=osinfo_id(
            identity.type,
            identity.distro,
            major,
            minor,
            product_name=identity.product_name,
            product_variant=identity.product_variant,
            build_id=identity.build_id,
        ),
        package_format=package_format(identity.distro),
        package_management=package_management(identity.distro, major, dnf),
    )


def run_release_tests(
    tree: GuestTree, tests: tuple[tuple[str, ReleaseParser], ...]
) -> ReleaseFacts:
    """Run (file, parser) tests in order until one is done, as libguestfs does."""
    facts = ReleaseFacts()
    for path, parse in tests:
        if is_file(tree, path) and parse(tree, path, facts):
            break
    return facts


def _parse_file(tree: GuestTree, path: str, parse: ReleaseParser) -> ReleaseFacts:
    facts = ReleaseFacts()
    if is_file(tree, path):
        parse(tree, path, facts)
    return facts


def _finish(identity: OsIdentity, tree: GuestTree, hostname: str | None) -> OsIdentity:
    identity = dataclasses.replace(
        identity, arch=guest_architecture(tree), hostname=hostname or UNKNOWN
    )
    return with_derived_fields(identity, tree)


def read_freebsd_identity(tree: GuestTree) -> OsIdentity:
    """FreeBSD: the version is on the first line of ``/etc/motd``, for want of better."""
    facts = _parse_file(tree, "/etc/motd", parse_generic("freebsd"))
    identity = with_facts(blank_identity("freebsd", "freebsd"), facts)
    return _finish(identity, tree, read_rc_conf_hostname(tree))


def read_netbsd_identity(tree: GuestTree) -> OsIdentity:
    """NetBSD: ``/etc/release`` starts with ``NetBSD N.M``."""
    parser = parse_generic("netbsd", r"^NetBSD (\d+)\.(\d+)")
    facts = _parse_file(tree, "/etc/release", parser)
    identity = with_facts(blank_identity("netbsd", "netbsd"), facts)
    return _finish(identity, tree, read_rc_conf_hostname(tree))


def read_openbsd_identity(tree: GuestTree) -> OsIdentity:
    """OpenBSD: ``/etc/motd``'s first line is rewritten at every boot (``OpenBSD 7.4 ...``)."""
    facts = _parse_file(tree, "/etc/motd", parse_generic("openbsd"))
    identity = with_facts(blank_identity("openbsd", "openbsd"), facts)
    return _finish(identity, tree, read_hostname_file(tree, "/etc/myname"))


def read_hurd_identity(tree: GuestTree) -> OsIdentity:
    """GNU/Hurd: os-release, then Debian's version file (Debian GNU/Hurd)."""
    facts = run_release_tests(tree, HURD_RELEASE_TESTS)
    identity = with_facts(blank_identity("hurd"), facts)
    return _finish(identity, tree, read_hostname(tree))


def read_minix_identity(tree: GuestTree) -> OsIdentity:
    """Minix: ``/etc/version`` holds ``N.M[.P]``; there is no distro."""
    facts = _parse_file(tree, "/etc/version", parse_generic("minix", r"^(\d+)\.(\d+)(\.(\d+))?"))
    identity = with_facts(blank_identity("minix"), facts)
    identity = dataclasses.replace(identity, distro=UNKNOWN)
    return _finish(identity, tree, read_hostname_file(tree, "/etc/hostname.file"))


def read_coreos_root_identity(tree: GuestTree) -> OsIdentity:
    """A CoreOS root tells only the hostname; the rest is on its ``/usr``."""
    identity = blank_identity("linux", "coreos")
    hostname = read_hostname(tree) or UNKNOWN
    return with_derived_fields(dataclasses.replace(identity, hostname=hostname), tree)


def read_coreos_usr_identity(tree: GuestTree) -> OsIdentity:
    """A CoreOS ``/usr``: its os-release (or lsb-release) and its programs."""
    facts = ReleaseFacts()
    if is_file(tree, "/lib/os-release"):
        parse_os_release(tree, "/lib/os-release", facts)
    elif is_file(tree, "/share/coreos/lsb-release"):
        parse_lsb_release(tree, "/share/coreos/lsb-release", facts)
    identity = with_facts(blank_identity("linux", "coreos"), facts)
    return _finish(identity, tree, None)


def read_linux_usr_identity(tree: GuestTree) -> OsIdentity:
    """A Linux ``/usr`` filesystem: its ``lib/os-release`` and programs, for its root."""
    facts = _parse_file(tree, "/lib/os-release", parse_os_release)
    identity = with_facts(blank_identity("linux"), facts)
    return _finish(identity, tree, None)


def read_dos_identity(distro: str) -> OsIdentity:
    """MS-DOS or FreeDOS: a mix of 16 and 32 bits, taken as needing an i386."""
    identity = dataclasses.replace(blank_identity("dos", distro), arch="i386")
    return with_derived_fields(identity, None)


def read_rc_conf_hostname(tree: GuestTree) -> str | None:
    """``hostname=...`` in ``/etc/rc.conf`` (FreeBSD, NetBSD); the first one counts."""
    text = read_small_file(tree, "/etc/rc.conf")
    if text is None:
        return None
    for line in text.split("\n"):
        match = _RC_CONF_HOSTNAME.match(line)
        if match:
            return _strip_quotes(match[1])
    return None


def _strip_quotes(value: str) -> str:
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def find_nocase(tree: GuestTree, path: str) -> str | None:
    """The guest path that matches ``path`` ignoring case (FAT and NTFS guests), or None."""
    found = "/"
    for name in (c for c in path.split("/") if c):
        try:
            entries = tree.ls(found)
        except (GuestFileError, OSError):
            return None
        match = next((e for e in entries if e.casefold() == name.casefold()), None)
        if match is None:
            return None
        found = os.path.join(found, match)
    return found
