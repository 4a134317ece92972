"""Per-agent grants in a multi-agent AgentWorkflow (triage -> billing) under guarded_run.

Each agent acts under its own grant delegated from the run's; the handoff is a decision of its
own; a single agent keeps one grant. Real AgentWorkflow loops on scripted models.
"""

# No `from __future__ import annotations`: LlamaIndex recognises `ctx: Context` by its live annotation.
import json
import warnings
from typing import Any

import pytest
from agent_guard_llamaindex import guard_tools, guarded_run
from agent_guard_llamaindex.testing import scripted_llm, tool_call, tool_calls
from llama_index.core.agent.workflow import AgentOutput, AgentWorkflow, FunctionAgent
from llama_index.core.tools import FunctionTool
from llama_index.core.workflow import Context
from workflows.context.state_store import UnserializableKeyWarning

from agent_guard import (
    AgentIdentity,
    Capability,
    ConfigError,
    Guard,
    Plan,
    Policy,
    Step,
    ToolCallDenied,
    current_task,
    reasons,
)
from agent_guard import semconv as sc

ROOT = "support-bot"


class Desk:
    """What ran: every tool body, with the task current in it and what the run had left then."""

    def __init__(self) -> None:
        self.ran: list[tuple[str, dict[str, Any]]] = []
        self.tasks: list[Any] = []
        self.left: list[Any] = []
        self.nested: list[Any] = []

    def names(self) -> list[str]:
        return [name for name, _ in self.ran]


@pytest.fixture
def desk() -> Desk:
    return Desk()


@pytest.fixture
def policy() -> Policy:
    return Policy(agent_id=ROOT, capabilities=[
        Capability("lookup_order", args={"order_id": {"prefix": "O-"}}),
        Capability("refund", args={"order_id": {"prefix": "O-"}, "amount": {"min": 0, "max": 500}}),
        Capability("handoff", args={"to_agent": {"any": True}}),
    ])


@pytest.fixture
def identity() -> AgentIdentity:
    return AgentIdentity(agent_id=ROOT, user_id="u-1")


@pytest.fixture
def tools(desk: Desk, guard: Guard) -> dict[str, FunctionTool]:
    def lookup_order(order_id: str) -> str:
        """Look an order up."""
        desk.ran.append(("lookup_order", {"order_id": order_id}))
        desk.tasks.append(current_task())
        return f"order {order_id}: 2 items, paid"

    async def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        desk.ran.append(("refund", {"order_id": order_id, "amount": amount}))
        task = current_task()
        desk.tasks.append(task)
        desk.left.append(guard.store.remaining(task.parent.run_id) if task and task.parent else None)
        return f"refunded {amount} on {order_id}"

    raw = [FunctionTool.from_defaults(lookup_order), FunctionTool.from_defaults(refund)]
    return {t.metadata.name: t for t in guard_tools(raw, guard)}


def _workflow(tools, llm, *, billing_tools=("refund",), triage_tools=("lookup_order", "refund"), extra=()):
    triage = FunctionAgent(name="triage", description="Sorts requests", llm=llm,
                           tools=[tools[n] for n in triage_tools], can_handoff_to=["billing", *[a.name for a in extra]])
    billing = FunctionAgent(name="billing", description="Handles refunds", llm=llm, can_handoff_to=[],
                            tools=[tools[n] for n in billing_tools])
    return AgentWorkflow(agents=[triage, billing, *extra], root_agent="triage")


PLAN = Plan(goal="refund O-7", steps=[
    Step("lookup_order", args={"order_id": "O-7"}),
    Step("handoff", args={"to_agent": "billing"}, agent="triage"),
    Step("refund", args={"order_id": "O-7", "amount": {"max": 100}}, max_calls=2, agent="billing"),
])


def _decisions(spans) -> dict[str, Any]:
    return {s.attributes.get(sc.TOOL_CALL_ID): s for s in spans.named("execute_tool")}


