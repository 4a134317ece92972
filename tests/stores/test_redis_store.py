"""RedisGrantStore against a real redis-server: parity with InMemoryGrantStore, atomic script, fail closed."""

from __future__ import annotations

import random
import subprocess
import sys

import pytest
import redis

from agent_guard import ConfigError, InMemoryGrantStore, StoreUnavailable
from agent_guard.stores import RedisGrantStore, _lua
from agent_guard.testing import FakeClock

pytestmark = pytest.mark.redis


def _pair(url: str, clock: FakeClock) -> tuple[InMemoryGrantStore, RedisGrantStore]:
    return InMemoryGrantStore(clock=clock), RedisGrantStore(url, clock=clock, key_prefix="parity:")


def _both(mem: InMemoryGrantStore, red: RedisGrantStore, op: str, *args, **kwargs):
    return getattr(mem, op)(*args, **kwargs), getattr(red, op)(*args, **kwargs)


def test_parity_hand_written_sequences(redis_url: str) -> None:
    """Unordered, ordered (cursor rule), exhaustion and completion give identical results in both stores."""
    clock = FakeClock()
    mem, red = _pair(redis_url, clock)
    exp = clock() + 300
    for store in (mem, red):
        store.activate("unordered", budgets=[2, 1], ordered=False, expires_at=exp)
        store.activate("ordered", budgets=[1, 2, 1], ordered=True, expires_at=exp)
    script = [
        ("unordered", [0]), ("unordered", [0]), ("unordered", [0]),  # ok, ok, exhausted
        ("unordered", [0, 1]),                                       # falls through to step 1: completed
        ("unordered", [1]),                                          # exhausted after completion
        ("ordered", [1]),                                            # cursor -1: step 1 is out of order
        ("ordered", [2]), ("ordered", [0]), ("ordered", [0]),        # out_of_order, ok, exhausted
        ("ordered", [2]), ("ordered", [1]), ("ordered", [1]),        # out_of_order, ok (cursor 1), ok (repeat)
        ("ordered", [0, 1, 2]),                                      # 0 and 1 spent: step 2 -> completed
        ("ordered", [0]),
    ]
    got = [_both(mem, red, "consume", run, cands) for run, cands in script]
    assert [m for m, _ in got] == [r for _, r in got]
    assert [m.status for m, _ in got] == [
        "ok", "ok", "exhausted", "completed", "exhausted",
        "out_of_order", "out_of_order", "ok", "exhausted", "out_of_order", "ok", "ok", "completed", "exhausted",
    ]
    assert [m.step for m, _ in got][:4] == [0, 0, None, 1]
    assert _both(mem, red, "is_active", "ordered") == (False, False)
    # Ordered: moving on to step 1 closes step 0, whose unused call is dead, so the plan completes.
    for store in (mem, red):
        store.activate("leftover", budgets=[2, 1], ordered=True, expires_at=exp)
    first, last = _both(mem, red, "consume", "leftover", [0]), _both(mem, red, "consume", "leftover", [1])
    assert first[0] == first[1] == (("ok", 0)) and last[0] == last[1] == ("completed", 1)
    assert _both(mem, red, "revoke", "ordered") == (False, False)
    red.close()


def test_parity_random_sequences(redis_url: str) -> None:
    """Thousands of random consume/revoke/clock steps over random plans match InMemoryGrantStore exactly."""
    rng = random.Random(20261129)
    clock = FakeClock()
    mem, red = _pair(redis_url, clock)
    runs: dict[str, int] = {}
    for i in range(40):
        n = rng.randint(1, 5)
        budgets = [rng.randint(1, 3) for _ in range(n)]
        run_id = f"r{i}"
        args = {"budgets": budgets, "ordered": rng.random() < 0.5, "expires_at": clock() + rng.randint(5, 60)}
        assert _both(mem, red, "activate", run_id, **args) == (None, None)
        runs[run_id] = n
    results = []
    for _ in range(3000):
        run_id = rng.choice(list(runs))
        roll = rng.random()
        if roll < 0.02:
            pair = _both(mem, red, "revoke", run_id)
        elif roll < 0.04:
            clock.advance(rng.randint(1, 4))
            pair = _both(mem, red, "is_active", run_id)
        else:
            k = rng.randint(1, runs[run_id])
            cands = sorted(rng.sample(range(runs[run_id]), k))
            pair = _both(mem, red, "consume", run_id, cands)
        assert pair[0] == pair[1], (run_id, pair)
        results.append(pair[0])
    statuses = {getattr(r, "status", None) for r in results}
    assert {"ok", "completed", "revoked", "exhausted", "out_of_order"} <= statuses
    red.close()


