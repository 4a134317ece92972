"""Stable reason codes carried by every denial.

The codes are part of the public contract: they appear on :class:`~agent_guard.Decision`,
on :class:`~agent_guard.ToolCallDenied` / :class:`~agent_guard.PlanRejected`, in the message
returned to a model and in the ``agent_guard.decision.reason`` span attribute. Never rename one.
"""

from __future__ import annotations

from typing import Final, Literal

__all__ = [
    "APPROVAL_DENIED",
    "APPROVAL_REQUIRED",
    "ARGUMENT_MISMATCH",
    "ARGUMENT_NOT_ALLOWED",
    "BUDGET_EXHAUSTED",
    "CALL_REASONS",
    "EXCEEDS_PARENT_SCOPE",
    "EXPIRED",
    "INVALID_GRANT",
    "LIMIT_EXCEEDED",
    "MINT_REASONS",
    "NO_GRANT",
    "OUT_OF_ORDER",
    "PLAN_EXCEEDS_POLICY",
    "REVOKED",
    "STORE_UNAVAILABLE",
    "TOOL_NOT_IN_SCOPE",
    "ReasonCode",
    "describe",
]

NO_GRANT: Final = "no_grant"
INVALID_GRANT: Final = "invalid_grant"
EXPIRED: Final = "expired"
REVOKED: Final = "revoked"
TOOL_NOT_IN_SCOPE: Final = "tool_not_in_scope"
ARGUMENT_NOT_ALLOWED: Final = "argument_not_allowed"
ARGUMENT_MISMATCH: Final = "argument_mismatch"
BUDGET_EXHAUSTED: Final = "budget_exhausted"
OUT_OF_ORDER: Final = "out_of_order"
STORE_UNAVAILABLE: Final = "store_unavailable"
PLAN_EXCEEDS_POLICY: Final = "plan_exceeds_policy"
APPROVAL_REQUIRED: Final = "approval_required"
APPROVAL_DENIED: Final = "approval_denied"
EXCEEDS_PARENT_SCOPE: Final = "exceeds_parent_scope"
LIMIT_EXCEEDED: Final = "limit_exceeded"

ReasonCode = Literal[
    "no_grant",
    "invalid_grant",
    "expired",
    "revoked",
    "tool_not_in_scope",
    "argument_not_allowed",
    "argument_mismatch",
    "budget_exhausted",
    "out_of_order",
    "store_unavailable",
    "plan_exceeds_policy",
    "approval_required",
    "approval_denied",
    "exceeds_parent_scope",
    "limit_exceeded",
]

CALL_REASONS: Final = frozenset(
    {
        NO_GRANT,
        INVALID_GRANT,
        EXPIRED,
        REVOKED,
        TOOL_NOT_IN_SCOPE,
        ARGUMENT_NOT_ALLOWED,
        ARGUMENT_MISMATCH,
        BUDGET_EXHAUSTED,
        OUT_OF_ORDER,
        STORE_UNAVAILABLE,
        LIMIT_EXCEEDED,
    }
)
"""Codes a tool-call decision can carry."""

MINT_REASONS: Final = frozenset({PLAN_EXCEEDS_POLICY, APPROVAL_REQUIRED, APPROVAL_DENIED, EXCEEDS_PARENT_SCOPE})
"""Codes a refused plan can carry (at mint time)."""

_DESCRIPTIONS: Final[dict[str, str]] = {
    NO_GRANT: "no task grant is active, so every tool call is refused",
    INVALID_GRANT: "the grant could not be verified",
    EXPIRED: "the grant has expired",
    REVOKED: "the grant was revoked (its plan is complete or its task ended)",
    TOOL_NOT_IN_SCOPE: "the plan does not include this tool",
    ARGUMENT_NOT_ALLOWED: "the call passes an argument that no planned step lists",
    ARGUMENT_MISMATCH: "an argument value is outside what the plan allows",
    BUDGET_EXHAUSTED: "the planned number of calls for this step is used up",
    OUT_OF_ORDER: "the plan requires its steps in order and this call skips ahead or goes back",
    STORE_UNAVAILABLE: "the grant store could not be reached, so the call is refused",
    PLAN_EXCEEDS_POLICY: "the plan asks for more than the agent's policy allows",
    APPROVAL_REQUIRED: "a step needs approval and no approval hook is configured",
    APPROVAL_DENIED: "a step needs approval and the approver said no",
    EXCEEDS_PARENT_SCOPE: "a delegated plan asks for more than its parent task holds (tool, argument or budget)",
    LIMIT_EXCEEDED: "a limit of the policy over time or amount (a running total or a rate) has no room left for this call",
}


def describe(reason: str) -> str:
    """Return a one-line, human-readable explanation of a reason code."""
    return _DESCRIPTIONS.get(reason, "the call was refused")
