"""Installed Alpine packages, from apk's database of installed packages.

``/lib/apk/db/installed`` holds one block per package, blocks separated by a blank line,
each line one letter, a colon and a value. As libguestfs does, the record takes ``P``
(name), ``V`` (version: epoch before the first colon, release after the first hyphen
without its ``r``), ``A`` (architecture), ``U`` (URL) and ``T`` (as the description; apk
has no separate summary). Other letters (``o`` origin, ``m`` maintainer, files...) are not
part of libguestfs's record.
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

INSTALLED_FILE = "/lib/apk/db/installed"
MAX_INSTALLED_SIZE = 50 * 1000 * 1000
"""Largest database read, as in libguestfs."""

REVISION_PREFIX = "r"  # apk writes release 3 as "-r3"

Block = dict[str, str]
"""Field letter -> value (the last line with that letter wins)."""


def list_apk_applications(tree: GuestTree) -> list[Application]:
    """The packages apk lists as installed.

    Raises:
        DatabaseMissingError: The guest has no apk database.
        DatabaseError: It cannot be read.
    """
    data = read_guest_file(tree, INSTALLED_FILE, MAX_INSTALLED_SIZE)
    damage = Damage(INSTALLED_FILE)

    apps = []
    for block in blocks(data.decode("utf-8", errors="replace"), damage):
        app = _package(block, damage)
        if app is not None:
            apps.append(app)

    damage.report(len(apps))
    return apps


def blocks(text: str, damage: Damage) -> Iterator[Block]:
    """The package blocks of the database, noting lines that are not ``X:value``."""
    block: Block = {}
    for line in text.split("\n"):
        if not line:
            if block:
                yield block
            block = {}
        elif len(line) >= 2 and line[1] == ":":
            block[line[0]] = line[2:]
        else:
            damage.note(f"a line is not 'letter:value': {line[:40]!r}")
    if block:
        yield block


def _package(block: Block, damage: Damage) -> Application | None:
    name = block.get("P")
    version_text = block.get("V")
    if not name or not version_text:
        damage.note(f"a package block without P: or V: ({name or '?'})")
        return None

    split = split_version(version_text)
    if split is None:
        damage.note(f"package {name} has a bad epoch in version {version_text!r}")
        return None

    epoch, version, release = split
    return application(
        name,
        epoch=epoch,
        version=version,
        release=release.removeprefix(REVISION_PREFIX),
        arch=block.get("A", ""),
        url=block.get("U", ""),
        description=block.get("T", ""),
    )