def _outcome(span) -> tuple[str, str, str, str | None]:
    a = span.attributes
    return a[sc.TOOL_NAME], a.get(sc.AGENT_ID), a[sc.DECISION_OUTCOME], a.get(sc.DECISION_REASON)


async def test_each_agent_acts_under_its_own_delegated_grant(tools, guard, identity, desk, spans):
    """triage may not refund, hands off (its own allowed decision), billing refunds under its grant."""
    llm = scripted_llm(
        tool_calls(tool_call("lookup_order", {"order_id": "O-7"}, id="t1"),
                   tool_call("refund", {"order_id": "O-7", "amount": 50}, id="t2")),
        tool_calls(tool_call("handoff", {"to_agent": "billing", "reason": "refund"}, id="h1")),
        tool_calls(tool_call("refund", {"order_id": "O-7", "amount": 50}, id="b1")),
        "Refunded 50 on O-7.",
    )
    run = guarded_run(_workflow(tools, llm), "Refund O-7", guard=guard, planner=PLAN, identity=identity)
    result = await run

    assert str(result) == "Refunded 50 on O-7."
    assert result.current_agent_name == "billing"
    assert desk.names() == ["lookup_order", "refund"]  # triage's refund never ran
    refused = [m.content for m in llm.seen[1] if m.role.value == "tool"]
    assert any("'refund'" in m and reasons.TOOL_NOT_IN_SCOPE in m for m in refused)

    triage, billing = run.agent_tasks["triage"], run.agent_tasks["billing"]
    assert set(run.agent_tasks) == {"triage", "billing"}
    assert triage.claims.actors == ("triage", ROOT)
    assert billing.claims.actors == ("billing", ROOT)
    assert billing.parent is run.task and triage.parent is run.task
    assert desk.tasks == [triage, billing]  # each body ran with its agent's grant current
    assert set(triage.tools) == {"lookup_order", "handoff"} and set(billing.tools) == {"refund"}

    calls = _decisions(spans)
    assert set(calls) == {"t1", "t2", "h1", "b1"}
    assert _outcome(calls["t1"]) == ("lookup_order", "triage", "allow", None)
    assert _outcome(calls["t2"]) == ("refund", "triage", "deny", reasons.TOOL_NOT_IN_SCOPE)
    assert _outcome(calls["h1"]) == ("handoff", "triage", "allow", None)
    assert _outcome(calls["b1"]) == ("refund", "billing", "allow", None)
    for call_id, task in (("t1", triage), ("t2", triage), ("h1", triage), ("b1", billing)):
        assert calls[call_id].attributes[sc.GRANT_ID] == task.grant_id

    agents = {s.attributes[sc.AGENT_ID]: s for s in spans.named("invoke_agent")}
    assert set(agents) == {ROOT, "triage", "billing"}
    root = agents[ROOT]
    for name in ("triage", "billing"):
        assert agents[name].parent.span_id == root.context.span_id
        assert agents[name].context.trace_id == root.context.trace_id
    for call_id, name in (("t1", "triage"), ("h1", "triage"), ("b1", "billing")):
        assert calls[call_id].parent.span_id == agents[name].context.span_id  # under the acting agent

    # budgets: billing's refund spent the run's own step (2 planned, 1 left while it ran)
    assert desk.left == [(0, 0, 1)]
    # after the run every grant is revoked and closed, the children with the parent
    for task in (run.task, triage, billing):
        assert task.revoked and task.closed
    assert (await tools["refund"].acall(order_id="O-7", amount=1)).is_error
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UnserializableKeyWarning)  # the chat memory is not serializable
        dumped = json.dumps(run.handler.ctx.to_dict(), default=str)
    assert '"current_agent_name"' in dumped  # the workflow state really was serialized
    for task in (run.task, triage, billing):  # no grant of any agent entered the workflow state
        assert task.grant.split(".")[1] not in dumped and task.grant_id not in dumped


