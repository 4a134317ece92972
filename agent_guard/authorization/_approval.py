"""Approval hooks: capabilities with ``requires_approval=True`` are asked about before minting."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Literal

from agent_guard import reasons
from agent_guard._frozen import Frozen
from agent_guard.authorization._delegation import ScopeDiff
from agent_guard.authorization._models import AgentIdentity, Plan
from agent_guard.authorization._scope import TaskScope
from agent_guard.exceptions import ConfigError, PlanRejected, PlanViolation

__all__ = [
    "ApprovalRequest", "Approver", "acheck_approvals", "acheck_replan", "check_approvals", "check_replan", "replan_request",
]


class ApprovalRequest(Frozen):
    """What an approval hook is asked: may this step of this plan be granted?

    ``kind="replan"`` asks about a new plan that widens a running task: ``diff`` then says what it
    adds (tools, arguments, budget) over what the task holds. ``plan_hash`` names the exact plan
    asked about, so an answer can be bound to it.
    """

    identity: AgentIdentity
    plan: Plan
    step: int
    tool: str
    args: dict[str, Any]
    kind: Literal["step", "replan"] = "step"
    diff: ScopeDiff | None = None
    plan_hash: str = ""


Approver = Callable[[ApprovalRequest], "bool | Awaitable[bool]"]
"""An approval hook: returns (or resolves to) True to approve one step."""


def _requests(approver: Approver | None, plan: Plan, scope: TaskScope, identity: AgentIdentity) -> list[ApprovalRequest]:
    requests = [
        ApprovalRequest(identity=identity, plan=plan, step=s.index, tool=s.tool, args=dict(plan.steps[s.index].args),
                        plan_hash=plan.plan_hash)
        for s in scope.steps
        if s.requires_approval
    ]
    if requests and approver is None:
        raise PlanRejected([
            PlanViolation(r.step, r.tool, reasons.APPROVAL_REQUIRED,
                          "this capability requires approval and the guard has no approver; pass Guard(..., approver=...)")
            for r in requests
        ])
    return requests


def _raise_refused(requests: Sequence[ApprovalRequest], answers: Sequence[object]) -> None:
    refused = [
        PlanViolation(r.step, r.tool, reasons.APPROVAL_DENIED, "the approver refused this step")
        for r, answer in zip(requests, answers, strict=True)
        if answer is not True
    ]
    if refused:
        raise PlanRejected(refused)


async def _await(awaitable: Awaitable[Any]) -> Any:
    return await awaitable


def _resolve(answer: object) -> object:
    """Run an async approver's answer to completion from sync code (only outside an event loop)."""
    if not inspect.isawaitable(answer):
        return answer
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(_await(answer))
    close = getattr(answer, "close", None)
    if close is not None:
        close()
    raise ConfigError("approver: an async approver needs `async with guard.task(...)` inside a running event loop")


def check_approvals(approver: Approver | None, plan: Plan, scope: TaskScope, identity: AgentIdentity) -> None:
    """Ask the approver about every step that needs approval; raise :class:`PlanRejected` unless all say yes."""
    requests = _requests(approver, plan, scope, identity)
    if requests:
        assert approver is not None
        _raise_refused(requests, [_resolve(approver(r)) for r in requests])


async def acheck_approvals(approver: Approver | None, plan: Plan, scope: TaskScope, identity: AgentIdentity) -> None:
    """Async :func:`check_approvals`: an async approver is awaited."""
    requests = _requests(approver, plan, scope, identity)
    answers: list[object] = []
    for request in requests:
        assert approver is not None
        answer = approver(request)
        answers.append(await answer if inspect.isawaitable(answer) else answer)
    _raise_refused(requests, answers)


def replan_request(approver: Approver | None, plan: Plan, diff: ScopeDiff, identity: AgentIdentity) -> ApprovalRequest:
    """The one request for a widening replan; :class:`PlanRejected` (``approval_required``) without an approver."""
    first = diff.widenings[0]
    if approver is None:
        raise PlanRejected([
            PlanViolation(w.step, w.tool, reasons.APPROVAL_REQUIRED,
                          f"the new plan widens the task ({w.detail}) and the guard has no approver", argument=w.argument)
            for w in diff.widenings
        ])
    return ApprovalRequest(identity=identity, plan=plan, step=first.step, tool=first.tool,
                           args=dict(plan.steps[first.step].args), kind="replan", diff=diff, plan_hash=plan.plan_hash)


def check_replan(approver: Approver | None, plan: Plan, diff: ScopeDiff, identity: AgentIdentity) -> None:
    """Ask the approver about a widening replan (it sees the diff); raise :class:`PlanRejected` unless yes."""
    request = replan_request(approver, plan, diff, identity)
    assert approver is not None
    _raise_refused([request], [_resolve(approver(request))])


async def acheck_replan(approver: Approver | None, plan: Plan, diff: ScopeDiff, identity: AgentIdentity) -> None:
    """Async :func:`check_replan`."""
    request = replan_request(approver, plan, diff, identity)
    assert approver is not None
    answer = approver(request)
    _raise_refused([request], [await answer if inspect.isawaitable(answer) else answer])
