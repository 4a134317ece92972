"""configure_otlp (OTLP/HTTP export, Phoenix project, queue sizing) and the flush at task end."""

from __future__ import annotations

import logging
import sys
import threading
from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from agent_guard import AgentIdentity, ConfigError, Guard, MissingDependencyError, Plan, Policy
from agent_guard.telemetry import DEFAULT_MAX_QUEUE_SIZE, configure_otlp


def batch_settings(provider: TracerProvider) -> tuple[int, float, int]:
    """(max queue size, schedule delay in s, max export batch size) of the provider's batch processor."""
    (processor,) = provider._active_span_processor._span_processors
    assert isinstance(processor, BatchSpanProcessor)
    inner: Any = processor._batch_processor
    return inner._max_queue_size, inner._schedule_delay, inner._max_export_batch_size


def test_missing_sdk_names_the_extra_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the OTLP exporter installed, configure_otlp says which pip install fixes it."""
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)
    with pytest.raises(MissingDependencyError, match=r"pip install 'agent-guard\[otlp\]'") as info:
        configure_otlp("http://127.0.0.1:4318")
    assert isinstance(info.value, ImportError)


def test_project_and_service_are_resource_attributes() -> None:
    """project_name becomes openinference.project.name (Phoenix's project); service_name service.name."""
    provider = configure_otlp("http://127.0.0.1:9/v1/traces", service_name="svc", project_name="audit-demo")
    try:
        attributes = provider.resource.attributes
        assert attributes["service.name"] == "svc"
        assert attributes["openinference.project.name"] == "audit-demo"
    finally:
        provider.shutdown()
    plain = configure_otlp("http://127.0.0.1:9/v1/traces")
    assert "openinference.project.name" not in plain.resource.attributes
    plain.shutdown()


def test_queue_sizing_argument_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """Explicit arguments win, then OTEL_BSP_* variables, then agent_guard's burst-sized defaults."""
    for name in ("OTEL_BSP_MAX_QUEUE_SIZE", "OTEL_BSP_SCHEDULE_DELAY", "OTEL_BSP_MAX_EXPORT_BATCH_SIZE"):
        monkeypatch.delenv(name, raising=False)
    default = configure_otlp("http://127.0.0.1:9")
    assert batch_settings(default) == (DEFAULT_MAX_QUEUE_SIZE, 1.0, 512)
    default.shutdown()
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "50000")
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "250")
    from_env = configure_otlp("http://127.0.0.1:9")
    assert batch_settings(from_env) == (50000, 0.25, 512)
    from_env.shutdown()
    explicit = configure_otlp("http://127.0.0.1:9", max_queue_size=100, schedule_delay_millis=2000)
    assert batch_settings(explicit) == (100, 2.0, 100)  # the batch never exceeds the queue
    explicit.shutdown()


def test_bad_settings_are_config_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    """A non-integer variable, a zero size, an empty project or a non-URL endpoint names the field."""
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "lots")
    with pytest.raises(ConfigError, match="OTEL_BSP_MAX_QUEUE_SIZE"):
        configure_otlp("http://127.0.0.1:9")
    monkeypatch.delenv("OTEL_BSP_MAX_QUEUE_SIZE")
    with pytest.raises(ConfigError, match="max_queue_size"):
        configure_otlp("http://127.0.0.1:9", max_queue_size=0)
    with pytest.raises(ConfigError, match="project_name"):
        configure_otlp("http://127.0.0.1:9", project_name=" ")
    with pytest.raises(ConfigError, match="endpoint"):
        configure_otlp("127.0.0.1:4318")


