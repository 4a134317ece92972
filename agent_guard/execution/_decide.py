"""The per-call decision: scope first, then state, then the store's atomic budget and limits.

Plain functions of a :class:`Task`, shared by the sync and async paths of the guard. Scope
reasons come before state reasons: after a plan completed, an unplanned tool still reads
``tool_not_in_scope`` and an extra planned call ``budget_exhausted``, never a bare ``revoked``.
A step with budget whose limits have no room reads ``limit_exceeded``, naming the limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final, cast

from agent_guard import reasons
from agent_guard.authorization._models import Decision
from agent_guard.exceptions import ConfigError
from agent_guard.execution._task import Task
from agent_guard.reasons import ReasonCode
from agent_guard.stores._base import Charge, ConsumeResult

__all__ = ["deny", "deny_message", "not_an_amount", "precheck", "settle"]

_STATE_REASONS: Final = frozenset(
    {reasons.NO_GRANT, reasons.INVALID_GRANT, reasons.EXPIRED, reasons.REVOKED, reasons.BUDGET_EXHAUSTED,
     reasons.STORE_UNAVAILABLE, reasons.LIMIT_EXCEEDED}
)
_NOT_PLAIN: Final = "arguments must be a plain JSON object (a dict)"
_NOT_AN_AMOUNT: Final = "a summed argument must be a number from 0 to 2**53"


def deny_message(
    tool: str, reason: str, argument: str | None, allowed_tools: tuple[str, ...], limit: str | None = None,
    detail: str | None = None,
) -> str:
    """One sentence for the model and the operator: what was refused and why, never a value.

    The tools the plan allows are named only while naming them can help (a scope refusal on a
    live grant); after revocation or expiry there is nothing left to choose from. A
    ``limit_exceeded`` refusal names the limit (its tool, kind, scope and window), never a total.
    """
    what = f"argument {argument!r} of " if argument else ""
    text = f"agent_guard refused {what}the call to {tool!r} ({reason}): {reasons.describe(reason)}"
    if limit is not None:
        text += f" (limit: {limit})"
    if detail is not None:
        text += f" ({detail})"
    if reason in _STATE_REASONS or not allowed_tools:
        return text + "."
    return f"{text}; the current plan allows: {', '.join(allowed_tools)}."


def deny(
    task: Task | None, tool: str, reason: ReasonCode, argument: str | None = None, *, live: bool = True,
    limit: str | None = None, detail: str | None = None,
) -> Decision:
    """A denial of ``tool`` for ``reason`` (``live=False`` once the grant is no longer usable).

    ``detail`` adds what exactly was wrong to the message (never a value).
    """
    tools = task.tools if task is not None and live else ()
    return Decision.model_construct(
        allowed=False, tool=tool, reason=reason, message=deny_message(tool, reason, argument, tools, limit, detail),
        step=None, grant_id=task.grant_id if task else None, task_id=task.id if task else None,
        argument=argument, allowed_tools=tools, outcome="deny", limit=limit,
    )


def not_an_amount(task: Task, tool: str, argument: str) -> Decision:
    """The refusal of a call whose summed argument is not an amount (absent, not a number, negative,
    beyond 2**53): ``argument_mismatch`` naming it, decided before the store is asked."""
    return deny(task, tool, reasons.ARGUMENT_MISMATCH, argument, detail=_NOT_AN_AMOUNT)


def precheck(task: Task | None, tool: str, args: Any, now: float, leeway_s: float) -> Decision | Sequence[int]:
    """Everything decided without the store: the candidate steps, or the denial.

    ``args`` must be an exact ``dict`` (a subclass could hide keys or lie about values); anything
    else is refused ``argument_mismatch``. Decisions on the values are the matcher's (plain JSON
    types only).
    """
    if task is None:
        return deny(None, tool, reasons.NO_GRANT)
    if type(args) is not dict:
        if not isinstance(args, Mapping):
            raise ConfigError(f"args: expected a mapping of argument names to values, got {type(args).__name__}")
        return deny(task, tool, reasons.ARGUMENT_MISMATCH, detail=_NOT_PLAIN)
    if type(tool) is not str:
        return deny(task, repr(tool)[:64], reasons.TOOL_NOT_IN_SCOPE)
    match = task.compiled.match(tool, args)
    if match.reason is not None:
        return deny(task, tool, cast(ReasonCode, match.reason), match.argument, live=task.revocation_reason is None)
    revoked = task.revocation_reason
    if revoked is None and task.closed:  # released here (an attached grant): its run lives on elsewhere
        return deny(task, tool, reasons.REVOKED, live=False)
    if revoked is None and now >= task.expires_at + leeway_s:
        task.revoke_locally("expired")
        revoked = "expired"
    if revoked is not None:
        if revoked == "expired":
            return deny(task, tool, reasons.EXPIRED, live=False)
        if revoked == "plan_completed":
            return deny(task, tool, reasons.BUDGET_EXHAUSTED, live=False)
        return deny(task, tool, reasons.REVOKED, live=False)
    return match.candidates


def settle(task: Task, tool: str, result: ConsumeResult, charges: Sequence[Charge] = ()) -> tuple[Decision, bool]:
    """The decision for a store verdict, and whether this call completed the plan (revoke after recording)."""
    status, step = result
    if status == "ok" or status == "completed":
        assert step is not None
        return task.allow(step), status == "completed"
    if status == "revoked":
        return deny(task, tool, reasons.REVOKED, live=False), False
    if status == "out_of_order":
        return deny(task, tool, reasons.OUT_OF_ORDER), False
    if status == "limit_exceeded":
        label = charges[step].bucket.label if step is not None and 0 <= step < len(charges) else None
        return deny(task, tool, reasons.LIMIT_EXCEEDED, limit=label), False
    return deny(task, tool, reasons.BUDGET_EXHAUSTED), False
