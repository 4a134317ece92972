"""One guarded tool call in a LangGraph ``ToolNode``: decide once, one span, then run or refuse.

Shared by the middleware, the ``ToolNode`` wrappers and :class:`GuardedTool`. A call decided at
the ``ToolNode`` level is marked in a ContextVar for the duration of the tool's execution, so a
:class:`GuardedTool` inside it does not decide (and spend budget, and emit a span) a second time.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Awaitable, Callable, Mapping
from functools import partial
from typing import Any, Final, Literal, TypeVar

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langchain_core.tools.base import FILTERED_ARGS
from langgraph.errors import GraphBubbleUp
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Status, StatusCode

from agent_guard import Decision, Guard, Task, ToolCallDenied, use_task
from agent_guard import semconv as sc
from agent_guard_langchain._messages import denial_message
from agent_guard_langchain._resume import RESUMABLE

__all__ = [
    "OnViolation",
    "ToolResult",
    "already_decided",
    "arun_guarded",
    "arun_marked",
    "decided",
    "injected_keys",
    "mark_tool_error",
    "model_args",
    "reset_decided",
    "run_guarded",
    "run_marked",
    "without_injected",
]

_R = TypeVar("_R")

OnViolation = Literal["message", "raise"]
ToolResult = ToolMessage | Command[Any]
_TOOL_ERROR: Final = "agent_guard.ToolError"


_Decided = tuple[Guard, str, "str | None"]
"""(guard, tool name, tool call id) of the call being run after its decision."""

_DECIDED: contextvars.ContextVar[_Decided | None] = contextvars.ContextVar("agent_guard_lc_decided", default=None)


def already_decided(guard: Guard, tool: str, call_id: str | None) -> bool:
    """True when this very call (guard, tool, call id) was already decided by an outer layer."""
    marker = _DECIDED.get()
    return marker is not None and marker[0] is guard and marker[1] == tool and marker[2] == call_id


def decided(guard: Guard, tool: str, call_id: str | None) -> contextvars.Token[_Decided | None]:
    """Mark the call as decided; reset the returned token when the tool has run."""
    return _DECIDED.set((guard, tool, call_id))


def reset_decided(token: contextvars.Token[_Decided | None]) -> None:
    """Undo :func:`decided`."""
    _DECIDED.reset(token)


_INJECTED_CACHE: dict[int, tuple[BaseTool, frozenset[str]]] = {}


def injected_keys(tool: BaseTool) -> frozenset[str]:
    """Argument names the framework injects into ``tool`` (state, runtime, store, call id, ...).

    They are not the model's arguments, so they are filtered out before a decision or a span.
    Computed once per tool with the tool's own ``_filter_injected_args``.
    """
    hit = _INJECTED_CACHE.get(id(tool))
    if hit is not None and hit[0] is tool:
        return hit[1]
    names: set[str] = set(FILTERED_ARGS)
    names.update(getattr(tool, "_injected_args_keys", ()))
    try:
        schema = tool.get_input_schema()
        names.update(getattr(schema, "model_fields", {}))
    except Exception:  # pragma: no cover - an unusual schema: fall back to the known names
        pass
    probe = dict.fromkeys(names)
    keys = frozenset(names - set(tool._filter_injected_args(probe)))
    if len(_INJECTED_CACHE) > 4096:
        _INJECTED_CACHE.clear()
    _INJECTED_CACHE[id(tool)] = (tool, keys)
    return keys


def without_injected(tool: BaseTool, args: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``args`` without the names the framework injects into ``tool`` (see :func:`injected_keys`)."""
    skip = injected_keys(tool)
    if skip.isdisjoint(args):
        return dict(args)
    return {k: v for k, v in args.items() if k not in skip}


def model_args(request: ToolCallRequest) -> dict[str, Any]:
    """The model's arguments of a ``ToolNode`` request, without framework-injected names."""
    args = request.tool_call.get("args") or {}
    if request.tool is None or not isinstance(args, Mapping):
        return dict(args) if isinstance(args, Mapping) else {"input": args}
    return without_injected(request.tool, args)


def mark_tool_error(span: trace.Span, result: Any) -> None:
    """Mark an allowed call's span as failed when the tool answered with an error ``ToolMessage``."""
    if isinstance(result, ToolMessage) and result.status == "error":
        span.set_attribute(sc.ERROR_TYPE, _TOOL_ERROR)
        span.set_status(Status(StatusCode.ERROR, "tool_error"))


