"""GuardedFunctionTool outside agent loops: metadata, both call paths, Context, denials, spans."""

from __future__ import annotations

import pytest
from agent_guard_llamaindex import CTX_PARAM, GuardedFunctionTool, guard_tools
from llama_index.core.tools import FunctionTool, ToolOutput
from llama_index.core.tools.types import AsyncBaseTool

from agent_guard import ConfigError, ToolCallDenied, reasons
from agent_guard import semconv as sc


def test_metadata_is_the_inner_tools(raw_tools, guard):
    """Name, description, fn_schema and return_direct are exactly the wrapped tool's."""
    direct = FunctionTool.from_defaults(lambda q: q, name="lookup", description="d", return_direct=True)
    wrapped = guard_tools([*raw_tools, direct], guard)
    assert [w.metadata for w in wrapped] == [t.metadata for t in [*raw_tools, direct]]
    assert wrapped[-1].metadata.return_direct is True
    assert [w.metadata.to_openai_tool() for w in wrapped] == [t.metadata.to_openai_tool() for t in [*raw_tools, direct]]
    assert all(isinstance(w, FunctionTool) and w.requires_context and w.ctx_param_name == CTX_PARAM for w in wrapped)


def test_outside_a_task_every_call_is_denied_no_grant(raw_tools, guard, ledger, spans):
    """Without a task, sync and async calls are denied with no_grant and no body runs."""
    tools = guard_tools(raw_tools, guard)
    out = tools[0].call(customer_id="C-42")
    assert out.is_error and "'crm_lookup'" in out.content and reasons.NO_GRANT in out.content
    assert isinstance(out.exception, ToolCallDenied) and out.exception.reason == reasons.NO_GRANT
    assert ledger.ran == []
    assert len(spans.named("execute_tool")) == 1


async def test_outside_a_task_async_calls_are_denied(raw_tools, guard, ledger):
    """The async path denies with no_grant too, for every tool."""
    tools = guard_tools(raw_tools, guard)
    outs = [await t.acall(**args) for t, args in zip(tools, [
        {"customer_id": "C-42"}, {"to": "alice@example.com", "subject": "s", "body": "b"},
        {"key": "k", "value": "v", CTX_PARAM: object()}, {"name": "prod"}], strict=True)]
    assert all(o.is_error and reasons.NO_GRANT in o.content for o in outs)
    assert ledger.ran == []


def test_sync_call_in_task(raw_tools, guard, plan, identity, ledger, spans):
    """An allowed sync call runs the body once, consumes its step and emits one allow span."""
    tools = guard_tools(raw_tools, guard)
    with guard.task(plan, identity=identity):
        out = tools[0].call(customer_id="C-42")
        again = tools[0].call(customer_id="C-42")
    assert isinstance(out, ToolOutput) and not out.is_error and "Alice" in out.content
    assert again.is_error and reasons.BUDGET_EXHAUSTED in again.content
    assert ledger.names() == ["crm_lookup"]
    first, second = spans.named("execute_tool")
    assert first.attributes[sc.DECISION_OUTCOME] == "allow" and first.attributes[sc.PLAN_STEP] == 0
    assert second.attributes[sc.DECISION_OUTCOME] == "deny"
    assert second.attributes[sc.DECISION_REASON] == reasons.BUDGET_EXHAUSTED


async def test_async_call_and_argument_checks(raw_tools, guard, plan, identity, ledger, spans):
    """Async calls are checked on every argument: wrong value and extra argument are refused."""
    tools = {t.metadata.name: t for t in guard_tools(raw_tools, guard)}
    async with guard.task(plan, identity=identity):
        bad_to = await tools["send_email"].acall(to="mallory@evil.test", subject="s", body="b")
        ok = await tools["send_email"].acall(to="alice@example.com", subject="s", body="b")
        wrong_id = await tools["crm_lookup"].acall(customer_id="C-7")
    assert bad_to.is_error and reasons.ARGUMENT_MISMATCH in bad_to.content
    assert not ok.is_error and ok.content == "sent to alice@example.com"
    assert wrong_id.is_error and reasons.ARGUMENT_MISMATCH in wrong_id.content
    assert ledger.names() == ["send_email"]
    outcomes = [s.attributes[sc.DECISION_OUTCOME] for s in spans.named("execute_tool")]
    assert outcomes == ["deny", "allow", "deny"]


