"""OpenTelemetry emission: task spans, grant events and one ``execute_tool`` span per decision.

Only the OpenTelemetry API is used; pass a ``tracer_provider`` or the global one applies.
Argument values and results are recorded only with ``record_arguments=True``; tokens never.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import datetime, timezone
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Final, get_args

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import INVALID_SPAN, Span, SpanKind, Status, StatusCode, TracerProvider

from agent_guard import semconv as sc
from agent_guard._decision import outcome_of
from agent_guard._version import __version__
from agent_guard.reasons import ReasonCode

if TYPE_CHECKING:
    from agent_guard.audit._record import TaskRecord
    from agent_guard.authorization._models import Decision

__all__ = ["SpanEmitter"]

_DENIED_ERROR_TYPE: Final = "agent_guard.ToolCallDenied"
_FLUSH_TIMEOUT_MS: Final = 5000
_log = logging.getLogger("agent_guard")
_MAX_RECORDED: Final = 4096
_ALLOWED_KEPT: Final = 256
"""Allowed decisions (one per task plan step) whose span attributes are kept; the table is emptied when full."""
_REASON_CODES: Final = frozenset(get_args(ReasonCode))
_DENIED_STATUS: dict[str | None, Status] = {}
_Kept = tuple["Decision", "str | None", Mapping[str, Any], dict[str, Any], Mapping[str, Any], str]
"""A plain allow's (decision, description, task.tool_attributes, attributes, the same read-only, span name)."""


