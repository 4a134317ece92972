"""The outcome of one authorization check: a frozen record every layer (and every exception) may carry.

It imports only the reason codes, so ``exceptions`` can type :class:`ToolCallDenied` with it.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from agent_guard.reasons import ReasonCode

__all__ = ["Decision"]


class Decision(BaseModel):
    """The outcome of one authorization check.

    ``allowed`` is the verdict; ``reason`` is a stable code (``None`` when allowed); ``message`` is
    one sentence safe to show a model (it never echoes argument values or tokens).
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

    def __bool__(self) -> bool:
        return self.allowed
