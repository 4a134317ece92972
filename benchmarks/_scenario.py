"""The scenario every benchmark shares: a 3-argument ``send_email`` tool, its policy and plan."""

from __future__ import annotations

from collections.abc import Sequence

from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult

from agent_guard import AgentIdentity, Capability, Plan, Policy, Step

ARGS = {"to": "alice@example.com", "subject": "Hello", "body": "Your summary."}
EMAIL_CAPABILITY = Capability(
    "send_email", args={"to": {"glob": "*@example.com"}, "subject": {"max_len": 200}, "body": {"max_len": 2000}}
)
POLICY = Policy(agent_id="bench", capabilities=[EMAIL_CAPABILITY])
EMAIL_STEP = Step("send_email", args={"to": "alice@example.com", "subject": {"any": True}, "body": {"any": True}},
                  max_calls=1_000_000)
PLAN = Plan(goal="bench", steps=[EMAIL_STEP])
ME = AgentIdentity(agent_id="bench", user_id="u-1")


def send_email(to: str, subject: str, body: str) -> str:
    """Send an email (does nothing, so the wrapper's cost is visible)."""
    return "sent"


class DropExporter(SpanExporter):
    """An exporter that discards: measures the SDK and batch processor, not an exporter's I/O."""

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        return None


def sdk_provider() -> TracerProvider:
    """An SDK tracer provider with a batch processor (queue large enough never to drop) and a drop exporter."""
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(DropExporter(), max_queue_size=1_000_000))
    return provider
