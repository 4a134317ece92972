"""Limits on Redis: exact across worker processes, one round trip per decision, the same answers as in memory."""

from __future__ import annotations

import multiprocessing
import random
import uuid
from typing import Any

import pytest
from _limit_workers import limit_worker

from agent_guard import (
    AgentIdentity,
    Capability,
    Guard,
    InMemoryGrantStore,
    Limit,
    Plan,
    Policy,
    Step,
    reasons,
)
from agent_guard.stores import RedisGrantStore
from agent_guard.stores._base import Charge, LimitBucket
from agent_guard.testing import FakeClock

pytestmark = pytest.mark.redis

DAY = Limit(sum_of="amount", max=1000, per="user", window_s=86400)
POLICY = Policy(agent_id="bank-bot", max_ttl_s=900, capabilities=[
    Capability("transfer", args={"amount": {"any": True}, "to": {"any": True}},
               limits=[DAY, Limit(calls=1000, per="agent", window_s=60)]),
])
PLAN = Plan(steps=[Step("transfer", args={"amount": {"any": True}, "to": {"any": True}}, max_calls=1000)])
TRANSFER = {"amount": 30, "to": "bob"}


def fresh_user() -> AgentIdentity:
    """A user no other test has charged (the session's Redis keeps buckets between tests)."""
    return AgentIdentity(agent_id="bank-bot", user_id=f"u-{uuid.uuid4().hex[:12]}")


def test_four_processes_of_two_threads_allow_exactly_33_transfers_of_30(
    redis_url: str, make_store: Any, issuer_keys: Any
) -> None:
    """8 threads (2 in each of 4 spawned, verify-only workers) x 50 transfer(amount=30), 1,000 per user: exactly 33."""
    minter = Guard(POLICY, keys=issuer_keys, store=make_store(redis_url))
    ctx = multiprocessing.get_context("spawn")
    with minter.task(PLAN, identity=fresh_user(), ttl_s=900) as task:
        pipes, procs = [], []
        for _ in range(4):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=limit_worker, daemon=True,
                               args=(child, redis_url, minter.jwks(), task.grant, 2, 50, "transfer", TRANSFER))
            proc.start()
            child.close()
            pipes.append(parent)
            procs.append(proc)
        try:
            for pipe in pipes:
                assert pipe.poll(60) and pipe.recv() == "ready"
            for pipe in pipes:
                pipe.send("go")
            results = []
            for pipe in pipes:
                assert pipe.poll(120)
                results.append(pipe.recv())
        finally:
            for proc in procs:
                proc.join(timeout=30)
                if proc.is_alive():
                    proc.terminate()
        assert sum(r.get("allowed", 0) for r in results) == 33
        assert sum(r.get(reasons.LIMIT_EXCEEDED, 0) for r in results) == 400 - 33
        assert minter.store.remaining(task.run_id) == (1000 - 33,)  # each allowed call charged the step too
        assert minter.decide("transfer", {"amount": 10, "to": "bob"}).allowed  # 990 + 10 = the cap exactly
        assert minter.decide("transfer", {"amount": 0.01, "to": "bob"}).limit == (
            "transfer: sum_of amount per user per 86400 s")


def test_a_limited_decision_is_one_round_trip(redis_url: str, make_store: Any) -> None:
    """Step budget and both limits are checked and charged by one EVALSHA: one command per decision."""
    store = make_store(redis_url)
    guard = Guard(POLICY, store=store)
    with guard.task(PLAN, identity=fresh_user()):
        assert guard.decide("transfer", TRANSFER).allowed  # loads the script on a fresh server
        sent: list[Any] = []
        client = store._client
        original = client.execute_command
        client.execute_command = lambda *a, **k: (sent.append(a[0]), original(*a, **k))[1]
        try:
            for _ in range(10):
                assert guard.decide("transfer", TRANSFER).allowed
        finally:
            client.execute_command = original
    assert sent == ["EVALSHA"] * 10


