"""One guarded tool call: its decision and its ``execute_tool`` span, as a ``with`` block."""

from __future__ import annotations

import time
from types import TracebackType
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry.trace import INVALID_SPAN, Span, set_span_in_context

from agent_guard.audit._record import MetricsSink
from agent_guard.audit._spans import SpanEmitter
from agent_guard.authorization._models import Decision
from agent_guard.exceptions import ToolCallDenied

__all__ = ["ToolCall"]


class ToolCall:
    """One guarded call: the decision and its ``execute_tool`` span (current while entered).

    ``with guard.tool_call(name, args) as call:`` -- check ``call.allowed``; run the tool only then.
    An exception from the tool marks the span with ``error.type`` and propagates; an adapter whose
    framework turns tool errors into values calls :meth:`mark_error` instead.
    """

    __slots__ = ("_ctx_token", "_emitter", "_error_type", "_metrics", "_started", "decision", "span")

    def __init__(
        self, emitter: SpanEmitter, decision: Decision, span: Span, metrics: MetricsSink | None = None
    ) -> None:
        self._emitter = emitter
        self._metrics = metrics if decision.allowed else None
        self.decision = decision
        """The decision for this call."""
        self.span = span
        """The call's ``execute_tool`` span (the API's invalid span without a tracing SDK)."""
        self._ctx_token: object = None
        self._started = 0.0
        self._error_type: str | None = None

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

    def mark_error(self, error_type: str) -> None:
        """Mark an allowed call as failed without an exception (a framework returned an error value)."""
        self._error_type = error_type
        if self.span is not INVALID_SPAN:
            self._emitter.record_error_type(self.span, error_type)

    def __enter__(self) -> ToolCall:
        # The span is current while the tool runs, so the tool's own spans nest under the decision.
        # Without a tracing SDK it is the API's invalid span: nothing to make current.
        span = self.span
        if span is not INVALID_SPAN and (span.is_recording() or span.get_span_context().is_valid):
            self._ctx_token = otel_context.attach(set_span_in_context(span))
        if self._metrics is not None:
            self._started = time.perf_counter()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        if e is not None and self.decision.allowed and not isinstance(e, ToolCallDenied):
            self._error_type = f"{type(e).__module__}.{type(e).__qualname__}"
            self._emitter.record_tool_error(self.span, e)
        if self._metrics is not None:
            self._metrics.tool_duration(self.decision.tool, time.perf_counter() - self._started, self._error_type)
        token = self._ctx_token
        if token is not None:
            self._ctx_token = None
            otel_context.detach(token)  # type: ignore[arg-type]
        span = self.span
        if span is not INVALID_SPAN:
            span.end()
