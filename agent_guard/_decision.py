"""The outcome of one authorization check: a frozen record every layer (and every exception) may carry.

It imports only the reason codes, so ``exceptions`` can type :class:`ToolCallDenied` with it.
"""

from __future__ import annotations

from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, model_validator

from agent_guard.reasons import ReasonCode

__all__ = ["OUTCOMES", "Decision", "Outcome", "outcome_of"]

Outcome = Literal["allow", "deny", "would_deny"]
"""``allow``: the call may run; ``deny``: refused; ``would_deny``: a guard in shadow mode let it run,
and enforcement would have refused it (``reason`` says why)."""
OUTCOMES: Final = ("allow", "deny", "would_deny")


class Decision(BaseModel):
    """The outcome of one authorization check.

    ``allowed`` is the verdict; ``reason`` is a stable code (``None`` when allowed); ``message`` is
    one sentence safe to show a model (it never echoes argument values or tokens). ``outcome`` is
    ``allow`` or ``deny``, or ``would_deny`` in shadow mode (``Guard(policy, mode="shadow")``):
    then ``allowed`` is True and ``reason`` carries what enforcement would have said. ``limit``
    names the limit a ``limit_exceeded`` refusal hit (``"transfer: sum_of amount per user per 86400 s"``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    allowed: bool
    tool: str
    reason: ReasonCode | None = None
    message: str = ""
    step: int | None = None
    grant_id: str | None = None
    task_id: str | None = None
    argument: str | None = None
    allowed_tools: tuple[str, ...] = ()
    outcome: Outcome = "allow"
    limit: str | None = None

    @model_validator(mode="before")
    @classmethod
    def _default_outcome(cls, data: Any) -> Any:
        """``outcome`` defaults to what ``allowed`` says (``deny`` for a refusal)."""
        if isinstance(data, dict) and "outcome" not in data and data.get("allowed") is False:
            return {**data, "outcome": "deny"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> Decision:
        if (self.outcome == "deny") == self.allowed:
            raise ValueError(f"outcome {self.outcome!r} contradicts allowed={self.allowed}")
        if self.outcome == "would_deny" and self.reason is None:
            raise ValueError("outcome 'would_deny' needs the reason enforcement would have given")
        return self

    def __bool__(self) -> bool:
        return self.allowed


def outcome_of(decision: Decision) -> Outcome:
    """The decision's outcome, robust to a record built without validation (``model_construct``)."""
    return decision.outcome if decision.allowed else "deny"
