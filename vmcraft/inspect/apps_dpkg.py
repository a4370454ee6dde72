"""Installed Debian packages, from dpkg's status file.

``/var/lib/dpkg/status`` is a list of deb822 paragraphs, one per package dpkg knows of.
The records follow libguestfs: name, epoch, version and release (split at the first colon
and the first hyphen), architecture, ``Homepage`` as the URL, the ``Source`` name, and the
``Description`` split into its first line (summary) and the rest (description).

Only packages whose status word is ``installed`` count (``install ok installed``,
``hold ok installed``...), where libguestfs looks for the substring and so also lists
``not-installed`` and ``half-installed`` ones.
"""

from __future__ import annotations

from collections.abc import Iterator

from vmcraft.guest.files import GuestTree
from vmcraft.inspect.apps_base import (
    Application,
    Damage,
    application,
    read_guest_file,
    split_version,
)

STATUS_FILE = "/var/lib/dpkg/status"
MAX_STATUS_SIZE = 50 * 1000 * 1000
"""Largest status file read, as in libguestfs."""

INSTALLED = "installed"
_STATUS_WORDS = 3  # want, error flag, status: "install ok installed"

Paragraph = dict[str, list[str]]
"""Field name -> its first line, then its continuation lines without their indent."""


def list_dpkg_applications(tree: GuestTree) -> list[Application]:
    """The packages dpkg's status file lists as installed.

    Raises:
        DatabaseMissingError: The guest has no status file.
        DatabaseError: It cannot be read.
    """
    data = read_guest_file(tree, STATUS_FILE, MAX_STATUS_SIZE)
    damage = Damage(STATUS_FILE)
    if b"\0" in data:
        damage.note("it holds NUL bytes (blocks lost in a crash?)")

    apps = []
    for paragraph in paragraphs(data.decode("utf-8", errors="replace")):
        app = _installed_package(paragraph, damage)
        if app is not None:
            apps.append(app)

    damage.report(len(apps))
    return apps


def paragraphs(text: str) -> Iterator[Paragraph]:
    """The deb822 paragraphs of ``text``, separated by blank lines."""
    paragraph: Paragraph = {}
    current: list[str] | None = None
    for line in text.split("\n"):
        if not line.strip():
            if paragraph:
                yield paragraph
            paragraph, current = {}, None
        elif line[0] in " \t":
            if current is not None:
                current.append(line[1:])
        else:
            name, colon, value = line.partition(":")
            current = [value.strip()] if colon else None
            if current is not None:
                paragraph[name] = current
    if paragraph:
        yield paragraph


def _first_line(paragraph: Paragraph, field: str) -> str:
    lines = paragraph.get(field)
    return lines[0] if lines else ""


def _is_installed(paragraph: Paragraph) -> bool:
    words = _first_line(paragraph, "Status").split()
    return len(words) == _STATUS_WORDS and words[2] == INSTALLED


def _installed_package(paragraph: Paragraph, damage: Damage) -> Application | None:
    if not _is_installed(paragraph):
        return None

    name = _first_line(paragraph, "Package")
    version_text = _first_line(paragraph, "Version")
    if not name or not version_text:
        damage.note(f"an installed package without Package or Version ({name or '?'})")
        return None

    split = split_version(version_text)
    if split is None:
        damage.note(f"package {name} has a bad epoch in version {version_text!r}")
        return None

    epoch, version, release = split
    description = paragraph.get("Description", [""])
    return application(
        name,
        epoch=epoch,
        version=version,
        release=release,
        arch=_first_line(paragraph, "Architecture"),
        url=_first_line(paragraph, "Homepage"),
        source_package=_first_line(paragraph, "Source").partition(" ")[0],
        summary=description[0],
        description="\n".join(description[1:]),
    )
