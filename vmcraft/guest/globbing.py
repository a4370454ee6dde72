"""Guest paths found by pattern or by case: libguestfs's ``glob_expand`` and
``case_sensitive_path``.

Both read the guest's folders and never the host's: each folder is resolved inside the guest
before it is listed, and names are matched here rather than by the host's glob(3), so a
guest's link to a host folder leads to the guest's own folder of that name, or to nothing.
Patterns follow glob(3) as libguestfs calls it (``GLOB_MARK | GLOB_BRACE``): ``*``, ``?``,
``[...]`` with ``!``/``^``, ranges and POSIX classes, backslash escapes, ``{a,b}``; a
leading dot must be matched by a dot.
"""

from __future__ import annotations

import os
import re
import stat

from vmcraft.errors import GuestFileError, GuestFileNotFoundError, GuestPathError
from vmcraft.guest.files import GuestTree, guest_errors
from vmcraft.guest.listing import sort_key
from vmcraft.guest.paths import check_guest_path

_POSIX_CLASSES = {
    "alpha": "a-zA-Z",
    "digit": "0-9",
    "alnum": "0-9a-zA-Z",
    "upper": "A-Z",
    "lower": "a-z",
    "xdigit": "0-9A-Fa-f",
    "space": r" \t\n\r\f\v",
    "blank": r" \t",
    "punct": r"!-/:-@\[-`{-~",
}


def glob_expand(tree: GuestTree, pattern: str, directoryslash: bool = True) -> list[str]:
    """The guest paths matching a wildcard pattern (libguestfs ``glob_expand``).

    Args:
        pattern: An absolute guest path with wildcards; ``{a,b}`` expands first, each
            alternative's matches sorted in byte order and kept in the alternatives' order.
        directoryslash: Add ``/`` to folders (``GLOB_MARK``), links to folders included.

    Returns:
        The matches; an empty list when nothing matches (not an error).
    """
    check_guest_path(pattern)
    tree.resolve("/")  # fails clearly when nothing is mounted

    results: list[str] = []
    for alternative in expand_braces(pattern):
        only_folders = alternative.endswith("/")
        found = (_marked(tree, p, only_folders, directoryslash) for p in _expand(tree, alternative))
        results += sorted((p for p in found if p is not None), key=sort_key)
    return results


def expand_braces(pattern: str) -> list[str]:
    """``a{b,c}d`` -> ``abd``, ``acd``, nested groups too; a group without a comma stays."""
    group = _first_brace_group(pattern)
    if group is None:
        return [pattern]
    start, end, alternatives = group
    return [
        expanded
        for alternative in alternatives
        for expanded in expand_braces(pattern[:start] + alternative + pattern[end + 1 :])
    ]


def _first_brace_group(pattern: str) -> tuple[int, int, list[str]] | None:
    i = 0
    while i < len(pattern):
        if pattern[i] == "\\":
            i += 2
            continue
        group = _brace_group_at(pattern, i) if pattern[i] == "{" else None
        if group is not None:
            return group
        i += 1
    return None


def _brace_group_at(pattern: str, start: int) -> tuple[int, int, list[str]] | None:
    """The group opening at ``start``: its end and alternatives, if it has a comma."""
    depth, pieces, piece_start, i = 0, [], start + 1, start
    while i < len(pattern):
        c = pattern[i]
        if c == "\\":
            i += 2
            continue
        if c == "{":
            depth += 1
        elif c == "}":
            depth -= 1
            if depth == 0:
                pieces.append(pattern[piece_start:i])
                return (start, i, pieces) if len(pieces) > 1 else None
        elif c == "," and depth == 1:
            pieces.append(pattern[piece_start:i])
            piece_start = i + 1
        i += 1
    return None


def _expand(tree: GuestTree, pattern: str) -> list[str]:
    """Existing guest paths matching a pattern without braces, component by component."""
    paths = ["/"]
    for component in (c for c in pattern.split("/") if c):
        regex, literal = translate(component)
        if regex is None:
            paths = [_join(path, literal) for path in paths]
        else:
            paths = [m for path in paths for m in _matching(tree, path, component, regex)]
    return [path for path in paths if _exists(tree, path)]


def _join(folder: str, name: str) -> str:
    return f"{folder.rstrip('/')}/{name}"


def _matching(tree: GuestTree, folder: str, component: str, regex: re.Pattern[str]) -> list[str]:
    # Unreadable or missing folders match nothing, as glob(3) without GLOB_ERR skips them.
    try:
        with os.scandir(tree.resolve(folder)) as found:
            names = [entry.name for entry in found]
    except (OSError, GuestPathError):
        return []
    hidden_too = component.startswith((".", "\\."))
    return [
        _join(folder, name)
        for name in names
        if (hidden_too or not name.startswith(".")) and regex.fullmatch(name)
    ]