async def test_context_is_forwarded_to_a_context_tool(raw_tools, guard, plan, identity, ledger):
    """A tool that takes the workflow Context gets it under its own parameter name."""
    tools = {t.metadata.name: t for t in guard_tools(raw_tools, guard)}

    class FakeStore:
        def __init__(self):
            self.data = {}

        async def set(self, key, value):
            self.data[key] = value

    class FakeCtx:
        store = FakeStore()

    ctx = FakeCtx()
    async with guard.task(plan, identity=identity):
        out = await tools["remember"].acall(key="k", value="v", **{CTX_PARAM: ctx})
        with pytest.raises(ValueError, match="Context is required"):
            await tools["remember"].acall(key="k", value="v")
    assert not out.is_error and ctx.store.data == {"note:k": "v"}
    assert ledger.names() == ["remember"]


def test_raise_mode_raises_tool_call_denied(raw_tools, guard, ledger):
    """With on_violation='raise' a direct call raises ToolCallDenied carrying the decision."""
    tool = guard_tools(raw_tools, guard, on_violation="raise")[3]
    with pytest.raises(ToolCallDenied) as info:
        tool.call(name="prod")
    assert info.value.reason == reasons.NO_GRANT and info.value.tool == "delete_db"
    assert ledger.ran == []


def test_positional_arguments_are_named(raw_tools, guard, plan, identity, ledger):
    """A positional argument is mapped to its schema name before the decision."""
    tool = guard_tools(raw_tools, guard)[0]
    with guard.task(plan, identity=identity):
        out = tool.call("C-42")
    assert not out.is_error and ledger.ran == [("crm_lookup", {"customer_id": "C-42"})]


async def test_non_function_tools_are_wrapped(guard, plan, identity):
    """Any AsyncBaseTool (not only FunctionTool) can be guarded; its calls are decided too."""

    class Lookup(AsyncBaseTool):
        def __init__(self):
            self.inner = FunctionTool.from_defaults(lambda customer_id: f"found {customer_id}", name="crm_lookup")

        @property
        def metadata(self):
            return self.inner.metadata

        def call(self, *args, **kwargs):
            return self.inner.call(*args, **kwargs)

        async def acall(self, *args, **kwargs):
            return self.inner.call(*args, **kwargs)

    tool = guard_tools([Lookup()], guard)[0]
    async with guard.task(plan, identity=identity):
        assert (await tool.acall(customer_id="C-42")).content == "found C-42"
        assert (await tool.acall(customer_id="C-42")).is_error


def test_bad_configuration_is_refused(raw_tools, guard):
    """Double wrapping, a bare tool, duplicate names and a bad mode raise ConfigError."""
    wrapped = guard_tools(raw_tools, guard)
    with pytest.raises(ConfigError, match="already guarded"):
        guard_tools(wrapped, guard)
    with pytest.raises(ConfigError, match="list of tools"):
        guard_tools(raw_tools[0], guard)
    with pytest.raises(ConfigError, match="duplicate"):
        guard_tools([raw_tools[0], raw_tools[0]], guard)
    with pytest.raises(ConfigError, match="on_violation"):
        GuardedFunctionTool(raw_tools[0], guard, on_violation="ignore")


def test_raw_function_is_not_an_unguarded_path(raw_tools, guard, ledger):
    """fn / real_fn of a guarded tool refuse to run instead of bypassing the guard."""
    tool = guard_tools(raw_tools, guard)[0]
    with pytest.raises(ConfigError):
        tool.fn(customer_id="C-42")
    with pytest.raises(ConfigError):
        tool.real_fn(customer_id="C-42")
    assert ledger.ran == []


def test_sync_call_forwards_the_context(raw_tools, guard, plan, identity, ledger):
    """The sync path forwards the Context too (to an async Context tool run synchronously)."""
    tools = {t.metadata.name: t for t in guard_tools(raw_tools, guard)}

    class Store:
        def __init__(self):
            self.data = {}

        async def set(self, key, value):
            self.data[key] = value

    class Ctx:
        store = Store()

    with guard.task(plan, identity=identity):
        out = tools["remember"].call(key="k", value="v", **{CTX_PARAM: Ctx()})
    assert not out.is_error and Ctx.store.data == {"note:k": "v"} and ledger.names() == ["remember"]
