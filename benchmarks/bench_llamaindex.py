"""LlamaIndex adapter overhead: guarded / unguarded ``tool.call`` and ``await tool.acall``.

Run: ``.venv/bin/python benchmarks/bench_llamaindex.py``. Prints medians (µs per call) and ratios;
asserts nothing. Each guarded call is one decision, one budget unit and one ``execute_tool`` span,
measured with the no-op tracer and with the OpenTelemetry SDK (batch processor, discarding exporter).
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from agent_guard_llamaindex import guard_tools
from llama_index.core.tools import FunctionTool

from agent_guard import Guard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scenario import ARGS, ME, PLAN, POLICY, sdk_provider, send_email
from _timing import acompare, compare

ROUNDS = 15


async def asend_email(to: str, subject: str, body: str) -> str:
    """Send an email, async (does nothing)."""
    return "sent"


def _tools() -> dict[str, FunctionTool]:
    return {
        "sync fn": FunctionTool.from_defaults(send_email),
        "async fn": FunctionTool.from_defaults(async_fn=asend_email, name="send_email"),
    }


def _guards() -> dict[str, Guard]:
    return {"no-op tracer": Guard(POLICY), "SDK + batch": Guard(POLICY, tracer_provider=sdk_provider())}


def _report(title: str, pairs: dict[str, dict[str, float]]) -> None:
    print(f"\n{title}")
    print(f"  {'tracing':<16} {'bare µs':>9} {'guarded µs':>11} {'ratio':>7} {'Δ µs':>8}")
    for label, r in pairs.items():
        bare, guarded = r["bare"], r["guarded"]
        print(f"  {label:<16} {bare:>9.2f} {guarded:>11.2f} {guarded / bare:>7.3f} {guarded - bare:>8.2f}")


def bench_call() -> None:
    """Sync ``tool.call`` in a task: bare vs guarded (same interleaved rounds), no-op tracer vs SDK."""
    tool = _tools()["sync fn"]
    pairs: dict[str, dict[str, float]] = {}
    for label, g in _guards().items():
        gt = guard_tools([tool], g)[0]
        with g.task(PLAN, identity=ME, ttl_s=900):
            pairs[label] = compare({"bare": (lambda: tool.call(**ARGS), 2000),
                                    "guarded": (lambda gt=gt: gt.call(**ARGS), 2000)}, rounds=ROUNDS)
    _report("tool.call(**args)  [sync fn]", pairs)


async def _bench_acall(kind: str, number: int) -> dict[str, dict[str, float]]:
    tool = _tools()[kind]
    pairs: dict[str, dict[str, float]] = {}
    for label, g in _guards().items():
        gt = guard_tools([tool], g)[0]
        async with g.task(PLAN, identity=ME, ttl_s=900):
            pairs[label] = await acompare(
                {"bare": (lambda: tool.acall(**ARGS), number), "guarded": (lambda gt=gt: gt.acall(**ARGS), number)},
                rounds=ROUNDS,
            )
    return pairs


def main() -> None:
    """Run every case and print the table."""
    started = time.perf_counter()
    bench_call()
    _report("await tool.acall(**args)  [async fn]", asyncio.run(_bench_acall("async fn", 2000)))
    _report("await tool.acall(**args)  [sync fn: LlamaIndex runs it in the default executor]",
            asyncio.run(_bench_acall("sync fn", 300)))
    print(f"\n(total {time.perf_counter() - started:.1f} s; medians of {ROUNDS} interleaved rounds)")


if __name__ == "__main__":
    main()
