"""The policy enforcement point: tasks (mint, attach, revoke) and per-call decisions."""

from __future__ import annotations

import functools
import inspect
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar, cast, overload

from opentelemetry.trace import TracerProvider

from agent_guard import reasons
from agent_guard import semconv as sc
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
from agent_guard.authorization._models import MAX_TTL_S, AgentIdentity, Decision, Plan, Policy
from agent_guard.authorization._scope import TaskScope, derive_scope
from agent_guard.exceptions import ConfigError
from agent_guard.execution._context import CURRENT_TASK
from agent_guard.execution._task import Task, TaskContext, ToolCall
from agent_guard.stores._base import GrantStore, InMemoryGrantStore

__all__ = ["Guard"]

_F = TypeVar("_F", bound=Callable[..., Any])
_log = logging.getLogger("agent_guard")
DEFAULT_TTL_S = 300


def _deny_message(tool: str, reason: str, argument: str | None, allowed_tools: tuple[str, ...]) -> str:
    what = f"argument {argument!r} of " if argument else ""
    allows = ", ".join(allowed_tools) if allowed_tools else "no tools"
    return (
        f"agent_guard refused {what}the call to {tool!r} ({reason}): {reasons.describe(reason)}; "
        f"the current plan allows: {allows}."
    )


class Guard:
    """The policy enforcement point for one agent's policy.

    ``Guard(policy)`` uses embedded defaults: a fresh Ed25519 key set and an in-memory store.
    Pass ``keys=``/``jwks=`` and ``store=`` to share grants across processes; a guard built with
    only ``jwks=`` (public keys) verifies and enforces but cannot mint.
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
        issuer: str = DEFAULT_ISSUER,
        audience: str = DEFAULT_AUDIENCE,
        default_ttl_s: int = DEFAULT_TTL_S,
        leeway_s: float = 0,
        record_arguments: bool = False,
        clock: Callable[[], float] | None = None,
    ) -> None:
        if policy is not None and not isinstance(policy, Policy):
            raise ConfigError("policy: expected an agent_guard.Policy (use Policy.model_validate(dict) for a dict)")
        if keys is not None and jwks is not None:
            raise ConfigError("keys/jwks: pass one of them (a KeySet to mint, or a JWKS to verify only)")
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
        self._spans = SpanEmitter(tracer_provider, record_arguments=record_arguments)

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

    # -- tasks --------------------------------------------------------------------------------
    def task(self, plan: Plan, *, identity: AgentIdentity, ttl_s: int | None = None) -> TaskContext:
        """Open a task for ``plan``: derive the scope, ask approvals, mint and attach the grant.

        Use as ``with guard.task(plan, identity=me) as task:`` or ``async with``. Raises
        :class:`PlanRejected` (on entering) when the plan exceeds the policy or an approval is refused.
        """
        if not isinstance(plan, Plan):
            raise ConfigError("plan: expected an agent_guard.Plan (use Plan.model_validate(dict) for a dict)")
        if not isinstance(identity, AgentIdentity):
            raise ConfigError("identity: expected an agent_guard.AgentIdentity")
        policy = self._require_policy()
        if identity.agent_id != policy.agent_id:
            raise ConfigError(
                f"identity.agent_id: {identity.agent_id!r} does not match the policy's agent_id {policy.agent_id!r}"
            )
        ttl = min(self.default_ttl_s, policy.max_ttl_s) if ttl_s is None else ttl_s
        if not 1 <= ttl <= policy.max_ttl_s:
            raise ConfigError(f"ttl_s: {ttl} is outside 1..{policy.max_ttl_s} s (the policy's max_ttl_s)")

        def open_sync() -> Task:
            scope = derive_scope(plan, policy)
            check_approvals(self.approver, plan, scope, identity)
            task = self._mint(scope, identity, ttl)
            self.store.activate(task.id, **self._activation(task))
            return task

        async def open_async() -> Task:
            scope = derive_scope(plan, policy)
            await acheck_approvals(self.approver, plan, scope, identity)
            task = self._mint(scope, identity, ttl)
            await self.store.aactivate(task.id, **self._activation(task))
            return task

        return TaskContext(self, open_sync, open_async)

    def attach(self, grant: str, *, identity: AgentIdentity | None = None) -> TaskContext:
        """Enter the task of a grant minted elsewhere (e.g. by another process).

        The grant is verified once; its run must be active in the shared store. Leaving does not
        revoke it (the minting side owns the run).
        """

        def open_sync() -> Task:
            return self._attached(grant, identity)

        async def open_async() -> Task:
            return self._attached(grant, identity)

        return TaskContext(self, open_sync, open_async)

    def _attached(self, grant: str, identity: AgentIdentity | None) -> Task:
        claims = self.verify(grant)
        tenant = claims.tctx.tenant
        user = claims.sub if claims.sub != claims.agent_id else None
        who = identity or AgentIdentity(agent_id=claims.agent_id, user_id=user, tenant=tenant)
        if who.agent_id != claims.agent_id:
            raise ConfigError(f"identity.agent_id: {who.agent_id!r} is not the grant's actor {claims.agent_id!r}")
        return Task(self, grant, claims, who, owner=False)

    def _require_policy(self) -> Policy:
        if self.policy is None:
            raise ConfigError("policy: this guard has no policy, so it cannot mint grants; pass Guard(policy, ...)")
        return self.policy

    @staticmethod
    def _activation(task: Task) -> dict[str, Any]:
        return {
            "budgets": [s.max_calls for s in task.scope.steps],
            "ordered": task.scope.ordered,
            "expires_at": task.expires_at,
        }

    def _mint(self, scope: TaskScope, identity: AgentIdentity, ttl_s: int) -> Task:
        token, _ = mint_grant(
            self.keys, scope, identity, ttl_s=ttl_s, now=self.clock(), issuer=self.issuer, audience=self.audience
        )
        return Task(self, token, self.verify(token), identity, owner=True)

    # -- revocation ---------------------------------------------------------------------------
    def _emit_issued(self, task: Task) -> None:
        self._spans.grant_event(task, sc.EVENT_GRANT_ISSUED)
        if self.decision_log is not None:
            self.decision_log.grant_issued(task)

    def _emit_revoked(self, task: Task, reason: str) -> None:
        self._spans.grant_event(task, sc.EVENT_GRANT_REVOKED, reason)
        if self.decision_log is not None:
            self.decision_log.grant_revoked(task, reason)

    def _revoke(self, task: Task, reason: str, *, in_store: bool = True) -> None:
        if not task._mark_revoked(reason):
            return
        try:
            if in_store:
                self.store.revoke(task.id)
        finally:
            self._emit_revoked(task, reason)

    async def _arevoke(self, task: Task, reason: str) -> None:
        if not task._mark_revoked(reason):
            return
        try:
            await self.store.arevoke(task.id)
        finally:
            self._emit_revoked(task, reason)

    # -- decisions ----------------------------------------------------------------------------
    def _deny(self, task: Task | None, tool: str, reason: str, argument: str | None = None) -> Decision:
        tools = task.tools if task is not None else ()
        return Decision.model_construct(
            allowed=False, tool=tool, reason=reason, message=_deny_message(tool, reason, argument, tools),
            step=None, grant_id=task.grant_id if task else None, task_id=task.id if task else None,
            argument=argument, allowed_tools=tools,
        )

    def _precheck(self, tool: str, args: Mapping[str, Any]) -> tuple[Task | None, Decision | Sequence[int]]:
        if type(args) is not dict and not isinstance(args, Mapping):
            raise ConfigError(f"args: expected a mapping of argument names to values, got {type(args).__name__}")
        task = CURRENT_TASK.get()
        if task is None:
            return None, self._deny(None, tool, reasons.NO_GRANT)
        if task.revocation_reason is not None:
            return task, self._deny(task, tool, reasons.REVOKED)
        if self.clock() >= task.expires_at + self.leeway_s:
            self._revoke(task, "expired", in_store=False)
            return task, self._deny(task, tool, reasons.EXPIRED)
        match = task.compiled.match(tool, args)
        if match.reason is not None:
            return task, self._deny(task, tool, match.reason, match.argument)
        return task, match.candidates

    def _settle(self, task: Task, tool: str, status: str, step: int | None) -> tuple[Decision, Task | None]:
        """The decision for a store verdict, and the task to revoke when this call completed its plan."""
        if status == "ok":
            return task._allow[cast(int, step)], None
        if status == "completed":
            return task._allow[cast(int, step)], task
        if status == "revoked":
            return self._deny(task, tool, reasons.REVOKED), None
        if status == "out_of_order":
            return self._deny(task, tool, reasons.OUT_OF_ORDER), None
        return self._deny(task, tool, reasons.BUDGET_EXHAUSTED), None

    def _decide(self, tool: str, args: Mapping[str, Any]) -> tuple[Decision, Task | None]:
        task, outcome = self._precheck(tool, args)
        if isinstance(outcome, Decision):
            return outcome, None
        assert task is not None
        try:
            status, step = task.guard.store.consume(task.id, outcome)
        except Exception:  # any store failure denies: fail closed
            return self._deny(task, tool, reasons.STORE_UNAVAILABLE), None
        if status == "ok":  # the common case, without a call to _settle
            return task._allow[cast(int, step)], None
        return self._settle(task, tool, status, step)

    async def _adecide(self, tool: str, args: Mapping[str, Any]) -> tuple[Decision, Task | None]:
        task, outcome = self._precheck(tool, args)
        if isinstance(outcome, Decision):
            return outcome, None
        assert task is not None
        store = task.guard.store
        try:
            if type(store).aconsume is GrantStore.aconsume:  # the default only calls consume: skip a coroutine
                status, step = store.consume(task.id, outcome)
            else:
                status, step = await store.aconsume(task.id, outcome)
        except Exception:  # any store failure denies: fail closed
            return self._deny(task, tool, reasons.STORE_UNAVAILABLE), None
        return self._settle(task, tool, status, step)

    def _complete(self, task: Task) -> None:
        """Revoke a task whose plan the last call completed (after that call's decision is recorded)."""
        self._revoke(task, "plan_completed", in_store=False)

    def decide(self, tool: str, args: Mapping[str, Any]) -> Decision:
        """Decide one call and consume its budget, without a span or log record; prefer :meth:`authorize`."""
        decision, completed = self._decide(tool, args)
        if completed is not None:
            self._complete(completed)
        return decision

    async def adecide(self, tool: str, args: Mapping[str, Any]) -> Decision:
        """Async :meth:`decide` (uses the store's async path)."""
        decision, completed = await self._adecide(tool, args)
        if completed is not None:
            self._complete(completed)
        return decision

    def _open_call(
        self, decision: Decision, *, call_id: str | None, description: str | None, args: Mapping[str, Any]
    ) -> ToolCall:
        task = CURRENT_TASK.get()
        recorded = args if self.record_arguments else None
        span = self._spans.start_tool(decision, task, call_id=call_id, description=description, arguments=recorded)
        if self.decision_log is not None:
            self.decision_log.decision(decision, task=task, call_id=call_id, arguments=recorded)
        return ToolCall(self._spans, decision, span)

    def tool_call(
        self, tool: str, args: Mapping[str, Any], *, call_id: str | None = None, description: str | None = None
    ) -> ToolCall:
        """Decide a call and open its ``execute_tool`` span; use as a ``with`` block around the tool."""
        decision, completed = self._decide(tool, args)
        call = self._open_call(decision, call_id=call_id, description=description, args=args)
        if completed is not None:
            self._complete(completed)
        return call

    async def atool_call(
        self, tool: str, args: Mapping[str, Any], *, call_id: str | None = None, description: str | None = None
    ) -> ToolCall:
        """Async :meth:`tool_call`: ``with await guard.atool_call(name, args) as call:``."""
        decision, completed = await self._adecide(tool, args)
        call = self._open_call(decision, call_id=call_id, description=description, args=args)
        if completed is not None:
            self._complete(completed)
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

        The tool name defaults to the function's ``__name__``. Positional arguments are mapped to
        parameter names, so the decision always sees ``{name: value}``. Usable as a decorator.
        """
        if fn is None:
            return lambda f: self.wrap(f, name=name)
        tool = name or getattr(fn, "__name__", None)
        if not tool:
            raise ConfigError("name: this callable has no __name__; pass guard.wrap(fn, name='tool_name')")
        signature = inspect.signature(fn)

        def arguments(args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
            if not args:
                return kwargs
            try:
                return dict(signature.bind_partial(*args, **kwargs).arguments)
            except TypeError as err:
                raise ConfigError(f"{tool}: {err}") from None

        description = (inspect.getdoc(fn) or "").split("\n", 1)[0] or None
        if inspect.iscoroutinefunction(fn):
            afn = cast(Callable[..., Awaitable[Any]], fn)

            @functools.wraps(fn)
            async def aguarded(*args: Any, **kwargs: Any) -> Any:
                with await self.atool_call(tool, arguments(args, kwargs), description=description) as call:
                    call.raise_if_denied()
                    result = await afn(*args, **kwargs)
                    call.record_result(result)
                    return result

            return cast(_F, aguarded)

        @functools.wraps(fn)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            with self.tool_call(tool, arguments(args, kwargs), description=description) as call:
                call.raise_if_denied()
                result = fn(*args, **kwargs)
                call.record_result(result)
                return result

        return cast(_F, guarded)

    def current_task(self) -> Task | None:
        """The task entered in this context, if any."""
        return CURRENT_TASK.get()

