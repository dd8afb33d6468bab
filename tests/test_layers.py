"""Dependencies run one way: waitingroom -> booking -> db, and nothing imports the tooling."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("waitingroom", "booking", "db", "loadtest")
# What each package may import of the project's own packages (besides itself).
ALLOWED = {"waitingroom": {"booking", "db"}, "booking": {"db"}, "db": set(), "loadtest": set(PACKAGES)}


def imports_of(package: str) -> set[tuple[str, str]]:
    """(module file, imported project package) for every import in a package."""
    found = set()
    for path in (ROOT / package).rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                top = name.split(".")[0]
                if top in PACKAGES and top != package:
                    found.add((str(path.relative_to(ROOT)), top))
    return found


def test_imports_run_one_way() -> None:
    wrong = sorted((module, target) for package in PACKAGES for module, target in imports_of(package)
                   if target not in ALLOWED[package])
    assert wrong == []


def test_the_check_sees_imports() -> None:
    # waitingroom does import booking: the walk above finds real imports.
    assert any(target == "booking" for _, target in imports_of("waitingroom"))
