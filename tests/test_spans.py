"""Audit spans: one execute_tool span per decision, task spans with grant events, no secrets."""

from __future__ import annotations

import types

import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

from agent_guard import AgentIdentity, Guard, Plan, Policy, semconv
from agent_guard.testing import FakeClock, SpanCapture


def attrs(span: object) -> dict[str, object]:
    return dict(span.attributes or {})  # type: ignore[attr-defined]


def test_allow_and_deny_spans(guard: Guard, plan: Plan, identity: AgentIdentity, spans: SpanCapture) -> None:
    """Attributes of docs/design.md on both; a denial has status ERROR, error.type and the reason."""
    with guard.task(plan, identity=identity) as task:
        guard.authorize("crm_lookup", {"customer_id": "C-42"}, call_id="call-1")
        guard.authorize("send_email", {"to": "mallory@evil.com"}, call_id="call-2")
    allow, deny = spans.named("execute_tool")
    assert allow.name == "execute_tool crm_lookup" and deny.name == "execute_tool send_email"
    a = attrs(allow)
    assert a[semconv.OPERATION_NAME] == "execute_tool" and a[semconv.TOOL_NAME] == "crm_lookup"
    assert a[semconv.TOOL_CALL_ID] == "call-1" and a[semconv.DECISION_OUTCOME] == "allow"
    assert a[semconv.AGENT_ID] == "support-bot" and a[semconv.ENDUSER_ID] == "u-1"
    assert a[semconv.GRANT_ID] == task.grant_id and a[semconv.TASK_ID] == task.id and a[semconv.PLAN_STEP] == 0
    assert allow.status.status_code == StatusCode.UNSET
    d = attrs(deny)
    assert d[semconv.DECISION_OUTCOME] == "deny" and d[semconv.DECISION_REASON] == "argument_mismatch"
    assert d[semconv.ERROR_TYPE] == "agent_guard.ToolCallDenied" and d[semconv.TOOL_CALL_ID] == "call-2"
    assert deny.status.status_code == StatusCode.ERROR and deny.status.description == "argument_mismatch"
    (task_span,) = spans.named("invoke_agent")
    assert task_span.name == "invoke_agent support-bot"
    assert allow.parent is not None and allow.parent.span_id == task_span.context.span_id
    issued = task_span.events[0]
    assert issued.name == semconv.EVENT_GRANT_ISSUED
    assert tuple(issued.attributes[semconv.GRANT_TOOLS]) == ("crm_lookup", "send_email")  # type: ignore[index]


def test_no_grant_span(guard: Guard, spans: SpanCapture) -> None:
    """A call outside any task still leaves a deny span."""
    guard.authorize("crm_lookup", {"customer_id": "C-42"})
    (span,) = spans.spans
    assert attrs(span)[semconv.DECISION_REASON] == "no_grant" and semconv.GRANT_ID not in attrs(span)


def _all_text(capture: SpanCapture) -> str:
    parts = []
    for s in capture.spans:
        parts.append(repr(attrs(s)))
        parts.extend(repr(dict(e.attributes or {})) for e in s.events)
    return "\n".join(parts)


def test_values_and_tokens_are_not_recorded_by_default(guard: Guard, plan: Plan, identity: AgentIdentity,
                                                        spans: SpanCapture) -> None:
    """No argument value, result or token appears in any span or event."""
    tool = guard.wrap(name="crm_lookup")(lambda customer_id: "RESULT-SECRET")
    with guard.task(plan, identity=identity) as task:
        tool(customer_id="C-42")
        guard.authorize("send_email", {"to": "mallory@evil.com", "body": "BODY-SECRET"})
    text = _all_text(spans)
    for secret in ("C-42", "RESULT-SECRET", "mallory", "BODY-SECRET", task.grant, task.grant.split(".")[2]):
        assert secret not in text
    assert semconv.TOOL_CALL_ARGUMENTS not in text


def test_values_recorded_with_opt_in(policy: Policy, plan: Plan, identity: AgentIdentity, spans: SpanCapture,
                                     clock: FakeClock) -> None:
    """record_arguments=True records arguments and results as JSON strings; still never the token."""
    guard = Guard(policy, tracer_provider=spans.provider, clock=clock, record_arguments=True)
    tool = guard.wrap(name="crm_lookup")(lambda customer_id: {"name": "Alice"})
    with guard.task(plan, identity=identity) as task:
        tool(customer_id="C-42")
    (span,) = spans.named("execute_tool")
    assert attrs(span)[semconv.TOOL_CALL_ARGUMENTS] == '{"customer_id": "C-42"}'
    assert attrs(span)[semconv.TOOL_CALL_RESULT] == '{"name": "Alice"}'
    assert task.grant not in _all_text(spans)


