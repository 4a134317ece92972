"""The core helper the adapter needs: agent_guard.use_task enters an existing task without minting."""

from __future__ import annotations

import agent_guard
from agent_guard import current_task, reasons, use_task


def test_use_task_sets_and_restores(guard, plan, identity):
    """use_task makes a task current for a block only; use_task(None) forces no_grant; nothing is revoked."""
    ctx = guard.task(plan, identity=identity)
    task = ctx.__enter__()
    try:
        outer = current_task()
        with use_task(None):
            assert current_task() is None
            assert guard.decide("crm_lookup", {"customer_id": "C-42"}).reason == reasons.NO_GRANT
            with use_task(task):
                assert current_task() is task
                assert guard.decide("crm_lookup", {"customer_id": "C-42"}).allowed
            assert current_task() is None
        assert current_task() is outer is task and not task.revoked
    finally:
        ctx.__exit__(None, None, None)
    assert "use_task" in agent_guard.__all__
