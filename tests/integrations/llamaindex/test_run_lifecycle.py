"""guarded_run lifecycle: hard stop in raise mode, early exit, failing runs and rejected plans."""

from __future__ import annotations

import asyncio

import pytest
from agent_guard_llamaindex import guard_tools, guarded_run
from agent_guard_llamaindex.testing import ScriptExhausted, scripted_llm, tool_call, tool_calls
from llama_index.core.agent.workflow import FunctionAgent, ToolCallResult
from workflows.events import WorkflowCancelledEvent

from agent_guard import Plan, PlanRejected, Step, ToolCallDenied, reasons
from agent_guard import semconv as sc


def _violating_script():
    return scripted_llm(
        tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"}, id="c1")),
        tool_calls(tool_call("delete_db", {"name": "prod"}, id="c2")),
        tool_calls(tool_call("send_email", {"to": "alice@example.com", "subject": "s", "body": "b"}, id="c3")),
        "done",
    )


async def test_raise_mode_stops_the_run_without_streaming(raw_tools, guard, plan, identity, ledger, spans):
    """A violation in raise mode ends the run at once: no further model turn, ToolCallDenied raised."""
    llm = _violating_script()
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard, on_violation="raise"), llm=llm)
    run = guarded_run(agent, "Email Alice", guard=guard, planner=plan, identity=identity)
    with pytest.raises(ToolCallDenied) as info:
        await asyncio.wait_for(run, timeout=20)
    assert info.value.reason == reasons.TOOL_NOT_IN_SCOPE and info.value.tool == "delete_db"
    assert run.violation is not None and run.violation.reason == reasons.TOOL_NOT_IN_SCOPE
    assert ledger.names() == ["crm_lookup"]
    assert len(llm.seen) == 2 and llm.remaining == 2
    assert run.task.revoked and run.task.revocation_reason == "task_exit"
    denied = [s for s in spans.named("execute_tool") if s.attributes[sc.DECISION_OUTCOME] == "deny"]
    assert [s.attributes[sc.TOOL_CALL_ID] for s in denied] == ["c2"]


async def test_raise_mode_stops_the_run_while_streaming(raw_tools, guard, plan, identity, ledger):
    """With stream_events() the stream ends (no hang) and awaiting the run raises ToolCallDenied."""
    llm = _violating_script()
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard, on_violation="raise"), llm=llm)
    seen = []

    async def consume():
        async with guarded_run(agent, "Email Alice", guard=guard, planner=plan, identity=identity) as run:
            async for event in run.stream_events():
                seen.append(event)
            with pytest.raises(ToolCallDenied):
                await run
        return run

    run = await asyncio.wait_for(consume(), timeout=20)
    assert isinstance(seen[-1], WorkflowCancelledEvent)
    results = [e for e in seen if isinstance(e, ToolCallResult)]
    assert [r.tool_id for r in results] == ["c1", "c2"] and results[1].tool_output.is_error
    assert ledger.names() == ["crm_lookup"] and len(llm.seen) == 2
    assert run.task.revoked


async def test_unretrieved_violation_is_raised_when_leaving_the_block(raw_tools, guard, plan, identity, ledger):
    """A hard stop is not silently dropped: leaving `async with` without awaiting the run raises it."""
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard, on_violation="raise"), llm=_violating_script())
    with pytest.raises(ToolCallDenied):
        async with guarded_run(agent, "Email Alice", guard=guard, planner=plan, identity=identity) as run:
            async for _ in run.stream_events():
                pass
    assert run.task.revoked and ledger.names() == ["crm_lookup"]


