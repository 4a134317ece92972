"""The adapter README's Python blocks run as written, in order, in one namespace."""

from __future__ import annotations

import re
import sys
import types
from pathlib import Path

README = Path(__file__).resolve().parents[3] / "integrations" / "langchain" / "README.md"


def test_readme_python_blocks_run() -> None:
    """Every ```python block executes without error (scripted models stand in for real ones)."""
    text = README.read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) >= 6
    module = types.ModuleType("agent_guard_langchain_readme")  # a real module: dataclasses look their module up
    sys.modules[module.__name__] = module
    try:
        for block in blocks:
            exec(compile(block, str(README), "exec"), module.__dict__)
    finally:
        del sys.modules[module.__name__]


def test_readme_has_the_persistence_and_composition_sections() -> None:
    """The sections a deployer needs: what the checkpoint holds, resuming, many workers; composing."""
    text = README.read_text(encoding="utf-8")
    for heading in ("## Persistence and resume", "## Composing with LangChain's built-in middlewares"):
        assert heading in text
    for topic in ("What the checkpoint holds", "After a long pause", "Many workers", "HumanInTheLoopMiddleware",
                  "ToolCallLimitMiddleware", "PIIMiddleware"):
        assert topic in text
