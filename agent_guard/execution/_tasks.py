"""The explicit task lifecycle of :class:`~agent_guard.Guard`: open, use, close, release, resume.

A mixin (kept apart so each module stays small): it mints and records a task without touching the
current context, makes it current for a block, and revokes and ends it from any context or thread.
The ``with`` handles (:mod:`agent_guard.execution._lifecycle`) are sugar over these methods.
"""

from __future__ import annotations

import asyncio
import threading
from collections import OrderedDict
from collections.abc import Callable
from typing import Any, Final

from agent_guard import reasons
from agent_guard import semconv as sc
from agent_guard.audit._record import AuditSink
from agent_guard.audit._spans import SpanEmitter
from agent_guard.authorization._approval import Approver, acheck_approvals, check_approvals
from agent_guard.authorization._grant import GrantClaims, mint_grant
from agent_guard.authorization._keys import KeySet
from agent_guard.authorization._matcher import CompiledScope
from agent_guard.authorization._models import Plan, Policy
from agent_guard.authorization._scope import TaskScope, derive_scope
from agent_guard.exceptions import ConfigError, GrantError
from agent_guard.execution._context import use_task
from agent_guard.execution._task import Task, TaskEvents
from agent_guard.identity import AgentIdentity
from agent_guard.stores._base import GrantStore

__all__ = ["LifecycleMixin"]

_SCOPE_CACHE: Final = 256
"""Compiled scopes kept per guard, by (plan hash, policy hash): tasks of the same plan share one."""


