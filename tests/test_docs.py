"""The Python blocks of every page under docs/ run as written, in order, one namespace per page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = sorted((Path(__file__).resolve().parent.parent / "docs").glob("*.md"))
NEEDS_REDIS = {"many-workers"}
"""Pages whose examples talk to Redis: run by tests/stores/test_docs_redis.py against a real server."""


def _blocks(path: Path) -> list[str]:
    return re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), flags=re.S)


def run_page(path: Path) -> dict[str, object]:
    """Execute the page's ```python blocks in order in one namespace; returns the namespace."""
    namespace: dict[str, object] = {"__name__": f"docs_{path.stem}"}
    for block in _blocks(path):
        exec(compile(block, str(path), "exec"), namespace)
    return namespace


@pytest.mark.parametrize("path", [p for p in DOCS if p.stem not in NEEDS_REDIS],
                         ids=[p.stem for p in DOCS if p.stem not in NEEDS_REDIS])
def test_doc_python_blocks_run(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ```python block of the page executes without error (in a scratch directory)."""
    monkeypatch.chdir(tmp_path)
    run_page(path)


def test_the_design_page_has_examples() -> None:
    """docs/design.md shows the lifecycle and delegation in code the suite runs."""
    assert len(_blocks(Path(__file__).resolve().parent.parent / "docs" / "design.md")) >= 2


def _cited_files(path: Path) -> set[str]:
    """What a file points at: Markdown link targets (in ``.md`` files) and paths ending in ``.md``/``.py``."""
    text = path.read_text(encoding="utf-8")
    links = {m.split("#", 1)[0] for m in re.findall(r"\]\(([^)\s]+)\)", text)} if path.suffix == ".md" else set()
    paths = set(re.findall(r"(?<![\w/.*-])((?:[\w-]+/)*[\w-]+\.(?:md|py))\b", text))
    return {c for c in links | paths if c and "://" not in c}


def test_docs_cite_nothing_outside_the_repository() -> None:
    """The project stands alone: every file a page, test, benchmark or script cites is in the repository."""
    root = Path(__file__).resolve().parent.parent
    names = {p.name for p in root.rglob("*") if p.is_file() and ".venv" not in str(p) and ".git" not in p.parts}
    texts = [p for pattern in ("docs/*.md", "tests/**/*.py", "benchmarks/*.py", "scripts/*", "*.md",
                               "integrations/*/README.md") for p in root.glob(pattern) if p.is_file()]
    missing = []
    for path in texts:
        for cited in _cited_files(path):
            near = (path.parent / cited).resolve()
            if cited.startswith(".") and not near.is_relative_to(root):
                missing.append(f"{path.relative_to(root)} -> {cited} (outside the repository)")
            elif not near.exists() and not (root / cited).exists() and cited.split("/")[-1] not in names:
                missing.append(f"{path.relative_to(root)} -> {cited}")
    assert not missing, "cited files the repository does not have:\n" + "\n".join(sorted(missing))
