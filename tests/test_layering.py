"""The package layout is the architecture: each layer imports only the layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "vmcraft"

# Each layer and the layers it may import (shared top-level modules are always allowed).
ALLOWED = {
    "images": set(),
    "volumes": {"images"},
    "filesystems": set(),
    "guest": set(),
    "inspect": {"guest"},
    "api": {"images", "volumes", "filesystems", "guest", "inspect"},
    "cli": {"api"},
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_layer_imports_only_what_lies_below(path: Path) -> None:
    parts = path.relative_to(PACKAGE).parts
    if len(parts) == 1:
        return
    layer = parts[0]

    for name in _imports(path):
        if not name.startswith("vmcraft."):
            continue
        target = name.split(".")[1]
        if target in ALLOWED and target != layer:
            assert target in ALLOWED[layer], f"{layer} must not import {name}"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_only_the_command_module_runs_programs(path: Path) -> None:
    if path.name == "command.py" and path.parent == PACKAGE:
        return

    imported = _imports(path)

    assert "subprocess" not in imported, "run programs through vmcraft.command"
    assert "os.system" not in path.read_text()
