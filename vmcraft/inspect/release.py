"""Which Linux distribution and version: the release files, in libguestfs's order.

libguestfs runs a list of (file, parser) tests over the root filesystem: for each file that
exists, its parser records what it finds in one shared record and says whether it is done.
A parser that is not done still leaves what it found (Debian's os-release sets the distro
and the major version before handing over to ``/etc/debian_version``), so the order and the
"done" answers matter as much as the parsing. Both are kept here, with the same quirks:
the first line of a release file is the product name, a parser with a pattern fails when
the pattern does not match, and os-release alone is not trusted for the distros that put
only the major version in ``VERSION_ID``.

One addition: when ``/etc/os-release`` is missing, ``/usr/lib/os-release`` (the
os-release(5) fallback) is read in its place.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

from vmcraft.guest.files import GuestTree
from vmcraft.inspect.guestfiles import is_file, read_small_file

log = logging.getLogger(__name__)


@dataclass
class ReleaseFacts:
    """What the release files said; None where nothing said anything."""

    distro: str | None = None
    product_name: str | None = None
    version: tuple[int, int] | None = None
    build_id: str | None = None


ReleaseParser = Callable[[GuestTree, str, ReleaseFacts], bool]
"""Reads one release file into the facts; True when no further test should run."""

_MAJOR_MINOR = re.compile(r"(\d+)\.(\d+)", re.ASCII)
_MAJOR = re.compile(r"(\d+)", re.ASCII)
_NEOKYLIN_VERSION = re.compile(r"^V(\d+)Update(\d+)$", re.ASCII)

_OS_RELEASE_IDS = {
    "alpine": "alpinelinux",
    "altlinux": "altlinux",
    "arch": "archlinux",
    "centos": "centos",
    "coreos": "coreos",
    "debian": "debian",
    "fedora": "fedora",
    "frugalware": "frugalware",
    "gentoo": "gentoo",
    "kali": "kalilinux",
    "kylin": "kylin",
    "mageia": "mageia",
    "neokylin": "neokylin",
    "openmandriva": "openmandriva",
    "opensuse": "opensuse",
    "pardus": "pardus",
    "pld": "pldlinux",
    "rhel": "rhel",
    "rocky": "rocky",
    "sles": "sles",
    "sled": "sles",
    "ubuntu": "ubuntu",
    "void": "voidlinux",
}

_LSB_DISTRIB_IDS = {
    "CoreOS": "coreos",
    "LinuxMint": "linuxmint",
    "Mageia": "mageia",
    "Ubuntu": "ubuntu",
}

MAJOR_ONLY_OS_RELEASE = frozenset({"debian", "centos", "rocky"})
"""Distros whose os-release gives only the major version: their release file decides."""

ROLLING_DISTROS = frozenset({"archlinux", "gentoo", "voidlinux"})
"""Distros without versions: an os-release without ``VERSION_ID`` is complete for them."""


def parse_major_minor(text: str) -> tuple[int, int] | None:
    """The first ``N.M`` in ``text``, else the first ``N`` as ``(N, 0)``, else None."""
    match = _MAJOR_MINOR.search(text)
    if match:
        return int(match[1]), int(match[2])
    match = _MAJOR.search(text)
    if match:
        return int(match[1]), 0

    log.debug("no version number in %r", text)
    return None


def simple_unquote(value: str) -> str:
    """Drop one pair of matching outer quotes, as lsb-release readers do."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
        return value[1:-1]
    return value


def shell_unquote(value: str) -> str:
    """A value as os-release(5) quotes it: single quotes literal, double with escapes."""
    if len(value) < 2 or value[0] != value[-1] or value[0] not in "\"'":
        return value
    inner = value[1:-1]
    if value[0] == "'":
        return inner
    return re.sub(r"\\([\\\"$`])", r"\1", inner)


def parse_key_values(text: str, unquote: Callable[[str], str]) -> list[tuple[str, str]]:
    """``KEY=value`` lines in order; blank and ``#`` lines skipped, a line without ``=``
    read as a key with an empty value."""
    pairs = []
    for line in text.split("\n"):
        if not line or line.startswith("#"):
            continue
        key, _, value = line.partition("=")
        pairs.append((key, unquote(value)))
    return pairs


def parse_os_release(tree: GuestTree, path: str, facts: ReleaseFacts) -> bool:
    """os-release(5): ``ID``, ``PRETTY_NAME``, ``VERSION_ID``, ``BUILD_ID``."""
    text = read_small_file(tree, path)
    if text is None:
        return False

    for key, value in parse_key_values(text, shell_unquote):
        if key == "ID":
            _set_os_release_distro(facts, value)
        elif key == "PRETTY_NAME":
            facts.product_name = value
        elif key == "VERSION_ID":
            _set_os_release_version(facts, value)
        elif key == "BUILD_ID":
            facts.build_id = value

    return _os_release_is_enough(facts)


