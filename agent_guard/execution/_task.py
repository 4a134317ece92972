"""A live task and what it reports: its grant, scope, store, revocation and span.

A :class:`Task` holds no reference to the :class:`~agent_guard.Guard` that opened it: it knows
its store (to revoke in every worker), its clock and a :class:`TaskEvents` (spans, decision log,
metrics). So revocation works from any context or thread, and the import graph runs one way.
"""

from __future__ import annotations

import inspect
import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from opentelemetry.trace import Span

from agent_guard import semconv as sc
from agent_guard.audit._record import AuditSink, MetricsSink
from agent_guard.audit._spans import SpanEmitter
from agent_guard.authorization._grant import GrantClaims
from agent_guard.authorization._matcher import CompiledScope
from agent_guard.authorization._models import Decision
from agent_guard.authorization._scope import TaskScope
from agent_guard.execution._charges import LimitCharger
from agent_guard.execution._minted import claims_of_minted
from agent_guard.identity import AgentIdentity
from agent_guard.stores._base import Charge, GrantStore

__all__ = ["Task", "TaskEvents"]

_log = logging.getLogger("agent_guard")


class TaskEvents:
    """Where a task's lifecycle is reported: its spans, the decision log and the metrics (shared per guard)."""

    __slots__ = ("_sink_takes_context", "metrics", "sink", "spans")

    def __init__(self, spans: SpanEmitter, sink: AuditSink | None, metrics: MetricsSink | None) -> None:
        self.spans = spans
        self.sink = sink
        self.metrics = metrics
        self._sink_takes_context = sink is not None and _takes_context(sink.grant_issued)

    def issued(self, task: Task, context: Mapping[str, Any] | None = None) -> None:
        """Record a grant minted for ``task`` (span event, log record, counter).

        ``context`` (the task's plan and where the grant comes from) goes to a sink whose
        ``grant_issued`` accepts it; the guard passes it only with ``record_arguments=True``.
        """
        self.spans.grant_event(task, sc.EVENT_GRANT_ISSUED)
        if self.sink is not None:
            if context is not None and self._sink_takes_context:
                cast(Any, self.sink).grant_issued(task, context=context)  # AuditSink's optional keyword
            else:
                self.sink.grant_issued(task)
        if self.metrics is not None:
            self.metrics.grant_issued(task)

    def revoked(self, task: Task, reason: str) -> None:
        """Record the revocation of ``task``'s grant and why."""
        self.spans.grant_event(task, sc.EVENT_GRANT_REVOKED, reason)
        if self.sink is not None:
            self.sink.grant_revoked(task, reason)
        if self.metrics is not None:
            self.metrics.grant_revoked(task, reason)


def _takes_context(method: Callable[..., Any]) -> bool:
    """True when a sink's ``grant_issued`` accepts ``context=`` (sinks written before it existed do not)."""
    try:
        params = inspect.signature(method).parameters.values()
    except (TypeError, ValueError):
        return False
    return any(p.name == "context" or p.kind is inspect.Parameter.VAR_KEYWORD for p in params)


def _warn_revoke_failed(task: Task, err: Exception) -> None:
    _log.warning(
        "agent_guard: could not revoke task %s in the grant store (%s); this process denies it now, "
        "other workers keep it until its grant expires at %.0f",
        task.id, type(err).__name__, task.expires_at,
    )


