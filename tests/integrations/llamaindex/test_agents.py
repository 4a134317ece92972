"""Real FunctionAgent / AgentWorkflow / ReActAgent loops on a scripted model, under guarded_run."""

from __future__ import annotations

import json
import warnings

import pytest
from agent_guard_llamaindex import guard_tools, guarded_run
from agent_guard_llamaindex.testing import react_action, react_answer, scripted_llm, tool_call, tool_calls
from llama_index.core.agent.workflow import AgentWorkflow, FunctionAgent, ReActAgent, ToolCallResult
from workflows.context.state_store import UnserializableKeyWarning

from agent_guard import current_task, reasons
from agent_guard import semconv as sc


def _function_script():
    return scripted_llm(
        tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"}, id="c1"),
                   tool_call("remember", {"key": "customer", "value": "Alice"}, id="c2")),
        tool_calls(tool_call("delete_db", {"name": "prod"}, id="c3")),
        tool_calls(tool_call("send_email", {"to": "alice@example.com", "subject": "Hi", "body": "Summary"}, id="c4")),
        "done",
    )


def _ran_in_plan_order(ledger):
    """crm_lookup and remember run in parallel (either order), then send_email."""
    names = ledger.names()
    return sorted(names[:2]) == ["crm_lookup", "remember"] and names[2:] == ["send_email"]


def _tool_messages(llm, call):
    return [m.content for m in llm.seen[call] if m.role.value == "tool"]


def _assert_spans(spans, ids):
    calls = {s.attributes.get(sc.TOOL_CALL_ID): s for s in spans.named("execute_tool")}
    assert set(calls) == set(ids)
    for call_id, (tool, outcome, reason) in ids.items():
        attrs = calls[call_id].attributes
        assert attrs[sc.TOOL_NAME] == tool
        assert attrs[sc.OPERATION_NAME] == "execute_tool"
        assert attrs[sc.DECISION_OUTCOME] == outcome
        assert attrs.get(sc.DECISION_REASON) == reason
    return calls


EXPECTED = {
    "c1": ("crm_lookup", "allow", None),
    "c2": ("remember", "allow", None),
    "c3": ("delete_db", "deny", reasons.TOOL_NOT_IN_SCOPE),
    "c4": ("send_email", "allow", None),
}


async def test_function_agent_planned_calls_run_and_out_of_plan_call_is_an_error(
    raw_tools, guard, plan, identity, ledger, spans
):
    """Planned calls run (Context tool included), delete_db is an error output, the loop goes on."""
    llm = _function_script()
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=llm)
    run = guarded_run(agent, "Email Alice (C-42) her summary", guard=guard, planner=plan, identity=identity)
    result = await run

    assert str(result) == "done"
    assert _ran_in_plan_order(ledger)
    refused = _tool_messages(llm, 2)[-1]
    assert "'delete_db'" in refused and reasons.TOOL_NOT_IN_SCOPE in refused
    assert await run.handler.ctx.store.get("note:customer") == "Alice"
    assert run.task.revoked and run.task.revocation_reason == "plan_completed"
    calls = _assert_spans(spans, EXPECTED)
    task_span = spans.named("invoke_agent")[0]
    assert all(c.parent.span_id == task_span.context.span_id for c in calls.values())
    events = [e.name for e in task_span.events]
    assert events == ["agent_guard.grant.issued", "agent_guard.grant.revoked"]


async def test_streamed_run_sees_the_denial_and_the_caller_never_holds_the_grant(
    raw_tools, guard, plan, identity, ledger
):
    """stream_events() yields every tool result; the grant lives only in the run's own context."""
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=_function_script())
    results = []
    async with guarded_run(agent, "Email Alice", guard=guard, planner=plan, identity=identity) as run:
        async for event in run.stream_events():
            assert current_task() is None
            if isinstance(event, ToolCallResult):
                results.append((event.tool_id, event.tool_output.is_error))
        assert str(await run) == "done"
    assert sorted(results[:2]) == [("c1", False), ("c2", False)]  # parallel calls: either order
    assert results[2:] == [("c3", True), ("c4", False)]
    assert run.task.revoked
    assert _ran_in_plan_order(ledger)


