"""The house's import rules (docs/architecture.md): imports run downwards, and no two parts import each other."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "src" / "smartingest"

# part -> the parts it may import (besides itself, errors, codes, telemetry and the package root's __version__)
ALLOWED: dict[str, set[str]] = {
    "errors": set(),
    "codes": set(),
    "telemetry": set(),
    "columns": set(),
    "config": set(),
    "sources": {"columns", "config"},
    "cdc": {"config", "sources"},
    "mapping": {"columns", "config"},
    "iterable": {"config"},
    "store": set(),
    "synctypes": {"config", "iterable", "mapping"},
    "engine": {"cdc", "columns", "config", "iterable", "mapping", "sources", "store", "synctypes"},
    "repository": {"config", "store"},
    "service": {"config", "engine", "repository", "store"},
    "scheduler": {"config", "service"},
    "server": {"scheduler", "service"},
    "sandbox": set(),
    "progress_display": set(),
    "demo": {"sandbox", "service"},
    "cli": {"demo", "progress_display", "sandbox", "scheduler", "server", "service"},
    "__main__": {"cli"},
}


def _part(path: Path) -> str:
    relative = path.relative_to(PACKAGE)
    return relative.parts[0].removesuffix(".py") if len(relative.parts) > 1 else relative.stem


def _imported_parts(path: Path) -> set[str]:
    parts = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("smartingest"):
            names = node.module.split(".")
            if len(names) > 1:
                parts.add(names[1])
            else:  # from smartingest import x
                parts.update(alias.name for alias in node.names if alias.name != "__version__")
        elif isinstance(node, ast.Import):
            parts.update(a.name.split(".")[1] for a in node.names if a.name.startswith("smartingest."))
    return parts


def test_imports_run_downwards():
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = _part(path)
        if part == "__init__":
            continue
        assert part in ALLOWED, f"{path}: add its part to ALLOWED and to docs/architecture.md"
        for imported in _imported_parts(path) - {part, "errors", "codes", "telemetry"}:
            if imported not in ALLOWED[part]:
                problems.append(f"{path.relative_to(PACKAGE)} imports {imported}")
    assert problems == []
