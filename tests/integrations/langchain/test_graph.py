"""LangGraph: a custom StateGraph with a guarded ToolNode, create_react_agent, and approval interrupts."""

from __future__ import annotations

from typing import Any

import pytest
from agent_guard_langchain import (
    APPROVAL_INTERRUPT_TYPE,
    AgentGuardMiddleware,
    guard_tools,
    interrupt_approver,
    tool_node_wrappers,
)
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, create_react_agent, tools_condition
from langgraph.types import Command, interrupt

from agent_guard import AgentIdentity, Capability, Guard, Plan, PlanRejected, Policy, Step, reasons
from agent_guard import semconv as sc


def _script() -> list[Any]:
    return [
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "g1"),
              tool_call("send_email", {"to": "evil@attacker.test", "subject": "s", "body": "b"}, "g2")),
        calls(tool_call("send_email", {"to": "alice@example.com", "subject": "s", "body": "b"}, "g3")),
        "finished",
    ]


def _custom_graph(model: ScriptedChatModel, tools: list[Any], node: ToolNode) -> Any:
    bound = model.bind_tools(tools)

    def agent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    async def aagent(state: MessagesState) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    g = StateGraph(MessagesState)
    g.add_node("agent", RunnableLambda(agent, afunc=aagent))
    g.add_node("tools", node)
    g.add_edge(START, "agent")
    g.add_conditional_edges("agent", tools_condition)
    g.add_edge("tools", "agent")
    return g.compile()


def _check(out: dict[str, Any], calls_seen: Any, spans: Any) -> None:
    status = {m.tool_call_id: m.status for m in out["messages"] if isinstance(m, ToolMessage)}
    assert status == {"g1": "success", "g2": "error", "g3": "success"}
    denied = next(m for m in out["messages"] if isinstance(m, ToolMessage) and m.tool_call_id == "g2")
    assert reasons.ARGUMENT_MISMATCH in denied.content and "send_email" in denied.content
    assert calls_seen.names() == ["crm_lookup", "send_email"]
    assert out["messages"][-1].content == "finished"
    assert sorted(s.attributes[sc.TOOL_CALL_ID] for s in spans.named("execute_tool")) == ["g1", "g2", "g3"]


async def _in_task(guard: Guard, plan: Any, identity: Any, mode: str, fn: Any) -> Any:
    if mode == "sync":
        with guard.task(plan, identity=identity):
            return fn()
    async with guard.task(plan, identity=identity):
        return await fn()


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_custom_state_graph_with_guarded_tool_node(guard, plan, identity, support_tools, calls_seen, spans, mode):
    """ToolNode(wrap_tool_call=..., awrap_tool_call=...) enforces the task entered around the graph."""
    wrap, awrap = tool_node_wrappers(guard)
    graph = _custom_graph(ScriptedChatModel(_script()), support_tools,
                          ToolNode(support_tools, wrap_tool_call=wrap, awrap_tool_call=awrap))
    payload = {"messages": [HumanMessage("email alice")]}
    out = await _in_task(guard, plan, identity, mode,
                         (lambda: graph.invoke(payload)) if mode == "sync" else (lambda: graph.ainvoke(payload)))
    _check(out, calls_seen, spans)
    (task,) = set(calls_seen.tasks)
    assert task.revoked  # plan completed


@pytest.mark.filterwarnings("ignore::langgraph.warnings.LangGraphDeprecatedSinceV10")
@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_create_react_agent_with_guarded_tool_node(guard, plan, identity, support_tools, calls_seen, spans, mode):
    """The prebuilt (deprecated) create_react_agent accepts the guarded ToolNode."""
    wrap, awrap = tool_node_wrappers(guard)
    agent = create_react_agent(ScriptedChatModel(_script()),
                               tools=ToolNode(support_tools, wrap_tool_call=wrap, awrap_tool_call=awrap))
    payload = {"messages": [HumanMessage("email alice")]}
    out = await _in_task(guard, plan, identity, mode,
                         (lambda: agent.invoke(payload)) if mode == "sync" else (lambda: agent.ainvoke(payload)))
    _check(out, calls_seen, spans)


