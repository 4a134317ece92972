"""Delegated grants on a real Redis: a child spends its parent's budget, exactly, across processes."""

from __future__ import annotations

import pytest
from _workers import Workers, lookup_plan

from agent_guard import Plan, Step
from agent_guard.stores import InMemoryGrantStore, RedisGrantStore
from agent_guard.stores._base import Delegation

pytestmark = pytest.mark.redis

LOOKUP = ("crm_lookup", {"customer_id": "C-42"})

CHILD = Plan(steps=[Step("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}, max_calls=2)])


def test_parent_three_child_two_across_processes(redis_url, minter_for, worker_identity, workers) -> None:
    """Parent budget 3; a child with 2, used by 2 worker processes (10 attempts): 2 pass; the parent has 1 left."""
    minter = minter_for(redis_url)
    with minter.task(lookup_plan(3), identity=worker_identity) as parent:
        with minter.delegate(CHILD, agent_id="helper-bot") as child:
            group = Workers(2, redis_url, minter.jwks(), child.grant)
            workers.append(group)
            assert {h[1]["task_id"] for h in group.hello} == {parent.id}
            results = group.ask_all("burst", *LOOKUP, 5)
            assert sum(r["allowed"] for r in results) == 2
        assert minter.decide(*LOOKUP).allowed
        assert minter.decide(*LOOKUP).reason == "budget_exhausted"


def test_revoking_the_parent_refuses_the_child_in_every_worker(redis_url, minter_for, worker_identity, workers) -> None:
    minter = minter_for(redis_url)
    with minter.task(lookup_plan(3), identity=worker_identity) as parent, minter.delegate(CHILD, agent_id="h") as child:
        group = Workers(2, redis_url, minter.jwks(), child.grant)
        workers.append(group)
        parent.revoke()
        assert [r[1] for r in group.ask_all("call", *LOOKUP)] == ["revoked", "revoked"]


@pytest.mark.parametrize("kind", ["memory", "redis"])
def test_chained_budgets_match_between_stores(kind: str, store: RedisGrantStore) -> None:
    """The same sequence gives the same verdicts and remaining budgets in memory and on Redis."""
    s = InMemoryGrantStore() if kind == "memory" else store
    suffix = kind + str(id(s))
    root, child, grandchild = f"t{suffix}", f"t{suffix}:c", f"t{suffix}:g"
    far = 10**10
    s.activate(root, budgets=[3, 1], ordered=False, expires_at=far)
    s.activate(child, budgets=[2, 1], ordered=False, expires_at=far, parent=Delegation(root, (0, 1)))
    s.activate(grandchild, budgets=[1], ordered=False, expires_at=far, parent=Delegation(child, (0,)))
    assert s.remaining(root) == (3, 1) and s.remaining(child) == (2, 1) and s.remaining(grandchild) == (1,)
    assert s.consume(grandchild, [0]).status == "completed"
    assert s.remaining(root) == (2, 1) and s.remaining(child) == (1, 1)
    assert s.consume(grandchild, [0]).status == "exhausted"  # its plan is spent: over budget, not revoked
    assert s.consume(child, [0]).status == "ok"
    assert s.remaining(root) == (1, 1)
    assert s.consume(child, [0]).status == "exhausted"
    assert s.consume(root, [0]).status == "ok"
    assert s.remaining(child) == (0, 1)
    assert s.consume(child, [1]).status == "completed"
    assert s.remaining(root) is None and s.consume(root, [0]).status == "exhausted"  # the child's call completed it
    assert s.revoke(root) is False and s.consume(root, [0]).status == "revoked"     # closed after completion
    s.activate(f"{root}x", budgets=[5], ordered=False, expires_at=far)
    s.activate(f"{root}x:c", budgets=[5], ordered=False, expires_at=far, parent=Delegation(f"{root}x", (0,)))
    assert s.revoke(f"{root}x") is True
    assert s.consume(f"{root}x:c", [0]).status == "revoked" and s.is_active(f"{root}x:c") is False
