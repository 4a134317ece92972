"""LangChain adapter overhead: guarded / unguarded ``tool.invoke``, and the middleware in a create_agent loop.

Run: ``.venv/bin/python benchmarks/bench_langchain.py``. Prints µs per call and ratios; asserts nothing.
Targets: guarded LangChain tool ``invoke`` / unguarded <= 1.10 without a tracing SDK (docs/design.md), and
<= 1.15 with an OpenTelemetry SDK recording every decision as a span (batch processor, an exporter that drops;
issue #14). The unguarded tool is never traced, so the SDK row adds the whole cost of recording the decision.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from agent_guard_langchain import AgentGuardMiddleware, AgentGuardState, GuardedTool
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain.agents.middleware import AgentMiddleware
from langchain_core.messages import HumanMessage, ToolCall
from langchain_core.tools import tool
from langgraph.prebuilt.tool_node import ToolCallRequest

from agent_guard import Guard

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _scenario import ARGS, ME, PLAN, POLICY, sdk_provider
from _scenario import send_email as _send_email
from _timing import asamples, samples

REPEATS = 25
LOOPS = 300


send_email = tool(_send_email)


@tool("send_email")
async def asend_email(to: str, subject: str, body: str) -> str:
    """Send an email (an async tool, so ``ainvoke`` runs no thread-pool hop that would blur the figure)."""
    return "sent"


_LOOP = asyncio.new_event_loop()


def paired_us(bare: Callable[[], Any], guarded: Callable[[], Any], loops: int = LOOPS,
              repeats: int = REPEATS, *, is_async: bool = False) -> tuple[float, float, float, float]:
    """µs per call of each and their ratio, interleaved so that drift hits both alike.

    Returns (best bare, best guarded, best guarded / best bare, median of the per-round ratios).
    The best repeat is the least disturbed by other processes (as ``timeit`` recommends); the
    median ratio is the steadier figure on a shared machine. ``is_async``: the callables return
    awaitables, awaited back to back inside one running event loop.
    """
    cases = {"bare": (bare, loops), "guarded": (guarded, loops)}
    found = _LOOP.run_until_complete(asamples(cases, rounds=repeats)) if is_async else samples(cases, rounds=repeats)
    b_s, g_s = found["bare"], found["guarded"]
    median_ratio = statistics.median(g / b for b, g in zip(b_s, g_s, strict=True))
    return min(b_s), min(g_s), min(g_s) / min(b_s), median_ratio


NO_SDK = "no SDK (no-op tracer)"
SDK = "SDK, every decision a span"


def bench_invoke() -> None:
    """Guarded vs bare ``tool.invoke`` (sync tool) / ``tool.ainvoke`` (async tool), ToolCall dict or plain args.

    Once with no tracing SDK (the API's no-op tracer: no span is built) and once with an SDK
    tracer provider recording every decision span (BatchSpanProcessor, an exporter that drops).
    """
    sdk = sdk_provider()
    guards = {NO_SDK: Guard(POLICY), SDK: Guard(POLICY, tracer_provider=sdk)}
    counter = iter(range(10**9))

    def as_call() -> dict[str, Any]:
        return {"type": "tool_call", "name": "send_email", "args": dict(ARGS), "id": f"c{next(counter)}"}

    print("guarded / unguarded LangChain tool call (best µs of interleaved repeats; ratio of the bests and median "
          "of the per-repeat ratios)")
    print(f"{'method':<8} {'input':<9} {'tracing':<27} {'bare µs':>8} {'guarded µs':>11} {'Δ µs':>6} {'ratio':>6} "
          f"{'median ratio':>13}")
    ratios: dict[str, list[float]] = {tracing: [] for tracing in guards}
    for method in ("invoke", "ainvoke"):
        for label, make in (("ToolCall", as_call), ("args", lambda: dict(ARGS))):
            for tracing, guard in guards.items():
                tool_ = send_email if method == "invoke" else asend_email
                wrapped = GuardedTool(tool_, guard)
                bare_fn = getattr(tool_, method)
                guarded_fn = getattr(wrapped, method)
                with guard.task(PLAN, identity=ME):
                    bare, guarded, ratio, median_ratio = paired_us(lambda make=make, f=bare_fn: f(make()),
                                                                   lambda make=make, f=guarded_fn: f(make()),
                                                                   is_async=method == "ainvoke")
                ratios[tracing].append(median_ratio)
                print(f"{method:<8} {label:<9} {tracing:<27} {bare:>8.1f} {guarded:>11.1f} {guarded - bare:>6.1f} "
                      f"{ratio:>6.3f} {median_ratio:>13.3f}")
    sdk.shutdown()
    print(f"ratio guarded / unguarded, median of the four cases: {NO_SDK}: {statistics.median(ratios[NO_SDK]):.3f} "
          f"(target <= 1.10); {SDK}: {statistics.median(ratios[SDK]):.3f} (target <= 1.15)")


class _Passthrough(AgentMiddleware[AgentGuardState, Any, Any]):
    """A middleware with the same hooks and state field as ours, doing nothing: LangChain's own cost."""

    state_schema = AgentGuardState

    def before_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return None

    def after_agent(self, state: Any, runtime: Any) -> dict[str, Any] | None:
        return None

    def wrap_tool_call(self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Any]) -> Any:
        return handler(request)


