"""GuardedTool: langchain-tests standard suites, denials, and no double decision with the middleware."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from agent_guard_langchain import AgentGuardMiddleware, GuardedTool, guard_tools
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler, CallbackManagerForToolRun
from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool, tool
from langchain_core.utils.function_calling import convert_to_openai_tool
from langchain_tests.integration_tests import ToolsIntegrationTests
from langchain_tests.unit_tests import ToolsUnitTests
from pydantic import BaseModel

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step, ToolCallDenied, reasons
from agent_guard import semconv as sc
from agent_guard.testing import SpanCapture


class MultiplyInput(BaseModel):
    """Two integers."""

    a: int
    b: int


class Multiply(BaseTool):
    """A BaseTool subclass whose _run takes a run_manager."""

    name: str = "multiply"
    description: str = "Multiply two integers."
    args_schema: type[BaseModel] = MultiplyInput

    def _run(self, a: int, b: int, run_manager: CallbackManagerForToolRun | None = None) -> str:
        assert run_manager is not None
        return str(a * b)


@tool(response_format="content_and_artifact")
def add(a: int, b: int) -> tuple[str, dict[str, int]]:
    """Add two integers."""
    return str(a + b), {"sum": a + b}


STD_POLICY = Policy(agent_id="std", capabilities=[
    Capability("multiply", args={"a": {"any": True}, "b": {"any": True}}),
    Capability("add", args={"a": {"any": True}, "b": {"any": True}}),
])
STD_GUARD = Guard(STD_POLICY)
STD_PLAN = Plan(goal="standard tests", steps=[
    Step("multiply", args={"a": {"any": True}, "b": {"any": True}}, max_calls=100),
    Step("add", args={"a": {"any": True}, "b": {"any": True}}, max_calls=100),
])


class _AllowAll:
    """Runs each standard test inside an allow-all task (a denying guard would fail test_invoke_no_tool_call)."""

    @pytest.fixture(autouse=True)
    def _allow_all(self) -> Iterator[None]:
        with STD_GUARD.task(STD_PLAN, identity=AgentIdentity(agent_id="std")):
            yield


class _AroundFunction(_AllowAll):
    """GuardedTool around a @tool function (content_and_artifact)."""

    @property
    def tool_constructor(self) -> BaseTool:
        return GuardedTool(add, STD_GUARD)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"a": 2, "b": 3}


class _AroundSubclass(_AllowAll):
    """GuardedTool around a BaseTool subclass whose _run takes a run_manager."""

    @property
    def tool_constructor(self) -> BaseTool:
        return GuardedTool(Multiply(), STD_GUARD)

    @property
    def tool_invoke_params_example(self) -> dict[str, Any]:
        return {"a": 4, "b": 5}


class TestGuardedToolFunctionUnit(_AroundFunction, ToolsUnitTests):
    """Standard unit suite around a @tool function."""


class TestGuardedToolFunctionIntegration(_AroundFunction, ToolsIntegrationTests):
    """Standard integration suite around a @tool function."""


class TestGuardedToolSubclassUnit(_AroundSubclass, ToolsUnitTests):
    """Standard unit suite around a BaseTool subclass."""


class TestGuardedToolSubclassIntegration(_AroundSubclass, ToolsIntegrationTests):
    """Standard integration suite around a BaseTool subclass."""


def test_wrapper_looks_exactly_like_the_tool():
    """Name, description, schemas, return_direct and response_format are the wrapped tool's."""
    for inner in (add, Multiply()):
        wrapped = GuardedTool(inner, STD_GUARD)
        assert convert_to_openai_tool(wrapped) == convert_to_openai_tool(inner)
        assert wrapped.tool_call_schema is inner.tool_call_schema
        assert wrapped.get_input_schema() is inner.get_input_schema()
        assert (wrapped.return_direct, wrapped.response_format) == (inner.return_direct, inner.response_format)
    assert GuardedTool(add, STD_GUARD).func is add.func


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_denials(mode):
    """Refused: a ToolCall gets an error ToolMessage; plain args raise; raise mode always raises."""
    spans = SpanCapture()
    guard = Guard(STD_POLICY, tracer_provider=spans.provider)
    plan = Plan(goal="only 2+3", steps=[Step("add", args={"a": 2, "b": 3})])
    wrapped, strict = GuardedTool(add, guard), GuardedTool(add, guard, on_violation="raise")
    bad_call = {"type": "tool_call", "name": "add", "args": {"a": 9, "b": 9}, "id": "x1"}

    async def invoke(t: BaseTool, value: Any) -> Any:
        return t.invoke(value) if mode == "sync" else await t.ainvoke(value)

    with guard.task(plan, identity=AgentIdentity(agent_id="std")):
        msg = await invoke(wrapped, bad_call)
        assert isinstance(msg, ToolMessage) and msg.status == "error" and msg.tool_call_id == "x1"
        assert msg.name == "add" and reasons.ARGUMENT_MISMATCH in msg.content
        with pytest.raises(ToolCallDenied):
            await invoke(wrapped, {"a": 9, "b": 9})
        with pytest.raises(ToolCallDenied):
            await invoke(strict, bad_call)
        ok = await invoke(wrapped, {**bad_call, "args": {"a": 2, "b": 3}, "id": "x2"})
        assert (ok.content, ok.artifact, ok.status) == ("5", {"sum": 5}, "success")
    with pytest.raises(ToolCallDenied) as err:  # outside any task
        await invoke(wrapped, {"a": 2, "b": 3})
    assert err.value.reason == reasons.NO_GRANT
    assert [r["outcome"] for r in spans.decisions()] == ["deny", "deny", "deny", "allow", "deny"]
    assert spans.decisions()[0]["call_id"] == "x1"


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_middleware_plus_guarded_tool_decide_once(guard, identity, support_tools, calls_seen, spans, run, mode):
    """Middleware and GuardedTool together: one decision, one budget unit, one span per call."""
    plan = Plan(goal="two lookups", steps=[Step("crm_lookup", args={"customer_id": "C-42"}, max_calls=2)])
    mw = AgentGuardMiddleware(guard, planner=plan, identity=identity)
    model = ScriptedChatModel([
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")),
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c2")),
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c3")),
        "done",
    ])
    agent = create_agent(model, guard_tools(support_tools, guard), middleware=[mw])
    out = await run(agent, {"messages": [("user", "x")]}, mode)
    statuses = [m.status for m in out["messages"] if isinstance(m, ToolMessage)]
    assert statuses == ["success", "success", "error"]  # a double decision would have spent the budget on c1
    assert len(calls_seen.ran) == 2
    rows = spans.decisions()
    assert [(r["call_id"], r["outcome"]) for r in rows] == [("c1", "allow"), ("c2", "allow"), ("c3", "deny")]
    assert rows[2]["reason"] == reasons.BUDGET_EXHAUSTED  # the plan completed with c2: scope reason first
    assert all(s.attributes[sc.TOOL_CALL_ID] for s in spans.named("execute_tool"))


