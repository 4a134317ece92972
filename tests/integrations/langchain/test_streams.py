"""Runs that stop without finishing: an abandoned or cancelled stream ends its grant and its span at once.

``mw.watch(agent)`` binds a callback handler to the compiled agent; LangGraph reports the end of
every graph run to it (``on_chain_error(GeneratorExit)`` when a stream is closed early,
``CancelledError`` when cancelled, ``on_chain_end`` when paused or finished).
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
from pathlib import Path
from typing import Any

import pytest
from agent_guard_langchain import AgentGuardMiddleware
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command, interrupt

from agent_guard import Guard

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import _resume_scenario as sc  # noqa: E402


def _script() -> list[Any]:
    return [calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")),
            calls(tool_call("send_email", sc.EMAIL, "e1")), "done"]


def _watched(guard: Guard, ran: list[Any], watch: bool = True) -> tuple[Any, AgentGuardMiddleware]:
    mw = AgentGuardMiddleware(guard, planner=sc.PLAN, identity=sc.ME)
    agent = create_agent(ScriptedChatModel(_script()), sc.make_tools(ran), middleware=[mw])
    return (mw.watch(agent) if watch else agent), mw


def _only_task(spans) -> tuple[Any, Any]:
    (span,) = spans.named("invoke_agent")
    return span, span.attributes


async def test_a_stream_abandoned_after_the_first_tool_call_ends_its_grant(spans, mode):
    """Break out of stream/astream after the first tool call: no live grant, no open span, at once."""
    guard = Guard(sc.POLICY, tracer_provider=spans.provider)
    ran: list[Any] = []
    agent, mw = _watched(guard, ran)
    payload = {"messages": [HumanMessage(sc.REQUEST)]}
    if mode == "sync":
        def consume() -> None:
            for chunk in agent.stream(payload, stream_mode="updates"):
                if "tools" in chunk:
                    break  # the client went away
        await asyncio.to_thread(consume)
    else:
        async with contextlib.aclosing(agent.astream(payload, stream_mode="updates")) as stream:
            async for chunk in stream:
                if "tools" in chunk:
                    break
    assert ran == [("crm_lookup", {"customer_id": "C-42"})]
    assert mw.active_runs == 0
    (task_id,) = {r["task"] for r in spans.decisions()}
    assert not guard.store.is_active(task_id)
    span, _ = _only_task(spans)  # the invoke_agent span is finished
    revoked = [e for e in span.events if e.name.endswith("revoked")]
    assert revoked and revoked[0].attributes["agent_guard.grant.revocation.reason"] == "abandoned"


async def test_without_watch_an_abandoned_stream_keeps_its_grant_until_expiry(spans):
    """The contrast: without the watcher nothing learns that the stream was abandoned (until the TTL sweep)."""
    guard = Guard(sc.POLICY, tracer_provider=spans.provider)
    agent, mw = _watched(guard, [], watch=False)
    for chunk in agent.stream({"messages": [HumanMessage(sc.REQUEST)]}, stream_mode="updates"):
        if "tools" in chunk:
            break
    assert mw.active_runs == 1 and spans.named("invoke_agent") == []
    assert mw.close() == 1 and mw.active_runs == 0


async def test_a_cancelled_run_ends_its_grant(spans):
    """Cancelling ainvoke while a tool runs revokes the grant (reason cancelled) and ends the span."""
    guard = Guard(sc.POLICY, tracer_provider=spans.provider)
    started = asyncio.Event()

    @tool
    async def crm_lookup(customer_id: str) -> str:
        """Look a customer up (slowly)."""
        started.set()
        await asyncio.sleep(30)
        return "never"

    mw = AgentGuardMiddleware(guard, planner=sc.PLAN, identity=sc.ME)
    agent = mw.watch(create_agent(ScriptedChatModel(_script()), [crm_lookup], middleware=[mw]))
    running = asyncio.ensure_future(agent.ainvoke({"messages": [HumanMessage(sc.REQUEST)]}))
    await asyncio.wait_for(started.wait(), 10)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert mw.active_runs == 0
    span, _ = _only_task(spans)
    reasons = [e.attributes["agent_guard.grant.revocation.reason"] for e in span.events if e.name.endswith("revoked")]
    assert reasons == ["cancelled"]


async def test_a_paused_run_ends_its_span_and_keeps_its_budget(spans, run, mode):
    """A graph paused by interrupt() (HITL) ends the span at once; its grant stays live for the resume,
    which continues with exactly the budget left (a successor grant) and then closes everything."""
    guard = Guard(sc.POLICY, tracer_provider=spans.provider)
    saver = InMemorySaver()
    ran: list[Any] = []
    agent, mw = sc.build(guard, saver, sc.before_pause(), ran, watch=True)
    config = {"configurable": {"thread_id": f"watched-pause-{mode}"}}
    first = await run(agent, {"messages": [HumanMessage(sc.REQUEST)]}, mode, config)
    assert "__interrupt__" in first
    span, _ = _only_task(spans)  # ended at the pause, not revoked
    assert not [e for e in span.events if e.name.endswith("revoked")]
    (task_id,) = {r["task"] for r in spans.decisions()}
    assert guard.store.is_active(task_id) and mw.active_runs == 0  # released: live in the store only
    ran.clear()
    agent, mw = sc.build(guard, saver, sc.after_pause(), ran, planner=sc.no_planner, watch=True)
    out = await run(agent, Command(resume=sc.APPROVE), mode, config)
    assert ran == [("send_email", sc.EMAIL)] and sc.outcome(out["messages"])["answers"] == sc.EXPECTED
    assert not guard.store.is_active(task_id) and mw.active_runs == 0
    assert len(spans.named("invoke_agent")) == 2 and all(s.end_time for s in spans.named("invoke_agent"))


async def test_an_interrupt_inside_a_tool_is_a_pause_not_an_abandon(spans, run, mode):
    """A tool that calls interrupt() pauses the graph: the watched run releases its span, keeps its grant,
    and the resumed call is not decided (or charged) a second time."""
    guard = Guard(sc.POLICY, tracer_provider=spans.provider)
    answers: list[str] = []

    @tool
    def crm_lookup(customer_id: str) -> str:
        """Look a customer up after a human confirms."""
        answers.append(interrupt({"confirm": customer_id}))
        return "Alice"

    mw = AgentGuardMiddleware(guard, planner=sc.PLAN, identity=sc.ME)
    saver = InMemorySaver()
    agent = mw.watch(create_agent(ScriptedChatModel([*_script()[:1], "done"]), [crm_lookup], middleware=[mw],
                                  checkpointer=saver))
    config = {"configurable": {"thread_id": f"tool-pause-{mode}"}}
    first = await run(agent, {"messages": [HumanMessage(sc.REQUEST)]}, mode, config)
    assert first["__interrupt__"][0].value == {"confirm": "C-42"}
    assert mw.active_runs == 0 and len(spans.named("invoke_agent")) == 1
    out = await run(agent, Command(resume="yes"), mode, config)
    assert answers == ["yes"] and out["messages"][-1].content == "done"
    assert [(r["call_id"], r["outcome"]) for r in spans.decisions()] == [("c1", "allow")]
    assert mw.active_runs == 0 and all(s.end_time for s in spans.named("invoke_agent"))