async def test_a_handoff_the_plan_does_not_allow_is_refused_and_does_not_switch(tools, guard, identity, desk, spans):
    """triage may hand off to billing only: a handoff to ops is refused and triage keeps control."""
    llm = scripted_llm(
        tool_calls(tool_call("handoff", {"to_agent": "ops", "reason": "cleanup"}, id="h1")),
        tool_calls(tool_call("lookup_order", {"order_id": "O-7"}, id="t1")),
        "Nothing to do.",
    )
    ops = FunctionAgent(name="ops", description="Runs operations", llm=llm, tools=[tools["refund"]], can_handoff_to=[])
    workflow = _workflow(tools, llm, extra=[ops])
    async with guarded_run(workflow, "Clean up", guard=guard, planner=PLAN, identity=identity) as run:
        speakers = [e.current_agent_name async for e in run.stream_events() if isinstance(e, AgentOutput)]
        result = await run
    assert speakers == ["triage", "triage", "triage"]
    assert result.current_agent_name == "triage"
    assert await run.handler.ctx.store.get("current_agent_name") == "triage"
    calls = _decisions(spans)
    assert _outcome(calls["h1"]) == ("handoff", "triage", "deny", reasons.ARGUMENT_MISMATCH)
    assert _outcome(calls["t1"]) == ("lookup_order", "triage", "allow", None)
    assert desk.names() == ["lookup_order"]
    assert set(run.agent_tasks) == {"triage"}  # ops never acted, billing never got control


async def test_without_a_handoff_step_no_handoff_is_allowed(tools, guard, identity, desk, spans):
    """Handoffs are explicit: a plan that lists no handoff step allows none (tool_not_in_scope)."""
    plan = Plan(steps=[Step("lookup_order", args={"order_id": "O-7"}),
                       Step("refund", args={"order_id": "O-7", "amount": {"max": 100}}, agent="billing")])
    llm = scripted_llm(tool_calls(tool_call("handoff", {"to_agent": "billing", "reason": "r"}, id="h1")), "Stuck.")
    run = guarded_run(_workflow(tools, llm), "Refund O-7", guard=guard, planner=plan, identity=identity)
    result = await run
    assert result.current_agent_name == "triage"
    assert _outcome(_decisions(spans)["h1"]) == ("handoff", "triage", "deny", reasons.TOOL_NOT_IN_SCOPE)
    assert desk.ran == []


async def test_budgets_are_the_runs_and_parallel_first_calls_mint_one_grant(tools, guard, identity, desk, spans):
    """An open step is shared: billing gets what triage left; parallel calls of billing share one grant."""
    plan = Plan(steps=[
        Step("lookup_order", args={"order_id": {"prefix": "O-"}}, max_calls=2),
        Step("handoff", args={"to_agent": "billing"}),
        Step("refund", args={"order_id": "O-7", "amount": {"max": 100}}, max_calls=2, agent="billing"),
    ])
    llm = scripted_llm(
        tool_calls(tool_call("lookup_order", {"order_id": "O-7"}, id="t1")),
        tool_calls(tool_call("handoff", {"to_agent": "billing", "reason": "r"}, id="h1")),
        tool_calls(tool_call("refund", {"order_id": "O-7", "amount": 10}, id="b1"),
                   tool_call("refund", {"order_id": "O-7", "amount": 20}, id="b2"),
                   tool_call("lookup_order", {"order_id": "O-8"}, id="b3")),
        tool_calls(tool_call("lookup_order", {"order_id": "O-9"}, id="b4"),
                   tool_call("refund", {"order_id": "O-7", "amount": 30}, id="b5")),
        "Done.",
    )
    workflow = _workflow(tools, llm, billing_tools=("refund", "lookup_order"))
    run = guarded_run(workflow, "Refund O-7", guard=guard, planner=plan, identity=identity)
    await run
    calls = _decisions(spans)
    assert {k: _outcome(v)[1:] for k, v in calls.items()} == {
        "t1": ("triage", "allow", None),
        "h1": ("triage", "allow", None),
        "b1": ("billing", "allow", None),
        "b2": ("billing", "allow", None),
        "b3": ("billing", "allow", None),  # the last lookup the run had left
        "b4": ("billing", "deny", reasons.BUDGET_EXHAUSTED),
        "b5": ("billing", "deny", reasons.BUDGET_EXHAUSTED),
    }
    billing = run.agent_tasks["billing"]
    assert [s.max_calls for s in billing.scope.steps] == [1, 2]  # lookup: 1 of 2 left when it was minted
    assert len([s for s in spans.named("invoke_agent") if s.attributes[sc.AGENT_ID] == "billing"]) == 1
    assert sorted(desk.names()) == ["lookup_order", "lookup_order", "refund", "refund"]