def _exists(tree: GuestTree, path: str) -> bool:
    try:
        os.lstat(tree.resolve(path, follow_final=False))
    except (OSError, GuestPathError):
        return False
    return True


def _marked(tree: GuestTree, path: str, only_folders: bool, directoryslash: bool) -> str | None:
    is_folder = tree.is_dir(path)
    if only_folders and not is_folder:
        return None
    if is_folder and (only_folders or directoryslash) and not path.endswith("/"):
        return path + "/"
    return path


def translate(component: str) -> tuple[re.Pattern[str] | None, str]:
    """A pattern for one path component as a regex, or, without wildcards, as plain text."""
    parts: list[str] = []
    literal: list[str] = []
    i = 0
    while i < len(component):
        c = component[i]
        end = _bracket_end(component, i) if c == "[" else -1
        if c == "\\" and i + 1 < len(component):
            i += 1
            parts.append(re.escape(component[i]))
            literal.append(component[i])
        elif c in "*?":
            parts.append(".*" if c == "*" else ".")
        elif end > 0:
            parts.append(_bracket(component[i + 1 : end]))
            i = end
        else:
            parts.append(re.escape(c))
            literal.append(c)
        i += 1

    if len(literal) == len(parts):
        return None, "".join(literal)
    return re.compile("".join(parts), re.DOTALL), ""


def _bracket_end(component: str, start: int) -> int:
    """Where the bracket expression opening at ``start`` closes, or -1 (a plain ``[``)."""
    j = start + 1
    if component[j : j + 1] in ("!", "^"):
        j += 1
    if component[j : j + 1] == "]":
        j += 1  # a ] first in the brackets is one of the characters
    while j < len(component):
        close = component.find(":]", j + 2) if component.startswith("[:", j) else -1
        if close > 0:
            j = close + 2
            continue
        if component[j] == "]":
            return j
        j += 1
    return -1


def _bracket(body: str) -> str:
    negate = body[:1] in ("!", "^")
    if negate:
        body = body[1:]
    out: list[str] = []
    i = 0
    while i < len(body):
        close = body.find(":]", i + 2) if body.startswith("[:", i) else -1
        if close > 0:
            out.append(_POSIX_CLASSES.get(body[i + 2 : close], ""))  # unknown: matches nothing
            i = close + 2
            continue
        c = body[i]
        if c == "\\" and i + 1 < len(body):
            i += 1
            c = body[i]
            out.append(re.escape(c))
        elif c == "-" and 0 < i < len(body) - 1:
            out.append("-")  # a range
        else:
            out.append(re.escape(c))
        i += 1
    inside = "".join(out)
    if not inside:
        return "(?!)"  # an empty set matches nothing
    return f"[{'^' if negate else ''}{inside}]"


def case_sensitive_path(tree: GuestTree, path: str) -> str:
    """The guest path with each component in the case the guest's folders spell it.

    As in libguestfs: a missing final component is kept as given (a file about to be
    made), a missing folder before it is an error, ``.`` and ``..`` are refused. Folders
    are entered through the resolver, so links are followed inside the guest; the result
    keeps the components as named (it is not a realpath). An exact name is preferred to a
    name equal up to case; among those, the first in byte order wins.

    Raises:
        GuestPathError: The path is malformed or has a ``.`` or ``..`` component.
        GuestFileNotFoundError: A folder before the final component is missing.
        GuestFileError: A component before the final one is not a folder.
    """
    check_guest_path(path)
    components = [c for c in path.split("/") if c]
    if any(c in (".", "..") for c in components):
        raise GuestPathError(f"cannot resolve the case of {path}: it has . or .. components")

    current = "/"
    for index, name in enumerate(components):
        actual = _name_in(tree, current, name, path)
        if actual is None and index < len(components) - 1:
            raise GuestFileNotFoundError(
                f"cannot resolve the case of {path}: no {name} in {current}"
            )
        current = _join(current, actual or name)
    return current


def _name_in(tree: GuestTree, folder: str, name: str, path: str) -> str | None:
    host = tree.resolve(folder)
    with guest_errors(f"cannot resolve the case of {path}: cannot list", folder):
        if not stat.S_ISDIR(os.lstat(host).st_mode):
            raise GuestFileError(f"cannot resolve the case of {path}: {folder} is not a folder")
        names = os.listdir(host)
    if name in names:
        return name
    folded = _fold(name)
    return min((n for n in names if _fold(n) == folded), key=sort_key, default=None)


def _fold(name: str) -> str:
    """Upper case character by character, as NTFS compares names (no ß -> SS)."""
    return "".join(u if len(u := c.upper()) == 1 else c for c in name)
