"""The README's code blocks run as written, in order, in one namespace."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parent.parent / "README.md"


def test_readme_opens_with_one_sentence_install_and_commands() -> None:
    """Title, one sentence, the install line, then make demo / make test."""
    text = README.read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if line.strip()]
    assert lines[0].startswith("# ") and lines[1].count(". ") == 0 and lines[1].endswith(".")
    head = text[:1500]
    assert "pip install agent-guard" in head and "make demo" in head and "make test" in head


def test_readme_python_blocks_run() -> None:
    """Every ```python block executes without error."""
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    assert len(blocks) >= 2
    namespace: dict[str, object] = {"__name__": "readme"}
    for block in blocks:
        exec(compile(block, str(README), "exec"), namespace)
