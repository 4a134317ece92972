"""A new user turn while a run's grant is still live replans it (``guard.replan``): narrower silently,
wider only through the guard's approver (``interrupt_approver`` asks the human, showing what the new
plan adds)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from agent_guard import Guard, Plan, PlanRejected, Step, reasons

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))
import _resume_scenario as sc  # noqa: E402
from agent_guard_langchain import interrupt_approver  # noqa: E402
from agent_guard_langchain.testing import calls, tool_call  # noqa: E402

NARROWER = Plan(goal="just the email", steps=[
    Step("send_email", args={"to": "alice@example.com", "subject": {"any": True}, "body": {"any": True}})])
WIDER = Plan(goal="email and refund", steps=[
    *NARROWER.steps, Step("refund", args={"order_id": "O-1", "amount": {"max": 10}})])
FOLLOW_UP = "Forget the lookup, just email Alice"


def _planner(second: Plan) -> Any:
    def plan(messages: list[Any], tools: list[Any]) -> Plan:
        return second if messages[-1].content == FOLLOW_UP else sc.PLAN
    return plan


async def _paused(guard: Guard, second: Plan, script_after: list[Any], run: Any, mode: str, thread: str):
    """A run paused by HITL (its grant live), then the agent rebuilt for the next turn."""
    saver = InMemorySaver()
    ran: list[Any] = []
    agent, _ = sc.build(guard, saver, sc.before_pause(), ran, planner=_planner(second))
    config = {"configurable": {"thread_id": thread}}
    first = await run(agent, {"messages": [HumanMessage(sc.REQUEST)]}, mode, config)
    assert "__interrupt__" in first
    ran.clear()
    agent, mw = sc.build(guard, saver, script_after, ran, planner=_planner(second))
    return agent, mw, config, ran


async def test_a_narrower_plan_replaces_the_live_grant_silently(spans, run, mode):
    """The follow-up's plan is within what the paused run holds: re-minted without asking (an approver is
    configured and is not asked); the old grant is revoked `replanned`, the new one enforces the new plan."""
    guard = Guard(sc.POLICY, tracer_provider=spans.provider, approver=interrupt_approver)
    script = [calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c9"), tool_call("send_email", sc.EMAIL, "e9")),
              "done"]
    agent, mw, config, ran = await _paused(guard, NARROWER, script, run, mode, f"narrow-{mode}")
    asked = await run(agent, {"messages": [HumanMessage(FOLLOW_UP)]}, mode, config)
    (intr,) = asked["__interrupt__"]  # HITL reviewing the email: the replan itself asked nobody
    assert "action_requests" in intr.value and intr.value.get("type") != "agent_guard.approval"
    out = await run(agent, Command(resume=sc.APPROVE), mode, config)
    assert ran == [("send_email", sc.EMAIL)]
    answers = sc.outcome(out["messages"])["answers"]
    assert answers["c9"] == ["error", reasons.TOOL_NOT_IN_SCOPE] and answers["e9"] == ["success", None]
    (span,) = spans.named("invoke_agent")  # one task span records both grants
    revoked = [e.attributes["agent_guard.grant.revocation.reason"] for e in span.events if e.name.endswith("revoked")]
    assert revoked[0] == "replanned" and mw.active_runs == 0


async def test_a_wider_plan_asks_the_human_through_interrupt_approver(spans, run, mode):
    """The follow-up's plan adds a refund: the human is asked (kind replan, what it adds); approved, it runs."""
    guard = Guard(sc.POLICY, tracer_provider=spans.provider, approver=interrupt_approver)
    script = [calls(tool_call("refund", {"order_id": "O-1", "amount": 5}, "r9")), "done"]
    agent, mw, config, ran = await _paused(guard, WIDER, script, run, mode, f"wide-{mode}")
    asked = await run(agent, {"messages": [HumanMessage(FOLLOW_UP)]}, mode, config)
    (intr,) = asked["__interrupt__"]
    assert intr.value["kind"] == "replan" and intr.value["plan_hash"] == WIDER.plan_hash
    assert {(a["kind"], a["tool"]) for a in intr.value["adds"]} == {("tool", "refund")}
    assert ran == []
    out = await run(agent, Command(resume=True), mode, config)
    assert ran == [("refund", {"order_id": "O-1", "amount": 5})]
    assert out["messages"][-1].content == "done" and mw.active_runs == 0


async def test_a_wider_plan_without_an_approver_is_refused(spans, run, mode):
    """Without an approver a wider replan is refused (approval_required) and nothing runs."""
    guard = Guard(sc.POLICY, tracer_provider=spans.provider)
    agent, _, config, ran = await _paused(guard, WIDER, ["never"], run, mode, f"wide-none-{mode}")
    with pytest.raises(PlanRejected) as err:
        await run(agent, {"messages": [HumanMessage(FOLLOW_UP)]}, mode, config)
    assert err.value.reason == reasons.APPROVAL_REQUIRED and ran == []


async def test_a_new_turn_after_a_finished_run_opens_a_fresh_grant(guard, plan, identity, support_tools, run, mode):
    """A run that finished closed its grant: the next turn opens a new one (nothing to replan)."""
    from agent_guard_langchain import AgentGuardMiddleware
    from agent_guard_langchain.testing import ScriptedChatModel
    from langchain.agents import create_agent

    guard_ = Guard(sc.POLICY)
    mw = AgentGuardMiddleware(guard_, planner=_planner(WIDER), identity=sc.ME)
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": f"fresh-{mode}"}}
    for text in (sc.REQUEST, FOLLOW_UP):
        model = ScriptedChatModel(["nothing to do"])
        agent = create_agent(model, sc.make_tools([]), middleware=[mw], checkpointer=saver)
        out = await run(agent, {"messages": [HumanMessage(text)]}, mode, config)
        assert "__interrupt__" not in out
    assert mw.active_runs == 0