def test_tool_errors_are_marked(guard: Guard, plan: Plan, identity: AgentIdentity, spans: SpanCapture) -> None:
    """An allowed call whose tool raises keeps outcome allow and gets error.type of the exception."""

    def crm_lookup(customer_id: str) -> None:
        raise KeyError("no such customer")

    with guard.task(plan, identity=identity), pytest.raises(KeyError):
        guard.wrap(crm_lookup)(customer_id="C-42")
    (span,) = spans.named("execute_tool")
    assert attrs(span)[semconv.DECISION_OUTCOME] == "allow"
    assert attrs(span)[semconv.ERROR_TYPE] == "builtins.KeyError" and span.status.status_code == StatusCode.ERROR


def test_tool_body_spans_are_children(guard: Guard, plan: Plan, identity: AgentIdentity, spans: SpanCapture) -> None:
    """Spans the tool opens nest under its execute_tool span."""
    tracer = spans.provider.get_tracer("tool")

    def crm_lookup(customer_id: str) -> None:
        with tracer.start_as_current_span("http GET /customers"):
            pass

    with guard.task(plan, identity=identity):
        guard.wrap(crm_lookup)(customer_id="C-42")
    (inner,) = spans.named("http")
    (outer,) = spans.named("execute_tool")
    assert inner.parent is not None and inner.parent.span_id == outer.context.span_id


def test_revoked_event_without_task_span(guard: Guard, plan: Plan, identity: AgentIdentity, spans: SpanCapture,
                                         clock: FakeClock) -> None:
    """Expiry detected after the task span ended is still recorded, as a span of its own."""
    with guard.task(plan, identity=identity, ttl_s=5) as task:
        pass
    task.revocation_reason = None
    task.revoke("expired")
    lone = spans.named(semconv.EVENT_GRANT_REVOKED)
    assert lone and attrs(lone[0])[semconv.GRANT_REVOCATION_REASON] == "expired"


def test_audit_table(guard: Guard, plan: Plan, identity: AgentIdentity, spans: SpanCapture) -> None:
    """The capture renders decisions as a table, one row per decision."""
    with guard.task(plan, identity=identity):
        guard.authorize("crm_lookup", {"customer_id": "C-42"}, call_id="c1")
        guard.authorize("delete", {}, call_id="c2")
    rows = spans.decisions()
    assert [(r["tool"], r["outcome"], r["reason"]) for r in rows] == [
        ("crm_lookup", "allow", ""), ("delete", "deny", "tool_not_in_scope")]
    table = spans.table()
    assert table.splitlines()[0].split() == ["tool", "outcome", "reason", "step", "call_id"]
    assert "tool_not_in_scope" in table


def _email_call(guard: Guard, plan: Plan, identity: AgentIdentity) -> object:
    with guard.task(plan, identity=identity), guard.tool_call("crm_lookup", {"customer_id": "C-42"}) as call:
        assert call.allowed
        return call.span


def test_without_an_sdk_no_tool_span_is_built(policy: Policy, plan: Plan, identity: AgentIdentity,
                                              clock: FakeClock) -> None:
    """No SDK provider (global unset, or an explicit no-op one): the call gets the API's invalid span."""
    from opentelemetry.trace import INVALID_SPAN, NoOpTracerProvider

    assert trace.get_tracer_provider().__class__ is trace.ProxyTracerProvider  # this process sets no global
    assert _email_call(Guard(policy, clock=clock), plan, identity) is INVALID_SPAN
    noop = Guard(policy, clock=clock, tracer_provider=NoOpTracerProvider())
    assert _email_call(noop, plan, identity) is INVALID_SPAN


def test_a_global_sdk_set_after_the_guard_is_used_from_then_on(
    policy: Policy, plan: Plan, identity: AgentIdentity, clock: FakeClock, spans: SpanCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The global provider may be installed after the guard is built: the next call records its span."""
    guard = Guard(policy, clock=clock)
    assert not guard._spans.sdk_present()
    # What trace.set_tracer_provider does (it refuses a second call per process, so tests patch it).
    monkeypatch.setattr(trace, "_TRACER_PROVIDER", spans.provider)
    _email_call(guard, plan, identity)
    assert [s.name for s in spans.named("execute_tool")] == ["execute_tool crm_lookup"]
    monkeypatch.undo()
    assert guard._spans.sdk_present()  # once seen, kept (the API never goes back to the proxy)


def test_an_api_without_the_provider_attribute_falls_back_to_the_public_lookup(
    policy: Policy, plan: Plan, identity: AgentIdentity, clock: FakeClock, spans: SpanCapture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """If a later OpenTelemetry API drops the module attribute, get_tracer_provider() decides instead."""
    import agent_guard.audit._spans as spans_module

    api = types.SimpleNamespace(
        get_tracer_provider=lambda: spans.provider, ProxyTracerProvider=trace.ProxyTracerProvider,
        NoOpTracerProvider=trace.NoOpTracerProvider,
    )
    guard, later = Guard(policy, clock=clock), Guard(policy, clock=clock)
    monkeypatch.setattr(spans_module, "trace", api)
    assert guard._spans.sdk_present()
    api.get_tracer_provider = trace.get_tracer_provider  # the real lookup: still the proxy here
    assert not later._spans.sdk_present()
