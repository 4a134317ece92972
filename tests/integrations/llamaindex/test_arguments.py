"""The decision is made on exactly what the wrapped tool receives: defaults, partial params, schemas."""

from __future__ import annotations

from typing import Any

import pytest
from agent_guard_llamaindex import guard_tools, guarded_run
from agent_guard_llamaindex.testing import scripted_llm, tool_call, tool_calls
from llama_index.core.agent.workflow import FunctionAgent
from llama_index.core.tools import AsyncBaseTool, BaseTool, FunctionTool, ToolMetadata, ToolOutput
from pydantic import BaseModel, Field

from agent_guard import Capability, Guard, Plan, Policy, Step, reasons
from agent_guard import semconv as sc

POLICY = Policy(
    agent_id="support-bot",
    capabilities=[
        # amount may be left out ("optional"): then the tool's own default is what must be checked
        Capability("transfer", args={"to": {"prefix": "acct-"}, "amount": {"min": 0, "max": 500, "optional": True},
                                     "memo": {"any": True}}),
        Capability("search", args={"query": {"max_len": 100}, "limit": {"max": 20}, "user": {"eq": "u-1"}}),
    ],
)


def _plan(*steps: Step) -> Plan:
    return Plan(goal="test", steps=list(steps))


@pytest.fixture
def bank(spans):
    """A guard on the transfer/search policy, and a record of what each tool body received."""
    return Guard(POLICY, tracer_provider=spans.provider), []


def _transfer_tool(received: list[dict[str, Any]]) -> FunctionTool:
    def transfer(to: str, amount: int = 10000, memo: str = "") -> str:
        """Move money."""
        received.append({"to": to, "amount": amount, "memo": memo})
        return f"sent {amount} to {to}"

    return FunctionTool.from_defaults(transfer)


def _transfer_any(max_calls: int = 1) -> Step:
    return Step("transfer", args={"to": "acct-1", "amount": {"optional": True}, "memo": {"any": True}},
                max_calls=max_calls)


TRANSFER_ANY = _transfer_any()


def test_a_default_outside_the_ceiling_is_refused(bank, identity, spans):
    """transfer(to=...) without amount is decided with amount=10000 (the default) and refused."""
    guard, received = bank
    tool = guard_tools([_transfer_tool(received)], guard)[0]
    with guard.task(_plan(TRANSFER_ANY), identity=identity):
        out = tool.call(to="acct-1")
    assert out.is_error and reasons.ARGUMENT_MISMATCH in out.content and "'amount'" in out.content
    assert received == []
    (span,) = spans.named("execute_tool")
    assert span.attributes[sc.DECISION_OUTCOME] == "deny"


async def test_a_default_is_refused_on_the_async_path_too(bank, identity):
    """The async path fills in the same defaults before deciding."""
    guard, received = bank
    tool = guard_tools([_transfer_tool(received)], guard)[0]
    async with guard.task(_plan(TRANSFER_ANY), identity=identity):
        out = await tool.acall(to="acct-1")
    assert out.is_error and reasons.ARGUMENT_MISMATCH in out.content and received == []


async def test_passed_values_are_decided_and_received(bank, identity):
    """An explicit amount inside the ceiling runs; the body gets the decided mapping, defaults included."""
    guard, received = bank
    tool = guard_tools([_transfer_tool(received)], guard)[0]
    plan = _plan(_transfer_any(2))
    async with guard.task(plan, identity=identity):
        ok = await tool.acall(to="acct-1", amount=100)
        too_much = await tool.acall(to="acct-1", amount=501)
    assert not ok.is_error and too_much.is_error
    assert received == [{"to": "acct-1", "amount": 100, "memo": ""}]
    assert ok.raw_input["kwargs"] == {"to": "acct-1", "amount": 100, "memo": ""}


async def test_a_default_the_plan_does_not_name_is_refused(bank, identity):
    """A parameter the tool receives (by default) that the plan step does not name is not allowed."""
    guard, received = bank
    tool = guard_tools([_transfer_tool(received)], guard)[0]
    async with guard.task(_plan(Step("transfer", args={"to": "acct-1", "amount": 5})), identity=identity):
        out = await tool.acall(to="acct-1", amount=5)
    assert out.is_error and reasons.ARGUMENT_NOT_ALLOWED in out.content and "'memo'" in out.content
    assert received == []