def _attach_parent(task: Task | None) -> object:
    """Make the task's span the parent of the call's span (a no-op without a tracing SDK)."""
    if task is not None and task.span is not None and task.span.get_span_context().is_valid:
        return otel_context.attach(trace.set_span_in_context(task.span))
    return None


def _detach(token: object) -> None:
    if token is not None:
        otel_context.detach(token)  # type: ignore[arg-type]


def _parts(request: ToolCallRequest) -> tuple[str, str | None, dict[str, Any], str | None]:
    """(tool name, call id, model arguments, description) of a ``ToolNode`` request."""
    description = request.tool.description if request.tool is not None else None
    return request.tool_call["name"], request.tool_call.get("id"), model_args(request), description


def _entered(task: Task | None, use_current: bool) -> contextlib.AbstractContextManager[object]:
    """The current task as is (``use_current``), or ``task`` made current for the call."""
    return _AS_IS if use_current else use_task(task)


_AS_IS: Final = contextlib.nullcontext()


def _refuse(
    decision: Decision, name: str, call_id: str | None, on_violation: OnViolation,
    on_denied_raise: Callable[[], None] | None,
) -> ToolResult:
    """A denied call: raise :class:`ToolCallDenied` or answer with an error ``ToolMessage``."""
    if on_violation == "raise":
        if on_denied_raise is not None:
            on_denied_raise()
        raise ToolCallDenied(decision)
    return denial_message(decision, name, call_id)


def run_guarded(
    guard: Guard,
    request: ToolCallRequest,
    handler: Callable[[ToolCallRequest], ToolResult],
    *,
    on_violation: OnViolation,
    task: Task | None,
    use_current: bool,
    on_denied_raise: Callable[[], None] | None = None,
) -> ToolResult:
    """Decide ``request`` (in ``task``, or the current task when ``use_current``) and run or refuse it."""
    name, call_id, args, description = _parts(request)
    parent = _attach_parent(task)
    try:
        with _entered(task, use_current):
            current = guard.current_task()
            if RESUMABLE.resume(current, call_id, name, args):  # decided (and charged) before the interrupt
                return run_marked(guard, name, call_id, args, current, partial(handler, request))
            with guard.tool_call(name, args, call_id=call_id, description=description) as call:
                if not call.allowed:
                    return _refuse(call.decision, name, call_id, on_violation, on_denied_raise)
                result = run_marked(guard, name, call_id, args, current, partial(handler, request))
                mark_tool_error(call.span, result)
                return result
    finally:
        _detach(parent)


def run_marked(
    guard: Guard, name: str, call_id: str | None, args: Mapping[str, Any], task: Task | None, fn: Callable[[], _R],
) -> _R:
    """Run an allowed (or resumed) call with it marked as decided, so inner guarded layers do not decide again.

    An ``interrupt()`` inside the tool is remembered, so its resumed run is not a new decision.
    """
    token = decided(guard, name, call_id)
    try:
        return fn()
    except GraphBubbleUp:
        RESUMABLE.remember(task, call_id, name, args)
        raise
    finally:
        reset_decided(token)


async def arun_guarded(
    guard: Guard,
    request: ToolCallRequest,
    handler: Callable[[ToolCallRequest], Awaitable[ToolResult]],
    *,
    on_violation: OnViolation,
    task: Task | None,
    use_current: bool,
    on_denied_raise: Callable[[], None] | None = None,
) -> ToolResult:
    """Async :func:`run_guarded`."""
    name, call_id, args, description = _parts(request)
    parent = _attach_parent(task)
    try:
        with _entered(task, use_current):
            current = guard.current_task()
            if RESUMABLE.resume(current, call_id, name, args):
                return await arun_marked(guard, name, call_id, args, current, partial(handler, request))
            with await guard.atool_call(name, args, call_id=call_id, description=description) as call:
                if not call.allowed:
                    return _refuse(call.decision, name, call_id, on_violation, on_denied_raise)
                result = await arun_marked(guard, name, call_id, args, current, partial(handler, request))
                mark_tool_error(call.span, result)
                return result
    finally:
        _detach(parent)


async def arun_marked(
    guard: Guard, name: str, call_id: str | None, args: Mapping[str, Any], task: Task | None,
    fn: Callable[[], Awaitable[_R]],
) -> _R:
    """Async :func:`run_marked`."""
    token = decided(guard, name, call_id)
    try:
        return await fn()
    except GraphBubbleUp:
        RESUMABLE.remember(task, call_id, name, args)
        raise
    finally:
        reset_decided(token)
