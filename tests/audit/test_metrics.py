"""DecisionMetrics: decision, tool-duration and grant instruments through a real SDK MeterProvider."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry.metrics import NoOpMeterProvider
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from agent_guard import AgentIdentity, Decision, semconv
from agent_guard.audit import DecisionMetrics
from agent_guard.audit._metrics import OTHER_TOOL


class FakeTask:
    """The part of a task the metrics read."""

    def __init__(self, agent: str = "support-bot") -> None:
        self.identity = AgentIdentity(agent_id=agent, user_id="u-1")


def decision(tool: str, reason: str | None = None) -> Decision:
    """An allow (no reason) or a deny with ``reason``."""
    return Decision.model_construct(allowed=reason is None, tool=tool, reason=reason, message="", step=None,
                                    grant_id=None, task_id=None, argument=None, allowed_tools=())


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    """An in-memory reader on a fresh SDK provider."""
    reader = InMemoryMetricReader()
    provider = MeterProvider(metric_readers=[reader])
    reader.provider = provider  # type: ignore[attr-defined]
    yield reader
    provider.shutdown()


def points(reader: InMemoryMetricReader) -> dict[str, list[Any]]:
    """Data points by metric name."""
    data = reader.get_metrics_data()
    out: dict[str, list[Any]] = {}
    for rm in data.resource_metrics if data else ():
        for sm in rm.scope_metrics:
            assert sm.scope.name == "agent_guard"
            for metric in sm.metrics:
                out[metric.name] = list(metric.data.data_points)
    return out


def counts(reader: InMemoryMetricReader, name: str) -> dict[frozenset[tuple[str, Any]], int]:
    """A counter's value per attribute set."""
    return {frozenset(p.attributes.items()): p.value for p in points(reader)[name]}


def test_decisions_are_counted_by_outcome_reason_and_tool(reader: InMemoryMetricReader) -> None:
    """Allows carry no reason; denials carry their reason code."""
    m = DecisionMetrics(reader.provider)  # type: ignore[attr-defined]
    assert m.enabled
    for d in (decision("crm_lookup"), decision("crm_lookup"), decision("refund", "tool_not_in_scope"),
              decision("send_email", "argument_mismatch"), decision("send_email", "argument_mismatch")):
        m.decision(d)
    assert counts(reader, semconv.METRIC_DECISIONS) == {
        frozenset({("agent_guard.decision.outcome", "allow"), ("gen_ai.tool.name", "crm_lookup")}): 2,
        frozenset({("agent_guard.decision.outcome", "deny"), ("gen_ai.tool.name", "refund"),
                   ("agent_guard.decision.reason", "tool_not_in_scope")}): 1,
        frozenset({("agent_guard.decision.outcome", "deny"), ("gen_ai.tool.name", "send_email"),
                   ("agent_guard.decision.reason", "argument_mismatch")}): 2,
    }


def test_tool_duration_is_the_genai_histogram_in_seconds(reader: InMemoryMetricReader) -> None:
    """gen_ai.execute_tool.duration, unit s, with error.type only on failures and the GenAI buckets."""
    m = DecisionMetrics(reader.provider)  # type: ignore[attr-defined]
    m.tool_duration("crm_lookup", 0.05, None)
    m.tool_duration("crm_lookup", 0.15, None)
    m.tool_duration("crm_lookup", 3.0, "builtins.TimeoutError")
    data = reader.get_metrics_data()
    (metric,) = [x for rm in data.resource_metrics for sm in rm.scope_metrics for x in sm.metrics]
    assert metric.name == "gen_ai.execute_tool.duration" and metric.unit == "s"
    by_error = {p.attributes.get("error.type"): p for p in metric.data.data_points}
    ok, failed = by_error[None], by_error["builtins.TimeoutError"]
    assert ok.count == 2 and ok.sum == pytest.approx(0.2) and failed.count == 1 and failed.sum == 3.0
    assert dict(ok.attributes) == {"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "crm_lookup",
                                   "gen_ai.tool.type": "function"}
    assert tuple(ok.explicit_bounds)[:3] == (0.01, 0.02, 0.04)


