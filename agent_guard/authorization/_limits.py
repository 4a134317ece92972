"""Limits over time and money: a running total of a numeric argument, or a rate of calls.

A :class:`Limit` sits on a :class:`~agent_guard.Capability` and holds across tasks::

    Capability("transfer", args={"amount": {"min": 0}},
               limits=[Limit(sum_of="amount", max=1000, per="user", window_s=86400),   # money
                       Limit(calls=10, per="agent", window_s=60)])                      # rate

A call is allowed only when its plan step has budget AND every limit of its capability has room
for it; the store checks and charges both in one atomic operation.

Semantics:

- ``per`` picks whose total it is: ``task`` (the task id, shared by delegated children and
  replans), ``user`` (the grant's subject within its tenant: the user, or the agent when it acts
  for no one), ``agent`` (the *root* agent of the task: a delegated sub-agent's calls count
  against the agent that delegated, so delegating never opens a fresh budget) or ``tenant``
  (tasks without a tenant share one bucket).
- windows are fixed and aligned to the epoch: window ``k`` covers ``[k * window_s, (k+1) * window_s)``
  on the store's clock, and its total starts at 0. A window is one counter, so the check is exact
  under any number of concurrent calls (no sliding-log approximation); a burst of up to twice the
  cap can straddle a window boundary. ``window_s=None`` means the whole task (``per="task"`` only).
- clock jumps: a clock that jumps forward opens the next window early (as the passing of time
  would); a clock that jumps back keeps charging the latest window the bucket has seen, so a
  spent window never reopens.
- a ``sum_of`` value must be a finite number from 0 to 2**53 (int or float, never bool); a call
  whose value is anything else (absent, a string, negative, NaN) is refused ``argument_mismatch``
  naming the argument, before the store is asked, and charges nothing.
- a refusal is ``limit_exceeded`` and names the limit (``transfer: sum_of amount per user per
  86400 s``), never a value or a running total.
"""

from __future__ import annotations

import math
from typing import Any, Final, Literal

from pydantic import Field, field_validator, model_validator

from agent_guard._frozen import Frozen
from agent_guard.authorization._values import MAX_SAFE_NUMBER

__all__ = ["MAX_LIMITS", "MAX_WINDOW_S", "Limit", "LimitScope", "amount_of"]

LimitScope = Literal["task", "user", "agent", "tenant"]
"""Whose running total a limit keeps."""
MAX_WINDOW_S: Final = 366 * 86_400
"""Longest window: a year (a leap one)."""
MAX_LIMITS: Final = 8
"""Most limits on one capability (each is one more key the store touches per call)."""


class Limit(Frozen):
    """A running total of a numeric argument (``sum_of`` + ``max``) or a rate (``calls``), ``per`` whom, per window.

    ``Limit(sum_of="amount", max=1000, per="user", window_s=86400)``: at most 1,000 in ``amount``
    per user per day. ``Limit(calls=10, per="agent", window_s=60)``: at most 10 calls per agent
    per minute. ``window_s=None`` (only with ``per="task"``): over the whole task.
    """

    sum_of: str | None = Field(default=None, min_length=1, description="The argument whose values are summed.")
    max: int | float | None = Field(default=None, description="The most the sum may reach (with sum_of).")
    calls: int | None = Field(default=None, ge=1, le=1_000_000_000, description="The most calls (a rate).")
    per: LimitScope
    window_s: int | None = Field(default=None, ge=1, le=MAX_WINDOW_S, description="Window length; None: the task.")

    @field_validator("max", mode="before")
    @classmethod
    def _finite_max(cls, value: Any) -> Any:
        if value is None:
            return None
        finite = type(value) is int or (type(value) is float and math.isfinite(value))
        if not finite or not 0 < value <= MAX_SAFE_NUMBER:
            raise ValueError("needs a finite number above 0 and at most 2**53 (not bool, NaN or infinity)")
        return value

    @field_validator("calls", "window_s", mode="before")
    @classmethod
    def _whole(cls, value: Any) -> Any:
        if value is not None and type(value) is not int:
            raise ValueError("needs a whole number (an int, not a bool, float or string)")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> Limit:
        if (self.sum_of is None) == (self.calls is None):
            raise ValueError(
                "a limit is either a running total {sum_of: ARGUMENT, max: N} or a rate {calls: N}; give exactly one"
            )
        if self.sum_of is not None and self.max is None:
            raise ValueError(f"max: a limit with sum_of={self.sum_of!r} needs max, the most the total may reach")
        if self.calls is not None and self.max is not None:
            raise ValueError("max: a rate limit says its maximum in calls; drop max")
        if self.window_s is None and self.per != "task":
            raise ValueError(
                f"window_s: a limit per {self.per} needs a window in seconds (e.g. 86400 for a day); "
                "window_s=None (the whole task) only goes with per='task'"
            )
        return self

    @property
    def cap(self) -> float:
        """The most the bucket may hold: ``max`` for a running total, ``calls`` for a rate."""
        return float(self.max if self.max is not None else self.calls or 0)

    def label(self, tool: str) -> str:
        """How a refusal names this limit: ``transfer: sum_of amount per user per 86400 s`` (never a value)."""
        what = f"sum_of {self.sum_of}" if self.sum_of is not None else "calls"
        window = f" per {self.window_s} s" if self.window_s is not None else ""
        return f"{tool}: {what} per {self.per}{window}"

    def to_json(self) -> dict[str, Any]:
        """The limit as it travels in a grant (only the fields it sets)."""
        return self.model_dump(mode="json", exclude_none=True)


def amount_of(value: object) -> float | None:
    """What a call adds to a ``sum_of`` total: an exact int or finite float in ``[0, 2**53]``, else ``None``.

    A bool, a string, a negative number, NaN or a subclass is never an amount (a negative one
    would pay the total back).
    """
    t = type(value)
    if t is int:
        return float(value) if 0 <= value <= MAX_SAFE_NUMBER else None  # type: ignore[operator,arg-type]
    if t is float and math.isfinite(value) and 0.0 <= value <= MAX_SAFE_NUMBER:  # type: ignore[arg-type,operator]
        return value  # type: ignore[return-value]
    return None
