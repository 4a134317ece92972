"""One guarded-call path for the middleware, the ToolNode wrappers and GuardedTool; the core's span semantics."""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import agent_guard_langchain
import pytest
from agent_guard_langchain import AgentGuardMiddleware, GuardedTool, guard_tools, tool_node_wrappers
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, ToolException, tool
from langgraph.prebuilt import ToolNode, create_react_agent

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step
from agent_guard import semconv as sc
from agent_guard.testing import SpanCapture

ME = AgentIdentity(agent_id="calls")
POLICY = Policy(agent_id="calls", capabilities=[Capability("lookup", args={"key": {"any": True}}),
                                                 Capability("broken", args={"key": {"any": True}})])
PLAN = Plan(goal="look", steps=[Step("lookup", args={"key": "k1"}, max_calls=3),
                                Step("broken", args={"key": {"any": True}}, max_calls=3)])


@tool
def lookup(key: str) -> str:
    """Look a key up."""
    return f"value of {key}"


@tool
def broken(key: str) -> str:
    """Always fails, handled by handle_tool_error."""
    raise ToolException(f"no {key}")


broken.handle_tool_error = True
TOOLS: list[BaseTool] = [lookup, broken]


def _script() -> list[Any]:
    return [calls(tool_call("lookup", {"key": "k1"}, "a1"), tool_call("broken", {"key": "k1"}, "a2")), "done"]


async def _through(path: str, guard: Guard, mode: str) -> dict[str, Any]:
    """One agent run with the guard on ``path``: the middleware, the ToolNode wrappers or GuardedTool."""
    model = ScriptedChatModel(_script())
    payload = {"messages": [HumanMessage("look k1 up")]}
    if path == "middleware":
        agent = create_agent(model, TOOLS, middleware=[AgentGuardMiddleware(guard, planner=PLAN, identity=ME)])
        return agent.invoke(payload) if mode == "sync" else await agent.ainvoke(payload)
    if path == "wrappers":
        wrap, awrap = tool_node_wrappers(guard)
        agent = create_react_agent(model, tools=ToolNode(TOOLS, wrap_tool_call=wrap, awrap_tool_call=awrap))
    else:
        agent = create_agent(model, guard_tools(TOOLS, guard))
    if mode == "sync":
        with guard.task(PLAN, identity=ME):
            return agent.invoke(payload)
    async with guard.task(PLAN, identity=ME):
        return await agent.ainvoke(payload)


@pytest.mark.filterwarnings("ignore::langgraph.warnings.LangGraphDeprecatedSinceV10")
@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("path", ["middleware", "wrappers", "guarded_tool"])
async def test_every_path_records_the_same_spans(path, mode):
    """With record_arguments=True each path records arguments and the result; an error answer marks the span."""
    spans = SpanCapture()
    guard = Guard(POLICY, tracer_provider=spans.provider, record_arguments=True)
    out = await _through(path, guard, mode)
    status = {m.tool_call_id: m.status for m in out["messages"] if isinstance(m, ToolMessage)}
    assert status == {"a1": "success", "a2": "error"}
    by_id = {s.attributes[sc.TOOL_CALL_ID]: s for s in spans.named("execute_tool")}
    ok, failed = by_id["a1"], by_id["a2"]
    assert json.loads(ok.attributes[sc.TOOL_CALL_ARGUMENTS]) == {"key": "k1"}
    assert json.loads(ok.attributes[sc.TOOL_CALL_RESULT]) == "value of k1"  # the middleware path lacked this
    assert sc.ERROR_TYPE not in ok.attributes and ok.status.is_ok
    assert failed.attributes[sc.ERROR_TYPE].endswith("ToolException") and not failed.status.is_ok
    assert sc.TOOL_CALL_RESULT not in failed.attributes  # the tool raised: no result to record
    assert ok.attributes[sc.OPENINFERENCE_SPAN_KIND] == sc.OPENINFERENCE_KIND_TOOL
    spans.shutdown()


async def test_an_error_answer_value_is_marked_with_the_core_constant(mode):
    """A call decided at the ToolNode (a tool it does not know) answered with an error ToolMessage: TOOL_ERROR_TYPE."""
    spans = SpanCapture()
    guard = Guard(Policy(agent_id="calls", capabilities=[Capability("ghost", args={})]),
                  tracer_provider=spans.provider)
    plan = Plan(goal="ghost", steps=[Step("ghost", args={})])
    model = ScriptedChatModel([calls(tool_call("ghost", {}, "g1")), "done"])
    agent = create_agent(model, TOOLS, middleware=[AgentGuardMiddleware(guard, planner=plan, identity=ME)])
    payload = {"messages": [HumanMessage("x")]}
    out = agent.invoke(payload) if mode == "sync" else await agent.ainvoke(payload)
    (msg,) = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert msg.status == "error"  # LangGraph: not a valid tool
    (span,) = spans.named("execute_tool")
    assert span.attributes[sc.DECISION_OUTCOME] == "allow" and span.attributes[sc.ERROR_TYPE] == sc.TOOL_ERROR_TYPE
    spans.shutdown()


