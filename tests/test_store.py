"""InMemoryGrantStore: budgets, ordering, completion and revocation semantics."""

from __future__ import annotations

import threading

from agent_guard import InMemoryGrantStore
from agent_guard.testing import FakeClock


def make(clock: FakeClock, budgets: list[int], ordered: bool = False) -> InMemoryGrantStore:
    store = InMemoryGrantStore(clock=clock)
    store.activate("run", budgets=budgets, ordered=ordered, expires_at=clock() + 60)
    return store


def test_first_candidate_with_budget_is_charged(clock: FakeClock) -> None:
    """Candidates are tried in plan order; an exhausted step passes to the next one."""
    store = make(clock, [1, 2, 5])
    assert store.consume("run", [0, 1]) == ("ok", 0)
    assert store.consume("run", [0, 1]) == ("ok", 1)
    assert store.consume("run", [0, 1]) == ("ok", 1)
    assert store.consume("run", [0, 1]) == ("exhausted", None)


def test_last_budget_completes_and_revokes(clock: FakeClock) -> None:
    """Spending the last unit returns completed and the run is no longer active; a late call is over budget
    until the run is revoked (or its grant expires)."""
    store = make(clock, [1, 1])
    assert store.consume("run", [0]).status == "ok"
    assert store.consume("run", [1]) == ("completed", 1)
    assert not store.is_active("run")
    assert store.consume("run", [1]).status == "exhausted"
    assert store.revoke("run") is False and store.consume("run", [1]).status == "revoked"
    store.activate("other", budgets=[1], ordered=False, expires_at=clock() + 10)
    assert store.consume("other", [0]).status == "completed"
    clock.advance(11)
    assert store.consume("other", [0]).status == "revoked"  # expired: nothing is kept


def test_ordered_plans(clock: FakeClock) -> None:
    """Ordered: the current step or the next one only; going back or skipping is out of order."""
    store = make(clock, [2, 1, 1], ordered=True)
    assert store.consume("run", [1]).status == "out_of_order"
    assert store.consume("run", [0]) == ("ok", 0)
    assert store.consume("run", [2]).status == "out_of_order"
    assert store.consume("run", [1]) == ("ok", 1)
    assert store.consume("run", [0]).status == "out_of_order"
    assert store.consume("run", [2]) == ("completed", 2)


def test_revoke_unknown_and_expired(clock: FakeClock) -> None:
    """Revocation is reported once; unknown and expired runs refuse."""
    store = make(clock, [3])
    assert store.revoke("run") is True and store.revoke("run") is False
    assert store.consume("run", [0]).status == "revoked"
    assert store.consume("other", [0]).status == "revoked" and store.revoke("other") is False
    fresh = make(clock, [3])
    clock.advance(61)
    assert fresh.consume("run", [0]).status == "revoked" and not fresh.is_active("run")


def test_concurrent_consumption_never_overspends(clock: FakeClock) -> None:
    """8 threads racing on a budget of 10 get exactly 10 allowances."""
    store = make(clock, [10, 1])
    results: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for _ in range(25):
            status = store.consume("run", [0]).status
            with lock:
                results.append(status)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results.count("ok") == 10 and results.count("exhausted") == 190


async def test_async_methods_default_to_sync(clock: FakeClock) -> None:
    """The async interface works on a sync store."""
    store = InMemoryGrantStore(clock=clock)
    await store.aactivate("r", budgets=[1, 1], ordered=False, expires_at=clock() + 5)
    assert (await store.aconsume("r", [0])).status == "ok"
    assert await store.arevoke("r") is True


def test_large_plans_report_the_step_charged(clock: FakeClock) -> None:
    """Every step index of a large plan is reported exactly (the results are built at activation)."""
    store = make(clock, [1] * 300)
    assert store.consume("run", [3]) == ("ok", 3)
    assert store.consume("run", [299]) == ("ok", 299)
    assert store.consume("run", [299]) == ("exhausted", None)
    for step in range(300):
        if step not in (3, 299):
            last = store.consume("run", [step])
    assert last == ("completed", 298)