async def test_an_agent_without_steps_has_no_grant(tools, guard, identity, desk, spans):
    """billing may receive the handoff, but the plan gives it no step: its calls are refused no_grant."""
    plan = Plan(steps=[Step("lookup_order", args={"order_id": "O-7"}), Step("handoff", args={"to_agent": "billing"})])
    llm = scripted_llm(
        tool_calls(tool_call("handoff", {"to_agent": "billing", "reason": "r"}, id="h1")),
        tool_calls(tool_call("refund", {"order_id": "O-7", "amount": 5}, id="b1")),
        "I cannot refund.",
    )
    run = guarded_run(_workflow(tools, llm), "Refund O-7", guard=guard, planner=plan, identity=identity)
    await run
    calls = _decisions(spans)
    assert _outcome(calls["b1"]) == ("refund", "billing", "deny", reasons.NO_GRANT)
    assert sc.GRANT_ID not in calls["b1"].attributes  # never the run's own grant
    assert set(run.agent_tasks) == {"triage"}
    assert desk.ran == []


async def test_unknown_agent_is_refused_no_grant_never_the_runs_grant(guard, identity, desk, spans):
    """A call whose Context is missing or not the run's own cannot name its agent: no_grant."""
    foreign = Context(AgentWorkflow(agents=[FunctionAgent(name="x", description="x", llm=scripted_llm())]))
    await foreign.store.set("current_agent_name", "billing")

    def refund(order_id: str, amount: int) -> str:
        """Refund an order."""
        desk.ran.append(("refund", {"order_id": order_id}))
        return "refunded"

    async def sneaky(ctx: Context, order_id: str) -> str:
        """Look up, then try a refund through the guarded tool directly."""
        desk.nested.append(await refund_tool.acall(order_id=order_id, amount=5))  # no Context
        desk.nested.append(await refund_tool.acall(order_id=order_id, amount=5, _agent_guard_ctx=foreign))
        desk.nested.append(refund_tool.call(order_id=order_id, amount=5, _agent_guard_ctx=ctx))  # sync: unknowable
        return "looked"

    policy = Policy(agent_id=ROOT, capabilities=[
        *guard.policy.capabilities, Capability("sneaky", args={"order_id": {"any": True}})])
    guard = Guard(policy, tracer_provider=spans.provider)
    sneaky_tool, refund_tool = guard_tools([FunctionTool.from_defaults(sneaky), FunctionTool.from_defaults(refund)],
                                           guard)
    plan = Plan(steps=[Step("sneaky", args={"order_id": "O-7"}),
                       Step("refund", args={"order_id": "O-7", "amount": {"any": True}}, max_calls=3)])
    llm = scripted_llm(tool_calls(tool_call("sneaky", {"order_id": "O-7"}, id="s1")), "ok")
    triage = FunctionAgent(name="triage", description="t", llm=llm, tools=[sneaky_tool, refund_tool],
                           can_handoff_to=[])
    billing = FunctionAgent(name="billing", description="b", llm=llm, tools=[refund_tool], can_handoff_to=[])
    run = guarded_run(AgentWorkflow(agents=[triage, billing], root_agent="triage"), "Refund O-7", guard=guard,
                      planner=plan, identity=identity)
    await run
    assert [o.is_error for o in desk.nested] == [True, True, True]
    assert all(reasons.NO_GRANT in o.content for o in desk.nested)
    assert desk.ran == []
    refused = [s for s in spans.named("execute_tool") if s.attributes[sc.TOOL_NAME] == "refund"]
    assert [s.attributes[sc.DECISION_REASON] for s in refused] == [reasons.NO_GRANT] * 3
    assert all(sc.GRANT_ID not in s.attributes and sc.AGENT_ID not in s.attributes for s in refused)
    [allowed] = [s for s in spans.named("execute_tool") if s.attributes[sc.TOOL_NAME] == "sneaky"]
    assert _outcome(allowed) == ("sneaky", "triage", "allow", None)


