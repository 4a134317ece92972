"""docs/security.md names, for each guarantee, the tests that prove it: every one of them must exist."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "security.md"


def defined(path: Path) -> set[str]:
    """Qualified names of the test functions and classes in a file (``Class::method`` for methods)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(node.name)
        elif isinstance(node, ast.ClassDef):
            names.add(node.name)
            names.update(f"{node.name}::{item.name}" for item in node.body
                         if isinstance(item, (ast.FunctionDef, ast.AsyncFunctionDef)))
    return names


def test_every_cited_test_exists() -> None:
    """Each ``tests/...py::name`` in the threat model is a test in the repository."""
    cited = re.findall(r"(tests/[\w/]+\.py)::([\w:]+)", DOC.read_text(encoding="utf-8"))
    assert len(cited) >= 20
    missing = [f"{path}::{name}" for path, name in cited
               if not (ROOT / path).is_file() or name not in defined(ROOT / path)]
    assert not missing, f"docs/security.md cites tests that do not exist: {missing}"


def test_the_lifecycle_section_is_kept() -> None:
    """The section the adapters and task lifecycle fill in stays where the lead expects it."""
    assert "## Guarantees from the adapters and the task lifecycle" in DOC.read_text(encoding="utf-8")
