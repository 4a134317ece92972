"""With OpenInference's LangChainInstrumentor, one agent run is one trace, the guard's spans inside it.

OpenInference starts a span per LangChain run from callbacks and never makes it the current
OpenTelemetry span; the adapter parents the task span to the graph's span and each decision
span to the tool's ``TOOL`` span (or, for a tool the ToolNode does not know, to the tools node).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from agent_guard_langchain import AgentGuardMiddleware, guard_tools
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from opentelemetry.sdk.trace import ReadableSpan

from agent_guard import Guard
from agent_guard import semconv as sc
from agent_guard.testing import SpanCapture

instrumentation = pytest.importorskip("openinference.instrumentation.langchain")
OI_KIND = "openinference.span.kind"


@pytest.fixture
def traced() -> Iterator[SpanCapture]:
    """OpenInference's LangChain instrumentor exporting to an in-memory SDK provider (uninstrumented after)."""
    capture = SpanCapture()
    instrumentor = instrumentation.LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=capture.provider)
    try:
        yield capture
    finally:
        instrumentor.uninstrument()
        capture.shutdown()


def _script() -> list[Any]:
    return [
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1"),
              tool_call("send_email", {"to": "evil@attacker.test", "subject": "s", "body": "b"}, "c2")),
        calls(tool_call("wire_money", {"amount": 1}, "c3")),  # a tool the agent does not have
        calls(tool_call("send_email", {"to": "alice@example.com", "subject": "s", "body": "b"}, "c4")),
        "done",
    ]


class Tree:
    """The finished spans of one capture, with parent lookups."""

    def __init__(self, spans: tuple[ReadableSpan, ...]) -> None:
        self.spans = spans
        self.by_id = {s.context.span_id: s for s in spans}

    def parent(self, span: ReadableSpan) -> ReadableSpan | None:
        return self.by_id.get(span.parent.span_id) if span.parent is not None else None

    def decisions(self) -> dict[str, ReadableSpan]:
        return {str(s.attributes[sc.TOOL_CALL_ID]): s for s in self.spans if s.name.startswith("execute_tool")}

    def one(self, prefix: str) -> ReadableSpan:
        (span,) = [s for s in self.spans if s.name.startswith(prefix)]
        return span


def _check_one_trace(tree: Tree) -> None:
    assert len({s.context.trace_id for s in tree.spans}) == 1
    (root,) = [s for s in tree.spans if s.parent is None]
    assert root.name == "LangGraph" and root.attributes[OI_KIND] == "CHAIN"
    decisions = tree.decisions()
    assert sorted(decisions) == ["c1", "c2", "c3", "c4"]  # every decided call, allowed and denied, is in it
    assert {k: d.attributes[sc.DECISION_OUTCOME] for k, d in decisions.items()} == {
        "c1": "allow", "c2": "deny", "c3": "deny", "c4": "allow"}
    for call_id in ("c1", "c2", "c4"):  # under the framework's TOOL span of that very tool call
        parent = tree.parent(decisions[call_id])
        assert parent is not None and parent.attributes[OI_KIND] == "TOOL"
        assert parent.name == decisions[call_id].attributes[sc.TOOL_NAME]
        assert parent.instrumentation_scope.name != "agent_guard"
    ghost_parent = tree.parent(decisions["c3"])  # no such tool, so no TOOL span: the tools node's span
    assert ghost_parent is not None and ghost_parent.name == "tools"
    assert all(d.attributes[OI_KIND] == sc.OPENINFERENCE_KIND_TOOL for d in decisions.values())


async def test_middleware_run_is_one_trace(traced, policy, plan, identity, support_tools, calls_seen, run, mode):
    """AgentGuardMiddleware: the task span under the graph's span, each decision under its TOOL span."""
    guard = Guard(policy, tracer_provider=traced.provider)
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)
    agent = create_agent(ScriptedChatModel(_script()), support_tools, middleware=[mw])
    out = await run(agent, {"messages": [HumanMessage("email alice")]}, mode)
    status = {m.tool_call_id: m.status for m in out["messages"] if isinstance(m, ToolMessage)}
    assert status == {"c1": "success", "c2": "error", "c3": "error", "c4": "success"}
    assert calls_seen.names() == ["crm_lookup", "send_email"]

    tree = Tree(traced.spans)
    _check_one_trace(tree)
    task = tree.one("invoke_agent")
    assert tree.parent(task) is not None and tree.parent(task).name == "LangGraph"  # type: ignore[union-attr]
    assert task.attributes[OI_KIND] == sc.OPENINFERENCE_KIND_AGENT


async def test_guarded_tools_in_a_task_are_one_trace(traced, policy, plan, identity, support_tools, calls_seen, mode):
    """GuardedTool inside `with guard.task()`: the graph runs under the task span, decisions under TOOL spans."""
    guard = Guard(policy, tracer_provider=traced.provider)
    agent = create_agent(ScriptedChatModel(_script()), guard_tools(support_tools, guard))
    payload = {"messages": [HumanMessage("email alice")]}
    if mode == "sync":
        with guard.task(plan, identity=identity):
            agent.invoke(payload)
    else:
        async with guard.task(plan, identity=identity):
            await agent.ainvoke(payload)
    assert calls_seen.names() == ["crm_lookup", "send_email"]
    tree = Tree(traced.spans)
    assert len({s.context.trace_id for s in tree.spans}) == 1
    task = tree.one("invoke_agent")
    assert task.parent is None and tree.parent(tree.one("LangGraph")) is task
    decisions = tree.decisions()
    assert sorted(decisions) == ["c1", "c2", "c4"]  # c3: no such tool, and no guard on that path
    for decision in decisions.values():  # LangChain's TOOL span of the call (named after the tool)
        parent = tree.parent(decision)
        assert parent is not None and parent.attributes[OI_KIND] == "TOOL"
        assert parent.name == decision.attributes[sc.TOOL_NAME] and parent.instrumentation_scope.name != "agent_guard"



async def test_without_the_instrumentor_the_guard_tree_stays(policy, plan, identity, support_tools, run, mode):
    """Installed and imported but not instrumenting (here: uninstrumented): decisions under the task span."""
    capture = SpanCapture()
    instrumentor = instrumentation.LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=capture.provider)
    instrumentor.uninstrument()
    guard = Guard(policy, tracer_provider=capture.provider)
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)
    await run(create_agent(ScriptedChatModel(_script()), support_tools, middleware=[mw]),
              {"messages": [HumanMessage("email alice")]}, mode)
    tree = Tree(capture.spans)
    task = tree.one("invoke_agent")
    assert task.parent is None and not [s for s in tree.spans if s.name == "LangGraph"]
    assert {tree.parent(d) for d in tree.decisions().values()} == {task}
    capture.shutdown()