async def test_single_agent_runs_keep_one_grant(tools, guard, identity, desk, spans):
    """A FunctionAgent, and an AgentWorkflow of one agent, run under the run's grant: no delegation."""
    plan = Plan(steps=[Step("lookup_order", args={"order_id": "O-7"}, max_calls=2)])
    for make in (lambda llm: FunctionAgent(tools=[tools["lookup_order"]], llm=llm),
                 lambda llm: AgentWorkflow(agents=[FunctionAgent(tools=[tools["lookup_order"]], llm=llm)])):
        spans.clear()
        llm = scripted_llm(tool_calls(tool_call("lookup_order", {"order_id": "O-7"})), "ok")
        run = guarded_run(make(llm), "Look O-7 up", guard=guard, planner=plan, identity=identity)
        await run
        assert run.agent_tasks == {}
        assert [s.attributes[sc.AGENT_ID] for s in spans.named("invoke_agent")] == [ROOT]
        assert [_outcome(s)[1:3] for s in spans.named("execute_tool")] == [(ROOT, "allow")]
        assert desk.tasks[-1] is run.task


async def test_raise_mode_stops_the_run_on_the_wrong_agents_call(desk, guard, identity):
    """on_violation="raise": triage's refund stops the whole run with ToolCallDenied."""
    def refund(order_id: str, amount: int) -> str:
        """Refund."""
        desk.ran.append(("refund", {}))
        return "refunded"

    [strict] = guard_tools([FunctionTool.from_defaults(refund)], guard, on_violation="raise")
    llm = scripted_llm(tool_calls(tool_call("refund", {"order_id": "O-7", "amount": 5})), "unused")
    workflow = _workflow({"refund": strict, "lookup_order": strict}, llm, triage_tools=("refund",))
    with pytest.raises(ToolCallDenied) as err:
        await guarded_run(workflow, "Refund", guard=guard, planner=PLAN, identity=identity)
    assert err.value.decision.reason == reasons.TOOL_NOT_IN_SCOPE
    assert desk.ran == []


async def test_planners_see_the_handoff_and_bad_agent_plans_fail_before_the_run(tools, guard, identity, desk):
    """The planner's catalog lists handoff(to_agent); ordered plans and unknown agents are ConfigErrors."""
    seen = []

    def planner(request, catalog):
        seen.append({t.metadata.name: t.metadata.get_parameters_dict() for t in catalog})
        return PLAN

    llm = scripted_llm("Nothing to do.")
    await guarded_run(_workflow(tools, llm), "hi", guard=guard, planner=planner, identity=identity)
    assert set(seen[0]) == {"lookup_order", "refund", "handoff"}
    assert list(seen[0]["handoff"]["properties"]) == ["to_agent"]

    bad = [
        (Plan(steps=list(PLAN.steps), ordered=True), "ordered plan"),
        (Plan(steps=[Step("refund", args={"order_id": "O-7"}, agent="Billing")]), "not an agent of this workflow"),
        (Plan(steps=[Step("lookup_order", args={"order_id": "O-7"}, agent="billing")]), "does not have this tool"),
    ]
    for plan, message in bad:
        with pytest.raises(ConfigError, match=message):
            await guarded_run(_workflow(tools, scripted_llm()), "hi", guard=guard, planner=plan, identity=identity)
    undelegable = Guard(Policy(agent_id=ROOT, capabilities=guard.policy.capabilities, max_delegation_depth=0))
    with pytest.raises(ConfigError, match="max_delegation_depth=0"):
        rewrapped = {t.metadata.name: t for t in guard_tools([t.inner for t in tools.values()], undelegable)}
        await guarded_run(_workflow(rewrapped, scripted_llm()), "hi", guard=undelegable, planner=PLAN,
                          identity=identity)
    assert desk.ran == []

    def handoff(to_agent: str) -> str:
        """A tool of the user's that clashes with the workflow's handoff."""
        return to_agent

    [clash] = guard_tools([FunctionTool.from_defaults(handoff)], guard)
    workflow = _workflow(tools, llm)
    workflow.agents["billing"].tools.append(clash)  # LlamaIndex refuses the name only at construction
    with pytest.raises(ConfigError, match="clashes with the AgentWorkflow's handoff tool"):
        guarded_run(workflow, "hi", guard=guard, planner=PLAN, identity=identity)


