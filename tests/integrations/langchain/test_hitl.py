"""LangChain's HumanInTheLoopMiddleware with the guard, in both orders: the call decided is the call that runs.

A reviewer's edit replaces the model's call at execution time (HITL's ``wrap_tool_call``). The
guard decides inside the tool run, on what the tool's function receives, so whatever the order of
the two middlewares, an edit outside the plan never runs and the decision span records the edited
call. An edit that redirects the call to another tool -- HITL then hands the ToolNode the raw tool
-- is stopped before it runs when HITL is listed after the guard (fail closed).
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from agent_guard_langchain import AgentGuardMiddleware
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain.agents.middleware import HumanInTheLoopMiddleware
from langchain_core.messages import HumanMessage, ToolMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agent_guard import Guard, Plan, Step
from agent_guard import semconv as sc

ALICE = {"to": "alice@example.com", "subject": "Summary", "body": "Hi"}
PLAN = Plan(goal="email Alice", steps=[
    Step("crm_lookup", args={"customer_id": "C-42"}),
    Step("send_email", args={"to": "alice@example.com", "subject": {"any": True}, "body": {"any": True}}),
])


def _agent(policy, spans, support_tools, identity, order: str, script: list[Any]) -> tuple[Any, Any, Guard]:
    guard = Guard(policy, tracer_provider=spans.provider, record_arguments=True)
    mw = AgentGuardMiddleware(guard, planner=PLAN, identity=identity)
    hitl = HumanInTheLoopMiddleware(interrupt_on={"send_email": True, "crm_lookup": True})
    middleware = [mw, hitl] if order == "guard-first" else [hitl, mw]
    agent = create_agent(ScriptedChatModel(script), support_tools, middleware=middleware, checkpointer=InMemorySaver())
    return agent, mw, guard


def _decided(spans) -> list[tuple[str, str, dict[str, Any]]]:
    return [(s.attributes[sc.TOOL_CALL_ID], s.attributes[sc.DECISION_OUTCOME],
             json.loads(str(s.attributes[sc.TOOL_CALL_ARGUMENTS]))) for s in spans.named("execute_tool")]


@pytest.fixture(params=["guard-first", "hitl-first"])
def order(request: pytest.FixtureRequest) -> str:
    """AgentGuardMiddleware listed before or after HumanInTheLoopMiddleware."""
    return str(request.param)


async def _review(agent, decision: dict[str, Any], run, mode: str, thread: str) -> dict[str, Any]:
    config = {"configurable": {"thread_id": thread}}
    first = await run(agent, {"messages": [HumanMessage("Email Alice her summary")]}, mode, config)
    (intr,) = first["__interrupt__"]
    assert [a["name"] for a in intr.value["action_requests"]] == ["send_email"]
    return await run(agent, Command(resume={"decisions": [decision]}), mode, config)


async def test_accept_runs_the_planned_call(order, policy, spans, support_tools, identity, calls_seen, run, mode):
    """Approved as the model wrote it: decided and run once; the span records that call."""
    agent, mw, _ = _agent(policy, spans, support_tools, identity, order,
                          [calls(tool_call("send_email", ALICE, "e1")), "sent"])
    out = await _review(agent, {"type": "approve"}, run, mode, f"accept-{order}-{mode}")
    assert calls_seen.ran == [("send_email", ALICE)]
    assert _decided(spans) == [("e1", "allow", ALICE)]
    assert out["messages"][-1].content == "sent" and mw.active_runs == 0


async def test_an_edit_outside_the_plan_never_runs(order, policy, spans, support_tools, identity, calls_seen, run,
                                                   mode):
    """The reviewer edits `to` from alice to bob: bob is outside the plan, so the call is refused and never
    runs; the decision span records the call that was decided (bob), not the one the model wrote."""
    bob = {**ALICE, "to": "bob@example.com"}
    agent, mw, _ = _agent(policy, spans, support_tools, identity, order,
                          [calls(tool_call("send_email", ALICE, "e1")), "could not send"])
    edit = {"type": "edit", "edited_action": {"name": "send_email", "args": bob}}
    out = await _review(agent, edit, run, mode, f"edit-out-{order}-{mode}")
    assert calls_seen.ran == []
    (answer,) = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert answer.status == "error" and "argument_mismatch" in answer.content and "'to'" in answer.content
    assert _decided(spans) == [("e1", "deny", bob)]
    (span,) = spans.named("execute_tool")
    assert span.attributes[sc.DECISION_REASON] == "argument_mismatch"
    assert mw.active_runs == 0


async def test_an_edit_inside_the_plan_runs_as_edited(order, policy, spans, support_tools, identity, calls_seen, run,
                                                      mode):
    """An edit the plan allows (a new subject) runs as edited, and the span records the edited call."""
    edited = {**ALICE, "subject": "Your summary"}
    agent, _, _ = _agent(policy, spans, support_tools, identity, order,
                         [calls(tool_call("send_email", ALICE, "e1")), "sent"])
    edit = {"type": "edit", "edited_action": {"name": "send_email", "args": edited}}
    await _review(agent, edit, run, mode, f"edit-in-{order}-{mode}")
    assert calls_seen.ran == [("send_email", edited)]
    assert _decided(spans) == [("e1", "allow", edited)]


async def test_reject_runs_nothing_and_decides_nothing(order, policy, spans, support_tools, identity, calls_seen,
                                                       run, mode):
    """A rejected call never reaches the tools: nothing is decided, no budget is spent."""
    agent, mw, _ = _agent(policy, spans, support_tools, identity, order,
                          [calls(tool_call("send_email", ALICE, "e1")), "ok, not sent"])
    out = await _review(agent, {"type": "reject", "message": "not now"}, run, mode, f"reject-{order}-{mode}")
    assert calls_seen.ran == [] and spans.named("execute_tool") == []
    (answer,) = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert answer.status == "error" and "not now" in answer.content
    assert out["messages"][-1].content == "ok, not sent" and mw.active_runs == 0


async def test_an_edit_that_redirects_to_another_tool_fails_closed(policy, spans, support_tools, identity, calls_seen,
                                                                   run, mode):
    """HITL listed after the guard: an edit naming another tool makes HITL hand the ToolNode the raw tool.
    That tool never runs (stopped before its function, refused no_grant, recorded); listed before the guard,
    the redirected call is decided like any other (refund is not in the plan: tool_not_in_scope)."""
    redirect = {"type": "edit", "edited_action": {"name": "refund", "args": {"order_id": "O-1", "amount": 5}}}
    agent, _, _ = _agent(policy, spans, support_tools, identity, "guard-first",
                         [calls(tool_call("send_email", ALICE, "e1")), "done"])
    out = await _review(agent, redirect, run, mode, f"redirect-a-{mode}")
    assert calls_seen.ran == []
    (answer,) = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert answer.status == "error" and "no_grant" in answer.content and "replaced request.tool" in answer.content
    assert [(r["call_id"], r["outcome"], r["reason"]) for r in spans.decisions()] == [("e1", "deny", "no_grant")]

    spans.clear()
    agent, _, _ = _agent(policy, spans, support_tools, identity, "hitl-first",
                         [calls(tool_call("send_email", ALICE, "e2")), "done"])
    out = await _review(agent, redirect, run, mode, f"redirect-b-{mode}")
    assert calls_seen.ran == []
    assert [(r["call_id"], r["tool"], r["reason"]) for r in spans.decisions()] == [
        ("e2", "refund", "tool_not_in_scope")]