def _json(value: Any) -> str:
    try:
        text = json.dumps(value, default=repr, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text[:_MAX_RECORDED]


def _denied_status(reason: str | None) -> Status:
    """The status of a denied call: ERROR with the reason code (one object per code, built once)."""
    status = _DENIED_STATUS.get(reason)
    if status is None:
        status = Status(StatusCode.ERROR, reason)
        if reason in _REASON_CODES:  # only the fixed codes are kept
            _DENIED_STATUS[reason] = status
    return status


def _rfc3339(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


class SpanEmitter:
    """Creates agent_guard's spans on one tracer."""

    def __init__(self, tracer_provider: TracerProvider | None, *, record_arguments: bool) -> None:
        self.tracer = trace.get_tracer("agent_guard", __version__, tracer_provider=tracer_provider)
        self.tracer_provider = tracer_provider
        self.record_arguments = record_arguments
        self._sdk = False
        self._allowed: dict[int, _Kept] = {}
        """Plain allows seen lately, by id: what their spans are started with (see :meth:`start_tool`)."""

    def sdk_present(self) -> bool:
        """True once the provider is a real SDK (not the API's proxy or no-op); stays True after that.

        Without one, every span the API hands out is non-recording, so the per-call path skips
        building tool spans altogether. Looked up through the public API when a task starts (and
        on calls made outside any task), because the global provider may be set after the guard
        is built; the per-call path reads only the cached answer.
        """
        if self._sdk:
            return True
        provider = self.tracer_provider if self.tracer_provider is not None else trace.get_tracer_provider()
        if isinstance(provider, (trace.ProxyTracerProvider, trace.NoOpTracerProvider)):
            return False
        if self.tracer_provider is None:  # the global provider is set now: its own tracer, not the API's proxy
            self.tracer = provider.get_tracer("agent_guard", __version__)
        self._sdk = True
        return True

    # -- task ---------------------------------------------------------------------------------
    def start_task(self, task: TaskRecord, parent: Span | None = None) -> Span | None:
        """Start ``invoke_agent {agent}`` under ``parent`` (else the current span), without making it current.

        ``None`` without a tracing SDK (nothing would be recorded).
        """
        if not self.sdk_present():
            return None
        attributes = {sc.OPERATION_NAME: "invoke_agent", sc.OPENINFERENCE_SPAN_KIND: sc.OPENINFERENCE_KIND_AGENT,
                      **task.base_attributes}
        context = trace.set_span_in_context(parent) if parent is not None else None
        return self.tracer.start_span(
            sc.invoke_agent_span_name(task.identity.agent_id), context=context, kind=SpanKind.INTERNAL,
            attributes=attributes,
        )

    @staticmethod
    def end_task(span: Span) -> None:
        """End a task span started by :meth:`start_task` (flush separately with :meth:`flush`)."""
        span.end()

    def flush(self) -> None:
        """Export finished spans now if the provider has ``force_flush`` (called at task end); never raises."""
        provider = self.tracer_provider if self.tracer_provider is not None else trace.get_tracer_provider()
        force_flush = getattr(provider, "force_flush", None)
        if force_flush is None:
            return
        try:
            if force_flush(_FLUSH_TIMEOUT_MS) is False:
                _log.warning("agent_guard: spans not flushed within %d ms at task end", _FLUSH_TIMEOUT_MS)
        except Exception:  # telemetry must never break the application
            _log.warning("agent_guard: flushing spans at task end failed", exc_info=True)

    def grant_event(self, task: TaskRecord, name: str, reason: str | None = None) -> None:
        """Record ``agent_guard.grant.issued``/``revoked`` on the task span (or a span of its own)."""
        if not self._sdk:
            return
        attributes: dict[str, Any] = {
            **task.base_attributes,
            sc.GRANT_TOOLS: list(task.tools),
            sc.GRANT_EXPIRES_AT: _rfc3339(task.expires_at),
        }
        if reason is not None:
            attributes[sc.GRANT_REVOCATION_REASON] = reason
        span = task.span
        if span is not None and span.is_recording():
            span.add_event(name, attributes=attributes)
            return
        lone = self.tracer.start_span(name, kind=SpanKind.INTERNAL, attributes=attributes)
        lone.add_event(name, attributes=attributes)
        lone.end()

    # -- tool calls ---------------------------------------------------------------------------
    def start_tool(
        self,
        decision: Decision,
        task: TaskRecord | None,
        *,
        call_id: str | None,
        description: str | None,
        arguments: Mapping[str, Any] | None,
    ) -> Span:
        """Start the ``execute_tool {tool}`` span of one decision (not yet current).

        Without an SDK provider this is the API's invalid span (recording nothing, costing nothing).
        Every attribute is given at the start (one call into the SDK, and a sampler sees them all);
        a denial adds its status, the one thing the API does not take at the start.
        """
        if not self._sdk and (task is not None or not self.sdk_present()):
            return INVALID_SPAN
        if decision.allowed and decision.reason is None and task is not None:
            # The common case: a plain allow is one object shared by every call of its plan step
            # (``Task.allow``), so its attributes but the call id, and its span name, are built once.
            hit = self._allowed.get(id(decision))
            if hit is None or hit[0] is not decision or hit[1] != description or hit[2] is not task.tool_attributes:
                hit = self._keep_allowed(decision, task, description)
            base = hit[3]
            attributes: Mapping[str, Any]
            if self.record_arguments and arguments is not None:
                attributes = {**base, sc.TOOL_CALL_ARGUMENTS: _json(dict(arguments))}
                if call_id:
                    attributes[sc.TOOL_CALL_ID] = call_id
            elif call_id:
                attributes = {**base, sc.TOOL_CALL_ID: call_id}
            else:
                attributes = hit[4]  # the same attributes, read-only
            # The current context given, not looked up again by the SDK (parent, sampler, processors).
            return self.tracer.start_span(hit[5], otel_context.get_current(), SpanKind.INTERNAL, attributes)
        attributes = self._attributes(decision, task, call_id, description)
        if self.record_arguments and arguments is not None:
            attributes[sc.TOOL_CALL_ARGUMENTS] = _json(dict(arguments))
        span = self.tracer.start_span(
            sc.execute_tool_span_name(decision.tool), otel_context.get_current(), SpanKind.INTERNAL, attributes
        )
        if not decision.allowed:
            span.set_status(_denied_status(decision.reason))
        return span

    def _keep_allowed(self, decision: Decision, task: TaskRecord, description: str | None) -> _Kept:
        """Build and keep the attributes (all but the call id) and the span name of a plain allow."""
        base = self._attributes(decision, task, None, description)
        kept = (decision, description, task.tool_attributes, base, MappingProxyType(base),
                sc.execute_tool_span_name(decision.tool))
        allowed = self._allowed
        if len(allowed) >= _ALLOWED_KEPT:
            allowed.clear()
        # Holding the decision keeps its id from being reused; the task's attributes are kept, not the task.
        allowed[id(decision)] = kept
        return kept

    @staticmethod
    def _attributes(
        decision: Decision, task: TaskRecord | None, call_id: str | None, description: str | None
    ) -> dict[str, Any]:
        """The attributes of a decision span (without recorded arguments)."""
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: "execute_tool",
            sc.TOOL_NAME: decision.tool,
            sc.DECISION_OUTCOME: outcome_of(decision),
            sc.OPENINFERENCE_SPAN_KIND: sc.OPENINFERENCE_KIND_TOOL,
        }
        if task is not None:
            attributes.update(task.tool_attributes)
        if call_id:
            attributes[sc.TOOL_CALL_ID] = call_id
        if description:
            attributes[sc.TOOL_DESCRIPTION] = description[:256]
        if decision.step is not None:
            attributes[sc.PLAN_STEP] = decision.step
        if not decision.allowed:
            attributes[sc.DECISION_REASON] = decision.reason or ""
            attributes[sc.ERROR_TYPE] = _DENIED_ERROR_TYPE
        elif decision.reason is not None:  # shadow mode: the call runs; the reason enforcement would give
            attributes[sc.DECISION_REASON] = decision.reason
        if decision.limit is not None:
            attributes[sc.DECISION_LIMIT] = decision.limit
        return attributes

    def record_result(self, span: Span, result: Any) -> None:
        """Record the tool's result on its span (only with ``record_arguments=True``)."""
        if self.record_arguments:
            span.set_attribute(sc.TOOL_CALL_RESULT, _json(result))

    @staticmethod
    def record_error_type(span: Span, error_type: str) -> None:
        """Mark an allowed call whose tool failed without raising (e.g. an error message value)."""
        span.set_attribute(sc.ERROR_TYPE, error_type)
        span.set_status(Status(StatusCode.ERROR, error_type.rsplit(".", 1)[-1]))

    @staticmethod
    def record_tool_error(span: Span, error: BaseException) -> None:
        """Mark an allowed call whose tool raised: ``error.type`` and status ERROR (no message text)."""
        cls = type(error)
        span.set_attribute(sc.ERROR_TYPE, f"{cls.__module__}.{cls.__qualname__}")
        span.set_status(Status(StatusCode.ERROR, cls.__name__))
