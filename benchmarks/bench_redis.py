"""Per-call overhead of the Redis grant store on loopback (``make bench`` runs it).

Starts its own ``redis-server`` on a free 127.0.0.1 port (installing it with
scripts/ensure-redis.sh if needed) and stops it at the end. Prints the median µs per call of:
a bare tool call, ``guard.decide`` with the in-memory store, ``guard.decide`` with
``RedisGrantStore`` (sync and async), and a raw Redis PING for reference; and checks that one
decision is one round trip (Redis ``INFO commandstats``). Never asserts on timing.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import redis

from agent_guard import AgentIdentity, Capability, Guard, KeySet, Plan, Policy, Step
from agent_guard.stores import InMemoryGrantStore, RedisGrantStore

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import acompare, per_call_us

ROOT = Path(__file__).resolve().parents[1]
ARGS = {"customer_id": "C-42", "region": "eu", "limit": 10}


def start_redis() -> tuple[subprocess.Popen[bytes], str, str]:
    """Start redis-server on a free loopback port; returns (process, url, data dir)."""
    if shutil.which("redis-server") is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-redis.sh")], check=True)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    data = tempfile.mkdtemp(prefix="agent-guard-bench-redis-")
    proc = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", data, "--loglevel", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    client = redis.Redis(host="127.0.0.1", port=port)
    for _ in range(300):
        try:
            client.ping()
            break
        except redis.ConnectionError:
            time.sleep(0.02)
    client.close()
    return proc, f"redis://127.0.0.1:{port}/0", data


def main() -> int:
    """Run the measurements and print the table."""
    policy = Policy(agent_id="bench-bot", capabilities=[
        Capability("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}, "region": {"in": ["eu", "us"]},
                                       "limit": {"min": 1, "max": 100}}),
    ])
    plan = Plan(goal="bench", steps=[Step("crm_lookup", args={"customer_id": "C-42", "region": "eu",
                                                                "limit": {"max": 50}}, max_calls=1_000_000)])
    me = AgentIdentity(agent_id="bench-bot", user_id="u-1")

    def crm_lookup(customer_id: str, region: str, limit: int) -> tuple[str, str, int]:
        return customer_id, region, limit

    proc, url, data = start_redis()
    try:
        keys = KeySet.generate()
        mem_guard = Guard(policy, keys=keys, store=InMemoryGrantStore())
        store = RedisGrantStore(url)
        redis_guard = Guard(policy, keys=keys, store=store)
        raw = redis.Redis.from_url(url)
        n_mem, n_redis = 20_000, 1_000

        bare = per_call_us(lambda: crm_lookup(**ARGS), number=n_mem)
        with mem_guard.task(plan, identity=me):
            mem = per_call_us(lambda: mem_guard.decide("crm_lookup", ARGS), number=n_mem)
        ping = per_call_us(raw.ping, number=n_redis)
        with redis_guard.task(plan, identity=me):
            redis_guard.decide("crm_lookup", ARGS)  # the first call after a server start loads the script
            sent: list[object] = []
            client = store._client
            original = client.execute_command
            client.execute_command = lambda *a, **k: (sent.append(a[0]), original(*a, **k))[1]  # type: ignore[method-assign]
            before = raw.info("commandstats")
            calls = 2_000
            for _ in range(calls):
                assert redis_guard.decide("crm_lookup", ARGS).allowed
            after = raw.info("commandstats")
            client.execute_command = original  # type: ignore[method-assign]
            red = per_call_us(lambda: redis_guard.decide("crm_lookup", ARGS), number=n_redis)
        inside = {k.removeprefix("cmdstat_"): (after[k]["calls"] - before.get(k, {"calls": 0})["calls"]) / calls
                  for k in after if k not in ("cmdstat_info", "cmdstat_evalsha")}
        inside = {k: v for k, v in inside.items() if v}

        async def async_part() -> float:
            async with redis_guard.task(plan, identity=me):
                found = await acompare({"x": (lambda: redis_guard.adecide("crm_lookup", ARGS), n_redis)})
            await store.aclose()
            return found["x"]

        ared = asyncio.run(async_part())
        raw.close()
        store.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)

    print(f"agent_guard Redis store overhead, loopback redis-server ({sys.version.split()[0]})")
    print(f"  {'bare tool call (3 args)':<52} {bare:>9.2f} µs")
    print(f"  {'guard.decide, InMemoryGrantStore':<52} {mem:>9.2f} µs  (+{mem - bare:.2f} over bare)")
    print(f"  {'redis PING round trip (reference)':<52} {ping:>9.2f} µs")
    print(f"  {'guard.decide, RedisGrantStore (sync)':<52} {red:>9.2f} µs  (+{red - bare:.2f} over bare)")
    print(f"  {'guard.adecide, RedisGrantStore (redis.asyncio)':<52} {ared:>9.2f} µs")
    print(f"  ratio Redis/in-memory decide: {red / mem:.1f}x; Redis decide / PING: {red / ping:.2f}x")
    print(f"  client round trips per decision: {len(sent) / calls:.2f} ({', '.join(sorted(set(map(str, sent))))}); "
          f"inside the script, per decision: {inside}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
