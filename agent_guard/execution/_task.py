"""A live task and the ``with`` handles around it: the task context and one guarded tool call."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span

from agent_guard import semconv as sc
from agent_guard.audit._spans import SpanEmitter
from agent_guard.authorization._grant import GrantClaims
from agent_guard.authorization._matcher import CompiledScope
from agent_guard.authorization._models import AgentIdentity, Decision
from agent_guard.authorization._scope import TaskScope
from agent_guard.exceptions import ToolCallDenied
from agent_guard.execution._context import CURRENT_TASK

if TYPE_CHECKING:
    from agent_guard.execution._guard import Guard

__all__ = ["Task", "TaskContext", "ToolCall"]

_log = logging.getLogger("agent_guard")


class Task:
    """A live task: the grant in force in this context, its verified claims and its scope.

    Created by :meth:`Guard.task` (mint) or :meth:`Guard.attach` (a grant received from elsewhere).
    """

    def __init__(
        self, guard: Guard, token: str, claims: GrantClaims, identity: AgentIdentity, *, owner: bool
    ) -> None:
        self.guard = guard
        self.grant = token
        """The signed grant (a JWT). Treat it as a secret: never log it."""
        self.claims = claims
        """The grant's verified claims."""
        self.id = claims.txn
        """The task (run) id: the grant's ``txn``."""
        self.grant_id = claims.jti
        """The grant id: its ``jti``."""
        self.identity = identity
        self.scope: TaskScope = claims.scope()
        self.expires_at = float(claims.exp)
        self.owner = owner
        self.compiled = CompiledScope(self.scope)
        self.span: Span | None = None
        self.revocation_reason: str | None = None
        self._lock = threading.Lock()
        self.base_attributes: dict[str, Any] = {
            sc.AGENT_ID: identity.agent_id,
            sc.AGENT_NAME: identity.agent_id,
            sc.GRANT_ID: self.grant_id,
            sc.TASK_ID: self.id,
        }
        if identity.user_id:
            self.base_attributes[sc.ENDUSER_ID] = identity.user_id
        self.tool_attributes = {k: v for k, v in self.base_attributes.items() if k != sc.AGENT_NAME}
        """The subset of the task's attributes put on every tool span (kept small: spans cost per attribute)."""
        self._allow = {
            step.index: Decision.model_construct(
                allowed=True, tool=step.tool, reason=None, message=f"allowed by plan step {step.index}",
                step=step.index, grant_id=self.grant_id, task_id=self.id, argument=None, allowed_tools=(),
            )
            for step in self.scope.steps
        }

    @property
    def revoked(self) -> bool:
        """True once the grant was revoked (plan completed, task exit, expiry or by hand)."""
        return self.revocation_reason is not None

    @property
    def tools(self) -> tuple[str, ...]:
        """The tools this task's grant covers."""
        return self.compiled.tools

    def revoke(self, reason: str = "manual") -> None:
        """Revoke the grant now, in this process and (through the store) in every worker."""
        self.guard._revoke(self, reason)

    def _mark_revoked(self, reason: str) -> bool:
        with self._lock:
            if self.revocation_reason is not None:
                return False
            self.revocation_reason = reason
            return True

    def __repr__(self) -> str:
        state = f"revoked={self.revocation_reason!r}" if self.revoked else "active"
        return f"<Task id={self.id!r} agent={self.identity.agent_id!r} tools={list(self.tools)!r} {state}>"


def _warn_revoke_failed(task: Task, err: Exception) -> None:
    _log.warning(
        "agent_guard: could not revoke task %s in the grant store at task exit (%s: %s); this process "
        "denies it now, other workers keep it until its grant expires at %.0f",
        task.id, type(err).__name__, err, task.expires_at,
    )


class TaskContext:
    """``with`` / ``async with`` handle returned by :meth:`Guard.task` and :meth:`Guard.attach`.

    Entering mints (or verifies) the grant, records the run, opens the task span and sets the
    current task; leaving revokes the grant (for a minted task) and restores the previous task.
    """

    def __init__(self, guard: Guard, opener: Callable[[], Task], aopener: Callable[[], Awaitable[Task]]) -> None:
        self._guard = guard
        self._open = opener
        self._aopen = aopener
        self._task: Task | None = None
        self._token: Any = None
        self._span_token: object = None

    def _enter(self, task: Task) -> Task:
        self._task = task
        task.span, self._span_token = self._guard._spans.start_task(task)
        if task.owner:
            self._guard._emit_issued(task)
        self._token = CURRENT_TASK.set(task)
        return task

    def _leave(self) -> Task:
        task = self._task
        assert task is not None, "TaskContext exited without being entered"
        CURRENT_TASK.reset(self._token)
        return task

    def _close_span(self, task: Task) -> bool:
        """End the task span; True when there was one (and its spans should be flushed)."""
        if task.span is None:
            return False
        self._guard._spans.end_task(task.span, self._span_token)
        task.span = None
        return True

    def __enter__(self) -> Task:
        return self._enter(self._open())

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        task = self._leave()
        try:
            if task.owner:
                self._guard._revoke(task, "task_exit")
        except Exception as err:  # never mask the caller's exception; the grant still dies at its TTL
            _warn_revoke_failed(task, err)
        finally:
            if self._close_span(task):
                self._guard._spans.flush()

    async def __aenter__(self) -> Task:
        return self._enter(await self._aopen())

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        task = self._leave()
        try:
            if task.owner:
                await self._guard._arevoke(task, "task_exit")
        except Exception as err:  # never mask the caller's exception; the grant still dies at its TTL
            _warn_revoke_failed(task, err)
        finally:
            if self._close_span(task):  # the export round trip runs off the event loop
                await asyncio.get_running_loop().run_in_executor(None, self._guard._spans.flush)


class ToolCall:
    """One guarded call: the decision and its ``execute_tool`` span (current while entered).

    ``with guard.tool_call(name, args) as call:`` — check ``call.allowed``; run the tool only then.
    An exception from the tool marks the span with ``error.type`` and propagates.
    """

    __slots__ = ("_ctx_token", "_emitter", "decision", "span")

    def __init__(self, emitter: SpanEmitter, decision: Decision, span: Span) -> None:
        self._emitter = emitter
        self.decision = decision
        self.span = span
        self._ctx_token: object = None

    @property
    def allowed(self) -> bool:
        """True when the call may run."""
        return self.decision.allowed

    def raise_if_denied(self) -> None:
        """Raise :class:`ToolCallDenied` unless the call is allowed."""
        if not self.decision.allowed:
            raise ToolCallDenied(self.decision)

    def record_result(self, result: Any) -> None:
        """Record the tool's result on the span (only when argument recording is opted in)."""
        if self._emitter.record_arguments:
            self._emitter.record_result(self.span, result)

    def __enter__(self) -> ToolCall:
        # Without a tracing SDK the span is the API's invalid one: nothing to make current.
        if self.span is not INVALID_SPAN and self.span.get_span_context().is_valid:
            self._ctx_token = otel_context.attach(trace.set_span_in_context(self.span))
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if e is not None and self.decision.allowed and not isinstance(e, ToolCallDenied):
            self._emitter.record_tool_error(self.span, e)
        if self._ctx_token is not None:
            otel_context.detach(self._ctx_token)  # type: ignore[arg-type]
        if self.span is not INVALID_SPAN:
            self.span.end()