async def test_grant_is_not_in_the_serialized_context(raw_tools, guard, plan, identity):
    """ctx.to_dict() after a run holds no grant token, no grant id and no claims."""
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=_function_script())
    run = guarded_run(agent, "Email Alice", guard=guard, planner=plan, identity=identity)
    await run
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnserializableKeyWarning)  # the chat memory is not serializable
        dumped = json.dumps(run.handler.ctx.to_dict(), default=str)
    assert "note:customer" in dumped  # the state really was serialized
    token = run.task.grant
    assert token not in dumped and token.split(".")[1] not in dumped and token.split(".")[2] not in dumped


async def test_after_the_run_the_tools_are_denied(raw_tools, guard, plan, identity, ledger):
    """After guarded_run returns, the same tools are refused (no grant in the caller's context)."""
    tools = guard_tools(raw_tools, guard)
    agent = FunctionAgent(tools=tools, llm=_function_script())
    await guarded_run(agent, "Email Alice", guard=guard, planner=plan, identity=identity)
    out = await tools[0].acall(customer_id="C-42")
    assert out.is_error and reasons.NO_GRANT in out.content
    assert _ran_in_plan_order(ledger)


async def test_agent_workflow_with_handoff(raw_tools, policy, plan, identity, ledger, spans):
    """Under AgentWorkflow every agent's tools are guarded, each under its own grant, across a planned handoff."""
    from agent_guard import Capability, Guard, Plan, Policy, Step

    guard = Guard(Policy(agent_id=policy.agent_id, capabilities=[*policy.capabilities,
                                                                 Capability("handoff", args={"to_agent": {"any": True}})]),
                  tracer_provider=spans.provider)
    plan = Plan(goal=plan.goal, steps=[*plan.steps, Step("handoff", args={"to_agent": "ops"})])
    tools = {t.metadata.name: t for t in guard_tools(raw_tools, guard)}
    llm = scripted_llm(
        tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"}, id="c1"),
                   tool_call("remember", {"key": "customer", "value": "Alice"}, id="c2")),
        tool_calls(tool_call("handoff", {"to_agent": "ops", "reason": "cleanup"}, id="h1")),
        tool_calls(tool_call("delete_db", {"name": "prod"}, id="c3")),
        tool_calls(tool_call("send_email", {"to": "alice@example.com", "subject": "Hi", "body": "B"}, id="c4")),
        "done",
    )
    support = FunctionAgent(name="support", description="Helps customers", llm=llm, can_handoff_to=["ops"],
                            tools=[tools["crm_lookup"], tools["remember"], tools["send_email"]])
    ops = FunctionAgent(name="ops", description="Runs operations", llm=llm, tools=[tools["delete_db"], tools["send_email"]])
    workflow = AgentWorkflow(agents=[support, ops], root_agent="support")
    run = guarded_run(workflow, "Email Alice", guard=guard, planner=plan, identity=identity)
    result = await run
    assert str(result) == "done"
    assert _ran_in_plan_order(ledger)
    assert any(reasons.TOOL_NOT_IN_SCOPE in m for m in _tool_messages(llm, 3))
    assert run.task.revoked
    calls = _assert_spans(spans, {**EXPECTED, "h1": ("handoff", "allow", None)})
    agents = {call_id: s.attributes[sc.AGENT_ID] for call_id, s in calls.items()}
    assert agents == {"c1": "support", "c2": "support", "h1": "support", "c3": "ops", "c4": "ops"}
    assert set(run.agent_tasks) == {"support", "ops"}