def test_no_adapter_module_imports_opentelemetry():
    """Span semantics stay in the core: the adapter never imports opentelemetry."""
    package = Path(agent_guard_langchain.__file__).parent
    offenders = []
    for path in sorted(package.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names if n.split(".")[0] == "opentelemetry"]
    assert offenders == []


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_a_denied_call_is_a_tool_run_that_answers_with_the_refusal(mode):
    """The refusal happens inside the tool run: callbacks see it start and fail with the ToolCallDenied,
    while the caller (the model) gets the error ToolMessage."""
    from langchain_core.callbacks import BaseCallbackHandler

    class Events(BaseCallbackHandler):
        def __init__(self) -> None:
            self.seen: list[str] = []

        def on_tool_start(self, *args: Any, **kwargs: Any) -> None:
            self.seen.append("start")

        def on_tool_end(self, output: Any, **kwargs: Any) -> None:
            self.seen.append(f"end {output.status}")

        def on_tool_error(self, error: BaseException, **kwargs: Any) -> None:
            self.seen.append(f"error {type(error).__name__} {getattr(error, 'reason', '')}")

    guard = Guard(POLICY)
    wrapped = GuardedTool(lookup, guard)
    events = Events()
    call = {"type": "tool_call", "name": "lookup", "args": {"key": "k2"}, "id": "d1"}
    with guard.task(PLAN, identity=ME):
        out = wrapped.invoke(call, {"callbacks": [events]}) if mode == "sync" else \
            await wrapped.ainvoke(call, {"callbacks": [events]})
    assert out.status == "error" and events.seen == ["start", "error ToolCallDenied argument_mismatch"]


async def test_a_later_middleware_replacing_the_tool_fails_closed(caplog, run, mode):
    """A middleware after AgentGuardMiddleware that swaps request.tool for an unguarded tool: the swapped
    tool never runs (stopped before its function), the call is refused no_grant and recorded; listed
    before the guard, the swapped tool is the one guarded, decided and run."""
    from langchain.agents.middleware import AgentMiddleware

    ran: list[str] = []

    @tool("lookup")
    def other_lookup(key: str) -> str:
        """Another implementation."""
        ran.append(key)
        return "other"

    class Swap(AgentMiddleware):  # type: ignore[type-arg]
        def wrap_tool_call(self, request: Any, handler: Any) -> Any:
            return handler(request.override(tool=other_lookup))

        async def awrap_tool_call(self, request: Any, handler: Any) -> Any:
            return await handler(request.override(tool=other_lookup))

    spans = SpanCapture()
    guard = Guard(POLICY, tracer_provider=spans.provider)
    model = ScriptedChatModel([calls(tool_call("lookup", {"key": "k1"}, "s1")),
                               calls(tool_call("lookup", {"key": "k1"}, "s2")), "done"])
    mw = AgentGuardMiddleware(guard, planner=PLAN, identity=ME)
    with caplog.at_level("ERROR", logger="agent_guard"):
        out = await run(create_agent(model, TOOLS, middleware=[mw, Swap()]), {"messages": [HumanMessage("x")]}, mode)
    assert ran == []  # fail closed: the undecided tool never ran
    answers = [m for m in out["messages"] if isinstance(m, ToolMessage)]
    assert [(m.tool_call_id, m.status) for m in answers] == [("s1", "error"), ("s2", "error")]
    assert all("no_grant" in m.content and "replaced request.tool" in m.content for m in answers)
    assert [(r["call_id"], r["outcome"], r["reason"]) for r in spans.decisions()] == [
        ("s1", "deny", "no_grant"), ("s2", "deny", "no_grant")]
    assert any("replaced request.tool" in r.getMessage() for r in caplog.records)

    spans.clear()
    model = ScriptedChatModel([calls(tool_call("lookup", {"key": "k1"}, "s3")), "done"])
    mw = AgentGuardMiddleware(guard, planner=PLAN, identity=ME)
    await run(create_agent(model, TOOLS, middleware=[Swap(), mw]), {"messages": [HumanMessage("x")]}, mode)
    assert ran == ["k1"]  # in the right order the swapped tool is the guarded one
    assert [(r["call_id"], r["outcome"]) for r in spans.decisions()] == [("s3", "allow")]
    spans.shutdown()
