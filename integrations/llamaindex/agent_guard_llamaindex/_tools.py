"""Guarded LlamaIndex tools: one decision, one budget unit and one ``execute_tool`` span per call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from llama_index.core.tools import BaseTool, FunctionTool, ToolMetadata, ToolOutput

from agent_guard import ConfigError, Decision, Guard, ToolCall, ToolCallDenied
from agent_guard import semconv as sc
from agent_guard_llamaindex._arguments import ToolInput
from agent_guard_llamaindex._callid import current_tool_call, install_call_id_handler
from agent_guard_llamaindex._checks import (
    OnViolation,
    check_guard,
    check_tool,
    check_tool_list,
    on_violation_mode,
)
from agent_guard_llamaindex._invoke import async_runner, sync_runner
from agent_guard_llamaindex._state import CURRENT_RUN

if TYPE_CHECKING:
    from agent_guard_llamaindex._agents import Actor

__all__ = ["CTX_PARAM", "GuardedFunctionTool", "OnViolation", "guard_tools"]

CTX_PARAM = "_agent_guard_ctx"
"""The parameter under which the agent hands the workflow ``Context`` to a guarded tool."""

_Mode = OnViolation | Literal["output"]


def _refuse_direct_call(*args: Any, **kwargs: Any) -> Any:
    raise ConfigError("GuardedFunctionTool: call the tool (tool.call / tool.acall), not its raw function")


def _mark_error_output(call: ToolCall, output: Any) -> None:
    """An allowed call whose tool answered with an error value (not an exception) is marked failed."""
    if isinstance(output, ToolOutput) and output.is_error:
        call.mark_error(sc.TOOL_ERROR_TYPE)


class GuardedFunctionTool(FunctionTool):
    """A tool whose every call is decided by an agent_guard :class:`~agent_guard.Guard` first.

    It is a ``FunctionTool`` that always asks for the workflow ``Context`` (under its own
    parameter name), because LlamaIndex agents only inject the ``Context`` into ``FunctionTool``
    instances; it forwards the ``Context`` to the wrapped tool when that tool needs it. The
    metadata (name, description, ``fn_schema``, ``return_direct``) is the wrapped tool's own.

    The decision sees every argument the wrapped tool will receive (the model's, plus the
    signature's and ``fn_schema``'s defaults and ``partial_params``), and the tool then receives
    exactly those; a call its function cannot take raises ``TypeError`` before any decision.
    """

    def __init__(self, tool: BaseTool, guard: Guard, *, on_violation: _Mode = "message") -> None:
        tool = check_tool(tool)
        if isinstance(tool, GuardedFunctionTool):
            raise ConfigError(f"tools: {tool.metadata.name!r} is already guarded; wrap each tool once")
        checked = check_guard(guard)
        mode = on_violation_mode(on_violation)
        if not tool.metadata.name:
            raise ConfigError("tools: every tool needs a name (ToolMetadata.name)")
        super().__init__(fn=_refuse_direct_call, async_fn=_refuse_direct_call, metadata=tool.metadata)
        self.inner = tool
        """The wrapped tool."""
        self.guard = checked
        """The guard that decides every call."""
        self.on_violation: OnViolation = mode
        """``"message"``: a denied call returns an error ``ToolOutput``; ``"raise"``: it stops the run."""
        self.requires_context = True
        self.ctx_param_name = CTX_PARAM
        self._inner_ctx = (
            tool.ctx_param_name if isinstance(tool, FunctionTool) and tool.requires_context else None
        )
        self._input = ToolInput(tool, tool.metadata.get_name(), self._inner_ctx)
        self._run = sync_runner(tool)
        self._arun = async_runner(tool)
        fields = getattr(tool.metadata.fn_schema, "model_fields", None)
        self._positional = tuple(fields) if isinstance(fields, Mapping) else ()
        install_call_id_handler()

    @property
    def metadata(self) -> ToolMetadata:
        """The wrapped tool's metadata, unchanged."""
        return self.inner.metadata

    # -- helpers ------------------------------------------------------------------------------
    def _named(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if not args:
            return kwargs
        if len(args) > len(self._positional):
            raise ConfigError(f"{self.metadata.name}: pass the tool's arguments by name")
        named = dict(zip(self._positional, args, strict=False))
        clash = set(named) & set(kwargs)
        if clash:
            raise ConfigError(f"{self.metadata.name}: argument(s) {sorted(clash)} given twice")
        return {**named, **kwargs}

    def _prepare(
        self, args: tuple[Any, ...], kwargs: dict[str, Any], *, is_async: bool
    ) -> tuple[dict[str, Any], Any, str | None]:
        kwargs = dict(kwargs)
        ctx = kwargs.pop(CTX_PARAM, None)  # set by the agent, after the model's arguments
        if self._inner_ctx is not None:
            passed = kwargs.pop(self._inner_ctx, None)  # never an argument: a model's value is dropped
            ctx = passed if ctx is None else ctx  # a direct call may pass it under the tool's own name
            if ctx is None:
                raise ValueError("Context is required for this tool")
        arguments = self._input.resolve(self._named(args, kwargs), is_async=is_async)
        running = current_tool_call()
        call_id = running[1] if running is not None and running[0] == self.metadata.get_name() else None
        return arguments, ctx, call_id

    def _inner_kwargs(self, arguments: dict[str, Any], ctx: Any) -> dict[str, Any]:
        if self._inner_ctx is None:
            return arguments
        return {**arguments, self._inner_ctx: ctx}

    def _denied(self, decision: Decision, arguments: dict[str, Any]) -> ToolOutput:
        return ToolOutput(
            content=decision.message,
            tool_name=self.metadata.get_name(),
            raw_input={"args": (), "kwargs": arguments},
            raw_output=None,
            is_error=True,
            exception=ToolCallDenied(decision),
        )

    # -- the two call paths -------------------------------------------------------------------
    # Both carry LlamaIndex's instrumentation span for the call (OpenInference's TOOL span), so
    # the decision span nests under it; the wrapped tool runs without a second one (_invoke).
    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Sync call: decide on exactly what the wrapped tool will receive, then run it only when allowed.

        In a multi-agent ``AgentWorkflow`` run the acting agent is read from the workflow state,
        which only the async path can do: a sync call there is refused (``no_grant``).
        """
        arguments, ctx, call_id = self._prepare(args, kwargs, is_async=False)
        run = CURRENT_RUN.get()
        if run is None or run.agents is None:
            return self._call(arguments, ctx, call_id)
        with self.guard.use(None):  # the acting agent cannot be known here: never the run's own grant
            return self._call(arguments, ctx, call_id)

    def _call(self, arguments: dict[str, Any], ctx: Any, call_id: str | None) -> ToolOutput:
        description = self.metadata.description
        with self.guard.tool_call(self.metadata.get_name(), arguments, call_id=call_id, description=description) as c:
            if not c.allowed:
                if self.on_violation == "raise":
                    raise ToolCallDenied(c.decision)
                return self._denied(c.decision, arguments)
            output = self._run(**self._inner_kwargs(arguments, ctx))
            _mark_error_output(c, output)
            c.record_result(output.content)
            return output

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Async call: decide on exactly what the wrapped tool will receive, then await it only when allowed.

        In a multi-agent ``AgentWorkflow`` run the call is decided against the grant of the agent
        that makes it (read from the workflow ``Context``), which is current while the tool runs.
        """
        arguments, ctx, call_id = self._prepare(args, kwargs, is_async=True)
        run = CURRENT_RUN.get()
        agents = run.agents if run is not None else None
        if agents is None:
            return await self._acall(arguments, ctx, call_id, None)
        async with agents.acting(ctx, self.metadata.get_name()) as actor:
            return await self._acall(arguments, ctx, call_id, actor)

    async def _acall(self, arguments: dict[str, Any], ctx: Any, call_id: str | None, actor: Actor | None) -> ToolOutput:
        name = self.metadata.get_name()
        call = await self.guard.atool_call(name, arguments, call_id=call_id, description=self.metadata.description)
        if actor is not None:
            actor.mark(call)
        with call as c:
            if not c.allowed:
                if self.on_violation == "raise":
                    run = CURRENT_RUN.get()
                    if run is not None:
                        await run.stop(c.decision)
                    raise ToolCallDenied(c.decision)
                return self._denied(c.decision, arguments)
            output = await self._arun(**self._inner_kwargs(arguments, ctx))
            _mark_error_output(c, output)
            c.record_result(output.content)
            return output

    def __repr__(self) -> str:
        return f"GuardedFunctionTool({self.metadata.name!r}, on_violation={self.on_violation!r})"


def guard_tools(tools: Sequence[BaseTool], guard: Guard, *, on_violation: _Mode = "message") -> list[FunctionTool]:
    """Wrap LlamaIndex tools so every call is checked against the current task's grant.

    A denied call never runs the tool. With ``on_violation="message"`` (default) it returns
    ``ToolOutput(is_error=True)`` whose content names the tool and the reason code, so the agent
    can recover; with ``"raise"`` it stops the run (cleanly, under :func:`guarded_run`) and the
    run raises :class:`~agent_guard.ToolCallDenied`. ``"output"`` is a deprecated alias of
    ``"message"``. Outside a task every call is denied (``no_grant``).
    """
    items = check_tool_list(tools)
    checked = check_guard(guard)
    mode = on_violation_mode(on_violation)
    wrapped: list[FunctionTool] = [GuardedFunctionTool(t, checked, on_violation=mode) for t in items]
    names = [t.metadata.name for t in wrapped]
    duplicates = sorted({n for n in names if names.count(n) > 1 and n is not None})
    if duplicates:
        raise ConfigError(f"tools: duplicate tool name(s) {duplicates}; every tool needs a distinct name")
    return wrapped