def test_grants_issued_and_revoked_by_reason(reader: InMemoryMetricReader) -> None:
    """Two grants issued; one revoked as plan_completed, one at task exit."""
    m = DecisionMetrics(reader.provider)  # type: ignore[attr-defined]
    task = FakeTask()
    m.grant_issued(task)
    m.grant_issued(task)
    m.grant_revoked(task, "plan_completed")
    m.grant_revoked(task, "task_exit")
    assert counts(reader, semconv.METRIC_GRANTS_ISSUED) == {frozenset({("gen_ai.agent.id", "support-bot")}): 2}
    assert counts(reader, semconv.METRIC_GRANTS_REVOKED) == {
        frozenset({("gen_ai.agent.id", "support-bot"), ("agent_guard.grant.revocation.reason", reason)}): 1
        for reason in ("plan_completed", "task_exit")
    }


def test_made_up_tool_names_do_not_add_series(reader: InMemoryMetricReader) -> None:
    """With the policy's tools known, any other name counts as _OTHER; surrogates never reach the exporter."""
    known = DecisionMetrics(reader.provider, tools=["crm_lookup"])  # type: ignore[attr-defined]
    for n in range(50):
        known.decision(decision(f"made-up-{n}", "tool_not_in_scope"))
    known.decision(decision("crm_lookup"))
    tools = {dict(k)["gen_ai.tool.name"] for k in counts(reader, semconv.METRIC_DECISIONS)}
    assert tools == {OTHER_TOOL, "crm_lookup"}

    capped = DecisionMetrics(reader.provider)  # type: ignore[attr-defined]
    capped.tool_duration("bad\ud800" + "x" * 500, 0.1, None)
    for n in range(300):
        capped.tool_duration(f"t{n}", 0.1, None)
    names = {p.attributes["gen_ai.tool.name"] for p in points(reader)[semconv.METRIC_TOOL_DURATION]}
    assert "bad\\ud800" + "x" * 124 in names and OTHER_TOOL in names and len(names) == 257
    for name in names:
        name.encode("utf-8")


class CountingNoOp(NoOpMeterProvider):
    """The API's no-op provider, counting the meters asked of it."""

    def __init__(self) -> None:
        self.meters = 0

    def get_meter(self, *args: Any, **kwargs: Any) -> Any:
        self.meters += 1
        return super().get_meter(*args, **kwargs)


def test_without_an_sdk_nothing_is_built_and_calls_are_near_free() -> None:
    """With the no-op provider no meter or instrument is created."""
    provider = CountingNoOp()
    m = DecisionMetrics(provider)
    task, allow = FakeTask(), decision("crm_lookup")
    m.grant_issued(task)
    m.decision(allow)
    m.tool_duration("crm_lookup", 0.1, None)
    m.grant_revoked(task, "task_exit")
    assert not m.enabled and provider.meters == 0  # (the per-call cost is measured in benchmarks/bench_audit.py)


def test_the_global_provider_is_used_when_none_is_given(monkeypatch: pytest.MonkeyPatch) -> None:
    """None means the global provider; the API's proxy (no global set) records nothing until one is."""
    from opentelemetry import metrics

    reader = InMemoryMetricReader()
    sdk = MeterProvider(metric_readers=[reader])
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: NoOpMeterProvider())
    m = DecisionMetrics()
    m.decision(decision("crm_lookup"))
    assert not m.enabled
    monkeypatch.setattr(metrics, "get_meter_provider", lambda: sdk)
    m.grant_issued(FakeTask())  # a task start looks the provider up again
    m.decision(decision("crm_lookup"))
    assert m.enabled and set(points(reader)) == {semconv.METRIC_GRANTS_ISSUED, semconv.METRIC_DECISIONS}
    sdk.shutdown()
