"""The policy enforcement point: a guard for one agent's policy, its keys, store and telemetry.

The task lifecycle lives in :mod:`._tasks`, per-call decisions in :mod:`._decisions`, delegation
and replanning in :mod:`._delegate`; ``Guard`` composes them and adds the ``with`` sugar and ``wrap``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any, Final, TypeVar, overload

from opentelemetry.metrics import MeterProvider
from opentelemetry.trace import TracerProvider

from agent_guard.audit._metrics import DecisionMetrics
from agent_guard.audit._record import AuditSink
from agent_guard.audit._spans import SpanEmitter
from agent_guard.authorization._approval import Approver
from agent_guard.authorization._grant import (
    DEFAULT_AUDIENCE,
    DEFAULT_ISSUER,
    MAX_LEEWAY_S,
    GrantClaims,
    verify_grant,
)
from agent_guard.authorization._keys import KeySet
from agent_guard.authorization._matcher import CompiledScope
from agent_guard.authorization._models import MAX_TTL_S, Plan, Policy
from agent_guard.authorization._scope import TaskScope
from agent_guard.exceptions import ConfigError
from agent_guard.execution._context import CURRENT_TASK
from agent_guard.execution._decisions import DecisionMixin
from agent_guard.execution._delegate import DelegationMixin
from agent_guard.execution._lifecycle import TaskContext
from agent_guard.execution._shadow import MODES, GuardMode
from agent_guard.execution._task import Task, TaskEvents
from agent_guard.execution._tasks import LifecycleMixin
from agent_guard.execution._wrap import wrap_callable
from agent_guard.identity import AgentIdentity
from agent_guard.stores._base import GrantStore
from agent_guard.stores._memory import InMemoryGrantStore

__all__ = ["DEFAULT_TTL_S", "Guard"]

_F = TypeVar("_F", bound=Callable[..., Any])
_log = logging.getLogger("agent_guard")
DEFAULT_TTL_S: Final = 300


class Guard(LifecycleMixin, DecisionMixin, DelegationMixin):
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
