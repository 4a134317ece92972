"""Per-call decisions of :class:`~agent_guard.Guard`: decide, record the span and the log, settle budgets.

A mixin (kept apart so each module stays small). The sync and async paths share everything but the
store call; a task without limits does no limit work at all.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from agent_guard import reasons
from agent_guard.audit._metrics import DecisionMetrics
from agent_guard.audit._record import AuditSink
from agent_guard.audit._spans import SpanEmitter
from agent_guard.authorization._models import Decision
from agent_guard.execution._call import ToolCall
from agent_guard.execution._context import CURRENT_TASK
from agent_guard.execution._decide import deny, not_an_amount, precheck, settle
from agent_guard.execution._shadow import would_deny
from agent_guard.execution._task import Task
from agent_guard.stores._base import Charge, ConsumeResult, GrantStore

__all__ = ["DecisionMixin"]


class DecisionMixin:
    """``decide``, ``tool_call``, ``authorize`` (and their async twins)."""

    clock: Callable[[], float]
    leeway_s: float
    record_arguments: bool
    decision_log: AuditSink | None
    metrics: DecisionMetrics
    _shadow: bool
    _spans: SpanEmitter

    def _refused(self, decision: Decision) -> Decision:
        """A refusal as this guard reports it: as is, or in shadow mode a would-deny that lets the call run."""
        return would_deny(decision) if self._shadow else decision

    def _charges(self, task: Task, tool: str, args: Any, candidates: Sequence[int]) -> Sequence[Charge] | Decision:
        """The limit charges of a call on a task with limits, or the refusal of a value that is not an amount."""
        found = task.charges(candidates, args)
        if isinstance(found, str):
            return self._refused(not_an_amount(task, tool, found))
        return found

    def _settled(
        self, task: Task, tool: str, result: ConsumeResult, charges: Sequence[Charge]
    ) -> tuple[Decision, Task | None]:
        decision, completed = settle(task, tool, result, charges)
        return (decision if decision.allowed else self._refused(decision)), task if completed else None

    def _decide(self, tool: str, args: Any) -> tuple[Decision, Task | None]:
        task = CURRENT_TASK.get()
        outcome = precheck(task, tool, args, self.clock(), self.leeway_s)
        if isinstance(outcome, Decision):
            return self._refused(outcome), None
        assert task is not None
        charges: Sequence[Charge] = ()
        if task.compiled.limited:  # only a task with limits does any limit work
            found = self._charges(task, tool, args, outcome)
            if isinstance(found, Decision):
                return found, None
            charges = found
        try:
            if charges:
                result = task.store.consume(task.run_id, outcome, charges)
            else:
                result = task.store.consume(task.run_id, outcome)
        except Exception:  # any store failure denies: fail closed
            return self._refused(deny(task, tool, reasons.STORE_UNAVAILABLE)), None
        if result[0] == "ok":  # the common case, without a call to settle
            step = result[1]
            return task._allow.get(step) or task.allow(step), None  # type: ignore[arg-type]
        return self._settled(task, tool, result, charges)

    async def _adecide(self, tool: str, args: Any) -> tuple[Decision, Task | None]:
        task = CURRENT_TASK.get()
        outcome = precheck(task, tool, args, self.clock(), self.leeway_s)
        if isinstance(outcome, Decision):
            return self._refused(outcome), None
        assert task is not None
        charges: Sequence[Charge] = ()
        if task.compiled.limited:
            found = self._charges(task, tool, args, outcome)
            if isinstance(found, Decision):
                return found, None
            charges = found
        store = task.store
        try:
            if type(store).aconsume is GrantStore.aconsume:  # the default only calls consume: skip a coroutine
                result = store.consume(task.run_id, outcome, charges) if charges else store.consume(
                    task.run_id, outcome)
            elif charges:
                result = await store.aconsume(task.run_id, outcome, charges)
            else:
                result = await store.aconsume(task.run_id, outcome)
        except Exception:  # any store failure denies: fail closed
            return self._refused(deny(task, tool, reasons.STORE_UNAVAILABLE)), None
        return self._settled(task, tool, result, charges)

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
