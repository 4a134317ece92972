"""LangChain adapter overhead: guarded / unguarded ``tool.invoke``, and the middleware in a create_agent loop.

Run: ``.venv/bin/python benchmarks/bench_langchain.py``. Prints medians (µs) and ratios; asserts nothing.
Target (DESIGN.md): guarded LangChain tool ``invoke`` / unguarded <= 1.10.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_guard_langchain import AgentGuardMiddleware, GuardedTool
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolCall
from langchain_core.tools import tool
from langgraph.prebuilt.tool_node import ToolCallRequest

from agent_guard import Guard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scenario import ARGS, ME, PLAN, POLICY, sdk_provider
from _scenario import send_email as _send_email

REPEATS = 25
LOOPS = 300


send_email = tool(_send_email)


def _loop_us(fn: Callable[[], Any], loops: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(loops):
        fn()
    return (time.perf_counter_ns() - start) / loops / 1000


def paired_us(bare: Callable[[], Any], guarded: Callable[[], Any], loops: int = LOOPS,
              repeats: int = REPEATS) -> tuple[float, float, float]:
    """Best-of-repeats µs per call of each and their ratio (interleaved, so drift hits both alike).

    The best repeat is the least disturbed by other processes (as ``timeit`` recommends); the
    medians are printed too, since a shared machine makes single figures noisy.
    """
    for fn in (bare, guarded):
        _loop_us(fn, 200)
    b_s, g_s, ratios = [], [], []
    for _ in range(repeats):
        b, g = _loop_us(bare, loops), _loop_us(guarded, loops)
        b_s.append(b)
        g_s.append(g)
        ratios.append(g / b)
    print(f"    (medians: bare {statistics.median(b_s):.1f} µs, guarded {statistics.median(g_s):.1f} µs, "
          f"median ratio {statistics.median(ratios):.3f})")
    return min(b_s), min(g_s), min(g_s) / min(b_s)


def bench_invoke() -> None:
    """Guarded vs bare ``tool.invoke`` with a ToolCall dict and with plain args."""
    sdk = sdk_provider()
    guards = {"no SDK (no-op tracer)": Guard(POLICY), "SDK + batch processor": Guard(POLICY, tracer_provider=sdk)}
    counter = iter(range(10**9))

    def as_call() -> dict[str, Any]:
        return {"type": "tool_call", "name": "send_email", "args": dict(ARGS), "id": f"c{next(counter)}"}

    print(f"{'input':<10} {'tracing':<24} {'bare µs':>9} {'guarded µs':>11} {'ratio':>7} {'Δ µs':>7}")
    for label, make in (("ToolCall", as_call), ("args", lambda: dict(ARGS))):
        for tracing, guard in guards.items():
            wrapped = GuardedTool(send_email, guard)
            with guard.task(PLAN, identity=ME):
                bare, guarded, ratio = paired_us(lambda make=make: send_email.invoke(make()),
                                                 lambda make=make, wrapped=wrapped: wrapped.invoke(make()))
            print(f"{label:<10} {tracing:<24} {bare:>9.1f} {guarded:>11.1f} {ratio:>7.3f} {guarded - bare:>7.1f}")
    sdk.shutdown()


def bench_agent_loop(tool_calls: int = 40, runs: int = 15) -> None:
    """A whole create_agent loop with and without the middleware (interleaved pairs of runs).

    Includes the per-run costs (plan, mint, revoke, the before/after_agent nodes) and the per-call
    ``wrap_tool_call``. The loop itself costs ~2 ms per tool call, so this figure is noisy on a
    busy machine; :func:`bench_wrap_tool_call` isolates the per-call cost.
    """
    guard = Guard(POLICY)
    mw = AgentGuardMiddleware(guard, planner=PLAN, identity=ME)

    def once(middleware: list[AgentGuardMiddleware]) -> float:
        script: list[Any] = [calls(tool_call("send_email", ARGS, f"c{i}")) for i in range(tool_calls)]
        agent = create_agent(ScriptedChatModel([*script, "done"]), [send_email], middleware=middleware)
        start = time.perf_counter_ns()
        agent.invoke({"messages": [("user", "go")]})
        return (time.perf_counter_ns() - start) / 1000

    for _ in range(3):  # warm-up: the first runs of each configuration are much slower
        once([])
        once([mw])
    pairs = [(once([]), once([mw])) for _ in range(runs)]
    bare = statistics.median(p[0] for p in pairs)
    guarded = statistics.median(p[1] for p in pairs)
    ratio = statistics.median(g / b for b, g in pairs)
    print(f"create_agent loop, {tool_calls} tool calls/run (median of {runs} interleaved pairs): "
          f"unguarded {bare / 1000:.2f} ms, guarded {guarded / 1000:.2f} ms, ratio {ratio:.3f}, "
          f"Δ per tool call {(guarded - bare) / tool_calls:.0f} µs")


def bench_wrap_tool_call() -> None:
    """The middleware's own cost per tool call: ``wrap_tool_call`` around a real tool execution."""
    guard = Guard(POLICY)
    mw = AgentGuardMiddleware(guard, planner=PLAN, identity=ME)

    class _Info:
        thread_id = None

    class _Runtime:
        execution_info = _Info()
        context = None

    state = {"messages": [HumanMessage("go")]}
    state.update(mw.before_agent(state, _Runtime()) or {})  # type: ignore[arg-type]
    request = ToolCallRequest(tool_call=ToolCall(name="send_email", args=dict(ARGS), id="c1", type="tool_call"),
                              tool=send_email, state=state, runtime=_Runtime())  # type: ignore[arg-type]

    def handler(req: ToolCallRequest) -> Any:
        return send_email.invoke(req.tool_call)

    bare, guarded, ratio = paired_us(lambda: handler(request), lambda: mw.wrap_tool_call(request, handler))
    print(f"wrap_tool_call around tool.invoke(ToolCall): bare {bare:.1f} µs  guarded {guarded:.1f} µs  "
          f"ratio {ratio:.3f}  Δ {guarded - bare:.1f} µs per tool call (no SDK)")


if __name__ == "__main__":
    bench_invoke()
    print()
    bench_wrap_tool_call()
    print()
    bench_agent_loop()