async def test_tool_node_without_task_refuses_everything(guard, support_tools, calls_seen):
    """Outside any task the wrappers refuse every call with no_grant (fail closed)."""
    wrap, awrap = tool_node_wrappers(guard)
    graph = _custom_graph(ScriptedChatModel(_script()), support_tools,
                          ToolNode(support_tools, wrap_tool_call=wrap, awrap_tool_call=awrap))
    out = await graph.ainvoke({"messages": [HumanMessage("x")]})
    msgs = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert len(msgs) == 3 and all(m.status == "error" and reasons.NO_GRANT in m.content for m in msgs)
    assert calls_seen.ran == []


def _approval_agent(policy, spans, support_tools, refund_plan, planned: list[int]) -> tuple[Any, Any]:
    guard = Guard(policy, tracer_provider=spans.provider, approver=interrupt_approver)

    def planner(messages, tools):
        planned.append(1)
        return refund_plan

    mw = AgentGuardMiddleware(guard, planner=planner, identity=AgentIdentity(agent_id="support-bot", user_id="u-1"))
    model = ScriptedChatModel([calls(tool_call("refund", {"order_id": "O-7", "amount": 20}, "r1")), "refunded"])
    return create_agent(model, support_tools, middleware=[mw], checkpointer=InMemorySaver()), mw


@pytest.mark.parametrize("answer", [True, {"approved": True}])
async def test_approval_interrupt_then_approve(answer, policy, spans, support_tools, calls_seen, refund_plan, run,
                                               mode):
    """A requires_approval step pauses the run with interrupt(); resuming with yes mints and runs it."""
    planned: list[int] = []
    agent, mw = _approval_agent(policy, spans, support_tools, refund_plan, planned)
    config = {"configurable": {"thread_id": f"approve-{mode}"}}
    first = await run(agent, {"messages": [HumanMessage("refund O-7")]}, mode, config)
    (intr,) = first["__interrupt__"]
    assert intr.value["type"] == APPROVAL_INTERRUPT_TYPE and intr.value["tool"] == "refund"
    assert intr.value["step"] == 0 and intr.value["plan_hash"] == refund_plan.plan_hash
    assert calls_seen.ran == [] and mw.active_runs == 0  # nothing minted while waiting

    out = await run(agent, Command(resume=answer), mode, config)
    assert calls_seen.ran == [("refund", {"order_id": "O-7", "amount": 20})]
    assert out["messages"][-1].content == "refunded"
    assert planned == [1]  # the resumed run used the plan the human approved, not a new one
    assert mw.active_runs == 0


@pytest.mark.parametrize("answer", [False, "yes", {"approved": False, "plan_hash": "x"}])
async def test_approval_interrupt_then_deny(answer, policy, spans, support_tools, calls_seen, refund_plan, run, mode):
    """Resuming with anything but an explicit yes refuses: PlanRejected(approval_denied)."""
    planned: list[int] = []
    agent, mw = _approval_agent(policy, spans, support_tools, refund_plan, planned)
    config = {"configurable": {"thread_id": f"deny-{mode}"}}
    first = await run(agent, {"messages": [HumanMessage("refund O-7")]}, mode, config)
    assert "__interrupt__" in first
    with pytest.raises(PlanRejected) as err:
        await run(agent, Command(resume=answer), mode, config)
    assert err.value.reason == reasons.APPROVAL_DENIED
    assert calls_seen.ran == [] and mw.active_runs == 0


async def test_approval_for_another_plan_asks_again(policy, spans, support_tools, calls_seen, refund_plan, run, mode):
    """An answer that approves another plan (its plan_hash) is no approval of this one: the human is
    asked again, told that the plan changed; a yes for this plan then runs it."""
    planned: list[int] = []
    agent, mw = _approval_agent(policy, spans, support_tools, refund_plan, planned)
    config = {"configurable": {"thread_id": f"changed-{mode}"}}
    await run(agent, {"messages": [HumanMessage("refund O-7")]}, mode, config)
    again = await run(agent, Command(resume={"approved": True, "plan_hash": "sha-256:other"}), mode, config)
    (intr,) = again["__interrupt__"]
    assert intr.value["plan_changed"] is True and "plan changed" in intr.value["question"]
    assert "sha-256:other" in intr.value["question"] and intr.value["plan_hash"] == refund_plan.plan_hash
    assert calls_seen.ran == [] and mw.active_runs == 0
    out = await run(agent, Command(resume={"approved": True, "plan_hash": refund_plan.plan_hash}), mode, config)
    assert calls_seen.ran == [("refund", {"order_id": "O-7", "amount": 20})]
    assert out["messages"][-1].content == "refunded" and planned == [1]


