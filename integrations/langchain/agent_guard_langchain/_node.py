"""The ``ToolNode`` layer of the middleware and of ``tool_node_wrappers``: guard each request's tool.

A ``wrap_tool_call`` hook sees the model's call before LangGraph validates it and injects state,
store and runtime. So the hook does not decide there: it hands the ``ToolNode`` a
:class:`GuardedTool` around the request's tool (``request.override(tool=...)``), which decides
inside the tool run on exactly what the tool's function receives -- one decision per execution,
as a child of the tool's span. A tool the ``ToolNode`` does not know (``request.tool is None``:
a hallucinated name, or one a later middleware supplies) is decided here, on the model's
arguments, before anything runs.

The wrapper trusts the injected values LangGraph supplies (it strips the model's values for
those parameters and fills its own); GuardedTool used directly cannot tell, see its docs.

While the handler runs, the sentinel of :mod:`._sentinel` is armed: a tool run that starts
without being the guarded copy -- a later middleware replaced ``request.tool`` -- is stopped
before its function runs and answered as a ``no_grant`` refusal. A handler that answers without
running any tool (a cache, a human's answer) runs nothing undecided.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from agent_guard import Decision, Guard, ToolCallDenied
from agent_guard_langchain._calls import GUARDED_RUN, CallCell, aguarded_call, guarded_call
from agent_guard_langchain._checks import OnViolation
from agent_guard_langchain._messages import denial_message
from agent_guard_langchain._sentinel import UndecidedToolRun, armed
from agent_guard_langchain._tools import GuardedTool

try:  # the names LangGraph's ToolNode strips from the model's arguments and fills itself
    from langgraph.prebuilt.tool_node import _get_all_injected_args
except ImportError:  # pragma: no cover - another LangGraph: trust none (more refusals, never fewer)
    _get_all_injected_args = None  # type: ignore[assignment]

__all__ = ["NodeGuard", "ToolResult"]

ToolResult = ToolMessage | Command[Any]
"""What a ``ToolNode`` tool call returns."""
_MAX_WRAPPERS = 4096


def _filled_by_tool_node(tool: BaseTool) -> frozenset[str]:
    """Injected names whose values LangGraph's ToolNode supplies for ``tool`` (never the model's)."""
    if _get_all_injected_args is None:  # pragma: no cover
        return frozenset()
    try:
        info = _get_all_injected_args(tool)
    except Exception:  # pragma: no cover - LangGraph could not inspect it either
        return frozenset()
    names = set(info.all_injected_keys) | set(info.state)
    names.update(n for n in (info.store, info.runtime) if n)
    return frozenset(names)


class NodeGuard:
    """Runs ``ToolNode`` requests through guarded tools of one guard (one instance per middleware/wrapper pair).

    ``on_violation`` is ``"message"``, ``"raise"``, or ``"end"`` (the middleware's: refuse with an
    error ToolMessage that also ends the run).
    """

    __slots__ = ("_wrappers", "end_run", "guard", "on_violation")

    def __init__(self, guard: Guard, on_violation: OnViolation | str) -> None:
        self.guard = guard
        self.end_run = on_violation == "end"
        self.on_violation: OnViolation = "raise" if on_violation == "raise" else "message"
        self._wrappers: dict[int, tuple[BaseTool, GuardedTool]] = {}

    def wrapper(self, tool: BaseTool) -> GuardedTool:
        """The guarded tool a request for ``tool`` runs (built once per tool; a GuardedTool of this guard is unwrapped)."""
        hit = self._wrappers.get(id(tool))
        if hit is not None and hit[0] is tool:
            return hit[1]
        inner = tool.inner if isinstance(tool, GuardedTool) and tool.guard is self.guard else tool
        wrapped = GuardedTool._for_tool_node(inner, self.guard, self.on_violation, _filled_by_tool_node(tool),
                                             end_run=self.end_run)
        if len(self._wrappers) >= _MAX_WRAPPERS:
            self._wrappers.clear()
        self._wrappers[id(tool)] = (tool, wrapped)
        return wrapped

    def _undeclared(self, request: ToolCallRequest) -> tuple[str, str | None, dict[str, Any]]:
        call = request.tool_call
        args = call.get("args")
        return call["name"], call.get("id"), dict(args) if isinstance(args, Mapping) else {"input": args}

    def refuse(self, decision: Decision, name: str, call_id: str | None) -> ToolResult:
        """A refusal as this layer answers it: an error ToolMessage (ending the run in end mode), or raise."""
        if self.on_violation == "raise":
            raise ToolCallDenied(decision)
        return denial_message(decision, str(name), call_id, end_run=self.end_run)

    def _refusal(self, name: str, call_id: str | None) -> Callable[[Decision], ToolResult]:
        return lambda decision: self.refuse(decision, name, call_id)

    def _stopped(self, error: UndecidedToolRun, request: ToolCallRequest, cell: CallCell) -> ToolResult:
        cell.decision = error.decision
        return self.refuse(error.decision, str(request.tool_call.get("name")), request.tool_call.get("id"))

    def run(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolResult], cell: CallCell | None = None
    ) -> ToolResult:
        """Run ``request`` with its tool guarded (or decide it here when the ToolNode has no such tool)."""
        cell = cell or CallCell()
        token = GUARDED_RUN.set(cell)
        try:
            with armed(self.guard, request.tool_call.get("id")):
                tool = request.tool
                if tool is not None:
                    return handler(request.override(tool=self.wrapper(tool)))
                name, call_id, args = self._undeclared(request)
                result: ToolResult = guarded_call(self.guard, name, args, call_id, None, lambda: handler(request),
                                                  self._refusal(name, call_id))
                return result
        except UndecidedToolRun as err:
            return self._stopped(err, request, cell)
        finally:
            GUARDED_RUN.reset(token)

    async def arun(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[ToolResult]],
        cell: CallCell | None = None,
    ) -> ToolResult:
        """Async :meth:`run`."""
        cell = cell or CallCell()
        token = GUARDED_RUN.set(cell)
        try:
            with armed(self.guard, request.tool_call.get("id")):
                tool = request.tool
                if tool is not None:
                    return await handler(request.override(tool=self.wrapper(tool)))
                name, call_id, args = self._undeclared(request)
                result: ToolResult = await aguarded_call(self.guard, name, args, call_id, None,
                                                         lambda: handler(request), self._refusal(name, call_id))
                return result
        except UndecidedToolRun as err:
            return self._stopped(err, request, cell)
        finally:
            GUARDED_RUN.reset(token)
