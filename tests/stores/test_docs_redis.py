"""docs/many-workers.md: its Python blocks run against a real redis-server."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.redis

PAGE = Path(__file__).resolve().parents[2] / "docs" / "many-workers.md"


def test_many_workers_page_runs(redis_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The page's example mints, hands the grant to a worker and runs a guarded lookup there."""
    import re

    monkeypatch.setenv("AGENT_GUARD_REDIS_URL", redis_url)
    monkeypatch.chdir(tmp_path)
    namespace: dict[str, object] = {"__name__": "docs_many_workers"}
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), flags=re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(PAGE), "exec"), namespace)
    task = namespace["task"]
    assert task.revoked  # type: ignore[attr-defined]
