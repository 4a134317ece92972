"""The one guarded call, shared by GuardedTool, the middleware and the ``ToolNode`` wrappers.

``guarded_call(guard, name, args, ...)``: decide ``args`` in the current task, then run the
call or refuse it, in one ``execute_tool`` span. The span's parent is the framework's span of
the run being executed when an instrumentor traces LangChain (the tool's ``TOOL`` span, see
:mod:`._tracing`), else whatever is current (the task's span when the task was made current
with ``guard.use(task)``). Span semantics are the core's: a tool that answers with an error
``ToolMessage`` marks the call with :meth:`~agent_guard.ToolCall.mark_error`, and the result is
recorded only when the guard records arguments.

A call paused by ``interrupt()`` inside the tool is remembered: LangGraph runs it again on
resume, and that run is not decided (or charged) a second time.
"""

from __future__ import annotations

import contextvars
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from langchain_core.messages import ToolMessage
from langgraph.errors import GraphBubbleUp

from agent_guard import Decision, Guard, Task, ToolCall
from agent_guard import semconv as sc
from agent_guard.execution import under_span
from agent_guard_langchain._resume import RESUMABLE
from agent_guard_langchain._tracing import framework_span

__all__ = ["GUARDED_RUN", "aguarded_call", "guarded_call"]

_R = TypeVar("_R")
Refuse = Callable[[Decision], Any]
"""What a refused call returns (an error ToolMessage) or raises (ToolCallDenied)."""

GUARDED_RUN: contextvars.ContextVar[list[bool] | None] = contextvars.ContextVar("agent_guard_lc_run", default=None)
"""A cell a ToolNode layer sets while its handler runs; :func:`guarded_call` marks it (seen through context copies)."""


def _settle(call: ToolCall, result: Any) -> None:
    """Mark an error answer and record the result on the call's span (the core decides what is kept)."""
    if isinstance(result, ToolMessage) and result.status == "error":
        call.mark_error(sc.TOOL_ERROR_TYPE)
    call.record_result(result)


def _begin(guard: Guard, name: str, args: Mapping[str, Any], call_id: str | None) -> tuple[Task | None, bool]:
    """(the current task, whether this call resumes one allowed -- and charged -- before an ``interrupt()``)."""
    cell = GUARDED_RUN.get()
    if cell is not None:
        cell[0] = True
    task = guard.current_task()
    return task, RESUMABLE.resume(task, call_id, name, args)


def guarded_call(
    guard: Guard, name: str, args: dict[str, Any], call_id: str | None, description: str | None,
    run: Callable[[], _R], refuse: Refuse,
) -> Any:
    """Decide ``args`` for tool ``name`` in the current task; ``run()`` the call if allowed, else ``refuse``."""
    task, resumed = _begin(guard, name, args, call_id)
    if not resumed:
        with under_span(framework_span()):
            call = guard.tool_call(name, args, call_id=call_id, description=description)
        with call:
            if not call.allowed:
                return refuse(call.decision)
            try:
                result = run()
            except GraphBubbleUp:  # interrupt() in the tool: its resumed run is not a new call
                RESUMABLE.remember(task, call_id, name, args)
                raise
            _settle(call, result)
            return result
    try:
        return run()
    except GraphBubbleUp:
        RESUMABLE.remember(task, call_id, name, args)
        raise


async def aguarded_call(
    guard: Guard, name: str, args: dict[str, Any], call_id: str | None, description: str | None,
    run: Callable[[], Awaitable[_R]], refuse: Refuse,
) -> Any:
    """Async :func:`guarded_call` (the store's async path)."""
    task, resumed = _begin(guard, name, args, call_id)
    if not resumed:
        with under_span(framework_span()):
            call = await guard.atool_call(name, args, call_id=call_id, description=description)
        with call:
            if not call.allowed:
                return refuse(call.decision)
            try:
                result = await run()
            except GraphBubbleUp:
                RESUMABLE.remember(task, call_id, name, args)
                raise
            _settle(call, result)
            return result
    try:
        return await run()
    except GraphBubbleUp:
        RESUMABLE.remember(task, call_id, name, args)
        raise