def _search_tool(received: list[dict[str, Any]], **partial: Any) -> FunctionTool:
    def search(query: str, limit: int = Field(default=50, description="how many"), user: str = "anyone") -> str:
        """Search."""
        received.append({"query": query, "limit": limit, "user": user})
        return "found"

    return FunctionTool.from_defaults(search, partial_params=partial or None)


SEARCH = Step("search", args={"query": {"any": True}, "limit": {"any": True}, "user": {"any": True}}, max_calls=3)


async def test_pydantic_field_defaults_and_partial_params_are_decided(bank, identity):
    """A Field(default=...) and a partial_params value are part of what the tool receives, so of the decision."""
    guard, received = bank
    tool = guard_tools([_search_tool(received, user="u-1")], guard)[0]
    async with guard.task(_plan(SEARCH), identity=identity):
        field_default = await tool.acall(query="q")  # limit=50 > 20: refused
        ok = await tool.acall(query="q", limit=5)  # user comes from partial_params
        overridden = await tool.acall(query="q", limit=5, user="admin")  # the model overrides a partial param
    assert field_default.is_error and "'limit'" in field_default.content
    assert not ok.is_error and overridden.is_error and "'user'" in overridden.content
    assert received == [{"query": "q", "limit": 5, "user": "u-1"}]


async def test_unknown_or_missing_arguments_raise_before_any_decision(bank, identity, spans):
    """A call the function cannot be bound to raises TypeError: no decision, no budget spent, nothing ran."""
    guard, received = bank
    tool = guard_tools([_transfer_tool(received), _search_tool([])], guard)
    async with guard.task(_plan(TRANSFER_ANY), identity=identity) as task:
        with pytest.raises(TypeError, match=r"transfer: .*unexpected 'evil'.*nothing ran"):
            await tool[0].acall(to="acct-1", amount=1, evil="x")
        with pytest.raises(TypeError, match=r"transfer: .*missing 'to'"):
            tool[0].call(amount=1)
        with pytest.raises(TypeError, match=r"search: .*missing 'query'"):
            await tool[1].acall(limit=1)
        ok = await tool[0].acall(to="acct-1", amount=1)
    assert not ok.is_error and received == [{"to": "acct-1", "amount": 1, "memo": ""}]
    assert [s.attributes[sc.DECISION_OUTCOME] for s in spans.named("execute_tool")] == ["allow"]
    assert task.revoked


async def test_hostile_argument_names_are_escaped_in_the_error(bank, identity):
    """A model-chosen argument name is quoted with its control characters escaped, and cut short."""
    guard, received = bank
    tool = guard_tools([_transfer_tool(received)], guard)[0]
    async with guard.task(_plan(TRANSFER_ANY), identity=identity):
        with pytest.raises(TypeError) as info:
            await tool.acall(to="acct-1", **{"\x1b[2K\n" + "x" * 200: 1})
    assert "\x1b" not in str(info.value) and "\n" not in str(info.value) and "x" * 100 not in str(info.value)


async def test_a_required_field_left_out_is_not_passed_as_a_fieldinfo(bank, identity):
    """LlamaIndex would hand a missing required Field(...) to the function as a FieldInfo; the guard refuses."""
    guard, received = bank

    def transfer(to: str = Field(description="account"), amount: int = 1, memo: str = "") -> str:
        """Move money."""
        received.append(to)
        return "ok"

    tool = guard_tools([FunctionTool.from_defaults(transfer)], guard)[0]
    async with guard.task(_plan(TRANSFER_ANY), identity=identity):
        with pytest.raises(TypeError, match="missing 'to'"):
            await tool.acall(amount=1)
    assert received == []


async def test_sync_and_async_functions_each_decide_on_their_own_defaults(bank, identity):
    """A FunctionTool built from fn and async_fn decides each path on the function that path runs."""
    guard, received = bank

    def transfer(to: str, amount: int = 1, memo: str = "") -> str:
        """Move money."""
        received.append(("sync", amount))
        return "ok"

    async def atransfer(to: str, amount: int = 9999, memo: str = "") -> str:
        received.append(("async", amount))
        return "ok"

    tool = guard_tools([FunctionTool.from_defaults(transfer, async_fn=atransfer)], guard)[0]
    async with guard.task(_plan(_transfer_any(2)), identity=identity):
        assert not tool.call(to="acct-1").is_error
        assert (await tool.acall(to="acct-1")).is_error  # 9999 > 500
    assert received == [("sync", 1)]


