"""With OpenInference's LlamaIndexInstrumentor on, one guarded run is one trace.

The guard's ``invoke_agent`` span holds the framework's tree (the agent run and its steps), and
every decision (allowed or denied) is an ``execute_tool`` span under the framework's TOOL span
of that call: one TOOL span per call, since the wrapped tool runs without a second one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from agent_guard_llamaindex import guard_tools, guarded_run
from agent_guard_llamaindex.testing import react_action, react_answer, scripted_llm, tool_call, tool_calls
from llama_index.core.agent.workflow import FunctionAgent, ReActAgent
from llama_index.core.instrumentation import get_dispatcher

from agent_guard import Plan, Step, ToolCallDenied, reasons
from agent_guard import semconv as sc
from agent_guard.testing import SpanCapture

oi = pytest.importorskip("openinference.instrumentation.llama_index")

KIND = "openinference.span.kind"


def _openinference_handlers() -> list[object]:
    root = get_dispatcher()
    return [h for h in [*root.span_handlers, *root.event_handlers] if type(h).__module__.startswith("openinference")]


@pytest.fixture
def traced(spans: SpanCapture) -> Iterator[SpanCapture]:
    """OpenInference instruments LlamaIndex into the same in-memory capture as the guard, for this test only."""
    instrumentor = oi.LlamaIndexInstrumentor()
    instrumentor.instrument(tracer_provider=spans.provider)
    try:
        yield spans
    finally:
        instrumentor.uninstrument()
    assert _openinference_handlers() == []  # nothing leaks into the next test


class Tree:
    """The captured spans, with parent lookups."""

    def __init__(self, capture: SpanCapture) -> None:
        self.spans = list(capture.spans)
        self.by_id = {s.context.span_id: s for s in self.spans}

    def parent(self, span):
        return self.by_id.get(span.parent.span_id) if span.parent is not None else None

    def ancestors(self, span) -> list:
        chain = []
        while (span := self.parent(span)) is not None:
            chain.append(span)
        return chain

    def named(self, prefix: str) -> list:
        return [s for s in self.spans if s.name.startswith(prefix)]

    def kind(self, kind: str) -> list:
        """The framework's spans of one OpenInference kind (not agent_guard's own, whatever kind they carry)."""
        return [s for s in self.spans if s.attributes.get(KIND) == kind and s.instrumentation_scope.name != "agent_guard"]


def _assert_one_trace_under_the_task(tree: Tree, task_id: str) -> None:
    """One trace id; the task span is the root and the framework's run span is inside it."""
    assert len({s.context.trace_id for s in tree.spans}) == 1
    (task_span,) = tree.named("invoke_agent")
    assert task_span.attributes[sc.TASK_ID] == task_id
    assert all(s is task_span or task_span in tree.ancestors(s) for s in tree.spans)
    assert any(tree.parent(s) is task_span for s in tree.kind("CHAIN"))  # the framework's run span


def _assert_decisions_under_tool_spans(tree: Tree, expected: list[tuple[str, str]]) -> None:
    """Each decision's parent is the TOOL span of the same tool, and each TOOL span has exactly one decision."""
    decisions = tree.named("execute_tool")
    assert sorted((s.attributes[sc.TOOL_NAME], s.attributes[sc.DECISION_OUTCOME]) for s in decisions) == sorted(expected)
    for decision in decisions:
        tool_span = tree.parent(decision)
        assert tool_span is not None and tool_span in tree.kind("TOOL")
        assert tool_span.attributes["tool.name"] == decision.attributes[sc.TOOL_NAME]
    tool_spans = tree.kind("TOOL")
    assert len(tool_spans) == len(decisions)  # one framework TOOL span per call: the wrapped tool adds none
    assert sorted(tree.parent(d).context.span_id for d in decisions) == sorted(t.context.span_id for t in tool_spans)