def test_guard_tools_rewraps_guarded_tools():
    """guard_tools returns GuardedTools and never nests a guard inside another."""
    once = guard_tools([add, Multiply()], STD_GUARD)
    twice = guard_tools(once, STD_GUARD)
    assert all(isinstance(t, GuardedTool) and not isinstance(t.inner, GuardedTool) for t in twice)
    assert [t.name for t in twice] == ["add", "multiply"]


class _Events(BaseCallbackHandler):
    """Records tool callbacks: (event, run id, tags, metadata, input or output)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any, Any, Any, Any]] = []

    def on_tool_start(self, serialized: Any, input_str: str, *, run_id: uuid.UUID, tags: Any = None,
                      metadata: Any = None, **kwargs: Any) -> None:
        self.seen.append(("start", run_id, tags, metadata, input_str))

    def on_tool_end(self, output: Any, *, run_id: uuid.UUID, **kwargs: Any) -> None:
        self.seen.append(("end", run_id, None, None, getattr(output, "content", output)))


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("as_tool_call", [True, False])
async def test_invoke_passes_config_through_unchanged(mode, as_tool_call):
    """Callbacks, run_id, tags and metadata of the config reach the wrapped tool exactly as without the guard."""
    guard = Guard(STD_POLICY)
    wrapped = GuardedTool(add, guard)
    value: Any = {"a": 2, "b": 3}
    if as_tool_call:
        value = {"type": "tool_call", "name": "add", "args": value, "id": "t1"}

    async def invoke(t: BaseTool) -> tuple[Any, list[Any]]:
        events = _Events()
        config: Any = {"callbacks": [events], "run_id": uuid.UUID(int=7), "tags": ["t"], "metadata": {"m": 1}}
        out = t.invoke(value, config) if mode == "sync" else await t.ainvoke(value, config)
        return out, events.seen

    with guard.task(STD_PLAN, identity=AgentIdentity(agent_id="std")):
        bare_out, bare_events = await invoke(add)
        out, events = await invoke(wrapped)
    assert events == bare_events and len(events) == 2  # one start and one end: no callback run of its own
    assert events[0][1:4] == (uuid.UUID(int=7), ["t"], {"m": 1})
    assert out == bare_out