def test_a_per_task_bucket_shares_the_runs_hash_slot(redis_url: str, make_store: Any) -> None:
    """A per-task limit's bucket carries the task id as its hash tag (one Redis Cluster slot with the run)."""
    prefix = f"slot{uuid.uuid4().hex[:8]}:"
    store = make_store(redis_url, key_prefix=prefix)
    policy = Policy(agent_id="bank-bot", capabilities=[
        Capability("transfer", args={"amount": {"any": True}, "to": {"any": True}},
                   limits=[Limit(calls=2, per="task"), DAY])])
    guard = Guard(policy, store=store)
    with guard.task(PLAN, identity=fresh_user()) as task:
        assert guard.decide("transfer", TRANSFER).allowed
        keys = sorted(store._client.keys(f"{prefix}*:limit:*"))
        assert len(keys) == 2
        assert sum(key.startswith(f"{prefix}{{{task.id}}}:limit:") for key in keys) == 1
        assert [guard.decide("transfer", TRANSFER).allowed for _ in range(2)] == [True, False]


def test_memory_and_redis_stores_agree_with_limits(redis_url: str, make_store: Any) -> None:
    """400 random consumes with charges (fractions, windows, a clock that jumps both ways) get the same answers."""
    rng = random.Random(15)
    clock = FakeClock()
    memory = InMemoryGrantStore(clock=clock)
    redis_store: RedisGrantStore = make_store(redis_url, clock=clock, key_prefix=f"parity{uuid.uuid4().hex[:8]}:")
    buckets = [
        LimitBucket(key="sum-day", tag="sum-day", max=10.5, window_s=86400, until=0, label="a"),
        LimitBucket(key="rate-min", tag="rate-min", max=7, window_s=60, until=0, label="b"),
        LimitBucket(key="task", tag="t1", max=40, window_s=0, until=clock.now + 900, label="c"),
        LimitBucket(key="tiny", tag="tiny", max=0.3, window_s=5, until=0, label="d"),
    ]
    for store in (memory, redis_store):
        store.activate("t1", budgets=[60, 40], ordered=False, expires_at=clock.now + 900)
        store.activate("t2", budgets=[5, 100], ordered=False, expires_at=clock.now + 900)
    outcomes: set[str] = set()
    for _ in range(400):
        if rng.random() < 0.1:
            clock.advance(rng.choice([1, 3, 7, 30, 61, -4, -45]))
            continue
        run = rng.choice(["t1", "t2"])
        candidates = rng.choice([[0], [1], [0, 1]])
        chosen = rng.sample(buckets, rng.randint(0, len(buckets)))
        charges = [Charge(b, rng.choice([0, 1, 1, 0.1, 0.25, 2.5, 3])) for b in chosen]
        expected = memory.consume(run, candidates, charges)
        assert redis_store.consume(run, candidates, charges) == expected
        outcomes.add(expected.status)
    assert {"ok", "limit_exceeded", "exhausted"} <= outcomes
    for bucket in buckets:  # the same window and the same total, to the last bit of the double
        held = redis_store._client.hmget(redis_store.bucket_key(Charge(bucket, 0)), "w", "t")
        state = memory.limits.state(bucket.key)
        assert (None if held[0] is None else (float(held[0]), float(held[1]))) == state
    assert memory.remaining("t1") == redis_store.remaining("t1")


async def test_async_limited_decisions_on_redis(redis_url: str, make_store: Any) -> None:
    """The async path (redis.asyncio) charges the same buckets in the same one script."""
    store = make_store(redis_url)
    guard = Guard(POLICY, store=store)
    async with guard.task(PLAN, identity=fresh_user()):
        results = [(await guard.aauthorize("transfer", {"amount": 400, "to": "bob"})).reason for _ in range(3)]
    await store.aclose()
    assert results == [None, None, reasons.LIMIT_EXCEEDED]