async def test_function_agent_run_is_one_trace_with_every_decision(raw_tools, guard, plan, identity, ledger, traced):
    """Planned calls, a parallel pair and a refused call: one trace, each decision under its TOOL span."""
    llm = scripted_llm(
        tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"}, id="c1"),
                   tool_call("remember", {"key": "customer", "value": "Alice"}, id="c2")),
        tool_calls(tool_call("delete_db", {"name": "prod"}, id="c3")),
        tool_calls(tool_call("send_email", {"to": "alice@example.com", "subject": "Hi", "body": "B"}, id="c4")),
        "done",
    )
    run = guarded_run(FunctionAgent(tools=guard_tools(raw_tools, guard), llm=llm), "Email Alice", guard=guard,
                      planner=plan, identity=identity)
    assert str(await run) == "done"
    tree = Tree(traced)
    _assert_one_trace_under_the_task(tree, run.task.id)
    _assert_decisions_under_tool_spans(tree, [("crm_lookup", "allow"), ("remember", "allow"),
                                              ("delete_db", "deny"), ("send_email", "allow")])
    (denied,) = [s for s in tree.named("execute_tool") if s.attributes[sc.DECISION_OUTCOME] == "deny"]
    assert denied.attributes[sc.DECISION_REASON] == reasons.TOOL_NOT_IN_SCOPE
    assert denied.attributes[sc.TOOL_CALL_ID] == "c3"
    assert '"is_error":true' in tree.parent(denied).attributes["output.value"].replace(" ", "")
    assert sorted(ledger.names()) == ["crm_lookup", "remember", "send_email"]


async def test_react_agent_run_is_one_trace_with_every_decision(raw_tools, guard, plan, identity, traced):
    """The same shape under ReActAgent."""
    llm = scripted_llm(
        react_action("crm_lookup", {"customer_id": "C-42"}),
        react_action("delete_db", {"name": "prod"}),
        react_answer("I may not."),
    )
    run = guarded_run(ReActAgent(tools=guard_tools(raw_tools, guard), llm=llm), "Look up C-42", guard=guard,
                      planner=plan, identity=identity)
    await run
    tree = Tree(traced)
    _assert_one_trace_under_the_task(tree, run.task.id)
    _assert_decisions_under_tool_spans(tree, [("crm_lookup", "allow"), ("delete_db", "deny")])


async def test_a_hard_stop_is_in_the_trace(raw_tools, guard, plan, identity, traced):
    """In raise mode the refused call's TOOL span ends in error, its decision under it, in the run's trace."""
    llm = scripted_llm(tool_calls(tool_call("delete_db", {"name": "prod"}, id="c1")), "unused")
    run = guarded_run(FunctionAgent(tools=guard_tools(raw_tools, guard, on_violation="raise"), llm=llm), "drop it",
                      guard=guard, planner=plan, identity=identity)
    with pytest.raises(ToolCallDenied):
        await asyncio.wait_for(run, timeout=20)
    tree = Tree(traced)
    _assert_one_trace_under_the_task(tree, run.task.id)
    _assert_decisions_under_tool_spans(tree, [("delete_db", "deny")])
    (tool_span,) = tree.kind("TOOL")
    assert tool_span.status.status_code.name == "ERROR"


