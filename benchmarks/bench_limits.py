"""Decision cost with limits over time and money, next to the plain decision (``make bench`` runs it).

Run: ``.venv/bin/python benchmarks/bench_limits.py``. Prints median µs per decision, in memory and
on a loopback ``redis-server`` it starts (and stops), of: the plain decision (a step without
limits) and the same decision with two limits on its capability (a running total per user per
day and a rate per agent per minute). Counts the client's commands per limited decision on Redis
(one ``EVALSHA``: the step budget and both limits in one script). Goal: in memory, a limited
decision ≤ 2x the plain one; the plain decision as fast as before limits existed (compare the
"decision, allowed, inside guard.use" line of bench_core.py's lifecycle section). Never asserts on timing.
"""

from __future__ import annotations

import contextvars
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _scenario import ARGS, ME, PLAN, POLICY
from _timing import compare, row
from bench_redis import start_redis

from agent_guard import AgentIdentity, Capability, Guard, KeySet, Limit, Plan, Policy, Step
from agent_guard.stores import RedisGrantStore

TRANSFER_ARGS = {"amount": 1, "to": "acct-7", "memo": "rent"}
SPECS = {"amount": {"min": 0, "max": 10_000}, "to": {"prefix": "acct-"}, "memo": {"max_len": 200}}
LIMITS = [Limit(sum_of="amount", max=2**53, per="user", window_s=86400),
          Limit(calls=1_000_000_000, per="agent", window_s=60)]
STEP = Step("transfer", args={"amount": {"any": True}, "to": {"any": True}, "memo": {"any": True}},
            max_calls=1_000_000)
BANK = AgentIdentity(agent_id="bank", user_id="u-1")


def policy(limited: bool) -> Policy:
    """A 3-argument transfer tool, with or without the two limits."""
    return Policy(agent_id="bank", capabilities=[Capability("transfer", args=SPECS, limits=LIMITS if limited else [])])


def in_task(guard: Guard, plan: Plan, identity: AgentIdentity) -> contextvars.Context:
    """A context in which a task of ``plan`` is current (left open for the benchmark)."""
    ctx = contextvars.copy_context()
    ctx.run(guard.task(plan, identity=identity, ttl_s=900).__enter__)
    return ctx


def main() -> int:
    """Measure and print."""
    plan = Plan(steps=[STEP])
    plain_guard, limited_guard, email_guard = Guard(policy(False)), Guard(policy(True)), Guard(POLICY)
    plain, limited, email = in_task(plain_guard, plan, BANK), in_task(limited_guard, plan, BANK), in_task(
        email_guard, PLAN, ME)
    assert limited.run(limited_guard.decide, "transfer", TRANSFER_ARGS).allowed
    mem = compare({
        "email": (lambda: email.run(email_guard.decide, "send_email", ARGS), 5000),
        "plain": (lambda: plain.run(plain_guard.decide, "transfer", TRANSFER_ARGS), 5000),
        "limited": (lambda: limited.run(limited_guard.decide, "transfer", TRANSFER_ARGS), 5000),
    })

    proc, url, data = start_redis()
    try:
        keys = KeySet.generate()
        stores = {name: RedisGrantStore(url) for name in ("plain", "limited")}
        guards = {"plain": Guard(policy(False), keys=keys, store=stores["plain"]),
                  "limited": Guard(policy(True), keys=keys, store=stores["limited"])}
        ctxs = {name: in_task(g, plan, BANK) for name, g in guards.items()}
        for name, g in guards.items():
            assert ctxs[name].run(g.decide, "transfer", TRANSFER_ARGS).allowed  # loads the script
        client = stores["limited"]._client
        sent: list[object] = []
        original = client.execute_command
        client.execute_command = lambda *a, **k: (sent.append(a[0]), original(*a, **k))[1]  # type: ignore[method-assign]
        calls = 1000
        for _ in range(calls):
            assert ctxs["limited"].run(guards["limited"].decide, "transfer", TRANSFER_ARGS).allowed
        client.execute_command = original  # type: ignore[method-assign]
        red = compare({name: (lambda n=name: ctxs[n].run(guards[n].decide, "transfer", TRANSFER_ARGS), 500)
                       for name in guards})
        for store in stores.values():
            store.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        shutil.rmtree(data, ignore_errors=True)

    print(f"agent_guard limits: decision cost (median µs, interleaved rounds; {sys.version.split()[0]})")
    print(row("plain decision, send_email scenario (bench_core's lifecycle line)", mem["email"]))
    print(row("in memory: transfer, no limits", mem["plain"]))
    print(row("in memory: transfer, 2 limits (sum/user/day, calls/agent/min)", mem["limited"],
              note=f"{mem['limited'] / mem['plain']:.2f}x plain (goal ≤ 2x)"))
    print(row("Redis: transfer, no limits", red["plain"]))
    print(row("Redis: transfer, 2 limits", red["limited"], note=f"{red['limited'] / red['plain']:.2f}x plain"))
    print(f"  Redis client commands per limited decision: {len(sent) / calls:.2f} "
          f"({', '.join(sorted(set(map(str, sent))))}; goal: one EVALSHA)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