def test_record_is_one_hash_with_hash_tag_and_ttl(store: RedisGrantStore, redis_url: str) -> None:
    """The run record is one hash keyed with the {run_id} hash tag and expires with the grant (+ skew)."""
    import time

    store.activate("tag-1", budgets=[3, 1], ordered=True, expires_at=time.time() + 120)
    raw = redis.Redis.from_url(redis_url, decode_responses=True)
    key = store.key("tag-1")
    assert key == "agent_guard:{tag-1}:run"
    record = raw.hgetall(key)
    assert record["status"] == "active" and record["b0"] == "3" and record["u0"] == "0" and record["cursor"] == "-1"
    assert 120 < raw.ttl(key) <= 120 + store.skew_s + 1
    assert store.consume("tag-1", [0]).status == "ok"
    assert raw.hget(key, "u0") == "1" and raw.hget(key, "remaining") == "3"
    raw.close()


def test_expired_activation_and_unknown_runs_are_revoked(store: RedisGrantStore) -> None:
    """A run whose grant already expired, or that was never activated, is denied as revoked."""
    import time

    store.activate("old", budgets=[1], ordered=False, expires_at=time.time() - 5)
    assert store.consume("old", [0]).status == "revoked"
    assert store.consume("never-activated", [0]).status == "revoked"
    assert store.is_active("never-activated") is False
    assert store.revoke("never-activated") is False


def test_noscript_fallback_after_script_flush(store: RedisGrantStore, redis_url: str) -> None:
    """After SCRIPT FLUSH (or a restart) EVALSHA fails with NOSCRIPT and the store falls back to EVAL."""
    import time

    store.activate("flush", budgets=[5], ordered=False, expires_at=time.time() + 60)
    raw = redis.Redis.from_url(redis_url)
    raw.script_flush()
    assert raw.script_exists(_lua.CONSUME_SHA) == [False]
    assert store.consume("flush", [0]).status == "ok"
    assert raw.script_exists(_lua.CONSUME_SHA) == [True]  # EVAL cached it: next call is one EVALSHA
    assert store.consume("flush", [0]).status == "ok"
    raw.close()


def test_unknown_step_is_an_error_not_an_allow(store: RedisGrantStore) -> None:
    """A candidate step the run does not have makes the script fail, which surfaces as StoreUnavailable."""
    import time

    store.activate("steps", budgets=[1], ordered=False, expires_at=time.time() + 60)
    with pytest.raises(StoreUnavailable):
        store.consume("steps", [4])


def test_unreachable_redis_raises_store_unavailable_quickly() -> None:
    """Every operation against a closed port raises StoreUnavailable (no retries, short timeout)."""
    from _workers import free_port

    store = RedisGrantStore(f"redis://:s3cret@127.0.0.1:{free_port()}/0", timeout_s=0.2)
    for call in (lambda: store.consume("x", [0]), lambda: store.revoke("x"), lambda: store.is_active("x"),
                 lambda: store.activate("x", budgets=[1], ordered=False, expires_at=9e9)):
        with pytest.raises(StoreUnavailable) as info:
            call()
        assert "s3cret" not in str(info.value) and "failing closed" in str(info.value)
    assert store.ping() is False