async def test_concurrent_runs_are_separate_traces(raw_tools, guard, identity, traced):
    """Two runs at once: two traces, each holding its own task span and its own decisions."""
    tools = guard_tools(raw_tools, guard)

    def run_for(customer: str, other: str):
        llm = scripted_llm(tool_calls(tool_call("crm_lookup", {"customer_id": other})),
                           tool_calls(tool_call("crm_lookup", {"customer_id": customer})), "done")
        plan = Plan(goal="look up", steps=[Step("crm_lookup", args={"customer_id": customer})])
        return guarded_run(FunctionAgent(tools=tools, llm=llm), f"look up {customer}", guard=guard, planner=plan,
                           identity=identity)

    runs = [run_for("C-1", "C-2"), run_for("C-2", "C-1")]
    await asyncio.gather(*runs)
    tree = Tree(traced)
    for run in runs:
        (task_span,) = [s for s in tree.named("invoke_agent") if s.attributes[sc.TASK_ID] == run.task.id]
        mine = [s for s in tree.spans if s.context.trace_id == task_span.context.trace_id]
        decisions = [s for s in mine if s.name.startswith("execute_tool")]
        assert {s.attributes[sc.TASK_ID] for s in decisions} == {run.task.id}
        assert all(tree.parent(s) in tree.kind("TOOL") for s in decisions)
        assert all(task_span in tree.ancestors(s) for s in decisions)
        assert sorted(s.attributes[sc.DECISION_OUTCOME] for s in decisions) == ["allow", "deny"]
    assert len({s.context.trace_id for s in tree.spans}) == 2


async def test_a_direct_call_without_a_task_is_a_denied_decision_under_its_tool_span(raw_tools, guard, ledger, traced):
    """Outside any run the call is still one TOOL span holding its (no_grant) decision."""
    tool = guard_tools(raw_tools, guard)[0]
    out = await tool.acall(customer_id="C-42")
    assert out.is_error and ledger.ran == []
    tree = Tree(traced)
    _assert_decisions_under_tool_spans(tree, [("crm_lookup", "deny")])
    assert len({s.context.trace_id for s in tree.spans}) == 1


async def test_a_multi_agent_workflow_is_one_trace_with_each_agents_decisions(raw_tools, policy, identity, traced):
    """AgentWorkflow: each agent's invoke_agent span is under the run's, each decision (the handoff's too)
    under its TOOL span and naming the acting agent."""
    from llama_index.core.agent.workflow import AgentWorkflow

    from agent_guard import Capability, Guard, Policy

    guard = Guard(Policy(agent_id=policy.agent_id, capabilities=[*policy.capabilities,
                                                                 Capability("handoff", args={"to_agent": {"any": True}})]),
                  tracer_provider=traced.provider)
    tools = {t.metadata.name: t for t in guard_tools(raw_tools, guard)}
    plan = Plan(steps=[Step("crm_lookup", args={"customer_id": "C-42"}), Step("handoff", args={"to_agent": "ops"}),
                       Step("delete_db", args={"name": "staging"}, agent="ops")])
    llm = scripted_llm(
        tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"}, id="c1")),
        tool_calls(tool_call("handoff", {"to_agent": "ops", "reason": "cleanup"}, id="h1")),
        tool_calls(tool_call("delete_db", {"name": "prod"}, id="c2")),
        "done",
    )
    support = FunctionAgent(name="support", description="Helps customers", llm=llm, can_handoff_to=["ops"],
                            tools=[tools["crm_lookup"], tools["delete_db"]])
    ops = FunctionAgent(name="ops", description="Runs operations", llm=llm, tools=[tools["delete_db"]], can_handoff_to=[])
    run = guarded_run(AgentWorkflow(agents=[support, ops], root_agent="support"), "Clean up", guard=guard,
                      planner=plan, identity=identity)
    assert str(await run) == "done"
    tree = Tree(traced)
    assert len({s.context.trace_id for s in tree.spans}) == 1
    agents = {s.attributes[sc.AGENT_ID]: s for s in tree.named("invoke_agent")}
    assert set(agents) == {policy.agent_id, "support", "ops"}
    root = agents[policy.agent_id]
    assert tree.parent(agents["support"]) is root and tree.parent(agents["ops"]) is root
    assert all(s is root or root in tree.ancestors(s) for s in tree.spans)
    _assert_decisions_under_tool_spans(tree, [("crm_lookup", "allow"), ("handoff", "allow"), ("delete_db", "deny")])
    acting = {s.attributes[sc.TOOL_CALL_ID]: s.attributes[sc.AGENT_ID] for s in tree.named("execute_tool")}
    assert acting == {"c1": "support", "h1": "support", "c2": "ops"}