def _set_os_release_distro(facts: ReleaseFacts, os_id: str) -> None:
    distro = _OS_RELEASE_IDS.get(os_id)
    if distro is None and os_id.startswith("opensuse-"):
        distro = "opensuse"
    if distro is None:
        log.debug("os-release: unknown ID=%s", os_id)
        return
    facts.distro = distro


def _set_os_release_version(facts: ReleaseFacts, value: str) -> None:
    # NB: NeoKylin writes VERSION_ID as "V7Update1" (RHBZ#1476081).
    match = _NEOKYLIN_VERSION.match(value)
    if match:
        facts.version = int(match[1]), int(match[2])
        return
    version = parse_major_minor(value)
    if version is not None:
        facts.version = version


def _os_release_is_enough(facts: ReleaseFacts) -> bool:
    if facts.distro is None or facts.product_name is None:
        return False
    if facts.distro in MAJOR_ONLY_OS_RELEASE and facts.version is not None:
        return facts.version[1] != 0
    if facts.version is None and facts.distro in ROLLING_DISTROS:
        facts.version = (0, 0)
        return True
    return facts.version is not None


def parse_usr_lib_os_release(tree: GuestTree, path: str, facts: ReleaseFacts) -> bool:
    """os-release(5)'s fallback location, read only when ``/etc/os-release`` is missing."""
    if is_file(tree, "/etc/os-release"):
        return False
    return parse_os_release(tree, path, facts)


def parse_lsb_release(tree: GuestTree, path: str, facts: ReleaseFacts) -> bool:
    """``/etc/lsb-release``: done once a known ``DISTRIB_ID`` or a description is seen.

    A bare file with only ``LSB_VERSION`` (RHEL 3) leaves the decision to later tests.
    """
    text = read_small_file(tree, path)
    if text is None:
        return False

    done = False
    for key, value in parse_key_values(text, simple_unquote):
        if key == "DISTRIB_ID":
            distro = _LSB_DISTRIB_IDS.get(value)
            if distro is None:
                log.debug("lsb-release: unknown DISTRIB_ID=%s", value)
            else:
                facts.distro = distro
                done = True
        elif key == "DISTRIB_RELEASE":
            version = parse_major_minor(value)
            if version is not None:
                facts.version = version
        elif key == "DISTRIB_DESCRIPTION":
            facts.product_name = value
            done = True
    return done


_SLES = re.compile(r"^SUSE (Linux|LINUX) Enterprise ")
_NOVELL_DESKTOP = re.compile(r"^Novell Linux Desktop ")
_OPENSUSE = re.compile(r"^(openSUSE|SuSE Linux|SUSE LINUX) ")
_SUSE_VERSION = re.compile(r"^VERSION = (\d+)", re.ASCII)
_SUSE_PATCHLEVEL = re.compile(r"^PATCHLEVEL = (\d+)", re.ASCII)


def parse_suse_release(tree: GuestTree, path: str, facts: ReleaseFacts) -> bool:
    """``/etc/SuSE-release``: product line, then ``VERSION =``, then ``PATCHLEVEL =``."""
    text = read_small_file(tree, path)
    if text is None:
        return False

    lines = text.split("\n")
    facts.product_name = lines[0]
    if _SLES.search(lines[0]) or _NOVELL_DESKTOP.search(lines[0]):
        facts.distro = "sles"
        facts.version = _suse_enterprise_version(lines)
    elif _OPENSUSE.search(lines[0]):
        facts.distro = "opensuse"
        version = parse_major_minor(lines[1]) if len(lines) >= 2 else None
        if version is not None:
            facts.version = version
    return True


def _suse_enterprise_version(lines: list[str]) -> tuple[int, int] | None:
    major = _SUSE_VERSION.search(lines[1]) if len(lines) >= 2 else None
    if major is None:
        return None
    minor = _SUSE_PATCHLEVEL.search(lines[2]) if len(lines) >= 3 else None
    return int(major[1]), int(minor[1]) if minor else 0


def parse_generic(distro: str, pattern: str | None = None) -> ReleaseParser:
    """A parser for a one-line release file that names ``distro``.

    The first line becomes the product name. With a pattern, the file must match it (its
    groups 1 and 2 are the major and minor version) or the test fails; without one, the
    first number in the line is the version if there is one.
    """
    regex = re.compile(pattern, re.ASCII) if pattern is not None else None

    def parse(tree: GuestTree, path: str, facts: ReleaseFacts) -> bool:
        first_line = _first_line(tree, path)
        if not first_line:
            return False

        facts.product_name = first_line
        facts.distro = distro
        if regex is None:
            version = parse_major_minor(first_line)
            if version is not None:
                facts.version = version
            return True
        return _apply_version_pattern(regex, first_line, facts)

    return parse


def _first_line(tree: GuestTree, path: str) -> str:
    text = read_small_file(tree, path)
    return "" if text is None else text.split("\n", 1)[0]


