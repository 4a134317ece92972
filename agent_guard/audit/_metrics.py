"""OpenTelemetry metrics of decisions, tool run time and grants: what operators alert on.

Traces are sampled and spans can be dropped; a counter of denials by reason is not. Only the
OpenTelemetry *API* is used; without a metrics SDK (the API's no-op or proxy provider) nothing is
built and each call returns after one attribute check.

Instruments (see :mod:`agent_guard.semconv`):

- ``agent_guard.decisions`` (counter, ``{decision}``): ``agent_guard.decision.outcome``,
  ``agent_guard.decision.reason`` (denials and shadow-mode would-denials only), ``gen_ai.tool.name``;
- ``gen_ai.execute_tool.duration`` (histogram, ``s``): the OpenTelemetry GenAI conventions' tool
  execution metric, with ``gen_ai.operation.name``, ``gen_ai.tool.name``, ``gen_ai.tool.type``
  and ``error.type`` when the tool failed;
- ``agent_guard.grants.issued`` / ``agent_guard.grants.revoked`` (counters, ``{grant}``):
  ``gen_ai.agent.id`` and, on revocation, ``agent_guard.grant.revocation.reason``.
"""

from __future__ import annotations

import threading
from collections.abc import Collection
from typing import TYPE_CHECKING, Any, Final

from opentelemetry import metrics
from opentelemetry.metrics import Counter, Histogram, MeterProvider, NoOpMeterProvider

from agent_guard import semconv as sc
from agent_guard._decision import outcome_of
from agent_guard._version import __version__

if TYPE_CHECKING:
    from agent_guard.audit._record import TaskRecord
    from agent_guard.authorization._models import Decision

__all__ = ["OTHER_TOOL", "DecisionMetrics"]

OTHER_TOOL: Final = "_OTHER"
"""``gen_ai.tool.name`` of a tool outside the known set (keeps a made-up name from adding a series)."""
_MAX_TOOLS: Final = 256
_MAX_NAME: Final = 128
_DURATION_BUCKETS: Final = (0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92)


def _safe_name(name: str) -> str:
    """A tool name fit for an exporter: at most 128 characters, no lone surrogates (OTLP cannot encode them)."""
    name = name[:_MAX_NAME]
    return name if name.isascii() else name.encode("utf-8", "backslashreplace").decode("utf-8")


class DecisionMetrics:
    """Records decisions, tool run time and grant events as OpenTelemetry metrics.

    ``DecisionMetrics(meter_provider)``; ``None`` uses the global provider. Pass ``tools`` (e.g.
    the policy's tool names) so that a name the model made up is counted as ``_OTHER``; without
    it the first 256 distinct names are kept and later ones become ``_OTHER``. Without a metrics
    SDK nothing is recorded; the provider is looked up again at every :meth:`grant_issued` (a
    task start), so a global provider set after the guard was built is picked up. Thread-safe.
    """

    def __init__(self, meter_provider: MeterProvider | None = None, *, tools: Collection[str] | None = None) -> None:
        self.meter_provider = meter_provider
        self._known = frozenset(tools) if tools is not None else None
        self._names: dict[str, str] = {}
        self._lock = threading.Lock()
        self._on = False
        self._decisions: Counter
        self._duration: Histogram
        self._issued: Counter
        self._revoked: Counter
        self.refresh()

    @property
    def enabled(self) -> bool:
        """True once a recording (SDK) meter provider was found."""
        return self._on

    def refresh(self) -> bool:
        """Look the provider up again (cheap; called at every task start); returns :attr:`enabled`."""
        if self._on:
            return True
        provider = self.meter_provider if self.meter_provider is not None else metrics.get_meter_provider()
        # the API's no-op provider (or a subclass), or its proxy stand-in until a global one is set
        if isinstance(provider, NoOpMeterProvider) or type(provider).__module__.startswith("opentelemetry.metrics"):
            return False
        with self._lock:
            if not self._on:
                meter = provider.get_meter("agent_guard", __version__)
                self._decisions = meter.create_counter(
                    sc.METRIC_DECISIONS, unit="{decision}", description="Tool-call authorization decisions")
                self._duration = meter.create_histogram(
                    sc.METRIC_TOOL_DURATION, unit="s", description="Duration of tool execution",
                    explicit_bucket_boundaries_advisory=_DURATION_BUCKETS)
                self._issued = meter.create_counter(
                    sc.METRIC_GRANTS_ISSUED, unit="{grant}", description="Task grants minted")
                self._revoked = meter.create_counter(
                    sc.METRIC_GRANTS_REVOKED, unit="{grant}", description="Task grants revoked")
                self._on = True
        return True

    def _tool(self, name: str) -> str:
        shown = self._names.get(name)
        if shown is not None:
            return shown
        if (self._known is not None and name not in self._known) or (
            self._known is None and len(self._names) >= _MAX_TOOLS
        ):
            return OTHER_TOOL
        shown = self._names[name] = _safe_name(name)
        return shown

    def decision(self, decision: Decision) -> None:
        """Count one decision (``agent_guard.decisions``)."""
        if not self._on:
            return
        attributes = {sc.DECISION_OUTCOME: outcome_of(decision), sc.TOOL_NAME: self._tool(decision.tool)}
        if not decision.allowed or decision.reason is not None:  # a denial, or a shadow-mode would_deny
            attributes[sc.DECISION_REASON] = decision.reason or ""
        self._decisions.add(1, attributes)

    def tool_duration(self, tool: str, seconds: float, error_type: str | None) -> None:
        """Record how long an allowed tool call ran (``gen_ai.execute_tool.duration``, seconds)."""
        if not self._on:
            return
        attributes: dict[str, Any] = {
            sc.OPERATION_NAME: "execute_tool", sc.TOOL_NAME: self._tool(tool), sc.TOOL_TYPE: "function",
        }
        if error_type is not None:
            attributes[sc.ERROR_TYPE] = error_type
        self._duration.record(max(0.0, seconds), attributes)

    def grant_issued(self, task: TaskRecord) -> None:
        """Count a grant minted (``agent_guard.grants.issued``); also looks the provider up again."""
        if self._on or self.refresh():
            self._issued.add(1, {sc.AGENT_ID: task.identity.agent_id})

    def grant_revoked(self, task: TaskRecord, reason: str) -> None:
        """Count a grant revoked (``agent_guard.grants.revoked``) by reason."""
        if self._on:
            self._revoked.add(1, {sc.AGENT_ID: task.identity.agent_id, sc.GRANT_REVOCATION_REASON: reason})
