"""The one guarded call, shared by GuardedTool, the middleware and the ``ToolNode`` wrappers.

``guarded_call(guard, name, args, ...)``: decide ``args`` in the current task, then run the
call or refuse it, in one ``execute_tool`` span. The span's parent is the framework's span of
the run being executed when an instrumentor traces LangChain (the tool's ``TOOL`` span, see
:mod:`._tracing`), else whatever is current (the task's span when the task was made current
with ``guard.use(task)``). Span semantics are the core's: a tool that answers with an error
``ToolMessage`` marks the call with :meth:`~agent_guard.ToolCall.mark_error`, and the result is
recorded only when the guard records arguments.

A call paused by ``interrupt()`` inside the tool is remembered: LangGraph runs it again on
resume, and that run is not decided (or charged) a second time in this process. The memory is
keyed by the run (the middleware's run record key, which survives a re-minted grant; else the
task id) and the tool call id.

A ``ToolNode`` layer (the middleware, ``tool_node_wrappers``) passes a :class:`CallCell` down to
the guarded tool through a context variable: the call records there that it was decided and how.
"""

from __future__ import annotations

import contextvars
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from langchain_core.messages import ToolMessage
from langgraph.errors import GraphBubbleUp

from agent_guard import Decision, Guard, ToolCall
from agent_guard import semconv as sc
from agent_guard.execution import under_span
from agent_guard_langchain._resume import RESUMABLE
from agent_guard_langchain._tracing import framework_span

__all__ = ["GUARDED_RUN", "CallCell", "aguarded_call", "guarded_call"]

_R = TypeVar("_R")
Refuse = Callable[[Decision], Any]
"""What a refused call returns (an error ToolMessage) or raises (ToolCallDenied); on the async
path it may return an awaitable of the answer."""

class CallCell:
    """What a ``ToolNode`` layer learns from the guarded tool it handed down (one per request)."""

    __slots__ = ("decision", "scope")

    def __init__(self, scope: str | None = None) -> None:
        self.decision: Decision | None = None
        """The decision, when one was made."""
        self.scope = scope
        """The run the call belongs to, for remembering calls paused by ``interrupt()`` (``None``: the task's id)."""


GUARDED_RUN: contextvars.ContextVar[CallCell | None] = contextvars.ContextVar("agent_guard_lc_run", default=None)
"""The cell of the ToolNode layer whose handler runs in this context (seen through context copies)."""


def _settle(call: ToolCall, result: Any) -> None:
    """Mark an error answer and record the result on the call's span (the core decides what is kept)."""
    if isinstance(result, ToolMessage) and result.status == "error":
        call.mark_error(sc.TOOL_ERROR_TYPE)
    call.record_result(result)


def _begin(guard: Guard, name: str, args: Mapping[str, Any], call_id: str | None) -> tuple[str | None, bool]:
    """(the run key paused calls are remembered under, whether this call resumes one allowed -- and
    charged -- before an ``interrupt()``)."""
    cell = GUARDED_RUN.get()
    task = guard.current_task()
    scope = cell.scope if cell is not None and cell.scope else (task.id if task is not None else None)
    return scope, RESUMABLE.resume(scope, task, call_id, name, args)


def _decided(call: ToolCall) -> None:
    cell = GUARDED_RUN.get()
    if cell is not None:
        cell.decision = call.decision


def guarded_call(
    guard: Guard, name: str, args: dict[str, Any], call_id: str | None, description: str | None,
    run: Callable[[], _R], refuse: Refuse,
) -> Any:
    """Decide ``args`` for tool ``name`` in the current task; ``run()`` the call if allowed, else ``refuse``."""
    scope, resumed = _begin(guard, name, args, call_id)
    if resumed:
        return _remembering(run, scope, call_id, name, args)
    with under_span(framework_span()):
        call = guard.tool_call(name, args, call_id=call_id, description=description)
    _decided(call)
    with call:
        if not call.allowed:
            return refuse(call.decision)
        result = _remembering(run, scope, call_id, name, args)
        _settle(call, result)
        return result


def _remembering(run: Callable[[], _R], scope: str | None, call_id: str | None, name: str,
                 args: Mapping[str, Any]) -> _R:
    """Run an allowed (or resumed) call; an ``interrupt()`` in it is remembered, so its resumed run is not a new call."""
    try:
        return run()
    except GraphBubbleUp:
        RESUMABLE.remember(scope, call_id, name, args)
        raise


async def _aremembering(run: Callable[[], Awaitable[_R]], scope: str | None, call_id: str | None, name: str,
                        args: Mapping[str, Any]) -> _R:
    """Async :func:`_remembering`."""
    try:
        return await run()
    except GraphBubbleUp:
        RESUMABLE.remember(scope, call_id, name, args)
        raise


async def aguarded_call(
    guard: Guard, name: str, args: dict[str, Any], call_id: str | None, description: str | None,
    run: Callable[[], Awaitable[_R]], refuse: Refuse,
) -> Any:
    """Async :func:`guarded_call` (the store's async path)."""
    scope, resumed = _begin(guard, name, args, call_id)
    if resumed:
        return await _aremembering(run, scope, call_id, name, args)
    with under_span(framework_span()):
        call = await guard.atool_call(name, args, call_id=call_id, description=description)
    _decided(call)
    with call:
        if not call.allowed:
            answer = refuse(call.decision)
            return await answer if inspect.isawaitable(answer) else answer
        result = await _aremembering(run, scope, call_id, name, args)
        _settle(call, result)
        return result