async def test_custom_graph_with_middleware_nodes_and_approval(policy, spans, support_tools, calls_seen, refund_plan,
                                                               run, mode):
    """Custom StateGraph pattern: the middleware's before/after_agent as nodes, its wrappers on the ToolNode."""
    guard = Guard(policy, tracer_provider=spans.provider, approver=interrupt_approver)
    mw = AgentGuardMiddleware(guard, planner=refund_plan, identity=AgentIdentity(agent_id="support-bot"))

    class State(MessagesState):
        agent_guard_run: dict[str, Any] | None

    model = ScriptedChatModel([calls(tool_call("refund", {"order_id": "O-7", "amount": 20}, "r1"),
                                     tool_call("refund", {"order_id": "O-8", "amount": 20}, "r2")), "ok"])
    bound = model.bind_tools(support_tools)

    def agent(state: State) -> dict[str, Any]:
        return {"messages": [bound.invoke(state["messages"])]}

    async def aagent(state: State) -> dict[str, Any]:
        return {"messages": [await bound.ainvoke(state["messages"])]}

    g = StateGraph(State)
    # A node gets the Runtime when its function has a `runtime` parameter: use the sync or async hook.
    g.add_node("guard_start", mw.before_agent if mode == "sync" else mw.abefore_agent)
    g.add_node("agent", RunnableLambda(agent, afunc=aagent))
    g.add_node("tools", ToolNode(support_tools, wrap_tool_call=mw.wrap_tool_call, awrap_tool_call=mw.awrap_tool_call))
    g.add_node("guard_end", mw.after_agent if mode == "sync" else mw.aafter_agent)
    g.add_edge(START, "guard_start")
    g.add_edge("guard_start", "agent")
    g.add_conditional_edges("agent", tools_condition, {"tools": "tools", "__end__": "guard_end"})
    g.add_edge("tools", "agent")
    graph = g.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": f"custom-{mode}"}}
    first = await run(graph, {"messages": [HumanMessage("refund O-7")]}, mode, config)
    assert first["__interrupt__"][0].value["tool"] == "refund"
    out = await run(graph, Command(resume=True), mode, config)
    status = {m.tool_call_id: m.status for m in out["messages"] if isinstance(m, ToolMessage)}
    assert status == {"r1": "success", "r2": "error"}
    assert calls_seen.ran == [("refund", {"order_id": "O-7", "amount": 20})]
    assert out["agent_guard_run"] is None and mw.active_runs == 0


@pytest.mark.parametrize("wrapped", [False, True])
async def test_interrupt_inside_a_tool_resumes_without_a_second_decision(
    wrapped, identity, spans, run, mode
):
    """A tool that calls interrupt() is re-run on resume: it is not decided or charged a second time."""
    ran: list[str] = []

    @tool
    def wire(amount: int) -> str:
        """Wire money after a human confirms."""
        answer = interrupt({"confirm": amount})
        ran.append(answer)
        return f"wired {amount}: {answer}"

    policy = Policy(agent_id="support-bot", capabilities=[Capability("wire", args={"amount": {"max": 100}})])
    guard = Guard(policy, tracer_provider=spans.provider)
    plan = Plan(goal="wire 10", steps=[Step("wire", args={"amount": 10})])  # exactly one call
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)
    tools = guard_tools([wire], guard) if wrapped else [wire]
    model = ScriptedChatModel([calls(tool_call("wire", {"amount": 10}, "w1")), "done"])
    agent = create_agent(model, tools, middleware=[mw], checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": f"wire-{mode}-{wrapped}"}}
    first = await run(agent, {"messages": [HumanMessage("wire 10")]}, mode, config)
    assert first["__interrupt__"][0].value == {"confirm": 10} and ran == []
    assert mw.active_runs == 1  # paused, not finished: the grant stays in memory, not in the checkpoint

    out = await run(agent, Command(resume="ok"), mode, config)
    msg = next(m for m in out["messages"] if isinstance(m, ToolMessage))
    assert (msg.status, msg.content) == ("success", "wired 10: ok")
    assert ran == ["ok"]
    assert [(r["call_id"], r["outcome"]) for r in spans.decisions()] == [("w1", "allow")]
    assert mw.active_runs == 0