def _apply_version_pattern(regex: re.Pattern[str], line: str, facts: ReleaseFacts) -> bool:
    match = regex.search(line)
    if match is None:
        return False

    major, minor = _group_number(match, 1), _group_number(match, 2)
    if major is not None:
        facts.version = major, minor or 0
    return True


def _group_number(match: re.Match[str], group: int) -> int | None:
    if match.re.groups < group or match[group] is None:
        return None
    return int(match[group]) if match[group].isdigit() else None


def set_distro(distro: str) -> ReleaseParser:
    """A test that only says the distro: for files that carry nothing else."""

    def parse(tree: GuestTree, path: str, facts: ReleaseFacts) -> bool:
        facts.distro = distro
        return True

    return parse


def parse_buildroot_version(tree: GuestTree, path: str, facts: ReleaseFacts) -> bool:
    """``/etc/br-version`` (``YYYY.MM``): Buildroot, or CirrOS when its logo is there."""
    cirros = is_file(tree, "/usr/share/cirros/logo")
    return parse_generic("cirros" if cirros else "buildroot")(tree, path, facts)


def _release_patterns(name: str) -> list[str]:
    """A vendor's three release-line forms: ``N Update M`` (oldest), ``N.M``, ``N``."""
    return [
        rf"{name}.*release (\d+).*Update (\d+)",
        rf"{name}.*release (\d+)\.(\d+)",
        rf"{name}.*release (\d+)",
    ]


def _generic_tests(path: str, distro: str, patterns: list[str]) -> list[tuple[str, ReleaseParser]]:
    return [(path, parse_generic(distro, pattern)) for pattern in patterns]


def _redhat_release_tests() -> list[tuple[str, ReleaseParser]]:
    path = "/etc/redhat-release"
    rocky = _release_patterns("Rocky Linux")[1:]
    return [
        *_generic_tests(path, "fedora", [r"Fedora release (\d+)"]),
        *_generic_tests(path, "rhel", _release_patterns("Red Hat")),
        *_generic_tests(path, "centos", _release_patterns("CentOS")),
        *_generic_tests(path, "rocky", rocky),
        *_generic_tests(path, "scientificlinux", _release_patterns("Scientific Linux")),
        # A redhat-release nobody above recognises is still a Red Hat derivative.
        (path, parse_generic("redhat-based")),
        (path, set_distro("redhat-based")),
    ]


LINUX_RELEASE_TESTS: tuple[tuple[str, ReleaseParser], ...] = (
    ("/etc/os-release", parse_os_release),
    ("/usr/lib/os-release", parse_usr_lib_os_release),
    ("/etc/lsb-release", parse_lsb_release),
    # OpenMandriva and the RHEL rebuilds also ship a redhat-release: test them first.
    *_generic_tests(
        "/etc/openmandriva-release",
        "openmandriva",
        [r"OpenMandriva.*release (\d+)\.(\d+)\.?(\d+)? .*"],
    ),
    *_generic_tests("/etc/oracle-release", "oraclelinux", _release_patterns("Oracle Linux")),
    *_generic_tests("/etc/centos-release", "centos", _release_patterns("CentOS")),
    *_generic_tests("/etc/rocky-release", "rocky", _release_patterns("Rocky Linux")[1:]),
    ("/etc/altlinux-release", parse_generic("altlinux")),
    *_redhat_release_tests(),
    ("/etc/debian_version", parse_generic("debian")),
    ("/etc/pardus-release", parse_generic("pardus")),
    ("/etc/arch-release", set_distro("archlinux")),  # NB: empty on Arch
    ("/etc/gentoo-release", parse_generic("gentoo")),
    ("/etc/meego-release", parse_generic("meego")),
    ("/etc/slackware-version", parse_generic("slackware")),
    ("/etc/ttylinux-target", parse_generic("ttylinux")),
    ("/etc/SuSE-release", parse_suse_release),
    ("/etc/SuSE-release", set_distro("suse-based")),
    ("/etc/cirros/version", parse_generic("cirros")),
    ("/etc/br-version", parse_buildroot_version),
    ("/etc/alpine-release", parse_generic("alpinelinux")),
    ("/etc/frugalware-release", parse_generic("frugalware", r"Frugalware (\d+)\.(\d+)")),
    ("/etc/pld-release", parse_generic("pldlinux", r"(\d+)\.(\d+) PLD Linux")),
)
"""libguestfs's tests for a Linux root, in its order; the first that is done ends the run."""


def read_release(tree: GuestTree) -> ReleaseFacts:
    """Run :data:`LINUX_RELEASE_TESTS` over the guest mounted as ``tree``.

    Each test's file must be a regular file (symlinks followed inside the guest); a missing,
    unreadable or garbled file only means that test finds nothing.
    """
    facts = ReleaseFacts()
    for path, parse in LINUX_RELEASE_TESTS:
        if not is_file(tree, path):
            continue
        if parse(tree, path, facts):
            log.debug("release tests: %s decided %s", path, facts)
            break
    return facts
