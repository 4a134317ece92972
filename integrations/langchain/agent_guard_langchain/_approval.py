"""``interrupt_approver``: ask a human through LangGraph ``interrupt()``, bound to the exact plan shown.

The interrupt payload shows the plan (its steps and its ``plan_hash``). An answer approves only
that plan: a bare ``True`` approves the plan the interrupt showed (the middleware keeps that plan
in the thread's checkpoint, so a resume -- on a fresh middleware, in another process -- asks about
the same plan and never re-plans); a mapping ``{"approved": True, "plan_hash": h}`` approves only
when ``h`` is this plan's hash, and an answer for another plan asks again, saying the plan changed.

A run whose approved plan must be minted again (its grant expired during a long pause, or it
resumed in another process) is not asked again: the middleware marks the recorded, approved
plan hash as approved for that mint (:data:`PREAPPROVED`).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Final

from langgraph.types import interrupt

from agent_guard import ApprovalRequest

__all__ = [
    "APPROVAL_INTERRUPT_TYPE", "PREAPPROVED", "approval_payload", "interrupt_approver", "is_interrupt_approver",
    "preapproved",
]

APPROVAL_INTERRUPT_TYPE: Final = "agent_guard.approval"
"""The ``type`` field of the interrupt payload :func:`interrupt_approver` raises."""
_MAX_ASKS: Final = 3

PREAPPROVED: contextvars.ContextVar[frozenset[str]] = contextvars.ContextVar(
    "agent_guard_lc_preapproved", default=frozenset()
)
"""Plan hashes a human already approved for the run being minted again (set by the middleware only)."""


@contextmanager
def preapproved(plan_hash: str | None) -> Iterator[None]:
    """Treat ``plan_hash`` as approved by :func:`interrupt_approver` for a block (no-op for ``None``)."""
    if plan_hash is None:
        yield
        return
    token = PREAPPROVED.set(PREAPPROVED.get() | {plan_hash})
    try:
        yield
    finally:
        PREAPPROVED.reset(token)


def _steps(request: ApprovalRequest) -> list[dict[str, Any]]:
    return [{"tool": s.tool, "args": dict(s.args), "max_calls": s.max_calls} for s in request.plan.steps]


def approval_payload(request: ApprovalRequest) -> dict[str, Any]:
    """The interrupt payload shown to the human: who, the whole plan and its hash, and the step asked about."""
    payload: dict[str, Any] = {
        "type": APPROVAL_INTERRUPT_TYPE,
        "kind": request.kind,
        "agent_id": request.identity.agent_id,
        "user_id": request.identity.user_id,
        "goal": request.plan.goal,
        "plan_hash": request.plan_hash or request.plan.plan_hash,
        "plan": _steps(request),
        "step": request.step,
        "tool": request.tool,
        "args": request.args,
        "question": f"Allow step {request.step} ({request.tool}) of this plan?",
    }
    if request.kind == "replan" and request.diff is not None:
        payload["question"] = "The run asks for a wider plan than it holds. Allow this new plan?"
        payload["adds"] = [{"kind": w.kind, "step": w.step, "tool": w.tool, "argument": w.argument,
                            "detail": w.detail} for w in request.diff.widenings]
    return payload


def _verdict(answer: object, plan_hash: str) -> bool | str:
    """True / False, or the other plan's hash when the answer approves a plan that is not this one."""
    if answer is True:
        return True
    if isinstance(answer, Mapping) and answer.get("approved") is True:
        expected = answer.get("plan_hash")
        if expected is None or expected == plan_hash:
            return True
        return str(expected)
    return False


def interrupt_approver(request: ApprovalRequest) -> bool:
    """Ask a human through LangGraph ``interrupt()``; approve only on an explicit yes for this plan.

    Resume with ``Command(resume=True)`` / ``Command(resume=False)``, or with a mapping
    ``{"approved": bool, "plan_hash": ...}``. A mapping that approves another plan (its
    ``plan_hash`` is not this one's) asks again, with ``plan_changed`` in the payload; anything
    else refuses (``approval_denied``). Needs a checkpointer and a graph node to run in.
    """
    plan_hash = request.plan_hash or request.plan.plan_hash
    if request.kind == "step" and plan_hash in PREAPPROVED.get():
        return True
    payload = approval_payload(request)
    for _ in range(_MAX_ASKS):
        verdict = _verdict(interrupt(payload), plan_hash)
        if isinstance(verdict, bool):
            return verdict
        payload = {**payload, "plan_changed": True, "question": (
            f"The plan changed since it was shown: the answer approved plan {verdict}, and the plan to run now is "
            f"{plan_hash}. Allow this plan?"
        )}
    return False


def is_interrupt_approver(approver: object) -> bool:
    """True when ``approver`` asks through ``interrupt()`` (it needs a checkpointer to be resumed)."""
    return approver is interrupt_approver or bool(getattr(approver, "agent_guard_interrupts", False))