def run_task(guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
    """One allowed and one denied call inside a task."""
    with guard.task(plan, identity=identity):
        guard.authorize("crm_lookup", {"customer_id": "C-42"}, call_id="c1")
        guard.authorize("refund", {"amount": 5, "order_id": "O-1"}, call_id="c2")


def test_spans_reach_an_otlp_receiver_when_the_task_ends(
    otlp_receiver: Any, policy: Policy, plan: Plan, identity: AgentIdentity
) -> None:
    """With a 60 s export delay, only the task-end flush can have delivered the task's spans."""
    provider = configure_otlp(otlp_receiver.url.removesuffix("/v1/traces"), project_name="p1",
                              schedule_delay_millis=60_000)
    try:
        guard = Guard(policy, tracer_provider=provider)
        guard.authorize("crm_lookup", {"customer_id": "C-1"})  # outside a task: no flush yet
        assert otlp_receiver.names() == []
        run_task(guard, plan, identity)
        names = otlp_receiver.names()
        assert sorted(names) == sorted(["execute_tool crm_lookup", "execute_tool crm_lookup",
                                        "execute_tool refund", "invoke_agent support-bot"])
        denied = next(s for s in otlp_receiver.spans if s["name"] == "execute_tool refund")
        assert denied["attributes"]["agent_guard.decision.outcome"] == "deny"
        assert denied["attributes"]["agent_guard.decision.reason"] == "tool_not_in_scope"
        assert denied["attributes"]["gen_ai.tool.call.id"] == "c2"
        task_span = next(s for s in otlp_receiver.spans if s["name"].startswith("invoke_agent"))
        assert task_span["events"] == ["agent_guard.grant.issued", "agent_guard.grant.revoked"]
        assert {r["openinference.project.name"] for r in otlp_receiver.resources} == {"p1"}
    finally:
        provider.shutdown()


def test_task_end_flushes_an_in_process_batch_processor(policy: Policy, plan: Plan, identity: AgentIdentity) -> None:
    """Any provider with force_flush is flushed at task end (here a batch processor with a 60 s delay)."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    try:
        run_task(Guard(policy, tracer_provider=provider), plan, identity)
        assert sorted(s.name for s in exporter.get_finished_spans()) == [
            "execute_tool crm_lookup", "execute_tool refund", "invoke_agent support-bot"]
    finally:
        provider.shutdown()


class ThreadRecordingProvider(TracerProvider):
    """A real SDK provider that records which thread flushed it."""

    def __init__(self) -> None:
        super().__init__()
        self.flush_threads: list[int] = []

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Record the calling thread, then flush."""
        self.flush_threads.append(threading.get_ident())
        return super().force_flush(timeout_millis)


async def test_async_task_end_flushes_off_the_event_loop(policy: Policy, plan: Plan, identity: AgentIdentity) -> None:
    """`async with` flushes at task end in a worker thread, so a slow collector never blocks the loop."""
    exporter = InMemorySpanExporter()
    provider = ThreadRecordingProvider()
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=60_000))
    guard = Guard(policy, tracer_provider=provider)
    try:
        async with guard.task(plan, identity=identity):
            await guard.aauthorize("crm_lookup", {"customer_id": "C-42"})
        assert provider.flush_threads and threading.get_ident() not in provider.flush_threads
        assert sorted(s.name for s in exporter.get_finished_spans()) == [
            "execute_tool crm_lookup", "invoke_agent support-bot"]
    finally:
        provider.shutdown()


class BrokenFlushProvider(TracerProvider):
    """A real SDK provider whose flush fails, as an exporter bug or a dead collector might."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Fail loudly."""
        raise RuntimeError("collector exploded")


class SlowFlushProvider(TracerProvider):
    """A real SDK provider whose flush times out."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        """Report a timeout."""
        return False


@pytest.mark.parametrize("provider_class", [BrokenFlushProvider, SlowFlushProvider])
def test_a_failing_flush_never_breaks_the_task(
    provider_class: type[TracerProvider], policy: Policy, plan: Plan, identity: AgentIdentity,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The task exits normally and the grant is revoked; the failure is only logged."""
    guard = Guard(policy, tracer_provider=provider_class())
    with caplog.at_level(logging.WARNING, logger="agent_guard"), guard.task(plan, identity=identity) as task:
        guard.authorize("crm_lookup", {"customer_id": "C-42"})
    assert task.revoked
    assert any("task end" in r.getMessage() for r in caplog.records if r.name == "agent_guard")
