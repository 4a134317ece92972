"""Grants that only ever narrow: delegation to a sub-agent, and replanning a running task.

A mixin of :class:`~agent_guard.Guard` (kept apart so each module stays small). A child grant's
scope is its plan ∩ the parent's scope (∩ the child agent's own policy), its calls spend the
parent's budget in the same atomic store operation, it lives no longer than the parent, and it
dies with the parent. A replan within what is left re-mints silently; a wider one asks the
approver, who sees the diff.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from agent_guard import reasons
from agent_guard.audit._spans import SpanEmitter
from agent_guard.authorization._approval import (
    Approver,
    acheck_approvals,
    acheck_replan,
    check_approvals,
    check_replan,
)
from agent_guard.authorization._delegation import ScopeDiff, derive_child_scope, scope_diff
from agent_guard.authorization._grant import mint_grant
from agent_guard.authorization._keys import KeySet
from agent_guard.authorization._matcher import CompiledScope
from agent_guard.authorization._models import Plan, Policy
from agent_guard.authorization._scope import TaskScope, derive_scope
from agent_guard.exceptions import ConfigError, GrantError, PlanRejected, PlanViolation
from agent_guard.execution._context import CURRENT_TASK
from agent_guard.execution._task import Task, TaskEvents
from agent_guard.identity import AgentIdentity
from agent_guard.stores._base import Delegation, GrantStore

__all__ = ["DelegationMixin"]


class DelegationMixin:
    """``open_delegated`` / ``delegate`` and ``replan`` for :class:`~agent_guard.Guard`."""

    policy: Policy | None
    keys: KeySet
    store: GrantStore
    approver: Approver | None
    clock: Callable[[], float]
    issuer: str
    audience: str
    default_ttl_s: int
    _spans: SpanEmitter
    _events: TaskEvents

    def _started(self, task: Task, plan: Plan | None = None) -> Task:  # provided by Guard
        raise NotImplementedError

    def _issue_context(
        self, plan: Plan | None, *, delegated_from: Task | None = None, replaces: Task | None = None
    ) -> dict[str, Any] | None:  # provided by Guard
        raise NotImplementedError

    # -- delegation ---------------------------------------------------------------------------
    def _child_parts(
        self, parent: Task, plan: Plan, agent_id: str, ttl_s: int | None, policy: Policy | None,
        remaining: tuple[int, ...] | None,
    ) -> tuple[TaskScope, tuple[int, ...], AgentIdentity, int]:
        if not isinstance(parent, Task):
            raise ConfigError("parent: expected the agent_guard.Task to delegate from (guard.open or the current task)")
        if not isinstance(plan, Plan):
            raise ConfigError("plan: expected an agent_guard.Plan (use Plan.model_validate(dict) for a dict)")
        if not isinstance(agent_id, str) or not agent_id:
            raise ConfigError("agent_id: expected the sub-agent's id, a non-empty string")
        if policy is not None and (not isinstance(policy, Policy) or policy.agent_id != agent_id):
            raise ConfigError(f"policy: expected the Policy of agent {agent_id!r} (or None)")
        if parent.scope.ordered:
            raise ConfigError("parent: delegating from an ordered plan is not supported; use an unordered parent plan")
        if remaining is None or parent.revocation_reason is not None or parent.closed:
            raise GrantError("the parent task is no longer active (revoked, completed or expired)",
                             reason=reasons.REVOKED)
        depth = parent.claims.delegation_depth + 1
        limit = self.policy.max_delegation_depth if self.policy is not None else 2
        if depth > limit:
            raise PlanRejected([PlanViolation(0, plan.steps[0].tool, reasons.EXCEEDS_PARENT_SCOPE,
                                              f"delegation depth {depth} is above the policy's max_delegation_depth "
                                              f"{limit}")])
        scope, parent_steps = derive_child_scope(plan, parent.scope, remaining, agent_id=agent_id, policy=policy)
        left = math.floor(parent.expires_at - self.clock())
        wanted = self.default_ttl_s if ttl_s is None else ttl_s
        if type(wanted) is not int or wanted < 1:
            raise ConfigError(f"ttl_s: {wanted!r} is not a positive whole number of seconds")
        ttl = min(wanted, left)
        if ttl < 1:
            raise GrantError("the parent task's grant expires within a second", reason=reasons.EXPIRED)
        identity = AgentIdentity(agent_id=agent_id, user_id=parent.identity.user_id, tenant=parent.identity.tenant)
        return scope, parent_steps, identity, ttl

    def _mint_child(self, parent: Task, scope: TaskScope, identity: AgentIdentity, ttl: int) -> Task:
        token, raw = mint_grant(self.keys, scope, identity, ttl_s=ttl, now=self.clock(), issuer=self.issuer,
                                audience=self.audience, parent=parent.claims)
        return Task(token, None, identity, task_id=raw["txn"], grant_id=raw["jti"], expires_at=raw["exp"], owner=True,
                    scope=scope, compiled=CompiledScope(scope), store=self.store, clock=self.clock,
                    events=self._events, run_id=raw["tctx"]["run"], parent=parent)

    def _started_child(self, parent: Task, child: Task, plan: Plan) -> Task:
        child.span = self._spans.start_task(child, parent.span)
        self._events.issued(child, self._issue_context(plan, delegated_from=parent))
        parent._adopt(child)
        return child

    def open_delegated(
        self, parent: Task, plan: Plan, *, agent_id: str, ttl_s: int | None = None, policy: Policy | None = None
    ) -> Task:
        """Open a child task for sub-agent ``agent_id``: its scope is ``plan`` ∩ the parent's (∩ ``policy``).

        Raises :class:`PlanRejected` (``exceeds_parent_scope``) listing every tool, argument, value
        or budget the parent does not hold; :class:`GrantError` when the parent is no longer
        active. The child's calls spend the parent's budget; closing the parent closes the child.
        """
        remaining = self.store.remaining(parent.run_id) if isinstance(parent, Task) else None
        scope, parent_steps, identity, ttl = self._child_parts(parent, plan, agent_id, ttl_s, policy, remaining)
        child = self._mint_child(parent, scope, identity, ttl)
        self.store.activate(child.run_id, budgets=[s.max_calls for s in scope.steps], ordered=scope.ordered,
                            expires_at=child.expires_at, parent=Delegation(parent.run_id, parent_steps))
        return self._started_child(parent, child, plan)

    async def aopen_delegated(
        self, parent: Task, plan: Plan, *, agent_id: str, ttl_s: int | None = None, policy: Policy | None = None
    ) -> Task:
        """Async :meth:`open_delegated`."""
        remaining = await self.store.aremaining(parent.run_id) if isinstance(parent, Task) else None
        scope, parent_steps, identity, ttl = self._child_parts(parent, plan, agent_id, ttl_s, policy, remaining)
        child = self._mint_child(parent, scope, identity, ttl)
        await self.store.aactivate(child.run_id, budgets=[s.max_calls for s in scope.steps], ordered=scope.ordered,
                                   expires_at=child.expires_at, parent=Delegation(parent.run_id, parent_steps))
        return self._started_child(parent, child, plan)

    # -- replanning ---------------------------------------------------------------------------
    def _replan_parts(self, task: Task, plan: Plan, remaining: tuple[int, ...] | None) -> tuple[Policy, ScopeDiff]:
        if not isinstance(task, Task):
            raise ConfigError("task: expected the agent_guard.Task to replan")
        if not isinstance(plan, Plan):
            raise ConfigError("plan: expected an agent_guard.Plan (use Plan.model_validate(dict) for a dict)")
        if self.policy is None or not task.owner or task.parent is not None:
            raise ConfigError("task: only a top-level task this guard opened can be replanned (with its policy)")
        if remaining is None or task.revocation_reason is not None or task.closed:
            raise GrantError("the task is no longer active (revoked, completed or expired)", reason=reasons.REVOKED)
        return self.policy, scope_diff(plan, task.scope, remaining)

    def _replaced(self, task: Task, new: Task, plan: Plan) -> Task:
        task.successor = new
        task.revoke("replanned")
        new.span, task.span = task.span, None  # one task span records both grants
        task.closed = True
        self._events.issued(new, self._issue_context(plan, replaces=task))
        if CURRENT_TASK.get() is task:  # calls in this block go on under the new grant
            CURRENT_TASK.set(new)
        return new

    def _mint_replan(self, task: Task, scope: TaskScope, ttl: int) -> Task:
        token, raw = mint_grant(self.keys, scope, task.identity, ttl_s=ttl, now=self.clock(), issuer=self.issuer,
                                audience=self.audience, task_id=task.id, own_run=True)
        return Task(token, None, task.identity, task_id=raw["txn"], grant_id=raw["jti"], expires_at=raw["exp"],
                    owner=True, scope=scope, compiled=CompiledScope(scope), store=self.store, clock=self.clock,
                    events=self._events, run_id=raw["tctx"]["run"])

    @staticmethod
    def _replan_scope(
        task: Task, plan: Plan, policy: Policy, diff: ScopeDiff, remaining: tuple[int, ...] | None
    ) -> TaskScope:
        """A narrower plan keeps every constraint of the old scope too (a conjunction); a wider one,
        once approved, gets the ceiling's."""
        if diff.narrower:
            assert remaining is not None
            scope, _ = derive_child_scope(plan, task.scope, remaining, agent_id=task.identity.agent_id, policy=policy)
            return scope
        return derive_scope(plan, policy)

    def _replan_ttl(self, task: Task) -> int:
        return max(1, math.floor(task.expires_at - self.clock()))

    def replan(self, task: Task, plan: Plan) -> Task:
        """Replace ``task``'s grant by one for ``plan``; returns the new task (current where the old one was).

        A plan within what the task holds (tools, arguments, values, calls left) is re-minted
        without asking. Anything wider goes to the approver as one ``ApprovalRequest`` with
        ``kind="replan"`` and the ``diff``; without an approver it is refused (``approval_required``).
        The old grant is revoked (``replanned``); the task span records both grant ids. The new grant
        keeps the old one's expiry; budgets are the new plan's (never above what was left, unless approved).
        """
        remaining = self.store.remaining(task.run_id) if isinstance(task, Task) else None
        policy, diff = self._replan_parts(task, plan, remaining)
        scope = self._replan_scope(task, plan, policy, diff, remaining)
        if not diff.narrower:
            check_replan(self.approver, plan, diff, task.identity)
            check_approvals(self.approver, plan, scope, task.identity)
        new = self._mint_replan(task, scope, self._replan_ttl(task))
        self.store.activate(new.run_id, **_activation(new))
        return self._replaced(task, new, plan)

    async def areplan(self, task: Task, plan: Plan) -> Task:
        """Async :meth:`replan`."""
        remaining = await self.store.aremaining(task.run_id) if isinstance(task, Task) else None
        policy, diff = self._replan_parts(task, plan, remaining)
        scope = self._replan_scope(task, plan, policy, diff, remaining)
        if not diff.narrower:
            await acheck_replan(self.approver, plan, diff, task.identity)
            await acheck_approvals(self.approver, plan, scope, task.identity)
        new = self._mint_replan(task, scope, self._replan_ttl(task))
        await self.store.aactivate(new.run_id, **_activation(new))
        return self._replaced(task, new, plan)


def _activation(task: Task) -> dict[str, Any]:
    return {"budgets": [s.max_calls for s in task.scope.steps], "ordered": task.scope.ordered,
            "expires_at": task.expires_at}
