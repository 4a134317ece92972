"""What the audit layer reads of a task and what it is handed: plain protocols, no execution import.

The execution layer's ``Task`` satisfies :class:`TaskRecord` structurally; the audit layer never
imports it, so the import graph runs one way (execution -> audit -> authorization -> identity).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

from opentelemetry.trace import Span

from agent_guard.authorization._models import Decision
from agent_guard.identity import AgentIdentity

__all__ = ["AuditSink", "MetricsSink", "TaskRecord"]


class TaskRecord(Protocol):
    """The read-only view of a live task that spans and decision logs need."""

    @property
    def id(self) -> str:
        """The task (run) id: the grant's ``txn``."""

    @property
    def grant_id(self) -> str:
        """The grant id: its ``jti``."""

    @property
    def identity(self) -> AgentIdentity:
        """Who acts, for whom."""

    @property
    def tools(self) -> tuple[str, ...]:
        """The tools the grant covers."""

    @property
    def expires_at(self) -> float:
        """When the grant expires (epoch seconds)."""

    @property
    def base_attributes(self) -> Mapping[str, Any]:
        """The span attributes that name the task, its grant and its actor."""

    @property
    def tool_attributes(self) -> Mapping[str, Any]:
        """The subset of :attr:`base_attributes` put on every tool span."""

    @property
    def span(self) -> Span | None:
        """The task's ``invoke_agent`` span while it is open."""


class AuditSink(Protocol):
    """Receives every decision and grant event (e.g. :class:`agent_guard.audit.DecisionLog`)."""

    def decision(
        self, decision: Decision, *, task: TaskRecord | None, call_id: str | None,
        arguments: Mapping[str, Any] | None,
    ) -> None:
        """Record one decision. ``arguments`` is ``None`` unless argument recording is opted in."""

    def grant_issued(self, task: TaskRecord) -> None:
        """Record a grant minted for ``task``.

        A sink whose ``grant_issued`` also accepts a keyword ``context`` receives, from a guard with
        ``record_arguments=True``, the task's ``plan`` (JSON) and ``delegated_from`` / ``replaces``
        (see :meth:`agent_guard.audit.DecisionLog.grant_issued`); other sinks are called as before.
        """

    def grant_revoked(self, task: TaskRecord, reason: str) -> None:
        """Record the revocation of ``task``'s grant and why."""


class MetricsSink(Protocol):
    """Receives every decision, tool duration and grant event as metrics (see ``DecisionMetrics``)."""

    def decision(self, decision: Decision) -> None:
        """Count one decision by outcome, reason and tool."""

    def tool_duration(self, tool: str, seconds: float, error_type: str | None) -> None:
        """Record how long an allowed tool call ran."""

    def grant_issued(self, task: TaskRecord) -> None:
        """Count a grant minted."""

    def grant_revoked(self, task: TaskRecord, reason: str) -> None:
        """Count a grant revoked, by reason."""