def test_config_errors() -> None:
    """Bad URLs, timeouts, prefixes and run ids are refused with ConfigError naming the field."""
    with pytest.raises(ConfigError, match="url"):
        RedisGrantStore("http://127.0.0.1:6379")
    with pytest.raises(ConfigError, match="timeout_s"):
        RedisGrantStore("redis://127.0.0.1:1", timeout_s=0)
    with pytest.raises(ConfigError, match="key_prefix"):
        RedisGrantStore("redis://127.0.0.1:1", key_prefix="a{b}")
    with pytest.raises(ConfigError, match="run_id"):
        RedisGrantStore("redis://127.0.0.1:1").key("a}b")


async def test_async_path_parity_and_revocation(redis_url: str) -> None:
    """aactivate/aconsume/arevoke share records with the sync methods and behave identically."""
    clock = FakeClock()
    red = RedisGrantStore(redis_url, clock=clock, key_prefix="async:")
    mem = InMemoryGrantStore(clock=clock)
    exp = clock() + 60
    await red.aactivate("a1", budgets=[2, 1], ordered=True, expires_at=exp)
    mem.activate("a1", budgets=[2, 1], ordered=True, expires_at=exp)
    seq = [[1], [0], [0], [0, 1], [0]]
    for cands in seq:
        assert await red.aconsume("a1", cands) == mem.consume("a1", cands)
    await red.aactivate("a2", budgets=[3], ordered=False, expires_at=exp)
    assert red.consume("a2", [0]).status == "ok"          # sync and async see the same record
    assert await red.ais_active("a2") is True
    assert await red.arevoke("a2") is True
    assert await red.arevoke("a2") is False
    assert (await red.aconsume("a2", [0])).status == "revoked"
    await red.aclose()
    red.close()


async def test_async_unreachable_raises_store_unavailable() -> None:
    """The async path fails closed too."""
    from _workers import free_port

    red = RedisGrantStore(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    with pytest.raises(StoreUnavailable):
        await red.aconsume("x", [0])
    with pytest.raises(StoreUnavailable):
        await red.aactivate("x", budgets=[1], ordered=False, expires_at=9e9)
    await red.aclose()


def test_import_without_redis_raises_missing_dependency() -> None:
    """Without the redis package, importing RedisGrantStore says how to install it; the rest still imports."""
    code = (
        "import sys; sys.modules['redis'] = None\n"
        "from agent_guard.stores import InMemoryGrantStore\n"
        "from agent_guard import MissingDependencyError\n"
        "try:\n"
        "    from agent_guard.stores import RedisGrantStore\n"
        "except MissingDependencyError as e:\n"
        "    print('MISSING', e.install)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "MISSING pip install 'agent-guard[redis]'"


async def test_async_task_exit_and_open_with_redis_down(
    redis_factory, make_store, wide_policy, worker_identity, caplog
) -> None:
    """Async: a failed revocation at exit logs a warning and keeps the user's exception; opening fails clearly."""
    import logging

    from _workers import lookup_plan

    from agent_guard import Guard

    server = redis_factory()
    store = make_store(server.url)
    guard = Guard(wide_policy, store=store)
    with caplog.at_level(logging.WARNING, "agent_guard"), pytest.raises(KeyError, match="user"):
        async with guard.task(lookup_plan(3), identity=worker_identity) as task:
            assert (await guard.adecide("crm_lookup", {"customer_id": "C-1"})).allowed
            server.stop()
            assert (await guard.adecide("crm_lookup", {"customer_id": "C-1"})).reason == "store_unavailable"
            raise KeyError("user")
    assert task.revocation_reason == "task_exit"
    assert [r.levelname for r in caplog.records if "could not revoke" in r.getMessage()] == ["WARNING"]
    entered = []
    with pytest.raises(StoreUnavailable, match="activate failed"):
        async with guard.task(lookup_plan(3), identity=worker_identity):
            entered.append(1)
    assert entered == []
    await store.aclose()
