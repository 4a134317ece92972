"""Parity matrix: every tool kind gives the same messages wrapped and unwrapped in a real create_agent loop."""

from __future__ import annotations

from typing import Annotated, Any

import pytest
from agent_guard_langchain import GuardedTool
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain.tools import InjectedState, ToolRuntime
from langchain_core.callbacks import CallbackManagerForToolRun
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, InjectedToolCallId, StructuredTool, ToolException, tool
from langgraph.types import Command
from pydantic import BaseModel

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step
from agent_guard import semconv as sc
from agent_guard.testing import SpanCapture


@tool
def plain(a: int) -> str:
    """Plain sync tool."""
    return f"plain {a}"


async def _async_only(a: int) -> str:
    return f"async {a}"


async_only = StructuredTool.from_function(coroutine=_async_only, name="async_only", description="Async-only tool.")


@tool(return_direct=True)
def direct(a: int) -> str:
    """Ends the loop with its result."""
    return f"direct {a}"


@tool
def with_runtime(a: int, runtime: ToolRuntime) -> str:
    """Reads the ToolRuntime."""
    return f"runtime {a} {runtime.tool_call_id} {len(runtime.state['messages'])}"


@tool
def with_state(a: int, state: Annotated[dict[str, Any], InjectedState]) -> str:
    """Reads the injected state."""
    return f"state {a} {len(state['messages'])}"


@tool
def with_config(a: int, config: RunnableConfig) -> str:
    """Reads its RunnableConfig."""
    return f"config {a} {config['metadata'].get('tenant')}"


class _SubIn(BaseModel):
    a: int


class Sub(BaseTool):
    """A BaseTool subclass using run_manager."""

    name: str = "sub"
    description: str = "BaseTool subclass."
    args_schema: type[BaseModel] = _SubIn

    def _run(self, a: int, run_manager: CallbackManagerForToolRun | None = None) -> str:
        return f"sub {a} {run_manager is not None}"


@tool(response_format="content_and_artifact")
def artifact(a: int) -> tuple[str, dict[str, int]]:
    """Content and artifact."""
    return f"artifact {a}", {"a": a}


@tool
def call_id(a: int, tool_call_id: Annotated[str, InjectedToolCallId]) -> str:
    """Reads its tool call id."""
    return f"id {a} {tool_call_id}"


@tool
def command(a: int, tool_call_id: Annotated[str, InjectedToolCallId]) -> Command:
    """Returns a Command updating the messages."""
    return Command(update={"messages": [ToolMessage(f"command {a}", tool_call_id=tool_call_id)]})


@tool
def failing(a: int) -> str:
    """Raises a ToolException handled by handle_tool_error."""
    raise ToolException(f"failing {a}")


failing.handle_tool_error = True


async def _json_schema(a: int) -> tuple[str, list[int]]:
    return f"json {a}", [a]


json_schema = StructuredTool(
    name="json_schema", description="MCP-shaped: JSON-schema args, coroutine only, content_and_artifact.",
    args_schema={"type": "object", "properties": {"a": {"type": "integer"}}, "required": ["a"]},
    coroutine=_json_schema, response_format="content_and_artifact",
)

KINDS: dict[str, BaseTool] = {t.name: t for t in [plain, async_only, direct, with_runtime, with_state, with_config,
                                                  Sub(), artifact, call_id, command, failing, json_schema]}
POLICY = Policy(agent_id="parity", capabilities=[Capability(n, args={"a": {"any": True}}) for n in KINDS])
PLAN = Plan(goal="parity", steps=[Step(n, args={"a": {"any": True}}, max_calls=5) for n in KINDS])


def _summary(messages: list[BaseMessage]) -> list[tuple[Any, ...]]:
    out = []
    for m in messages:
        row: tuple[Any, ...] = (m.type, m.content)
        if isinstance(m, ToolMessage):
            row += (m.status, m.name, m.tool_call_id, m.artifact)
        if isinstance(m, AIMessage):
            row += (tuple((c["name"], tuple(sorted(c["args"].items())), c["id"]) for c in m.tool_calls),)
        out.append(row)
    return out


async def _outcome(tools: list[BaseTool], name: str, mode: str) -> Any:
    model = ScriptedChatModel([calls(tool_call(name, {"a": 3}, f"id-{name}")), "final"])
    agent = create_agent(model, tools)
    payload = {"messages": [("user", f"use {name}")]}
    config: RunnableConfig = {"metadata": {"tenant": "acme"}}
    try:
        result = agent.invoke(payload, config) if mode == "sync" else await agent.ainvoke(payload, config)
    except Exception as err:  # e.g. an async-only tool under invoke(): same error expected both ways
        return ("raised", type(err).__name__, str(err))
    return _summary(result["messages"])


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("name", sorted(KINDS))
async def test_wrapped_equals_unwrapped(name, mode):
    """Same ToolMessages (content, artifact, status, name, id) and same loop end, wrapped or not."""
    spans = SpanCapture()
    guard = Guard(POLICY, tracer_provider=spans.provider)
    bare = await _outcome(list(KINDS.values()), name, mode)
    wrapped_tools: list[BaseTool] = [GuardedTool(t, guard) for t in KINDS.values()]
    if mode == "sync":
        with guard.task(PLAN, identity=AgentIdentity(agent_id="parity")):
            wrapped = await _outcome(wrapped_tools, name, mode)
    else:
        async with guard.task(PLAN, identity=AgentIdentity(agent_id="parity")):
            wrapped = await _outcome(wrapped_tools, name, mode)
    assert wrapped == bare
    if not (mode == "sync" and name in {"async_only", "json_schema"}):
        assert bare[0] != "raised"
        (span,) = spans.named("execute_tool")
        assert span.attributes[sc.TOOL_CALL_ID] == f"id-{name}"
        assert span.attributes[sc.DECISION_OUTCOME] == "allow"
