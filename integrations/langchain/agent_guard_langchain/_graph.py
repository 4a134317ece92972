"""LangGraph: ``ToolNode`` wrappers for custom graphs (and the approver that asks a human).

``tool_node_wrappers(guard)`` returns ``(wrap, awrap)`` for
``ToolNode(tools, wrap_tool_call=wrap, awrap_tool_call=awrap)`` -- in a custom ``StateGraph`` or
in ``create_react_agent(model, tools=ToolNode(...))``. By default each call is decided in the
task current where the graph runs (``with guard.task(plan, identity=me): graph.invoke(...)``);
pass ``task=`` to find it another way (e.g. from ``request.runtime.context``). Pass ``tools=``
(the ToolNode's tools) to have a policy capability for a tool the node does not have reported
now, as a ``ConfigError``.

``interrupt_approver`` (:mod:`._approval`) is an approval hook (``Guard(policy,
approver=interrupt_approver)``) that pauses the graph with LangGraph's ``interrupt()``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable

from langchain_core.tools import BaseTool
from langgraph.prebuilt.tool_node import ToolCallRequest

from agent_guard import Guard, Task
from agent_guard.exceptions import ConfigError
from agent_guard_langchain._approval import APPROVAL_INTERRUPT_TYPE, approval_payload, interrupt_approver
from agent_guard_langchain._checks import (
    OnViolation,
    check_guard,
    check_on_violation,
    check_tool_coverage,
    check_tool_list,
)
from agent_guard_langchain._node import NodeGuard, ToolResult

__all__ = [
    "APPROVAL_INTERRUPT_TYPE", "TaskResolver", "approval_payload", "interrupt_approver", "tool_node_wrappers",
]

TaskResolver = Callable[[ToolCallRequest], "Task | None"]
"""Finds the task of a ``ToolNode`` request (``None``: no grant, every call is refused)."""

SyncWrapper = Callable[[ToolCallRequest, Callable[[ToolCallRequest], ToolResult]], ToolResult]
AsyncWrapper = Callable[
    [ToolCallRequest, Callable[[ToolCallRequest], Awaitable[ToolResult]]], Awaitable[ToolResult]
]


def tool_node_wrappers(
    guard: Guard, *, on_violation: OnViolation = "message", task: TaskResolver | None = None,
    tools: Iterable[BaseTool] | None = None,
) -> tuple[SyncWrapper, AsyncWrapper]:
    """``(wrap_tool_call, awrap_tool_call)`` for a LangGraph ``ToolNode`` that enforces ``guard``.

    A refused call becomes ``ToolMessage(status="error")`` (tool, reason code, what the plan
    allows) and the graph goes on; ``on_violation="raise"`` raises ``ToolCallDenied`` instead.
    Each call gets one decision and one ``execute_tool`` span with ``gen_ai.tool.call.id``, made
    inside the tool run on the arguments the tool's function receives (see :class:`GuardedTool`).
    A call that reaches a tool other than the guarded copy (a wrapper after this one replaced
    ``request.tool``) is stopped before it runs and refused ``no_grant``.
    """
    guard = check_guard(guard)
    node = NodeGuard(guard, check_on_violation(on_violation))
    if task is not None and not callable(task):
        raise ConfigError("task: expected a function (request) -> Task | None, or None for the current task")
    if tools is not None:
        check_tool_coverage(guard, [t.name for t in check_tool_list(tools)], "tools")

    def wrap(request: ToolCallRequest, execute: Callable[[ToolCallRequest], ToolResult]) -> ToolResult:
        if task is None:
            return node.run(request, execute)
        with guard.use(task(request)):
            return node.run(request, execute)

    async def awrap(
        request: ToolCallRequest, execute: Callable[[ToolCallRequest], Awaitable[ToolResult]]
    ) -> ToolResult:
        if task is None:
            return await node.arun(request, execute)
        with guard.use(task(request)):
            return await node.arun(request, execute)

    return wrap, awrap


