"""Refusals that say what happened, through the adapter; ending a run on the first refusal; callbacks on denial."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from agent_guard_langchain import AgentGuardMiddleware, GuardedTool
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage, ToolMessage

from agent_guard import Plan, Step, ToolCallDenied, reasons

ONE_LOOKUP = Plan(goal="one lookup", steps=[Step("crm_lookup", args={"customer_id": "C-42"})])


def _answers(out: dict[str, Any]) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}


async def test_after_the_plan_completed_refusals_name_the_real_reason(guard, identity, support_tools, calls_seen,
                                                                       run, mode):
    """Once the plan completed: an injected tool the agent does not even have reads tool_not_in_scope, an extra
    planned call budget_exhausted -- and neither message lists what the (finished) plan allows."""
    mw = AgentGuardMiddleware(guard, planner=ONE_LOOKUP, identity=identity)
    model = ScriptedChatModel([
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")),
        calls(tool_call("delete_records", {"table": "customers"}, "d1")),
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c2")),
        calls(tool_call("send_email", {"to": "alice@example.com", "subject": "s", "body": "b"}, "e1")),
        "done",
    ])
    out = await run(create_agent(model, support_tools, middleware=[mw]), {"messages": [("user", "C-42?")]}, mode)
    answers = _answers(out)
    assert reasons.TOOL_NOT_IN_SCOPE in answers["d1"].content
    assert reasons.BUDGET_EXHAUSTED in answers["c2"].content
    assert reasons.TOOL_NOT_IN_SCOPE in answers["e1"].content
    assert all("plan allows" not in answers[c].content for c in ("d1", "c2", "e1"))
    assert calls_seen.names() == ["crm_lookup"]


async def test_after_revocation_the_message_lists_nothing(guard, plan, identity, support_tools, calls_seen, run, mode):
    """A run whose grant is revoked (mw.close(), e.g. at shutdown) while the model thinks refuses the call the
    model then makes -- `revoked`, without 'the current plan allows' -- and ends: the model is not asked again."""
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)

    def revoke_then_call(messages: Any) -> Any:
        assert mw.close() == 1  # the operator revokes the run's grant meanwhile
        return calls(tool_call("send_email", {"to": "alice@example.com", "subject": "s", "body": "b"}, "e1"))

    model = ScriptedChatModel([calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")), revoke_then_call,
                               "never asked"])
    out = await run(create_agent(model, support_tools, middleware=[mw]), {"messages": [("user", "x")]}, mode)
    refused = _answers(out)["e1"]
    assert reasons.REVOKED in refused.content and "plan allows" not in refused.content
    assert calls_seen.names() == ["crm_lookup"] and model.remaining == 1
    assert "revoked" in out["messages"][-1].content and mw.active_runs == 0


@pytest.mark.parametrize("attempt", range(4))
async def test_raise_mode_with_parallel_calls_raises_the_real_refusal(attempt, guard, plan, identity, support_tools,
                                                                        calls_seen, mode):
    """Raise mode, one turn with a refused call among allowed ones: the exception out of invoke is always that
    refusal (tool_not_in_scope on refund), never the no_grant/revoked the other calls see once the run aborted."""
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity, on_violation="raise")
    order = [tool_call("crm_lookup", {"customer_id": "C-42"}, "c1"),
             tool_call("refund", {"order_id": "O-1", "amount": 1}, "r1"),
             tool_call("send_email", {"to": "alice@example.com", "subject": "s", "body": "b"}, "e1")]
    order = order[attempt % 3:] + order[:attempt % 3]
    agent = create_agent(ScriptedChatModel([calls(*order), "never"]), support_tools, middleware=[mw])
    payload = {"messages": [("user", "x")]}
    with pytest.raises(ToolCallDenied) as err:
        if mode == "sync":
            await asyncio.to_thread(agent.invoke, payload)
        else:
            await agent.ainvoke(payload)
    assert (err.value.reason, err.value.tool) == (reasons.TOOL_NOT_IN_SCOPE, "refund")
    assert mw.active_runs == 0


async def test_on_violation_end_ends_the_run_on_the_first_refusal(guard, plan, identity, support_tools, calls_seen,
                                                                    spans, run, mode):
    """on_violation="end": the refused call gets its error ToolMessage, the run ends with a final AI message
    (the model is not called again), and the grant is revoked."""
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity, on_violation="end")
    model = ScriptedChatModel([
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")),
        calls(tool_call("send_email", {"to": "evil@attacker.test", "subject": "s", "body": "b"}, "e1")),
        "never asked",
    ])
    out = await run(create_agent(model, support_tools, middleware=[mw]), {"messages": [("user", "x")]}, mode)
    assert calls_seen.names() == ["crm_lookup"] and model.remaining == 1
    refused = _answers(out)["e1"]
    assert refused.status == "error" and reasons.ARGUMENT_MISMATCH in refused.content
    final = out["messages"][-1]
    assert final.type == "ai" and not final.tool_calls and reasons.ARGUMENT_MISMATCH in final.content
    assert final.response_metadata["agent_guard"] == {"ended": True, "reason": reasons.ARGUMENT_MISMATCH}
    (task,) = set(calls_seen.tasks)
    assert task.revocation_reason == "violation" and mw.active_runs == 0
    assert not guard.store.is_active(task.run_id)


async def test_on_violation_end_with_parallel_calls(guard, plan, identity, support_tools, calls_seen, run, mode):
    """A refused call among parallel ones ends the run after that turn: every call has an answer, the final
    message names the refusal, the model is not called again."""
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity, on_violation="end")
    model = ScriptedChatModel([calls(tool_call("refund", {"order_id": "O-1", "amount": 1}, "r1"),
                                     tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")), "never asked"])
    out = await run(create_agent(model, support_tools, middleware=[mw]), {"messages": [("user", "x")]}, mode)
    answers = _answers(out)
    assert set(answers) == {"r1", "c1"} and answers["r1"].status == "error"
    assert model.remaining == 1 and reasons.TOOL_NOT_IN_SCOPE in out["messages"][-1].content
    assert mw.active_runs == 0


class _Events(BaseCallbackHandler):
    def __init__(self) -> None:
        self.seen: list[tuple[str, str]] = []

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kwargs: Any) -> None:
        self.seen.append(("start", serialized["name"]))

    def on_tool_end(self, output: Any, **kwargs: Any) -> None:
        self.seen.append(("end", str(getattr(output, "status", ""))))

    def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
        self.seen.append(("error", f"{type(error).__name__}:{getattr(error, 'reason', '')}"))


async def test_callback_handlers_see_a_refusal_as_a_failed_tool_run(guard, plan, identity, support_tools, calls_seen,
                                                                      run, mode):
    """LangSmith-style handlers see on_tool_start then on_tool_error(ToolCallDenied) for a refused call, and
    start/end for an allowed one; the model still gets the error ToolMessage."""
    events = _Events()
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)
    model = ScriptedChatModel([
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")),
        calls(tool_call("crm_lookup", {"customer_id": "C-7"}, "c2")),
        "done",
    ])
    out = await run(create_agent(model, support_tools, middleware=[mw]), {"messages": [HumanMessage("x")]}, mode,
                    {"callbacks": [events]})
    assert events.seen == [("start", "crm_lookup"), ("end", "success"),
                           ("start", "crm_lookup"), ("error", "ToolCallDenied:argument_mismatch")]
    assert _answers(out)["c2"].status == "error" and calls_seen.names() == ["crm_lookup"]


def test_guarded_tool_callbacks_without_a_tool_call(guard, plan, identity, support_tools):
    """Plain arguments (no tool call to answer): the refusal raises, and handlers see the error once."""
    events = _Events()
    wrapped = GuardedTool(support_tools[0], guard)
    with guard.task(plan, identity=identity), pytest.raises(ToolCallDenied):
        wrapped.invoke({"customer_id": "C-7"}, {"callbacks": [events]})
    assert events.seen == [("start", "crm_lookup"), ("error", "ToolCallDenied:argument_mismatch")]