async def test_outside_a_guarded_run_the_workflow_hands_off_as_usual(tools, guard, identity, desk):
    """The handoff guard is only active under guarded_run: a plain run hands off (and its tools say no_grant)."""
    llm = scripted_llm(tool_calls(tool_call("handoff", {"to_agent": "billing", "reason": "r"})), "plain")
    workflow = _workflow(tools, llm)
    guarded_run(workflow, "hi", guard=guard, planner=PLAN, identity=identity)  # installs the handoff guard
    result = await workflow.run(user_msg="Refund O-7")
    assert result.current_agent_name == "billing"


async def test_an_llm_planner_plans_the_handoff_and_the_workflow_follows_it(tools, guard, identity, desk, spans):
    """LLMPlanner sees handoff(to_agent) in its catalog; its open steps go to the agents holding the tools."""
    from agent_guard_llamaindex import LLMPlanner
    from agent_guard_llamaindex.testing import planned

    from agent_guard.planning import PlanDraft, PlannedArgument, PlannedStep

    def pinned(name, value):
        return PlannedArgument(name=name, pinned=True, value=value)

    draft = PlanDraft(goal="Refund O-7", steps=[
        PlannedStep(tool="handoff", arguments=[pinned("to_agent", "billing")]),
        PlannedStep(tool="refund", arguments=[pinned("order_id", "O-7"), pinned("amount", 50)]),
    ])
    planner_llm = scripted_llm(planned(draft))
    llm = scripted_llm(
        tool_calls(tool_call("refund", {"order_id": "O-7", "amount": 50}, id="t1")),  # triage holds refund too
        tool_calls(tool_call("handoff", {"to_agent": "billing", "reason": "refund"}, id="h1")),
        tool_calls(tool_call("refund", {"order_id": "O-7", "amount": 50}, id="b1")),
        "Refunded.",
    )
    run = guarded_run(_workflow(tools, llm), "Refund O-7", guard=guard, planner=LLMPlanner(planner_llm),
                      identity=identity)
    await run
    (messages,) = planner_llm.seen
    assert '"name": "handoff"' in messages[1].content and "billing: Handles refunds" in messages[1].content
    assert [s.tool for s in run.plan.steps] == ["handoff", "refund"]
    calls = _decisions(spans)
    # an open refund step: triage holds the tool, so the planned refund is triage's to spend too
    assert _outcome(calls["t1"]) == ("refund", "triage", "allow", None)
    assert _outcome(calls["h1"]) == ("handoff", "triage", "allow", None)
    # triage spent the only planned refund before billing first acted: billing has nothing left, so no grant
    assert _outcome(calls["b1"]) == ("refund", "billing", "deny", reasons.NO_GRANT)
    assert set(run.agent_tasks) == {"triage"}
    assert desk.names() == ["refund"]