async def test_react_agent(raw_tools, guard, plan, identity, ledger, spans):
    """ReActAgent: planned actions run, an out-of-plan action becomes an Observation, the loop ends."""
    llm = scripted_llm(
        react_action("crm_lookup", {"customer_id": "C-42"}),
        react_action("remember", {"key": "customer", "value": "Alice"}),
        react_action("delete_db", {"name": "prod"}),
        react_answer("I may not delete the database."),
    )
    agent = ReActAgent(tools=guard_tools(raw_tools, guard), llm=llm)
    run = guarded_run(agent, "Look up C-42 and drop prod", guard=guard, planner=plan, identity=identity)
    result = await run
    assert "may not delete" in str(result)
    assert ledger.names() == ["crm_lookup", "remember"]
    last_prompt = "\n".join(m.content or "" for m in llm.seen[3])
    assert "Observation: agent_guard refused the call to 'delete_db' (tool_not_in_scope)" in last_prompt
    assert await run.handler.ctx.store.get("note:customer") == "Alice"
    decisions = [(s.attributes[sc.TOOL_NAME], s.attributes[sc.DECISION_OUTCOME]) for s in spans.named("execute_tool")]
    assert decisions == [("crm_lookup", "allow"), ("remember", "allow"), ("delete_db", "deny")]
    assert all(s.attributes.get(sc.TOOL_CALL_ID) for s in spans.named("execute_tool"))
    assert run.task.revoked and run.task.revocation_reason == "task_exit"


async def test_unguarded_agent_tools_are_refused(raw_tools, guard, plan, identity):
    """guarded_run refuses an agent holding a tool that guard_tools did not wrap."""
    from agent_guard import ConfigError, Guard

    agent = FunctionAgent(tools=[*guard_tools(raw_tools[:1], guard), raw_tools[3]], llm=scripted_llm("x"))
    with pytest.raises(ConfigError, match="not guarded"):
        guarded_run(agent, "hi", guard=guard, planner=plan, identity=identity)
    other = Guard(guard.policy)
    agent = FunctionAgent(tools=guard_tools(raw_tools, other), llm=scripted_llm("x"))
    with pytest.raises(ConfigError, match="another Guard"):
        guarded_run(agent, "hi", guard=guard, planner=plan, identity=identity)


async def test_return_direct_tool(raw_tools, policy, identity, ledger):
    """A planned return_direct tool ends the run with its output; a refused one does not."""
    from llama_index.core.tools import FunctionTool

    from agent_guard import Capability, Guard, Plan, Policy, Step

    def close_ticket(ticket: str) -> str:
        """Close a ticket and finish."""
        ledger.ran.append(("close_ticket", {"ticket": ticket}))
        return f"closed {ticket}"

    direct = FunctionTool.from_defaults(close_ticket, return_direct=True)
    guard = Guard(Policy(agent_id="support-bot", capabilities=[*policy.capabilities,
                                                               Capability("close_ticket", args={"ticket": {"any": True}})]))
    tools = guard_tools([*raw_tools, direct], guard)
    plan = Plan(goal="close T-1", steps=[Step("close_ticket", args={"ticket": "T-1"})])
    llm = scripted_llm(tool_calls(tool_call("close_ticket", {"ticket": "T-2"})),
                       tool_calls(tool_call("close_ticket", {"ticket": "T-1"})), "unused")
    result = await guarded_run(FunctionAgent(tools=tools, llm=llm), "close T-1", guard=guard, planner=plan,
                               identity=identity)
    assert str(result) == "closed T-1"
    assert ledger.ran == [("close_ticket", {"ticket": "T-1"})]
    assert llm.remaining == 1


async def test_agent_run_outside_a_task_is_denied_no_grant(raw_tools, guard, ledger, spans):
    """Running the agent directly, without guarded_run or a task, every call is refused (no_grant)."""
    llm = _function_script()
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=llm)
    assert str(await agent.run(user_msg="Email Alice")) == "done"
    assert ledger.ran == []
    decisions = spans.named("execute_tool")
    assert len(decisions) == 4
    assert {s.attributes[sc.DECISION_REASON] for s in decisions} == {reasons.NO_GRANT}
    assert all(reasons.NO_GRANT in m for m in _tool_messages(llm, 3))
