"""The many-workers example runs end to end against the test redis-server."""

from __future__ import annotations

import subprocess
import sys

import pytest
from _workers import ROOT

pytestmark = pytest.mark.redis


def test_many_workers_example(redis_url: str) -> None:
    """examples/many_workers.py: 3 lookups allowed across a spawn pool, the 4th over budget, then revoked."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "many_workers.py"), "--redis-url", redis_url, "--workers", "3"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert out.count("allowed -> customer") == 3
    assert "denied (budget_exhausted)" in out and "after completion: denied (revoked)" in out
    assert "grant revoked: plan_completed" in out and out.rstrip().endswith("after completion")
