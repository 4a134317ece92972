"""Task lifecycle costs: memory per open task, open+close time, cost independent of past work, delegation.

Printed by ``benchmarks/bench_core.py`` (its second section); asserts nothing.
Targets (docs/design.md): memory per open task ≤ 4 KiB plus its token (10,000 concurrent asyncio
tasks, each inside ``guard.task(...)``, net of an idle asyncio task); open+close ≤ 2.5x one Ed25519
sign plus one PyJWT EdDSA verify (measured in the same run); open+close of the 100,000th task in a
row ≤ 1.2x the first's; memory per closed, unexpired task ≤ 200 bytes; decision ≤ 3 µs.
"""

from __future__ import annotations

import asyncio
import gc
import statistics
import sys
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import jwt
from _scenario import ARGS, ME, PLAN, POLICY
from _timing import compare, row

from agent_guard import Guard, Plan, Step

CONCURRENT = 10_000
IN_A_ROW = 100_000


def _net_bytes_per_task(body: Callable[[asyncio.Event], object], count: int) -> float:
    """Traced bytes held per asyncio task while ``count`` of them wait inside ``body``."""

    async def measure() -> float:
        release = asyncio.Event()
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        tasks = [asyncio.create_task(body(release)) for _ in range(count)]  # type: ignore[arg-type]
        for _ in range(3):
            await asyncio.sleep(0)
        gc.collect()
        held = tracemalloc.get_traced_memory()[0] - before
        tracemalloc.stop()
        release.set()
        await asyncio.gather(*tasks)
        return held / count

    return asyncio.run(measure())


def memory_per_open_task(guard: Guard, plan: Plan) -> tuple[float, float, float]:
    """(net bytes per open task, of which the token, idle asyncio task bytes)."""

    async def idle(release: asyncio.Event) -> None:
        await release.wait()

    async def in_task(release: asyncio.Event) -> None:
        async with guard.task(plan, identity=ME):
            await release.wait()

    idle_bytes = _net_bytes_per_task(idle, CONCURRENT)
    open_bytes = _net_bytes_per_task(in_task, CONCURRENT)
    with guard.task(plan, identity=ME) as task:
        token = sys.getsizeof(task.grant)
    return open_bytes - idle_bytes, token, idle_bytes


def memory_per_closed_task(guard: Guard, plan: Plan, count: int = 20_000) -> float:
    """Bytes the store (and guard) still hold per closed, unexpired task."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for _ in range(count):
        guard.close(guard.open(plan, identity=ME))
    gc.collect()
    held = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    return held / count


def open_close_in_a_row(guard: Guard, plan: Plan, total: int) -> tuple[float, float]:
    """Median open+close µs of the first 1,000 tasks and of the last 1,000 of ``total`` in a row."""

    def batch(n: int) -> list[float]:
        out = []
        for _ in range(n):
            start = time.perf_counter()
            guard.close(guard.open(plan, identity=ME))
            out.append((time.perf_counter() - start) * 1e6)
        return out

    first = statistics.median(batch(1000))
    for _ in range((total - 2000) // 1000):
        batch(1000)
    last = statistics.median(batch(1000))
    return first, last


def main() -> None:
    guard = Guard(POLICY)
    key = guard.keys.current
    claims = {"sub": "u", "iat": 0, "exp": 1, "data": "x" * 200}
    token = jwt.encode(claims, key.private, algorithm="EdDSA")
    public = key.public
    ctx_guard = Guard(POLICY)
    task = ctx_guard.open(PLAN, identity=ME)

    def decide() -> object:
        with ctx_guard.use(task):
            return ctx_guard.decide("send_email", ARGS)

    parent = guard.open(PLAN, identity=ME)
    child_plan = Plan(steps=[Step("send_email", args={"to": "alice@example.com", "subject": {"any": True},
                                                      "body": {"any": True}}, max_calls=2)])

    def open_close_child() -> None:
        guard.close(guard.open_delegated(parent, child_plan, agent_id="mailer"))

    r = compare({
        "child": (open_close_child, 200),
        "sign": (lambda: jwt.encode(claims, key.private, algorithm="EdDSA"), 300),
        "verify": (lambda: jwt.decode(token, public, algorithms=["EdDSA"], options={"verify_exp": False}), 300),
        "open_close": (lambda: guard.close(guard.open(PLAN, identity=ME)), 200),
        "decide_in_use": (decide, 2000),
    })
    with ctx_guard.use(task):
        decide_only = compare({"decide": (lambda: ctx_guard.decide("send_email", ARGS), 5000)})["decide"]
    crypto = r["sign"] + r["verify"]
    print("agent_guard task lifecycle (median µs, interleaved rounds)")
    print(row("one Ed25519 sign (PyJWT encode)", r["sign"]))
    print(row("one EdDSA verify (PyJWT decode)", r["verify"]))
    print(row("open + close a task (same plan)", r["open_close"],
              note=f"{r['open_close'] / crypto:.2f}x sign+verify (target ≤ 2.5x)"))
    print(row("open + close a delegated child task (parent's scope, chained budget)", r["child"],
              note=f"{r['child'] / r['open_close']:.2f}x a top-level task"))
    print(row("decision, allowed, inside guard.use (target ≤ 3)", decide_only))
    print(row("decision incl. entering guard.use per call", r["decide_in_use"]))
    first, last = open_close_in_a_row(Guard(POLICY), PLAN, IN_A_ROW)
    print(row("open+close, first 1,000 in a row", first))
    print(row(f"open+close, last 1,000 of {IN_A_ROW:,} in a row", last,
              note=f"{last / first:.2f}x the first (target ≤ 1.2x)"))
    closed = memory_per_closed_task(Guard(POLICY), PLAN)
    print(row("memory per closed, unexpired task (target ≤ 200)", closed, unit="B"))
    per_task, token_bytes, idle = memory_per_open_task(Guard(POLICY), PLAN)
    print(row(f"memory per open task, {CONCURRENT:,} concurrent asyncio tasks, net of idle", per_task, unit="B",
              note=f"token {token_bytes:.0f} B; {per_task - token_bytes:.0f} B besides it (target ≤ 4096); "
                   f"idle asyncio task {idle:.0f} B"))

