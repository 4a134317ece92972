"""Guarded LlamaIndex tools: one decision, one budget unit and one ``execute_tool`` span per call."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from llama_index.core.tools import AsyncBaseTool, BaseTool, FunctionTool, ToolMetadata, ToolOutput
from llama_index.core.tools.types import adapt_to_async_tool
from llama_index_instrumentation.dispatcher import DISPATCHER_SPAN_DECORATED_ATTR

from agent_guard import ConfigError, Decision, Guard, ToolCallDenied
from agent_guard_llamaindex._callid import current_tool_call, install_call_id_handler
from agent_guard_llamaindex._state import CURRENT_RUN

__all__ = ["CTX_PARAM", "GuardedFunctionTool", "OnViolation", "guard_tools"]

OnViolation = Literal["output", "raise"]
"""What a denied call does: ``"output"`` returns an error ``ToolOutput``; ``"raise"`` stops the run."""

CTX_PARAM = "_agent_guard_ctx"
"""The parameter under which the agent hands the workflow ``Context`` to a guarded tool."""


def _refuse_direct_call(*args: Any, **kwargs: Any) -> Any:
    raise ConfigError("GuardedFunctionTool: call the tool (tool.call / tool.acall), not its raw function")


class GuardedFunctionTool(FunctionTool):
    """A tool whose every call is decided by an agent_guard :class:`~agent_guard.Guard` first.

    It is a ``FunctionTool`` that always asks for the workflow ``Context`` (under its own
    parameter name), because LlamaIndex agents only inject the ``Context`` into ``FunctionTool``
    instances; it forwards the ``Context`` to the wrapped tool when that tool needs it. The
    metadata (name, description, ``fn_schema``, ``return_direct``) is the wrapped tool's own.
    """

    def __init__(self, tool: BaseTool, guard: Guard, *, on_violation: OnViolation = "output") -> None:
        if not isinstance(tool, BaseTool):
            raise ConfigError(f"tools: expected LlamaIndex tools (BaseTool), got {type(tool).__name__}")
        if isinstance(tool, GuardedFunctionTool):
            raise ConfigError(f"tools: {tool.metadata.name!r} is already guarded; wrap each tool once")
        if not isinstance(guard, Guard):
            raise ConfigError("guard: expected an agent_guard.Guard")
        if on_violation not in ("output", "raise"):
            raise ConfigError(f"on_violation: {on_violation!r} is not 'output' or 'raise'")
        if not tool.metadata.name:
            raise ConfigError("tools: every tool needs a name (ToolMetadata.name)")
        super().__init__(fn=_refuse_direct_call, async_fn=_refuse_direct_call, metadata=tool.metadata)
        self.inner = tool
        """The wrapped tool."""
        self.guard = guard
        """The guard that decides every call."""
        self.on_violation: OnViolation = on_violation
        self.requires_context = True
        self.ctx_param_name = CTX_PARAM
        self._inner_ctx = (
            tool.ctx_param_name if isinstance(tool, FunctionTool) and tool.requires_context else None
        )
        self._async_inner: AsyncBaseTool = adapt_to_async_tool(tool)
        fields = getattr(tool.metadata.fn_schema, "model_fields", None)
        self._positional = tuple(fields) if isinstance(fields, Mapping) else ()
        install_call_id_handler()

    @property
    def metadata(self) -> ToolMetadata:
        """The wrapped tool's metadata, unchanged."""
        return self.inner.metadata

    # -- helpers ------------------------------------------------------------------------------
    def _arguments(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        if not args:
            return kwargs
        if len(args) > len(self._positional):
            raise ConfigError(f"{self.metadata.name}: pass the tool's arguments by name")
        named = dict(zip(self._positional, args, strict=False))
        clash = set(named) & set(kwargs)
        if clash:
            raise ConfigError(f"{self.metadata.name}: argument(s) {sorted(clash)} given twice")
        return {**named, **kwargs}

    def _prepare(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[dict[str, Any], Any, str | None]:
        kwargs = dict(kwargs)
        ctx = kwargs.pop(CTX_PARAM, None)
        if self._inner_ctx is not None:
            ctx = kwargs.pop(self._inner_ctx, ctx)
            if ctx is None:
                raise ValueError("Context is required for this tool")
        arguments = self._arguments(args, kwargs)
        name = self.metadata.get_name()
        running = current_tool_call()
        call_id = running[1] if running is not None and running[0] == name else None
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
    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Sync call: decide, then run the wrapped tool only when allowed."""
        arguments, ctx, call_id = self._prepare(args, kwargs)
        description = self.metadata.description
        with self.guard.tool_call(self.metadata.get_name(), arguments, call_id=call_id, description=description) as c:
            if not c.allowed:
                if self.on_violation == "raise":
                    raise ToolCallDenied(c.decision)
                return self._denied(c.decision, arguments)
            inner_kwargs = self._inner_kwargs(arguments, ctx)
            if isinstance(self.inner, AsyncBaseTool):
                output = self.inner.call(**inner_kwargs)
            else:
                output = self.inner(**inner_kwargs)
            c.record_result(output.content)
            return output

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Async call: decide, then await the wrapped tool only when allowed."""
        arguments, ctx, call_id = self._prepare(args, kwargs)
        name = self.metadata.get_name()
        call = await self.guard.atool_call(name, arguments, call_id=call_id, description=self.metadata.description)
        with call as c:
            if not c.allowed:
                if self.on_violation == "raise":
                    run = CURRENT_RUN.get()
                    if run is not None:
                        await run.stop(c.decision)
                    raise ToolCallDenied(c.decision)
                return self._denied(c.decision, arguments)
            output = await self._async_inner.acall(**self._inner_kwargs(arguments, ctx))
            c.record_result(output.content)
            return output

    # LlamaIndex wraps every tool's call/acall in an instrumentation span. The wrapped tool's own
    # call already gets one, so marking ours as decorated (the mixin's idempotence flag) keeps one
    # instrumentation span per call instead of two nested ones, and halves that overhead.
    setattr(call, DISPATCHER_SPAN_DECORATED_ATTR, True)
    setattr(acall, DISPATCHER_SPAN_DECORATED_ATTR, True)

    def __repr__(self) -> str:
        return f"GuardedFunctionTool({self.metadata.name!r}, on_violation={self.on_violation!r})"


def guard_tools(
    tools: Sequence[BaseTool], guard: Guard, *, on_violation: OnViolation = "output"
) -> list[FunctionTool]:
    """Wrap LlamaIndex tools so every call is checked against the current task's grant.

    A denied call never runs the tool. With ``on_violation="output"`` (default) it returns
    ``ToolOutput(is_error=True)`` whose content names the tool and the reason code, so the agent
    can recover; with ``"raise"`` it stops the run (cleanly, under :func:`guarded_run`) and the
    run raises :class:`~agent_guard.ToolCallDenied`. Outside a task every call is denied
    (``no_grant``).
    """
    if isinstance(tools, BaseTool):
        raise ConfigError("tools: pass a list of tools, e.g. guard_tools([search], guard)")
    wrapped: list[FunctionTool] = [GuardedFunctionTool(t, guard, on_violation=on_violation) for t in tools]
    names = [t.metadata.name for t in wrapped]
    duplicates = sorted({n for n in names if names.count(n) > 1 and n is not None})
    if duplicates:
        raise ConfigError(f"tools: duplicate tool name(s) {duplicates}; every tool needs a distinct name")
    return wrapped
