"""The policy enforcement point: the task lifecycle (open, use, close, resume) and per-call decisions."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final, TypeVar, overload

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from agent_guard import reasons
from agent_guard import semconv as sc
from agent_guard.audit._metrics import DecisionMetrics
from agent_guard.audit._record import AuditSink
from agent_guard.audit._spans import SpanEmitter
from agent_guard.authorization._approval import Approver, acheck_approvals, check_approvals
from agent_guard.authorization._grant import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    MAX_LEEWAY_S,
    GrantClaims,
    mint_grant,
    verify_grant,
)
from agent_guard.authorization._keys import KeySet
from agent_guard.authorization._matcher import CompiledScope
from agent_guard.authorization._models import MAX_TTL_S, Decision, Plan, Policy
from agent_guard.authorization._scope import TaskScope, derive_scope
from agent_guard.exceptions import ConfigError, GrantError
from agent_guard.execution._call import ToolCall
from agent_guard.execution._context import CURRENT_TASK, use_task
from agent_guard.execution._decide import deny, not_an_amount, precheck, settle
from agent_guard.execution._delegate import DelegationMixin
from agent_guard.execution._lifecycle import TaskContext
from agent_guard.execution._shadow import MODES, GuardMode, would_deny
from agent_guard.execution._task import Task, TaskEvents
from agent_guard.execution._wrap import wrap_callable
from agent_guard.identity import AgentIdentity
from agent_guard.stores._base import Charge, GrantStore
from agent_guard.stores._memory import InMemoryGrantStore

__all__ = ["DEFAULT_TTL_S", "Guard"]

_F = TypeVar("_F", bound=Callable[..., Any])
_log = logging.getLogger("agent_guard")
DEFAULT_TTL_S: Final = 300
_SCOPE_CACHE: Final = 256
"""Compiled scopes kept per guard, by (plan hash, policy hash): tasks of the same plan share one."""


class Guard(DelegationMixin):
    """The policy enforcement point for one agent's policy.

    ``Guard(policy)`` uses embedded defaults: a fresh Ed25519 key set and an in-memory store.
    Pass ``keys=``/``jwks=`` and ``store=`` to share grants across processes; a guard built with
    only ``jwks=`` (public keys) verifies and enforces but cannot mint. A guard that has a policy
    resumes only grants minted for that policy's agent and that exact policy, unless built with
    ``accept_foreign_grants=True``. ``tracer_provider``/``meter_provider`` default to the global
    OpenTelemetry providers (nothing is recorded without an SDK).

    ``mode="shadow"`` decides and records every call but never blocks one: a call enforcement
    would refuse runs, with ``Decision.allowed=True``, ``outcome="would_deny"`` and the reason it
    would have been refused; budgets and limits are consumed as enforcement would consume them.
    With ``record_arguments=True`` and a :class:`~agent_guard.audit.DecisionLog`, each task's plan
    is recorded too, so ``agent-guard policy replay`` can re-decide the log under another policy.
    """

    def __init__(
        self,
        policy: Policy | None = None,
        *,
        tracer_provider: TracerProvider | None = None,
        keys: KeySet | None = None,
        jwks: Mapping[str, Any] | str | None = None,
        store: GrantStore | None = None,
        approver: Approver | None = None,
        decision_log: AuditSink | None = None,
        meter_provider: MeterProvider | None = None,
        issuer: str = DEFAULT_ISSUER,
        audience: str = DEFAULT_AUDIENCE,
        default_ttl_s: int = DEFAULT_TTL_S,
        leeway_s: float = 0,
        record_arguments: bool = False,
        accept_foreign_grants: bool = False,
        clock: Callable[[], float] | None = None,
        mode: GuardMode = "enforce",
    ) -> None:
        if mode not in MODES:
            raise ConfigError(f"mode: {mode!r} is not 'enforce' (refusals block) or 'shadow' (record, never block)")
        if policy is not None and not isinstance(policy, Policy):
            raise ConfigError("policy: expected an agent_guard.Policy (use Policy.model_validate(dict) for a dict)")
        if keys is not None and jwks is not None:
            raise ConfigError("keys/jwks: pass one of them (a KeySet to mint, or a JWKS to verify only)")
        if keys is not None and not isinstance(keys, KeySet):
            raise ConfigError("keys: expected an agent_guard.KeySet (KeySet.generate(), or jwks= for a JWKS)")
        if store is not None and not isinstance(store, GrantStore):
            raise ConfigError("store: expected a GrantStore (InMemoryGrantStore or agent_guard.stores.RedisGrantStore)")
        if not 0 <= leeway_s <= MAX_LEEWAY_S:
            raise ConfigError(f"leeway_s: {leeway_s} is outside 0..{MAX_LEEWAY_S} seconds")
        if not 1 <= default_ttl_s <= MAX_TTL_S:
            raise ConfigError(f"default_ttl_s: {default_ttl_s} is outside 1..{MAX_TTL_S} seconds")
        self.policy = policy
        self.clock: Callable[[], float] = clock or time.time
        self.keys = keys if keys is not None else (KeySet.from_jwks(jwks) if jwks is not None else KeySet.generate())
        self.store = store if store is not None else InMemoryGrantStore(clock=self.clock)
        self.approver = approver
        self.decision_log = decision_log
        self.issuer = issuer
        self.audience = audience
        self.default_ttl_s = default_ttl_s
        self.leeway_s = leeway_s
        self.record_arguments = record_arguments
        self.accept_foreign_grants = accept_foreign_grants
        self.mode: GuardMode = mode
        """``enforce`` or ``shadow`` (refusals recorded as ``would_deny``, never blocking)."""
        self._shadow = mode == "shadow"
        self._spans = SpanEmitter(tracer_provider, record_arguments=record_arguments)
        self.metrics = DecisionMetrics(meter_provider, tools=[c.tool for c in policy.capabilities] if policy else None)
        """Decision, tool-duration and grant metrics (recorded only with an OpenTelemetry metrics SDK)."""
        self._events = TaskEvents(self._spans, decision_log, self.metrics)
        self._scopes: OrderedDict[tuple[str, str], tuple[TaskScope, CompiledScope]] = OrderedDict()
        self._scopes_lock = threading.Lock()

    # -- keys and verification ----------------------------------------------------------------
    def jwks(self) -> dict[str, Any]:
        """The public keys that verify this guard's grants, as a JWKS (no private material)."""
        return self.keys.jwks()

    def verify(self, token: str) -> GrantClaims:
        """Verify a grant against this guard's keys, issuer and audience; raise :class:`GrantError`."""
        max_ttl = self.policy.max_ttl_s if self.policy is not None else MAX_TTL_S
        return verify_grant(
            token, self.keys, audience=self.audience, issuer=self.issuer, leeway_s=self.leeway_s,
            max_ttl_s=max_ttl, clock=self.clock,
        )

    # -- the lifecycle: open, use, close, resume -----------------------------------------------
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

    # -- the sugar: with guard.task(...) / guard.attach(...) ----------------------------------------
    def task(self, plan: Plan, *, identity: AgentIdentity, ttl_s: int | None = None) -> TaskContext:
        """``with guard.task(plan, identity=me) as task:`` (or ``async with``): open, use, close.

        The grant is revoked when the block ends, whatever ends it. Raises :class:`PlanRejected`
        on entering when the plan exceeds the policy or an approval is refused.
        """
        self._prepare(plan, identity, ttl_s)  # fail on bad arguments now, not when entered
        return TaskContext(self, plan=plan, identity=identity, ttl_s=ttl_s)

    def attach(self, grant: str, *, identity: AgentIdentity | None = None) -> TaskContext:
        """``with guard.attach(grant):`` -- :meth:`resume` a grant minted elsewhere for a block.

        Leaving ends the local span but does not revoke the run: the minting side owns it.
        """
        return TaskContext(self, grant=grant, identity=identity)

    def delegate(
        self, plan: Plan, *, agent_id: str, ttl_s: int | None = None, policy: Policy | None = None
    ) -> TaskContext:
        """``with guard.delegate(plan, agent_id="researcher") as child:`` -- a child of the current task.

        Sugar over :meth:`open_delegated` (with the current task as the parent), :meth:`use` and
        :meth:`close`. Raises :class:`ConfigError` outside a task.
        """
        parent = CURRENT_TASK.get()
        if parent is None:
            raise ConfigError("delegate: no current task; call it inside `with guard.task(...)` or use open_delegated")
        return TaskContext(self, plan=plan, ttl_s=ttl_s, delegate=(parent, agent_id, policy))

    def current_task(self) -> Task | None:
        """The task current in this context, if any."""
        return CURRENT_TASK.get()

    # -- decisions ----------------------------------------------------------------------------
    def _refused(self, decision: Decision) -> Decision:
        """A refusal as this guard reports it: as is, or in shadow mode a would-deny that lets the call run."""
        return would_deny(decision) if self._shadow else decision

    def _decide(self, tool: str, args: Any) -> tuple[Decision, Task | None]:
        task = CURRENT_TASK.get()
        outcome = precheck(task, tool, args, self.clock(), self.leeway_s)
        if isinstance(outcome, Decision):
            return self._refused(outcome), None
        assert task is not None
        charges: Sequence[Charge] = ()
        try:
            if not task.compiled.limited:  # only a task with limits does any limit work
                result = task.store.consume(task.run_id, outcome)
            else:
                found = task.charges(outcome, args)
                if isinstance(found, str):
                    return self._refused(not_an_amount(task, tool, found)), None
                charges = found
                if charges:
                    result = task.store.consume(task.run_id, outcome, charges)
                else:
                    result = task.store.consume(task.run_id, outcome)
        except Exception:  # any store failure denies: fail closed
            return self._refused(deny(task, tool, reasons.STORE_UNAVAILABLE)), None
        if result[0] == "ok":  # the common case, without a call to settle
            step = result[1]
            return task._allow.get(step) or task.allow(step), None  # type: ignore[arg-type]
        decision, completed = settle(task, tool, result, charges)
        return (decision if decision.allowed else self._refused(decision)), task if completed else None

    async def _adecide(self, tool: str, args: Any) -> tuple[Decision, Task | None]:
        task = CURRENT_TASK.get()
        outcome = precheck(task, tool, args, self.clock(), self.leeway_s)
        if isinstance(outcome, Decision):
            return self._refused(outcome), None
        assert task is not None
        store = task.store
        charges: Sequence[Charge] = ()
        try:
            if task.compiled.limited:
                found = task.charges(outcome, args)
                if isinstance(found, str):
                    return self._refused(not_an_amount(task, tool, found)), None
                charges = found
            if type(store).aconsume is GrantStore.aconsume:  # the default only calls consume: skip a coroutine
                result = store.consume(task.run_id, outcome, charges) if charges else store.consume(task.run_id, outcome)
            elif charges:
                result = await store.aconsume(task.run_id, outcome, charges)
            else:
                result = await store.aconsume(task.run_id, outcome)
        except Exception:  # any store failure denies: fail closed
            return self._refused(deny(task, tool, reasons.STORE_UNAVAILABLE)), None
        decision, completed = settle(task, tool, result, charges)
        return (decision if decision.allowed else self._refused(decision)), task if completed else None

    def decide(self, tool: str, args: Mapping[str, Any]) -> Decision:
        """Decide one call and consume its budget, without a span or log record; prefer :meth:`authorize`."""
        decision, completed = self._decide(tool, args)
        if completed is not None:
            completed.revoke_locally("plan_completed")
        return decision

    async def adecide(self, tool: str, args: Mapping[str, Any]) -> Decision:
        """Async :meth:`decide` (uses the store's async path)."""
        decision, completed = await self._adecide(tool, args)
        if completed is not None:
            completed.revoke_locally("plan_completed")
        return decision

    def _open_call(
        self, decision: Decision, *, call_id: str | None, description: str | None, args: Mapping[str, Any]
    ) -> ToolCall:
        task = CURRENT_TASK.get()
        recorded = args if self.record_arguments else None
        span = self._spans.start_tool(decision, task, call_id=call_id, description=description, arguments=recorded)
        if self.decision_log is not None:
            self.decision_log.decision(decision, task=task, call_id=call_id, arguments=recorded)
        metrics = self.metrics
        if not metrics.enabled:
            return ToolCall(self._spans, decision, span)
        metrics.decision(decision)
        return ToolCall(self._spans, decision, span, metrics)

    def tool_call(
        self, tool: str, args: Mapping[str, Any], *, call_id: str | None = None, description: str | None = None
    ) -> ToolCall:
        """Decide a call and open its ``execute_tool`` span; use as a ``with`` block around the tool."""
        decision, completed = self._decide(tool, args)
        call = self._open_call(decision, call_id=call_id, description=description, args=args)
        if completed is not None:
            completed.revoke_locally("plan_completed")
        return call

    async def atool_call(
        self, tool: str, args: Mapping[str, Any], *, call_id: str | None = None, description: str | None = None
    ) -> ToolCall:
        """Async :meth:`tool_call`: ``with await guard.atool_call(name, args) as call:``."""
        decision, completed = await self._adecide(tool, args)
        call = self._open_call(decision, call_id=call_id, description=description, args=args)
        if completed is not None:
            completed.revoke_locally("plan_completed")
        return call

    def authorize(self, tool: str, args: Mapping[str, Any], *, call_id: str | None = None) -> Decision:
        """Decide one call (consuming budget when allowed) and record its span. Never raises on denial."""
        with self.tool_call(tool, args, call_id=call_id) as call:
            return call.decision

    async def aauthorize(self, tool: str, args: Mapping[str, Any], *, call_id: str | None = None) -> Decision:
        """Async :meth:`authorize`."""
        with await self.atool_call(tool, args, call_id=call_id) as call:
            return call.decision

    # -- wrapping callables -------------------------------------------------------------------
    @overload
    def wrap(self, fn: _F, *, name: str | None = None) -> _F: ...
    @overload
    def wrap(self, fn: None = None, *, name: str | None = None) -> Callable[[_F], _F]: ...

    def wrap(self, fn: _F | None = None, *, name: str | None = None) -> _F | Callable[[_F], _F]:
        """Guard a plain sync or async callable: a denied call raises :class:`ToolCallDenied`.

        The decision sees every argument the function will receive, by parameter name, with the
        signature's defaults filled in: a default outside the ceiling is refused like a passed
        value. The tool name defaults to the function's ``__name__``. Usable as a decorator.
        """
        if fn is None:
            return lambda f: self.wrap(f, name=name)
        return wrap_callable(fn, name, self.tool_call, self.atool_call)
