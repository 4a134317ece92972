"""``GuardedTool``: a LangChain ``BaseTool`` that decides every call before delegating to the tool.

It delegates whole calls -- ``invoke``/``ainvoke`` to the wrapped tool's ``invoke``/``ainvoke``,
``run``/``arun`` to its ``run``/``arun`` (never ``_run``/``_arun``) -- so the wrapped tool still
parses its input, injects ``InjectedToolCallId``/``ToolRuntime``/``InjectedState``/``config``,
runs its callbacks once, formats ``content_and_artifact`` output, applies ``handle_tool_error``
(``status="error"``) and returns ``Command`` objects exactly as without the guard. Delegating at
``invoke`` also spares a second pass through LangChain's argument preparation on every call.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from langchain_core.callbacks import Callbacks
from langchain_core.messages import ToolCall
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool
from langchain_core.utils.pydantic import TypeBaseModel
from pydantic import ConfigDict

from agent_guard import Decision, Guard, ToolCallDenied
from agent_guard_langchain._calls import (
    OnViolation,
    already_decided,
    arun_marked,
    mark_tool_error,
    run_marked,
    without_injected,
)
from agent_guard_langchain._messages import denial_message
from agent_guard_langchain._resume import RESUMABLE

__all__ = ["GuardedTool", "guard_tools"]


class GuardedTool(BaseTool):
    """A tool whose every call is decided by ``guard`` first; otherwise identical to ``inner``.

    ``GuardedTool(tool, guard)``. An allowed call runs ``inner`` inside an ``execute_tool`` span
    carrying the tool call id. A refused call never reaches ``inner``: with a ``tool_call_id``
    (a model ToolCall) it returns ``ToolMessage(status="error")`` naming the tool, the reason
    code and what the plan allows; with plain arguments it raises
    :class:`~agent_guard.ToolCallDenied`. ``on_violation="raise"`` always raises.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseTool
    """The wrapped tool."""
    guard: Guard
    """The guard that decides every call."""
    on_violation: OnViolation = "message"
    """``"message"``: a refused ToolCall becomes an error ToolMessage; ``"raise"``: raise ToolCallDenied."""

    def __init__(self, inner: BaseTool, guard: Guard, *, on_violation: OnViolation = "message") -> None:
        """Wrap ``inner`` so that ``guard`` decides each call."""
        if not isinstance(inner, BaseTool):
            raise TypeError(f"inner: expected a langchain BaseTool, got {type(inner).__name__}")
        if not isinstance(guard, Guard):
            raise TypeError(f"guard: expected an agent_guard.Guard, got {type(guard).__name__}")
        if on_violation not in ("message", "raise"):
            raise ValueError(f"on_violation: expected 'message' or 'raise', got {on_violation!r}")
        super().__init__(
            inner=inner,
            guard=guard,
            on_violation=on_violation,
            name=inner.name,
            description=inner.description,
            args_schema=inner.args_schema,
            return_direct=inner.return_direct,
            response_format=inner.response_format,
            handle_tool_error=inner.handle_tool_error,
            handle_validation_error=inner.handle_validation_error,
            tags=inner.tags,
            metadata=inner.metadata,
            extras=inner.extras,
        )

    # -- the wrapped tool's schemas and injection markers ----------------------------------
    @property
    def tool_call_schema(self) -> Any:
        """The wrapped tool's schema for model tool calls (injected arguments excluded)."""
        return self.inner.tool_call_schema

    @property
    def args(self) -> dict[str, Any]:
        """The wrapped tool's argument properties."""
        return self.inner.args

    def get_input_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        """The wrapped tool's full input schema (injected arguments included)."""
        return self.inner.get_input_schema(config)

    @property
    def _injected_args_keys(self) -> frozenset[str]:
        return self.inner._injected_args_keys

    def _filter_injected_args(self, tool_input: dict[str, Any]) -> dict[str, Any]:
        return self.inner._filter_injected_args(tool_input)

    @property
    def func(self) -> Callable[..., Any] | None:
        """The wrapped tool's ``func`` (LangGraph reads its annotations to inject runtime/state)."""
        return getattr(self.inner, "func", None)

    @property
    def coroutine(self) -> Callable[..., Any] | None:
        """The wrapped tool's ``coroutine`` (see :attr:`func`)."""
        return getattr(self.inner, "coroutine", None)

    # -- execution ---------------------------------------------------------------------------
    def _decision_args(self, tool_input: str | dict[str, Any]) -> dict[str, Any]:
        if isinstance(tool_input, dict):
            return without_injected(self.inner, tool_input)
        names = list(self.inner.args)
        return {names[0] if len(names) == 1 else "input": tool_input}

    def _refuse(self, decision: Decision, tool_call_id: str | None) -> Any:
        if self.on_violation == "raise" or tool_call_id is None:
            raise ToolCallDenied(decision)
        return denial_message(decision, self.name, tool_call_id)

    def _run(self, *args: Any, **kwargs: Any) -> Any:
        raise NotImplementedError("GuardedTool runs through run()/arun(); call tool.invoke(...)")

    def _guarded(self, tool_input: str | dict[str, Any], tool_call_id: str | None, delegate: Callable[[], Any]) -> Any:
        guard, name = self.guard, self.name
        if already_decided(guard, name, tool_call_id):
            return delegate()
        args = self._decision_args(tool_input)
        task = guard.current_task()
        if RESUMABLE.resume(task, tool_call_id, name, args):
            return delegate()
        with guard.tool_call(name, args, call_id=tool_call_id, description=self.description) as call:
            if not call.decision.allowed:
                return self._refuse(call.decision, tool_call_id)
            result = run_marked(guard, name, tool_call_id, args, task, delegate)
            mark_tool_error(call.span, result)
            call.record_result(result)
            return result

    async def _aguarded(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None, delegate: Callable[[], Awaitable[Any]]
    ) -> Any:
        guard, name = self.guard, self.name
        if already_decided(guard, name, tool_call_id):
            return await delegate()
        args = self._decision_args(tool_input)
        task = guard.current_task()
        if RESUMABLE.resume(task, tool_call_id, name, args):
            return await delegate()
        with await guard.atool_call(name, args, call_id=tool_call_id, description=self.description) as call:
            if not call.decision.allowed:
                return self._refuse(call.decision, tool_call_id)
            result = await arun_marked(guard, name, tool_call_id, args, task, delegate)
            mark_tool_error(call.span, result)
            call.record_result(result)
            return result

    def invoke(self, input: str | dict[str, Any] | ToolCall, config: RunnableConfig | None = None,
               **kwargs: Any) -> Any:
        """Decide the call, then ``inner.invoke`` it unchanged (or refuse without running it)."""
        tool_input, call_id = _split(input)
        return self._guarded(tool_input, call_id, lambda: self.inner.invoke(input, config, **kwargs))

    async def ainvoke(self, input: str | dict[str, Any] | ToolCall, config: RunnableConfig | None = None,
                      **kwargs: Any) -> Any:
        """Async :meth:`invoke`."""
        tool_input, call_id = _split(input)
        return await self._aguarded(tool_input, call_id, lambda: self.inner.ainvoke(input, config, **kwargs))

    def run(
        self,
        tool_input: str | dict[str, Any],
        verbose: bool | None = None,
        start_color: str | None = "green",
        color: str | None = "green",
        callbacks: Callbacks = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: uuid.UUID | None = None,
        config: RunnableConfig | None = None,
        tool_call_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Decide the call, then run the wrapped tool (or refuse without running it)."""
        return self._guarded(tool_input, tool_call_id, lambda: self.inner.run(
            tool_input, verbose, start_color, color, callbacks, tags=tags, metadata=metadata,
            run_name=run_name, run_id=run_id, config=config, tool_call_id=tool_call_id, **kwargs,
        ))

    async def arun(
        self,
        tool_input: str | dict[str, Any],
        verbose: bool | None = None,
        start_color: str | None = "green",
        color: str | None = "green",
        callbacks: Callbacks = None,
        *,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        run_name: str | None = None,
        run_id: uuid.UUID | None = None,
        config: RunnableConfig | None = None,
        tool_call_id: str | None = None,
        **kwargs: Any,
    ) -> Any:
        """Async :meth:`run`."""
        return await self._aguarded(tool_input, tool_call_id, lambda: self.inner.arun(
            tool_input, verbose, start_color, color, callbacks, tags=tags, metadata=metadata,
            run_name=run_name, run_id=run_id, config=config, tool_call_id=tool_call_id, **kwargs,
        ))


def _split(value: Any) -> tuple[Any, str | None]:
    """(tool input, tool call id) of an ``invoke`` input, as LangChain's ``_prep_run_args`` reads it."""
    if isinstance(value, dict) and value.get("type") == "tool_call":
        return value["args"], value["id"]
    return value, None


def guard_tools(
    tools: Iterable[BaseTool], guard: Guard, *, on_violation: OnViolation = "message"
) -> list[GuardedTool]:
    """Wrap each tool in a :class:`GuardedTool` (an already guarded tool is re-wrapped around its inner)."""
    out = []
    for tool in tools:
        inner = tool.inner if isinstance(tool, GuardedTool) else tool
        out.append(GuardedTool(inner, guard, on_violation=on_violation))
    return out