def bench_agent_loop(tool_calls: int = 40, runs: int = 15) -> None:
    """A whole create_agent loop: no middleware, a do-nothing middleware, and ours (interleaved runs).

    Includes the per-run costs (plan, mint, revoke, the before/after_agent nodes) and the per-call
    ``wrap_tool_call``. The loop itself costs ~2 ms per tool call, so this figure is noisy on a
    busy machine; :func:`bench_wrap_tool_call` isolates the per-call cost. The do-nothing
    middleware shows what LangChain's middleware machinery costs by itself.
    """
    guard = Guard(POLICY)
    configs: dict[str, list[AgentMiddleware[Any, Any, Any]]] = {
        "none": [], "passthrough": [_Passthrough()],
        "AgentGuardMiddleware": [AgentGuardMiddleware(guard, planner=PLAN, identity=ME)],
    }

    def once(middleware: list[AgentMiddleware[Any, Any, Any]]) -> float:
        script: list[Any] = [calls(tool_call("send_email", ARGS, f"c{i}")) for i in range(tool_calls)]
        agent = create_agent(ScriptedChatModel([*script, "done"]), [send_email], middleware=middleware)
        start = time.perf_counter_ns()
        agent.invoke({"messages": [("user", "go")]})
        return (time.perf_counter_ns() - start) / 1000

    for _ in range(3):  # warm-up: the first runs of each configuration are much slower
        for middleware in configs.values():
            once(middleware)
    rounds = [{name: once(middleware) for name, middleware in configs.items()} for _ in range(runs)]
    ours = statistics.median(r["AgentGuardMiddleware"] for r in rounds)
    print(f"create_agent loop, {tool_calls} tool calls/run (medians of {runs} interleaved rounds):")
    for name in ("none", "passthrough"):
        base = statistics.median(r[name] for r in rounds)
        ratio = statistics.median(r["AgentGuardMiddleware"] / r[name] for r in rounds)
        print(f"  AgentGuardMiddleware {ours / 1000:.2f} ms vs {name} {base / 1000:.2f} ms: ratio {ratio:.3f}, "
              f"Δ per tool call {(ours - base) / tool_calls:.0f} µs")


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
        assert req.tool is not None  # the middleware hands its guarded copy of the tool down: run that one
        return req.tool.invoke(req.tool_call)

    bare, guarded, ratio, _ = paired_us(lambda: handler(request), lambda: mw.wrap_tool_call(request, handler))
    print(f"wrap_tool_call around tool.invoke(ToolCall): bare {bare:.1f} µs  guarded {guarded:.1f} µs  "
          f"ratio {ratio:.3f}  Δ {guarded - bare:.1f} µs per tool call (no SDK)")


if __name__ == "__main__":
    bench_invoke()
    print()
    bench_wrap_tool_call()
    print()
    bench_agent_loop()