class Task:
    """A live task: its signed grant, the verified claims, the compiled scope and its state.

    Opened by :meth:`Guard.open` (a new grant) or :meth:`Guard.resume` (a grant minted elsewhere);
    ended by :meth:`Guard.close`. ``owner`` is True for a task this process minted.
    """

    __slots__ = (
        "_allow", "_attributes", "_charger", "_children", "_claims", "_events", "_lock", "_tool_attributes", "clock",
        "closed",
        "compiled", "expires_at", "grant", "grant_id", "id", "identity", "owner", "parent", "revocation_reason",
        "run_id", "scope", "span", "store", "successor",
    )

    def __init__(
        self,
        token: str,
        claims: GrantClaims | None,
        identity: AgentIdentity,
        *,
        task_id: str,
        grant_id: str,
        expires_at: float,
        owner: bool,
        scope: TaskScope,
        compiled: CompiledScope,
        store: GrantStore,
        clock: Callable[[], float],
        events: TaskEvents,
        run_id: str | None = None,
        parent: Task | None = None,
    ) -> None:
        self.grant = token
        """The signed grant (a JWT). Treat it as a secret: never log it."""
        self._claims = claims
        self.id = task_id
        """The task id: the grant's ``txn`` (shared by a task, its delegated children and its replans)."""
        self.run_id = run_id or task_id
        """The grant store's key for this grant's budgets: the ``txn``, or ``txn:jti`` for a child or a replan."""
        self.parent = parent
        """The task this one was delegated from (``None`` for a top-level task)."""
        self.successor: Task | None = None
        """The task that replaced this one by :meth:`Guard.replan` (closing this one closes it too)."""
        self._children: list[Task] = []
        self.grant_id = grant_id
        """The grant id: its ``jti``."""
        self.identity = identity
        """Who acts, for whom."""
        self.scope = scope
        """What the grant allows (shared by every task of the same plan and policy)."""
        self.compiled = compiled
        """The scope compiled into predicates (shared like :attr:`scope`)."""
        self.expires_at = float(expires_at)
        """When the grant expires (epoch seconds)."""
        self.owner = owner
        """True for a task this process minted; False for one resumed from a grant minted elsewhere."""
        self.store = store
        """The grant store that holds this task's run (budgets, revocation)."""
        self.clock = clock
        """The clock the task's expiry is checked against."""
        self.span: Span | None = None
        """The task's ``invoke_agent`` span while it is open."""
        self.revocation_reason: str | None = None
        """Why the grant was revoked (``None`` while it is live)."""
        self.closed = False
        """True once :meth:`Guard.close` ended the task (its span is ended)."""
        self._events = events
        self._lock = threading.Lock()
        self._allow: dict[int, Decision] = {}
        self._attributes: dict[str, Any] | None = None
        self._tool_attributes: dict[str, Any] | None = None
        self._charger: LimitCharger | None = None

    # -- read-only views -----------------------------------------------------------------------
    @property
    def claims(self) -> GrantClaims:
        """The grant's claims: verified when the task was resumed, or the ones this process signed.

        A task this process minted keeps only its token; the claims are read back from it on
        first use (no signature check is needed for what this process just signed).
        """
        claims = self._claims
        if claims is None:
            claims = self._claims = claims_of_minted(self.grant)
        return claims

    @property
    def revoked(self) -> bool:
        """True once the grant was revoked (plan completed, task exit, expiry, replan or by hand)."""
        return self.revocation_reason is not None

    @property
    def tools(self) -> tuple[str, ...]:
        """The tools this task's grant covers."""
        return self.compiled.tools

    @property
    def base_attributes(self) -> Mapping[str, Any]:
        """The span attributes naming the task, its grant and its actor (built on first use)."""
        attributes = self._attributes
        if attributes is None:
            attributes = {
                sc.AGENT_ID: self.identity.agent_id,
                sc.AGENT_NAME: self.identity.agent_id,
                sc.GRANT_ID: self.grant_id,
                sc.TASK_ID: self.id,
            }
            if self.identity.user_id:
                attributes[sc.ENDUSER_ID] = self.identity.user_id
            self._attributes = attributes
        return attributes

    @property
    def tool_attributes(self) -> Mapping[str, Any]:
        """The subset of :attr:`base_attributes` put on every tool span (kept small: spans cost per attribute)."""
        attributes = self._tool_attributes
        if attributes is None:
            attributes = {k: v for k, v in self.base_attributes.items() if k != sc.AGENT_NAME}
            self._tool_attributes = attributes
        return attributes

    def allow(self, step: int) -> Decision:
        """The (shared) allow decision for a call matched to ``step``."""
        decision = self._allow.get(step)
        if decision is None:
            decision = Decision.model_construct(
                allowed=True, tool=self.scope.steps[step].tool, reason=None, message=f"allowed by plan step {step}",
                step=step, grant_id=self.grant_id, task_id=self.id, argument=None, allowed_tools=(), outcome="allow",
                limit=None,
            )
            self._allow[step] = decision
        return decision

    def charges(self, candidates: Sequence[int], args: Mapping[str, Any]) -> Sequence[Charge] | str:
        """The limit charges of a call matched to ``candidates``, or the name of a summed argument that is no amount.

        The buckets are built on the first limited call, from the grant's claims (``sub``, tenant,
        root actor), so every worker holding the grant charges the same ones.
        """
        charger = self._charger
        if charger is None:
            claims = self.claims
            charger = self._charger = LimitCharger(
                self.scope, task_id=self.id, subject=claims.sub, tenant=claims.tctx.tenant,
                root_agent=claims.actors[-1], expires_at=self.expires_at,
            )
        return charger.charges(candidates, args)

    # -- revocation ----------------------------------------------------------------------------
    def _mark_revoked(self, reason: str) -> bool:
        with self._lock:
            if self.revocation_reason is not None:
                return False
            self.revocation_reason = reason
            return True

    def revoke(self, reason: str = "manual") -> bool:
        """Revoke the grant now, here and (through the store) in every worker; True when this call did it.

        Idempotent. The task stays open (its span too) until :meth:`Guard.close`. A store that
        cannot be reached is logged; this process denies the task regardless.
        """
        if not self._mark_revoked(reason):
            return False
        try:
            self.store.revoke(self.run_id)
        except Exception as err:  # the local mark already denies; other workers wait for the TTL
            _warn_revoke_failed(self, err)
        finally:
            self._events.revoked(self, reason)
        return True

    async def arevoke(self, reason: str = "manual") -> bool:
        """Async :meth:`revoke` (uses the store's async path)."""
        if not self._mark_revoked(reason):
            return False
        try:
            await self.store.arevoke(self.run_id)
        except Exception as err:
            _warn_revoke_failed(self, err)
        finally:
            self._events.revoked(self, reason)
        return True

    def revoke_locally(self, reason: str) -> bool:
        """Mark revoked and report it without a store call (the store already knows: completed or expired)."""
        if not self._mark_revoked(reason):
            return False
        self._events.revoked(self, reason)
        return True

    def _adopt(self, child: Task) -> None:
        with self._lock:
            self._children = [c for c in self._children if not c.closed]
            self._children.append(child)

    def _descendants(self) -> list[Task]:
        """Delegated children and replacements still open (closed with this task)."""
        with self._lock:
            found = [c for c in self._children if not c.closed]
        if self.successor is not None and not self.successor.closed:
            found.append(self.successor)
        return found

    def _end(self) -> bool:
        """Mark closed and end the task span; True when this call closed it (and there was a span to flush)."""
        with self._lock:
            if self.closed:
                return False
            self.closed = True
            span, self.span = self.span, None
        if span is None:
            return False
        self._events.spans.end_task(span)
        return True

    def __repr__(self) -> str:
        state = f"revoked={self.revocation_reason!r}" if self.revoked else "active"
        return f"<Task id={self.id!r} agent={self.identity.agent_id!r} tools={list(self.tools)!r} {state}>"
