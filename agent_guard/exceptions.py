"""The exceptions agent_guard raises.

Every exception derives from :class:`AgentGuardError`::

    AgentGuardError
    ├── AuditLogError (also OSError)       the decision log cannot be written or read (fail closed)
    ├── ConfigError (also ValueError)      bad input: names the field and the fix
    ├── MissingDependencyError (also ImportError)   an optional extra is not installed
    ├── GrantError                          a grant token failed verification (reason "invalid_grant"/"expired")
    ├── PlanRejected                        a plan could not be turned into a grant (mint time)
    ├── PlannerError                        a planner's output was not a usable plan
    ├── StoreUnavailable                    the grant store could not be reached (fail closed)
    └── ToolCallDenied                      a tool call was refused (call time)

Denials carry their reason code (see :mod:`agent_guard.reasons`) and details as data, never only as text.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agent_guard import reasons
from agent_guard.reasons import ReasonCode

if TYPE_CHECKING:
    from agent_guard._decision import Decision

__all__ = [
    "AgentGuardError",
    "AuditLogError",
    "ConfigError",
    "GrantError",
    "MissingDependencyError",
    "PlanRejected",
    "PlanViolation",
    "PlannerError",
    "StoreUnavailable",
    "ToolCallDenied",
]


class AgentGuardError(Exception):
    """Base class of every error raised by agent_guard."""


class AuditLogError(AgentGuardError, OSError):
    """The decision log cannot be written or read (closed, locked, torn or not a decision log).

    Raised from a guarded call when its decision cannot be recorded, so the call does not run.
    """


class ConfigError(AgentGuardError, ValueError):
    """Invalid configuration or input; the message names the field and how to fix it."""


class MissingDependencyError(AgentGuardError, ImportError):
    """An optional dependency is missing; the message gives the ``pip install`` that fixes it."""

    def __init__(self, feature: str, install: str) -> None:
        self.feature = feature
        self.install = install
        super().__init__(f"{feature} needs an optional dependency: run `{install}`")


class GrantError(AgentGuardError):
    """A grant token failed verification.

    ``reason`` is ``"invalid_grant"`` or ``"expired"``; ``detail`` says which check failed
    (never the token itself).
    """

    def __init__(self, detail: str, *, reason: ReasonCode = reasons.INVALID_GRANT) -> None:
        self.reason: ReasonCode = reason
        self.detail = detail
        super().__init__(f"{reason}: {detail}")


class StoreUnavailable(AgentGuardError):
    """The grant store could not be reached; callers must deny (``store_unavailable``)."""

    reason: ReasonCode = reasons.STORE_UNAVAILABLE


@dataclass(frozen=True)
class PlanViolation:
    """One reason a plan was refused: which step, tool and argument, and why."""

    step: int
    tool: str
    reason: ReasonCode
    message: str
    argument: str | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        where = f"step {self.step} ({self.tool}"
        where += f", argument {self.argument!r})" if self.argument else ")"
        return f"{where}: {self.message}"


class PlanRejected(AgentGuardError):
    """The plan asks for more than the policy allows, or an approval was not given.

    ``reason`` is the code of the first violation (``plan_exceeds_policy``,
    ``approval_required`` or ``approval_denied``); ``violations`` lists every one.
    """

    def __init__(self, violations: Sequence[PlanViolation]) -> None:
        if not violations:
            raise ValueError("PlanRejected needs at least one violation")
        self.violations: tuple[PlanViolation, ...] = tuple(violations)
        self.reason: ReasonCode = self.violations[0].reason
        lines = "\n".join(f"  - {v}" for v in self.violations)
        super().__init__(f"plan rejected ({self.reason}), {len(self.violations)} violation(s):\n{lines}")


class PlannerError(AgentGuardError):
    """A planner (e.g. an LLM) produced output that is not a valid plan; nothing was granted.

    ``problems`` lists each defect (field and what is wrong).
    """

    def __init__(self, message: str, problems: Sequence[str] = ()) -> None:
        self.problems: tuple[str, ...] = tuple(problems)
        detail = "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(message + detail)


class ToolCallDenied(AgentGuardError):
    """A tool call was refused. ``decision`` holds the reason code and details."""

    def __init__(self, decision: Decision) -> None:
        self.decision = decision
        self.reason: ReasonCode = decision.reason or reasons.NO_GRANT
        self.tool: str = decision.tool
        super().__init__(decision.message)