async def test_consumer_leaving_early_cancels_the_run_and_revokes(raw_tools, guard, plan, identity, ledger):
    """Breaking out of the stream inside `async with` cancels the run and revokes the grant."""
    llm = _violating_script()
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=llm)
    async with guarded_run(agent, "Email Alice", guard=guard, planner=plan, identity=identity) as run:
        async for event in run.stream_events():
            if isinstance(event, ToolCallResult):
                break
    assert run.handler.is_done()
    assert run.task.revoked and run.task.revocation_reason == "task_exit"
    assert ledger.names() == ["crm_lookup"] and llm.remaining >= 2
    out = await agent.tools[0].acall(customer_id="C-42")
    assert out.is_error and reasons.NO_GRANT in out.content


async def test_body_error_stops_the_run_and_revokes(raw_tools, guard, plan, identity):
    """An exception in the `async with` body propagates; the run is cancelled and revoked."""
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=_violating_script())
    with pytest.raises(KeyError):
        async with guarded_run(agent, "Email Alice", guard=guard, planner=plan, identity=identity) as run:
            raise KeyError("consumer failed")
    assert run.task.revoked and run.handler.is_done()


async def test_failing_run_raises_and_revokes(raw_tools, guard, plan, identity, ledger):
    """When the agent run itself fails (the model errors), the error surfaces and the grant is revoked."""
    llm = scripted_llm(tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"}, id="c1")))
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=llm)
    run = guarded_run(agent, "Email Alice", guard=guard, planner=plan, identity=identity)
    with pytest.raises(ScriptExhausted):
        await asyncio.wait_for(run, timeout=20)
    assert run.task.revoked and ledger.names() == ["crm_lookup"]


async def test_rejected_plan_runs_nothing(raw_tools, guard, identity, ledger, spans):
    """A plan beyond the ceiling raises PlanRejected before the agent starts."""
    llm = _violating_script()
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=llm)
    too_much = Plan(goal="x", steps=[Step("crm_lookup", args={"customer_id": "X-1"})])
    run = guarded_run(agent, "Look up X-1", guard=guard, planner=too_much, identity=identity)
    with pytest.raises(PlanRejected) as info:
        await run
    assert info.value.reason == reasons.PLAN_EXCEEDS_POLICY
    assert llm.seen == [] and ledger.ran == [] and run.task is None and run.handler is None
    with pytest.raises(PlanRejected):
        async with guarded_run(agent, "Look up X-1", guard=guard, planner=too_much, identity=identity):
            pass
    assert spans.named("execute_tool") == []


async def test_stream_events_without_async_with(raw_tools, guard, plan, identity, ledger):
    """Streaming a run that is not entered with `async with` still revokes when it ends."""
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=scripted_llm(
        tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"})), "done"))
    run = guarded_run(agent, "Look up C-42", guard=guard, planner=plan, identity=identity)
    names = [type(e).__name__ async for e in run.stream_events()]
    assert "ToolCallResult" in names and names[-1] == "StopEvent"
    assert str(await run) == "done"
    assert run.task.revoked and ledger.names() == ["crm_lookup"]


async def test_chat_message_and_run_kwargs(raw_tools, guard, identity, ledger):
    """A ChatMessage request reaches a callable planner as text; run kwargs reach agent.run."""
    from llama_index.core.llms import ChatMessage
    from workflows.errors import WorkflowRuntimeError

    seen = []

    def planner(text, tools):
        seen.append(text)
        return Plan(goal="lookup", steps=[Step("crm_lookup", args={"customer_id": "C-42"}, max_calls=5)])

    llm = scripted_llm(*[tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"}))] * 5)
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=llm)
    run = guarded_run(agent, ChatMessage(role="user", content="Look up C-42"), guard=guard, planner=planner,
                      identity=identity, max_iterations=2)
    with pytest.raises(WorkflowRuntimeError, match="Max iterations of 2"):
        await run
    assert seen == ["Look up C-42"]
    assert ledger.names() == ["crm_lookup"] and run.task.revoked


async def test_tool_retriever_is_refused(raw_tools, guard, plan, identity):
    """An agent with a tool_retriever cannot be checked, so guarded_run refuses it."""
    from llama_index.core.objects import ObjectRetriever

    from agent_guard import ConfigError

    class Retriever(ObjectRetriever):
        def __init__(self):
            pass

    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=scripted_llm("x"), tool_retriever=Retriever())
    with pytest.raises(ConfigError, match="tool_retriever"):
        guarded_run(agent, "hi", guard=guard, planner=plan, identity=identity)


async def test_breaking_out_of_a_bare_stream_stops_the_run(raw_tools, guard, plan, identity, ledger):
    """Leaving `async for run.stream_events()` early (no `async with`) closes the stream: run stopped, revoked."""
    llm = _violating_script()
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=llm)
    run = guarded_run(agent, "Email Alice", guard=guard, planner=plan, identity=identity)
    stream = run.stream_events()
    async for event in stream:
        if isinstance(event, ToolCallResult):
            break
    await stream.aclose()  # what the event loop's async-generator finaliser does for a dropped stream
    assert run.handler.is_done() and run.task.revoked
    assert ledger.names() == ["crm_lookup"] and llm.remaining >= 2