async def test_a_non_function_tool_gets_its_schema_defaults(bank, identity):
    """Any other tool: fn_schema field defaults are filled in, decided, and passed explicitly."""
    guard, received = bank

    class SearchArgs(BaseModel):
        query: str
        limit: int = 50
        user: str = "u-1"

    class Search(AsyncBaseTool):
        @property
        def metadata(self) -> ToolMetadata:
            return ToolMetadata(name="search", description="Search.", fn_schema=SearchArgs)

        def call(self, **kwargs: Any) -> ToolOutput:
            received.append(kwargs)
            return ToolOutput(content="found", tool_name="search", raw_input=kwargs, raw_output="found")

        async def acall(self, **kwargs: Any) -> ToolOutput:
            return self.call(**kwargs)

    tool = guard_tools([Search()], guard)[0]
    async with guard.task(_plan(SEARCH), identity=identity):
        assert (await tool.acall(query="q")).is_error  # limit=50 > 20
        assert not tool.call(query="q", limit=3).is_error
    assert received == [{"query": "q", "limit": 3, "user": "u-1"}]


async def test_a_sync_only_tool_runs_on_the_async_path(bank, identity):
    """A BaseTool that is not an AsyncBaseTool is run in a worker thread with its keyword arguments."""
    guard, received = bank

    class Search(BaseTool):
        @property
        def metadata(self) -> ToolMetadata:
            return ToolMetadata(name="search", description="Search.")

        def __call__(self, **kwargs: Any) -> ToolOutput:
            received.append(kwargs)
            return ToolOutput(content="found", tool_name="search", raw_input=kwargs, raw_output="found")

    tool = guard_tools([Search()], guard)[0]
    async with guard.task(_plan(SEARCH), identity=identity):
        out = await tool.acall(query="q", limit=3, user="u-1")
    assert not out.is_error and received == [{"query": "q", "limit": 3, "user": "u-1"}]


async def test_the_model_cannot_replace_the_context(raw_tools, guard, plan, identity, ledger):
    """A model argument named like the tool's Context parameter is dropped; the agent's Context is used."""
    llm = scripted_llm(
        tool_calls(tool_call("remember", {"key": "k", "value": "v", "ctx": "not a context"}, id="c1")), "done"
    )
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=llm)
    run = guarded_run(agent, "note it", guard=guard, planner=plan, identity=identity)
    assert str(await run) == "done"
    assert ledger.ran == [("remember", {"key": "k", "value": "v"})]
    assert await run.handler.ctx.store.get("note:k") == "v"
    # outside an agent, a direct call may still hand the Context under the tool's own parameter name
    remember = {t.metadata.name: t for t in agent.tools}["remember"]
    async with guard.task(plan, identity=identity):
        out = await remember.acall(key="k2", value="v2", ctx=run.handler.ctx)
    assert not out.is_error and await run.handler.ctx.store.get("note:k2") == "v2"


def test_an_error_value_from_the_tool_marks_the_call_failed(bank, identity, spans):
    """A wrapped tool answering ToolOutput(is_error=True) marks the allowed call's span with the tool error type."""
    guard, _ = bank

    def transfer(to: str, amount: int = 1, memo: str = "") -> ToolOutput:
        """Move money."""
        return ToolOutput(content="bank offline", tool_name="transfer", raw_input={}, raw_output=None, is_error=True)

    tool = guard_tools([FunctionTool.from_defaults(transfer, callback=lambda result: result)], guard)[0]
    with guard.task(_plan(TRANSFER_ANY), identity=identity):
        out = tool.call(to="acct-1")
    assert out.is_error and out.content == "bank offline"
    (span,) = spans.named("execute_tool")
    assert span.attributes[sc.DECISION_OUTCOME] == "allow"
    assert span.attributes[sc.ERROR_TYPE] == sc.TOOL_ERROR_TYPE
