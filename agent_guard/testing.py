"""Test helpers for agent_guard users: a deterministic clock and an in-memory span capture.

``SpanCapture`` needs the OpenTelemetry SDK (``pip install 'agent-guard[otlp]'`` or
``pip install opentelemetry-sdk``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agent_guard.exceptions import MissingDependencyError
from agent_guard.telemetry import decision_rows, format_table

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

__all__ = ["FakeClock", "SpanCapture"]


class FakeClock:
    """A clock you move by hand: pass it as ``Guard(..., clock=clock)``.

    Starts at a fixed instant (2027-01-15T08:00:00Z) so grants are reproducible.
    """

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = float(start)

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        """Move the clock forward by ``seconds`` and return the new time."""
        self.now += seconds
        return self.now


class SpanCapture:
    """An SDK tracer provider whose spans land in memory, synchronously.

    ``Guard(policy, tracer_provider=capture.provider)``; then read ``capture.spans``,
    ``capture.decisions()`` or ``print(capture.table())``.
    """

    def __init__(self) -> None:
        try:
            from opentelemetry.sdk.trace import TracerProvider
            from opentelemetry.sdk.trace.export import SimpleSpanProcessor
            from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
        except ImportError:
            raise MissingDependencyError("agent_guard.testing.SpanCapture", "pip install opentelemetry-sdk") from None
        self.exporter = InMemorySpanExporter()
        self.provider: TracerProvider = TracerProvider()
        self.provider.add_span_processor(SimpleSpanProcessor(self.exporter))

    @property
    def spans(self) -> tuple[ReadableSpan, ...]:
        """Every finished span so far, in finishing order."""
        return tuple(self.exporter.get_finished_spans())

    def named(self, prefix: str) -> list[ReadableSpan]:
        """Finished spans whose name starts with ``prefix`` (e.g. ``"execute_tool"``)."""
        return [s for s in self.spans if s.name.startswith(prefix)]

    def decisions(self) -> list[dict[str, Any]]:
        """One row per tool-call decision (see :func:`agent_guard.telemetry.decision_rows`)."""
        return decision_rows(self.spans)

    def table(self, columns: list[str] | None = None) -> str:
        """The decisions as a plain-text audit table (control characters in names shown escaped)."""
        return format_table(self.decisions(), columns or ["tool", "outcome", "reason", "step", "call_id"])

    def clear(self) -> None:
        """Forget the spans captured so far."""
        self.exporter.clear()

    def shutdown(self) -> None:
        """Shut the provider down."""
        self.provider.shutdown()