class LifecycleMixin:
    """``open``/``aopen``, ``use``, ``close``/``aclose``, ``release``/``arelease``, ``resume``/``aresume``."""

    policy: Policy | None
    keys: KeySet
    store: GrantStore
    approver: Approver | None
    decision_log: AuditSink | None
    clock: Callable[[], float]
    issuer: str
    audience: str
    default_ttl_s: int
    record_arguments: bool
    accept_foreign_grants: bool
    _spans: SpanEmitter
    _events: TaskEvents
    _scopes: OrderedDict[tuple[str, str], tuple[TaskScope, CompiledScope]]
    _scopes_lock: threading.Lock

    def verify(self, token: str) -> GrantClaims:  # provided by Guard
        raise NotImplementedError

    def _prepare(self, plan: Plan, identity: AgentIdentity, ttl_s: int | None) -> tuple[Policy, int]:
        if not isinstance(plan, Plan):
            raise ConfigError("plan: expected an agent_guard.Plan (use Plan.model_validate(dict) for a dict)")
        if not isinstance(identity, AgentIdentity):
            raise ConfigError("identity: expected an agent_guard.AgentIdentity")
        if self.policy is None:
            raise ConfigError("policy: this guard has no policy, so it cannot mint grants; pass Guard(policy, ...)")
        policy = self.policy
        if identity.agent_id != policy.agent_id:
            raise ConfigError(
                f"identity.agent_id: {identity.agent_id!r} does not match the policy's agent_id {policy.agent_id!r}"
            )
        ttl = min(self.default_ttl_s, policy.max_ttl_s) if ttl_s is None else ttl_s
        if type(ttl) is not int or not 1 <= ttl <= policy.max_ttl_s:
            raise ConfigError(f"ttl_s: {ttl!r} is outside 1..{policy.max_ttl_s} s (the policy's max_ttl_s)")
        return policy, ttl

    def _scope(self, plan: Plan, policy: Policy) -> tuple[TaskScope, CompiledScope]:
        key = (plan.plan_hash, policy.policy_hash)
        hit = self._scopes.get(key)
        if hit is not None:
            return hit
        scope = derive_scope(plan, policy)  # raises PlanRejected
        compiled = (scope, CompiledScope(scope))
        with self._scopes_lock:
            self._scopes[key] = compiled
            while len(self._scopes) > _SCOPE_CACHE:
                self._scopes.popitem(last=False)
        return compiled

    def _mint(self, scope: TaskScope, compiled: CompiledScope, identity: AgentIdentity, ttl_s: int) -> Task:
        token, raw = mint_grant(
            self.keys, scope, identity, ttl_s=ttl_s, now=self.clock(), issuer=self.issuer, audience=self.audience
        )
        # Nothing here came from the wire: the task keeps the token and reads its claims back on demand.
        return Task(token, None, identity, task_id=raw["txn"], grant_id=raw["jti"], expires_at=raw["exp"],
                    owner=True, scope=scope, compiled=compiled, store=self.store, clock=self.clock,
                    events=self._events, run_id=raw["tctx"].get("run"))

    @staticmethod
    def _activation(task: Task) -> dict[str, Any]:
        return {"budgets": [s.max_calls for s in task.scope.steps], "ordered": task.scope.ordered,
                "expires_at": task.expires_at}

    def _started(self, task: Task, plan: Plan | None = None) -> Task:
        task.span = self._spans.start_task(task)
        if task.owner:
            self._events.issued(task, self._issue_context(plan))
        return task

    def _issue_context(
        self, plan: Plan | None, *, delegated_from: Task | None = None, replaces: Task | None = None
    ) -> dict[str, Any] | None:
        """What a decision log records with a grant when arguments are recorded: the plan, and its origin."""
        if not self.record_arguments or plan is None:
            return None
        context: dict[str, Any] = {"plan": plan.model_dump(mode="json", exclude_none=True)}
        if delegated_from is not None:
            context["delegated_from"] = delegated_from.grant_id
        if replaces is not None:
            context["replaces"] = replaces.grant_id
        return context

    def open(self, plan: Plan, *, identity: AgentIdentity, ttl_s: int | None = None) -> Task:
        """Open a task: derive the scope, ask approvals, mint the grant, record the run, start its span.

        The current context is not touched: make the task current with :meth:`use` and end it with
        :meth:`close`. Raises :class:`PlanRejected` when the plan exceeds the policy or an
        approval is refused, :class:`StoreUnavailable` when the run cannot be recorded.
        """
        policy, ttl = self._prepare(plan, identity, ttl_s)
        scope, compiled = self._scope(plan, policy)
        check_approvals(self.approver, plan, scope, identity)
        task = self._mint(scope, compiled, identity, ttl)
        self.store.activate(task.run_id, **self._activation(task))
        return self._started(task, plan)

    async def aopen(self, plan: Plan, *, identity: AgentIdentity, ttl_s: int | None = None) -> Task:
        """Async :meth:`open` (async approval hooks, the store's async path)."""
        policy, ttl = self._prepare(plan, identity, ttl_s)
        scope, compiled = self._scope(plan, policy)
        await acheck_approvals(self.approver, plan, scope, identity)
        task = self._mint(scope, compiled, identity, ttl)
        await self.store.aactivate(task.run_id, **self._activation(task))
        return self._started(task, plan)

    def use(self, task: Task | None, *, trace_parent: bool = True) -> use_task:
        """Make ``task`` the current task for a ``with`` block (neither mints nor revokes)."""
        if task is not None and not isinstance(task, Task):
            raise ConfigError(f"task: expected an agent_guard.Task from guard.open/resume, got {type(task).__name__}")
        return use_task(task, trace_parent=trace_parent)

    def _finish(self, task: Task) -> bool:
        """End the task span (once); True when spans should be flushed."""
        head = getattr(self.decision_log, "head", None)
        span = task.span
        if head is not None and span is not None:
            span.set_attribute(sc.AUDIT_HEAD, str(head))
        return task._end()

    def close(self, task: Task, reason: str = "task_exit") -> None:
        """Revoke the task's grant (here and in the store) and end its span. Idempotent; any context or thread.

        A store that cannot be reached is logged, never raised: this process denies the task
        regardless, and other workers refuse it when its grant expires.
        """
        if not isinstance(task, Task):
            raise ConfigError(f"task: expected an agent_guard.Task, got {type(task).__name__}")
        for descendant in task._descendants():  # delegated children and replacements die with it
            self.close(descendant, reason)
        try:
            task.revoke(reason)
        finally:
            if self._finish(task):
                self._spans.flush()

    async def aclose(self, task: Task, reason: str = "task_exit") -> None:
        """Async :meth:`close`; the span export round trip runs off the event loop."""
        if not isinstance(task, Task):
            raise ConfigError(f"task: expected an agent_guard.Task, got {type(task).__name__}")
        for descendant in task._descendants():
            await self.aclose(descendant, reason)
        try:
            await task.arevoke(reason)
        finally:
            if self._finish(task):
                await asyncio.get_running_loop().run_in_executor(None, self._spans.flush)

    def release(self, task: Task) -> None:
        """End a task here (its span) without revoking its run: for a grant the minting side owns.

        What leaving ``with guard.attach(grant):`` does. Further calls in this process are refused.
        """
        if not isinstance(task, Task):
            raise ConfigError(f"task: expected an agent_guard.Task, got {type(task).__name__}")
        if self._finish(task):
            self._spans.flush()

    async def arelease(self, task: Task) -> None:
        """Async :meth:`release`."""
        if not isinstance(task, Task):
            raise ConfigError(f"task: expected an agent_guard.Task, got {type(task).__name__}")
        if self._finish(task):
            await asyncio.get_running_loop().run_in_executor(None, self._spans.flush)

    def _resumed(self, grant: str, identity: AgentIdentity | None) -> tuple[GrantClaims, AgentIdentity]:
        claims = self.verify(grant)
        policy = self.policy
        if policy is not None and not self.accept_foreign_grants:
            if claims.agent_id != policy.agent_id:
                raise GrantError(
                    f"the grant is for agent {claims.agent_id!r}, but this guard enforces the policy of "
                    f"{policy.agent_id!r} (build the guard with accept_foreign_grants=True to allow it)"
                )
            if claims.tctx.policy_hash != policy.policy_hash:
                raise GrantError(
                    "the grant was minted under another policy than this guard's (its policy_hash differs; "
                    "build the guard with accept_foreign_grants=True to allow it)"
                )
        user = claims.sub if claims.sub != claims.agent_id else None
        who = identity or AgentIdentity(agent_id=claims.agent_id, user_id=user, tenant=claims.tctx.tenant)
        if not isinstance(who, AgentIdentity):
            raise ConfigError("identity: expected an agent_guard.AgentIdentity")
        if who.agent_id != claims.agent_id:
            raise ConfigError(f"identity.agent_id: {who.agent_id!r} is not the grant's actor {claims.agent_id!r}")
        return claims, who

    def _resumed_task(self, grant: str, claims: GrantClaims, who: AgentIdentity) -> Task:
        scope = claims.scope()
        return self._started(Task(grant, claims, who, task_id=claims.txn, grant_id=claims.jti,
                                  expires_at=claims.exp, owner=False, scope=scope, compiled=CompiledScope(scope),
                                  store=self.store, clock=self.clock, events=self._events, run_id=claims.run_id))

    def resume(self, grant: str, *, identity: AgentIdentity | None = None) -> Task:
        """Re-attach a grant minted elsewhere (another process, a checkpoint): verify it, check it against
        this guard's policy and the store, and return its task (not current: see :meth:`use`).

        Raises :class:`GrantError`: ``invalid_grant`` for a bad token or a grant of another agent or
        policy, ``expired``, or ``revoked`` when its run is no longer active in the store.
        """
        claims, who = self._resumed(grant, identity)
        if not self.store.is_active(claims.run_id):
            raise GrantError("the grant's run is no longer active (revoked, completed or expired)",
                             reason=reasons.REVOKED)
        return self._resumed_task(grant, claims, who)

    async def aresume(self, grant: str, *, identity: AgentIdentity | None = None) -> Task:
        """Async :meth:`resume`."""
        claims, who = self._resumed(grant, identity)
        if not await self.store.ais_active(claims.run_id):
            raise GrantError("the grant's run is no longer active (revoked, completed or expired)",
                             reason=reasons.REVOKED)
        return self._resumed_task(grant, claims, who)
