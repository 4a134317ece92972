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

A handler that returns without running the guarded tool (a later middleware replaced
``request.tool`` or answered itself; a hand-written handler ignoring ``request.tool``) leaves the
call undecided: that is logged once per layer, since nothing can be undone after the fact.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from langchain_core.messages import ToolMessage
from langchain_core.tools import BaseTool
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import Command

from agent_guard import Decision, Guard, ToolCallDenied
from agent_guard_langchain._calls import GUARDED_RUN, aguarded_call, guarded_call
from agent_guard_langchain._checks import OnViolation
from agent_guard_langchain._messages import denial_message
from agent_guard_langchain._tools import GuardedTool

try:  # the names LangGraph's ToolNode strips from the model's arguments and fills itself
    from langgraph.prebuilt.tool_node import _get_all_injected_args
except ImportError:  # pragma: no cover - another LangGraph: trust none (more refusals, never fewer)
    _get_all_injected_args = None  # type: ignore[assignment]

__all__ = ["NodeGuard", "ToolResult"]

ToolResult = ToolMessage | Command[Any]
"""What a ``ToolNode`` tool call returns."""
_MAX_WRAPPERS = 4096
_log = logging.getLogger("agent_guard")


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
    """Runs ``ToolNode`` requests through guarded tools of one guard (one instance per middleware/wrapper pair)."""

    __slots__ = ("_warned", "_wrappers", "guard", "on_violation")

    def __init__(self, guard: Guard, on_violation: OnViolation) -> None:
        self.guard = guard
        self.on_violation: OnViolation = on_violation
        self._wrappers: dict[int, tuple[BaseTool, GuardedTool]] = {}
        self._warned = False

    def _bypassed(self, request: ToolCallRequest) -> None:
        if not self._warned:
            self._warned = True
            _log.warning(
                "agent_guard: the tool call %r to %r returned without running the guarded tool, so it was "
                "not decided: a middleware after AgentGuardMiddleware replaced request.tool or answered "
                "itself, or a wrap_tool_call handler ignores request.tool (logged once)",
                request.tool_call.get("id"), request.tool_call.get("name"),
            )

    def wrapper(self, tool: BaseTool) -> GuardedTool:
        """The guarded tool a request for ``tool`` runs (built once per tool; a GuardedTool of this guard is unwrapped)."""
        hit = self._wrappers.get(id(tool))
        if hit is not None and hit[0] is tool:
            return hit[1]
        inner = tool.inner if isinstance(tool, GuardedTool) and tool.guard is self.guard else tool
        wrapped = GuardedTool._for_tool_node(inner, self.guard, self.on_violation, _filled_by_tool_node(tool))
        if len(self._wrappers) >= _MAX_WRAPPERS:
            self._wrappers.clear()
        self._wrappers[id(tool)] = (tool, wrapped)
        return wrapped

    def _undeclared(self, request: ToolCallRequest) -> tuple[str, str | None, dict[str, Any]]:
        call = request.tool_call
        args = call.get("args")
        return call["name"], call.get("id"), dict(args) if isinstance(args, Mapping) else {"input": args}

    def _refusal(self, name: str, call_id: str | None) -> Callable[[Decision], ToolResult]:
        def refuse(decision: Decision) -> ToolResult:
            if self.on_violation == "raise":
                raise ToolCallDenied(decision)
            return denial_message(decision, str(name), call_id)

        return refuse

    def run(self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolResult]) -> ToolResult:
        """Run ``request`` with its tool guarded (or decide it here when the ToolNode has no such tool)."""
        tool = request.tool
        if tool is not None:
            cell = [False]
            token = GUARDED_RUN.set(cell)
            try:
                answer = handler(request.override(tool=self.wrapper(tool)))
            finally:
                GUARDED_RUN.reset(token)
            if not cell[0]:
                self._bypassed(request)
            return answer
        name, call_id, args = self._undeclared(request)
        result: ToolResult = guarded_call(self.guard, name, args, call_id, None, lambda: handler(request),
                                          self._refusal(name, call_id))
        return result

    async def arun(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[ToolResult]]
    ) -> ToolResult:
        """Async :meth:`run`."""
        tool = request.tool
        if tool is not None:
            cell = [False]
            token = GUARDED_RUN.set(cell)
            try:
                answer = await handler(request.override(tool=self.wrapper(tool)))
            finally:
                GUARDED_RUN.reset(token)
            if not cell[0]:
                self._bypassed(request)
            return answer
        name, call_id, args = self._undeclared(request)
        result: ToolResult = await aguarded_call(self.guard, name, args, call_id, None, lambda: handler(request),
                                                 self._refusal(name, call_id))
        return result
