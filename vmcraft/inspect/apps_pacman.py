"""Installed Arch Linux packages, from pacman's local database.

``/var/lib/pacman/local`` holds one folder per installed package, whose ``desc`` file lists
``%FIELD%`` headers each followed by its value lines. As libguestfs does, the record takes
the first line of ``%NAME%``, ``%VERSION%`` (``[epoch:]version-release``), ``%ARCH%``,
``%URL%`` and ``%DESC%`` (as the description), and a package without a name, an
architecture, a version or a release is skipped. libguestfs also skips ``desc`` files over
8 KiB silently; here any size up to :data:`MAX_DESC_SIZE` is read.
"""

from __future__ import annotations

from vmcraft.errors import GuestFileError
from vmcraft.guest.files import GuestTree
from vmcraft.inspect.apps_base import (
    Application,
    Damage,
    DatabaseError,
    DatabaseMissingError,
    application,
    read_guest_file,
    split_version,
)
from vmcraft.inspect.guestfiles import is_dir

LOCAL_DB = "/var/lib/pacman/local"
MAX_DESC_SIZE = 1024 * 1024
"""Largest ``desc`` file read; real ones are a few KiB."""

_FIELDS = {
    "%NAME%": "name",
    "%VERSION%": "version",
    "%ARCH%": "arch",
    "%URL%": "url",
    "%DESC%": "desc",
}


def list_pacman_applications(tree: GuestTree) -> list[Application]:
    """The packages in pacman's local database.

    Raises:
        DatabaseMissingError: The guest has no local database folder.
        DatabaseError: It cannot be listed.
    """
    damage = Damage(LOCAL_DB)
    apps = []
    for entry in _package_folders(tree):
        desc = f"{LOCAL_DB}/{entry}/desc"
        try:
            text = read_guest_file(tree, desc, MAX_DESC_SIZE).decode("utf-8", errors="replace")
        except DatabaseError as e:
            damage.note(str(e), e)
            continue
        app = _package(desc_fields(text), desc, damage)
        if app is not None:
            apps.append(app)

    damage.report(len(apps))
    return apps


def _package_folders(tree: GuestTree) -> list[str]:
    try:
        names = tree.ls(LOCAL_DB)
    except FileNotFoundError as e:
        raise DatabaseMissingError(f"{LOCAL_DB} does not exist") from e
    except (GuestFileError, OSError) as e:
        raise DatabaseError(f"cannot list {LOCAL_DB}: {e}") from e
    # Like libguestfs, only real folders: not ALPM_DB_VERSION, nor a symlink.
    return [name for name in names if is_dir(tree, f"{LOCAL_DB}/{name}")]


def desc_fields(text: str) -> dict[str, str]:
    """The first value line of each field of a ``desc`` file that libguestfs reads."""
    fields: dict[str, str] = {}
    pending: str | None = None
    for line in text.split("\n"):
        if not line:
            pending = None
        elif pending is not None:
            fields[pending] = line
            pending = None
        else:
            pending = _FIELDS.get(line)
    return fields


def _package(fields: dict[str, str], desc: str, damage: Damage) -> Application | None:
    name, version_text, arch = (fields.get(k, "") for k in ("name", "version", "arch"))
    if not (name and version_text and arch):
        damage.note(f"{desc} lacks %NAME%, %VERSION% or %ARCH%")
        return None

    split = split_version(version_text)
    if split is None or not split[1] or not split[2]:
        damage.note(f"{desc}: version {version_text!r} is not [epoch:]version-release")
        return None

    epoch, version, release = split
    return application(
        name,
        epoch=epoch,
        version=version,
        release=release,
        arch=arch,
        url=fields.get("url", ""),
        description=fields.get("desc", ""),
    )
