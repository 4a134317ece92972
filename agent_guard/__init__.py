"""agent_guard: task-scoped, expiring authorization for AI agents' tool calls.

Derive a scope from the agent's plan (capped by a policy ceiling), mint a short-lived signed
grant for exactly that scope, enforce it on every tool call, revoke it when the plan is done,
and emit an OpenTelemetry span for every decision.
"""

from __future__ import annotations

from agent_guard import reasons, semconv
from agent_guard._version import __version__
from agent_guard.audit._record import AuditSink
from agent_guard.authorization._approval import ApprovalRequest
from agent_guard.authorization._constraints import (
    OPERATORS,
    Constraint,
    compile_constraint,
    normalize_constraint,
)
from agent_guard.authorization._delegation import ScopeDiff, Widening
from agent_guard.authorization._grant import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    GRANT_TYP,
    GrantClaims,
    verify_grant,
)
from agent_guard.authorization._keys import KeySet, SigningKey
from agent_guard.authorization._limits import Limit
from agent_guard.authorization._models import AgentIdentity, Capability, Decision, Plan, Policy, Step
from agent_guard.authorization._scope import ScopedStep, TaskScope, derive_scope
from agent_guard.exceptions import (
    AgentGuardError,
    AuditLogError,
    ConfigError,
    GrantError,
    MissingDependencyError,
    PlannerError,
    PlanRejected,
    PlanViolation,
    StoreUnavailable,
    ToolCallDenied,
)
from agent_guard.execution._call import ToolCall
from agent_guard.execution._context import current_task, run_in_task_context, use_task
from agent_guard.execution._guard import Guard
from agent_guard.execution._lifecycle import TaskContext
from agent_guard.execution._task import Task
from agent_guard.stores._base import ConsumeResult, GrantStore
from agent_guard.stores._memory import InMemoryGrantStore

__all__ = [
    "DEFAULT_AUDIENCE",
    "DEFAULT_ISSUER",
    "GRANT_TYP",
    "OPERATORS",
    "AgentGuardError",
    "AgentIdentity",
    "AuditLogError",
    "ApprovalRequest",
    "AuditSink",
    "Capability",
    "ConfigError",
    "Constraint",
    "ConsumeResult",
    "Decision",
    "GrantClaims",
    "GrantError",
    "GrantStore",
    "Guard",
    "InMemoryGrantStore",
    "KeySet",
    "Limit",
    "MissingDependencyError",
    "Plan",
    "PlanRejected",
    "PlanViolation",
    "PlannerError",
    "Policy",
    "ScopeDiff",
    "ScopedStep",
    "SigningKey",
    "Step",
    "StoreUnavailable",
    "Task",
    "TaskContext",
    "TaskScope",
    "ToolCall",
    "ToolCallDenied",
    "Widening",
    "__version__",
    "compile_constraint",
    "current_task",
    "derive_scope",
    "normalize_constraint",
    "reasons",
    "run_in_task_context",
    "semconv",
    "use_task",
    "verify_grant",
]
