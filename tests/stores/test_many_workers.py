"""Many worker processes sharing one grant through Redis: budgets, revocation and outages hold everywhere."""

from __future__ import annotations

import logging

import pytest
from _workers import Workers, lookup_plan

from agent_guard import StoreUnavailable

pytestmark = pytest.mark.redis

LOOKUP = ("crm_lookup", {"customer_id": "C-42"})


def test_four_processes_400_attempts_on_budget_100_allow_exactly_100(
    redis_url, minter_for, worker_identity, workers
) -> None:
    """4 spawned workers sharing one grant make 400 concurrent attempts on max_calls=100: exactly 100 pass."""
    minter = minter_for(redis_url)
    with minter.task(lookup_plan(100), identity=worker_identity) as task:
        group = Workers(4, redis_url, minter.jwks(), task.grant)
        workers.append(group)
        assert [h[0] for h in group.hello] == ["ready"] * 4
        assert len({h[1]["pid"] for h in group.hello}) == 4 and {h[1]["task_id"] for h in group.hello} == {task.id}
        results = group.ask_all("burst", *LOOKUP, 100)
        assert sum(r["allowed"] for r in results) == 100
        denied: dict[str, int] = {}
        for r in results:
            for reason, count in r["reasons"].items():
                denied[reason] = denied.get(reason, 0) + count
        assert denied == {"budget_exhausted": 300}
        # The minting process sees the same spent budget, and the rest of the plan is still usable.
        assert minter.decide(*LOOKUP).reason == "budget_exhausted"
        assert minter.decide("send_email", {"to": "alice@example.com", "body": "hi"}).allowed


def test_task_exit_in_minter_revokes_in_every_worker(
    redis_url, minter_for, worker_identity, workers
) -> None:
    """Leaving the task in the minting process denies every worker's next call with `revoked`."""
    minter = minter_for(redis_url)
    with minter.task(lookup_plan(50), identity=worker_identity) as task:
        group = Workers(4, redis_url, minter.jwks(), task.grant)
        workers.append(group)
        assert [r[:2] for r in group.ask_all("call", *LOOKUP)] == [(True, None)] * 4
    assert [r[:2] for r in group.ask_all("call", *LOOKUP)] == [(False, "revoked")] * 4
    assert minter.store.is_active(task.id) is False


def test_plan_completion_revokes_in_every_worker(
    redis_url, minter_for, worker_identity, workers
) -> None:
    """When the last budget is spent (here by the minter), every worker's next call is refused `budget_exhausted`."""
    minter = minter_for(redis_url)
    with minter.task(lookup_plan(5, email=False), identity=worker_identity) as task:
        group = Workers(4, redis_url, minter.jwks(), task.grant)
        workers.append(group)
        assert [r[:2] for r in group.ask_all("call", *LOOKUP)] == [(True, None)] * 4
        last = minter.decide(*LOOKUP)
        assert last.allowed and task.revocation_reason == "plan_completed"
        assert [r[:2] for r in group.ask_all("call", *LOOKUP)] == [(False, "budget_exhausted")] * 4


def test_redis_down_denies_everywhere_then_recovers(
    redis_factory, minter_for, worker_identity, workers, caplog
) -> None:
    """Redis stopped mid-run: every call is denied store_unavailable, none allowed; after a restart new tasks work."""
    server = redis_factory()
    minter = minter_for(server.url)
    with (
        pytest.raises(RuntimeError, match="user error"),
        caplog.at_level(logging.WARNING, "agent_guard"),
        minter.task(lookup_plan(1000), identity=worker_identity) as task,
    ):
        group = Workers(3, server.url, minter.jwks(), task.grant)
        workers.append(group)
        assert [r[:2] for r in group.ask_all("call", *LOOKUP)] == [(True, None)] * 3
        server.stop()
        results = group.ask_all("burst", *LOOKUP, 40)
        assert [r["allowed"] for r in results] == [0, 0, 0]
        assert [r["reasons"] for r in results] == [{"store_unavailable": 40}] * 3
        assert [minter.decide(*LOOKUP).reason for _ in range(20)] == ["store_unavailable"] * 20
        raise RuntimeError("user error")  # the failed revocation at exit must not mask this
    assert task.revocation_reason == "task_exit"  # this process no longer honours the grant
    assert any("could not revoke task" in r.getMessage() and task.id in r.getMessage() for r in caplog.records)

    # Activation while the store is down fails clearly and hands out no grant.
    entered = []
    with pytest.raises(StoreUnavailable, match="activate"), minter.task(lookup_plan(3), identity=worker_identity):
        entered.append(True)
    assert entered == []

    server.start()  # same port; no persistence, so the old run is gone: it stays denied (fail closed)
    assert [r[:2] for r in group.ask_all("call", *LOOKUP)] == [(False, "revoked")] * 3
    with minter.task(lookup_plan(10), identity=worker_identity) as fresh:
        assert minter.decide(*LOOKUP).allowed
        assert [a[0] for a in group.ask_all("attach", fresh.grant)] == ["attached"] * 3
        assert [r[:2] for r in group.ask_all("call", *LOOKUP)] == [(True, None)] * 3
    assert [r[:2] for r in group.ask_all("call", *LOOKUP)] == [(False, "revoked")] * 3
