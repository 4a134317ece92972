"""LangGraph: ``ToolNode`` wrappers for custom graphs, and an approver that asks a human.

``tool_node_wrappers(guard)`` returns ``(wrap, awrap)`` for
``ToolNode(tools, wrap_tool_call=wrap, awrap_tool_call=awrap)`` -- in a custom ``StateGraph`` or
in ``create_react_agent(model, tools=ToolNode(...))``. By default each call is decided in the
task current where the graph runs (``with guard.task(plan, identity=me): graph.invoke(...)``);
pass ``task=`` to find it another way (e.g. from ``request.runtime.context``).

``interrupt_approver`` is an approval hook (``Guard(policy, approver=interrupt_approver)``) that
pauses the graph with LangGraph's ``interrupt()`` and resumes with ``Command(resume=True|False)``.
It must run inside a graph node, which is where ``AgentGuardMiddleware`` mints grants.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Final

from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.types import interrupt

from agent_guard import ApprovalRequest, Guard, Task
from agent_guard.exceptions import ConfigError
from agent_guard_langchain._checks import OnViolation, check_guard, check_on_violation
from agent_guard_langchain._node import NodeGuard, ToolResult

__all__ = ["APPROVAL_INTERRUPT_TYPE", "TaskResolver", "interrupt_approver", "tool_node_wrappers"]

APPROVAL_INTERRUPT_TYPE: Final = "agent_guard.approval"
"""The ``type`` field of the interrupt payload :func:`interrupt_approver` raises."""

TaskResolver = Callable[[ToolCallRequest], "Task | None"]
"""Finds the task of a ``ToolNode`` request (``None``: no grant, every call is refused)."""

SyncWrapper = Callable[[ToolCallRequest, Callable[[ToolCallRequest], ToolResult]], ToolResult]
AsyncWrapper = Callable[
    [ToolCallRequest, Callable[[ToolCallRequest], Awaitable[ToolResult]]], Awaitable[ToolResult]
]


def tool_node_wrappers(
    guard: Guard, *, on_violation: OnViolation = "message", task: TaskResolver | None = None
) -> tuple[SyncWrapper, AsyncWrapper]:
    """``(wrap_tool_call, awrap_tool_call)`` for a LangGraph ``ToolNode`` that enforces ``guard``.

    A refused call becomes ``ToolMessage(status="error")`` (tool, reason code, what the plan
    allows) and the graph goes on; ``on_violation="raise"`` raises ``ToolCallDenied`` instead.
    Each call gets one decision and one ``execute_tool`` span with ``gen_ai.tool.call.id``, made
    inside the tool run on the arguments the tool's function receives (see :class:`GuardedTool`).
    """
    guard = check_guard(guard)
    node = NodeGuard(guard, check_on_violation(on_violation))
    if task is not None and not callable(task):
        raise ConfigError("task: expected a function (request) -> Task | None, or None for the current task")

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


def approval_payload(request: ApprovalRequest) -> dict[str, Any]:
    """The interrupt payload shown to the human: who, which plan step, which tool, which arguments."""
    return {
        "type": APPROVAL_INTERRUPT_TYPE,
        "agent_id": request.identity.agent_id,
        "user_id": request.identity.user_id,
        "goal": request.plan.goal,
        "plan_hash": request.plan.plan_hash,
        "step": request.step,
        "tool": request.tool,
        "args": request.args,
        "question": f"Allow step {request.step} ({request.tool}) of this plan?",
    }


def interrupt_approver(request: ApprovalRequest) -> bool:
    """Ask a human through LangGraph ``interrupt()``; approve only on an explicit yes.

    Resume with ``Command(resume=True)`` / ``Command(resume=False)``, or with a mapping
    ``{"approved": bool, "plan_hash": ...}`` (a ``plan_hash`` that is not this plan's refuses).
    Anything else refuses (``approval_denied``). Needs a checkpointer and a graph node to run in.
    """
    answer = interrupt(approval_payload(request))
    if answer is True:
        return True
    if isinstance(answer, Mapping) and answer.get("approved") is True:
        expected = answer.get("plan_hash")
        return expected is None or expected == request.plan.plan_hash
    return False
