"""Shadow mode: decide and record every call as enforcement would, but never block one.

``Guard(policy, mode="shadow")`` turns each refusal into a decision that lets the call run:
``allowed=True``, ``outcome="would_deny"`` and the ``reason`` (and ``limit``) enforcement would
have given. Spans, metrics and the decision log record the outcome ``would_deny``. Budgets and
limits are consumed exactly as under enforcement: an allowed call charges its step and limits, a
would-deny call charges nothing, and a plan whose budget is spent completes (its grant is
revoked in the store, so enforcing workers sharing it refuse from then on).
"""

from __future__ import annotations

from typing import Final, Literal

from agent_guard._decision import Decision

__all__ = ["MODES", "GuardMode", "would_deny"]

GuardMode = Literal["enforce", "shadow"]
"""``enforce``: refusals block; ``shadow``: every call runs, refusals are recorded as ``would_deny``."""
MODES: Final = ("enforce", "shadow")


def would_deny(decision: Decision) -> Decision:
    """The shadow-mode form of a refusal: allowed, ``outcome="would_deny"``, the same reason and limit."""
    return decision.model_copy(update={
        "allowed": True, "outcome": "would_deny", "message": f"shadow mode, not enforced: {decision.message}",
    })
