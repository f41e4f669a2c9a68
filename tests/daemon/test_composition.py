"""Composition stays in one place: raas.daemon builds the cell and nothing below imports it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2] / "raas"
#: what sits below the composition root: it gets what it needs as arguments
BELOW = ("core", "metrics", "recording", "safety", "policy", "controllers", "task")


def _imports(path: Path) -> set[str]:
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


@pytest.mark.parametrize("package", BELOW)
def test_nothing_below_the_daemon_imports_it(package: str) -> None:
    offenders = [
        str(p.relative_to(ROOT.parent))
        for p in sorted((ROOT / package).rglob("*.py"))
        if "raas.daemon" in _imports(p)
    ]
    assert offenders == []


def test_drivers_never_import_raas() -> None:
    drivers = ROOT.parent / "drivers" / "raas_drivers"
    offenders = [
        str(p.relative_to(drivers))
        for p in sorted(drivers.rglob("*.py"))
        if any(m == "raas" or m.startswith("raas.") for m in _imports(p))
    ]
    assert offenders == []
