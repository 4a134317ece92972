"""Exporting agent_guard's spans (OTLP) and reading them back: rows and a plain-text audit table.

:func:`configure_otlp` builds an SDK tracer provider that exports by OTLP/HTTP to a collector or
a backend such as Arize Phoenix. The other helpers take finished spans from the OpenTelemetry SDK
(e.g. from an in-memory exporter, see :mod:`agent_guard.testing`) and turn the ``execute_tool``
decisions into rows.

Spans are best-effort telemetry: a batch processor drops spans when its queue is full. For an
audit trail that never drops a record use :class:`agent_guard.audit.DecisionLog` as well.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, Protocol
from urllib.parse import urlsplit

from agent_guard import semconv as sc
from agent_guard._text import printable
from agent_guard.exceptions import ConfigError, MissingDependencyError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider

__all__ = [
    "DEFAULT_MAX_EXPORT_BATCH_SIZE",
    "DEFAULT_MAX_QUEUE_SIZE",
    "DEFAULT_SCHEDULE_DELAY_MS",
    "PROJECT_NAME_ATTRIBUTE",
    "FinishedSpan",
    "configure_otlp",
    "decision_rows",
    "format_table",
]

DEFAULT_MAX_QUEUE_SIZE: Final = 32768
"""Spans the batch processor holds before it drops (the SDK's own default, 2048, drops in a burst)."""
DEFAULT_SCHEDULE_DELAY_MS: Final = 1000
"""How often the batch processor exports (the SDK's default is 5000 ms)."""
DEFAULT_MAX_EXPORT_BATCH_SIZE: Final = 512
"""Spans per OTLP request."""
PROJECT_NAME_ATTRIBUTE: Final = "openinference.project.name"
"""Resource attribute that picks the Arize Phoenix project (spans go to ``default`` without it)."""


class FinishedSpan(Protocol):
    """The part of an SDK ``ReadableSpan`` these helpers read."""

    @property
    def name(self) -> str: ...
    @property
    def attributes(self) -> Any: ...
    @property
    def start_time(self) -> int | None: ...


def decision_rows(spans: Iterable[FinishedSpan]) -> list[dict[str, Any]]:
    """One row per ``execute_tool`` decision span, in start order.

    Keys: ``tool``, ``outcome``, ``reason``, ``step``, ``call_id``, ``task``, ``grant``, ``agent``, ``user``.
    """
    rows = []
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        attrs = dict(span.attributes or {})
        if attrs.get(sc.OPERATION_NAME) != "execute_tool":
            continue
        rows.append(
            {
                "tool": attrs.get(sc.TOOL_NAME, ""),
                "outcome": attrs.get(sc.DECISION_OUTCOME, ""),
                "reason": attrs.get(sc.DECISION_REASON, ""),
                "step": attrs.get(sc.PLAN_STEP, ""),
                "call_id": attrs.get(sc.TOOL_CALL_ID, ""),
                "task": attrs.get(sc.TASK_ID, ""),
                "grant": attrs.get(sc.GRANT_ID, ""),
                "agent": attrs.get(sc.AGENT_ID, ""),
                "user": attrs.get(sc.ENDUSER_ID, ""),
            }
        )
    return rows


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Render rows as an aligned plain-text table (``columns`` picks and orders the keys).

    Every cell and heading goes through :func:`agent_guard._text.printable`, so a tool name holding
    ``\\x1b[2K`` or ``\\n`` shows as that escape instead of rewriting the terminal or adding a row.
    """
    if not rows:
        return "(no decisions)"
    keys = list(columns or rows[0].keys())
    cols = [printable(k) for k in keys]
    cells = [[printable(row.get(k, "")) for k in keys] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) for r in cells]
    return "\n".join([line, rule, *body])


def _setting(explicit: int | None, env: str, default: int) -> int:
    """Explicit argument, else the ``OTEL_BSP_*`` environment variable, else agent_guard's default."""
    if explicit is not None:
        value, source = explicit, env.lower()
    else:
        raw = os.environ.get(env)
        if raw is None or not raw.strip():
            return default
        try:
            value, source = int(raw), env
        except ValueError:
            raise ConfigError(f"{env}: {raw!r} is not an integer") from None
    if value < 1:
        raise ConfigError(f"{source}: {value} must be at least 1")
    return value


def _traces_url(endpoint: str) -> str:
    parts = urlsplit(endpoint)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"endpoint: {endpoint!r} is not an http(s) URL such as http://127.0.0.1:6006/v1/traces")
    if parts.path in ("", "/"):
        return endpoint.rstrip("/") + "/v1/traces"
    return endpoint


def configure_otlp(
    endpoint: str | None = None,
    *,
    service_name: str = "agent-guard",
    project_name: str | None = None,
    max_queue_size: int | None = None,
    schedule_delay_millis: int | None = None,
    max_export_batch_size: int | None = None,
    export_timeout_s: float = 10.0,
    headers: Mapping[str, str] | None = None,
    resource_attributes: Mapping[str, str] | None = None,
    set_global: bool = False,
) -> SdkTracerProvider:
    """An SDK tracer provider exporting by OTLP/HTTP through a batch processor sized for bursts.

    ``Guard(policy, tracer_provider=configure_otlp("http://127.0.0.1:6006", project_name="demo"))``.

    - ``endpoint``: the collector's traces URL; a bare ``http://host:port`` gets ``/v1/traces``.
      ``None`` uses ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``/``OTEL_EXPORTER_OTLP_ENDPOINT`` (default
      ``http://localhost:4318/v1/traces``).
    - ``project_name``: the Arize Phoenix project, set as the resource attribute
      ``openinference.project.name``.
    - Queue sizing: each of ``max_queue_size``, ``schedule_delay_millis`` and
      ``max_export_batch_size`` is the argument if given, else the standard environment variable
      (``OTEL_BSP_MAX_QUEUE_SIZE``, ``OTEL_BSP_SCHEDULE_DELAY``, ``OTEL_BSP_MAX_EXPORT_BATCH_SIZE``),
      else agent_guard's default (32768 spans, 1000 ms, 512). A span that finds the queue full is
      dropped (the SDK logs ``Queue full, dropping Span.``); the guard flushes the provider at the
      end of every task, so the queue only has to hold one task's burst.
    - ``set_global``: also install it as the global tracer provider.

    Needs ``pip install 'agent-guard[otlp]'`` (raises :class:`MissingDependencyError` otherwise).
    Call ``provider.shutdown()`` at exit to export what is left.
    """
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        raise MissingDependencyError(
            "agent_guard.telemetry.configure_otlp", "pip install 'agent-guard[otlp]'"
        ) from None
    queue = _setting(max_queue_size, "OTEL_BSP_MAX_QUEUE_SIZE", DEFAULT_MAX_QUEUE_SIZE)
    delay = _setting(schedule_delay_millis, "OTEL_BSP_SCHEDULE_DELAY", DEFAULT_SCHEDULE_DELAY_MS)
    batch = min(queue, _setting(max_export_batch_size, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
                                DEFAULT_MAX_EXPORT_BATCH_SIZE))
    if export_timeout_s <= 0:
        raise ConfigError(f"export_timeout_s: {export_timeout_s} must be positive")
    attributes: dict[str, str] = {"service.name": service_name, **(resource_attributes or {})}
    if project_name is not None:
        if not project_name.strip():
            raise ConfigError("project_name: an empty project name; pass None for Phoenix's default project")
        attributes[PROJECT_NAME_ATTRIBUTE] = project_name
    exporter = OTLPSpanExporter(
        endpoint=_traces_url(endpoint) if endpoint is not None else None,
        headers=dict(headers) if headers is not None else None,
        timeout=export_timeout_s,
    )
    provider = TracerProvider(resource=Resource.create(attributes))
    provider.add_span_processor(
        BatchSpanProcessor(exporter, max_queue_size=queue, schedule_delay_millis=delay, max_export_batch_size=batch)
    )
    if set_global:
        from opentelemetry import trace

        trace.set_tracer_provider(provider)
    return provider