def _lookup_run(raw_tools, guard, plan, identity):
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=scripted_llm(
        tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"})), "done"))
    return guarded_run(agent, "Look up C-42", guard=guard, planner=plan, identity=identity)


def test_asyncio_run_accepts_a_guarded_run(raw_tools, guard, plan, identity, ledger):
    """asyncio.run(guarded_run(...)) runs the agent and returns its result (no 'a coroutine was expected')."""
    run = _lookup_run(raw_tools, guard, plan, identity)
    assert asyncio.iscoroutine(run)
    result = asyncio.run(run)
    assert str(result) == "done"
    assert ledger.names() == ["crm_lookup"] and run.task.revoked and run.task.revocation_reason == "task_exit"


def test_asyncio_run_raises_what_the_run_raises(raw_tools, guard, identity, ledger):
    """A rejected plan surfaces from asyncio.run as PlanRejected, before anything ran."""
    too_much = Plan(goal="x", steps=[Step("crm_lookup", args={"customer_id": "X-1"})])
    run = _lookup_run(raw_tools, guard, too_much, identity)
    with pytest.raises(PlanRejected):
        asyncio.run(run)
    assert ledger.ran == [] and run.task is None


async def test_create_task_gather_and_await_again(raw_tools, guard, plan, identity):
    """create_task and gather take a GuardedRun directly; awaiting a finished run returns its result again."""
    first = _lookup_run(raw_tools, guard, plan, identity)
    task = asyncio.create_task(first)
    second, third = _lookup_run(raw_tools, guard, plan, identity), _lookup_run(raw_tools, guard, plan, identity)
    results = await asyncio.gather(task, second, third)
    assert [str(r) for r in results] == ["done"] * 3
    assert str(await first) == "done"
    assert first.task.revoked and second.task.revoked and third.task.revoked


async def test_cancelling_the_task_driving_a_run_stops_and_revokes_it(guard, plan, identity):
    """Cancelling the asyncio task that drives a GuardedRun (coroutine protocol: throw) stops the run."""
    from llama_index.core.tools import FunctionTool

    started, finished = asyncio.Event(), []

    async def slow_lookup(customer_id: str) -> str:
        """Look a customer up, slowly."""
        started.set()
        await asyncio.sleep(60)
        finished.append(customer_id)
        return "never"

    tools = guard_tools([FunctionTool.from_defaults(slow_lookup, name="crm_lookup")], guard)
    agent = FunctionAgent(tools=tools, llm=scripted_llm(tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"})),
                                                         "done"))
    run = guarded_run(agent, "Look up C-42", guard=guard, planner=plan, identity=identity)
    driver = asyncio.create_task(run)
    await asyncio.wait_for(started.wait(), timeout=20)
    driver.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(driver, timeout=20)
    assert run.handler.is_done() and run.task.revoked and finished == []
