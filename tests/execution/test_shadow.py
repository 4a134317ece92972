"""Shadow mode: every call is decided and recorded as enforcement would, and none is blocked."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import InMemoryMetricReader
from pydantic import ValidationError

from agent_guard import (
    AgentIdentity,
    Capability,
    ConfigError,
    Decision,
    Guard,
    Limit,
    Plan,
    Policy,
    Step,
    reasons,
)
from agent_guard import semconv as sc
from agent_guard.audit import DecisionLog, read_log
from agent_guard.testing import FakeClock, SpanCapture


@pytest.fixture
def shadow(policy: Policy, clock: FakeClock, spans: SpanCapture) -> Guard:
    """The sample policy, in shadow mode."""
    return Guard(policy, tracer_provider=spans.provider, clock=clock, mode="shadow")


def test_mode_is_checked() -> None:
    """Only 'enforce' and 'shadow' exist; anything else is a ConfigError naming the field."""
    with pytest.raises(ConfigError, match="mode: 'audit' is not 'enforce'"):
        Guard(mode="audit")  # type: ignore[arg-type]


def test_refusals_become_would_deny_and_the_call_runs(shadow: Guard, plan: Plan, identity: AgentIdentity) -> None:
    """allowed=True, outcome would_deny, the reason enforcement would give; a wrapped tool runs."""
    ran: list[str] = []

    def send_email(to: str, subject: str, body: str) -> str:
        ran.append(to)
        return "sent"

    with shadow.task(plan, identity=identity):
        planned = shadow.authorize("crm_lookup", {"customer_id": "C-42"})
        assert (planned.allowed, planned.outcome, planned.reason) == (True, "allow", None)
        stray = shadow.authorize("delete_account", {})
        assert (stray.allowed, stray.outcome, stray.reason) == (True, "would_deny", reasons.TOOL_NOT_IN_SCOPE)
        assert stray.message.startswith("shadow mode, not enforced: agent_guard refused")
        assert shadow.wrap(send_email)(to="mallory@evil.example", subject="s", body="b") == "sent"
        assert ran == ["mallory@evil.example"]
    outside = shadow.authorize("crm_lookup", {"customer_id": "C-42"})
    assert (outside.allowed, outside.outcome, outside.reason) == (True, "would_deny", reasons.NO_GRANT)


def test_budgets_are_consumed_as_enforcement_would(shadow: Guard, policy: Policy, clock: FakeClock,
                                                   plan: Plan, identity: AgentIdentity) -> None:
    """A would-deny consumes nothing; allowed calls spend the budget; the plan completes as under enforcement."""
    enforce = Guard(policy, clock=clock)
    lookup = ("crm_lookup", {"customer_id": "C-42"})
    wrong = ("crm_lookup", {"customer_id": "C-7"})
    email = ("send_email", {"to": "alice@example.com", "subject": "s", "body": "b"})
    seen: dict[str, list[tuple[bool, str | None]]] = {}
    for name, guard in (("enforce", enforce), ("shadow", shadow)):
        with guard.task(plan, identity=identity) as task:
            decisions = [guard.decide(*call) for call in (wrong, lookup, wrong, lookup, email, lookup)]
            seen[name] = [(d.allowed, d.reason) for d in decisions]
            assert task.revocation_reason == "plan_completed"
    assert seen["enforce"] == [(False, "argument_mismatch"), (True, None), (False, "argument_mismatch"),
                               (False, "budget_exhausted"), (True, None), (False, "budget_exhausted")]
    assert seen["shadow"] == [(True, reason) for _, reason in seen["enforce"]]


def test_limits_in_shadow_mode_charge_only_what_enforcement_would(clock: FakeClock) -> None:
    """A would-deny limit_exceeded charges nothing: the next call that fits is a plain allow."""
    policy = Policy(agent_id="bank-bot", capabilities=[
        Capability("transfer", args={"amount": {"any": True}}, limits=[Limit(sum_of="amount", max=100, per="user",
                                                                             window_s=3600)])])
    guard = Guard(policy, clock=clock, mode="shadow")
    plan = Plan(steps=[Step("transfer", args={"amount": {"any": True}}, max_calls=10)])
    with guard.task(plan, identity=AgentIdentity(agent_id="bank-bot", user_id="u-1")):
        outcomes = [(d.outcome, d.reason, d.limit) for d in
                    (guard.decide("transfer", {"amount": a}) for a in (60, 60, 40, 1, "x"))]
    label = "transfer: sum_of amount per user per 3600 s"
    assert outcomes == [("allow", None, None), ("would_deny", "limit_exceeded", label), ("allow", None, None),
                        ("would_deny", "limit_exceeded", label), ("would_deny", "argument_mismatch", None)]


def test_spans_log_and_metrics_record_would_deny(policy: Policy, clock: FakeClock, spans: SpanCapture,
                                                 plan: Plan, identity: AgentIdentity, tmp_path: Path) -> None:
    """The span, the decision log and the decisions counter all say would_deny, with the reason; no error status."""
    reader = InMemoryMetricReader()
    meters = MeterProvider(metric_readers=[reader])
    with DecisionLog(tmp_path / "audit.jsonl") as log:
        guard = Guard(policy, tracer_provider=spans.provider, clock=clock, mode="shadow", decision_log=log,
                      meter_provider=meters)
        with guard.task(plan, identity=identity), guard.tool_call("refund", {"order_id": "O-1"}, call_id="c9") as call:
            assert call.allowed
    (span,) = [s for s in spans.named("execute_tool") if s.attributes[sc.TOOL_CALL_ID] == "c9"]
    assert span.attributes[sc.DECISION_OUTCOME] == "would_deny"
    assert span.attributes[sc.DECISION_REASON] == reasons.TOOL_NOT_IN_SCOPE
    assert sc.ERROR_TYPE not in span.attributes and span.status.status_code.name != "ERROR"
    assert [r["call_id"] for r in spans.decisions() if r["outcome"] == "would_deny"] == ["c9"]
    (record,) = [r for r in read_log(tmp_path / "audit.jsonl") if r["event"] == "decision"]
    assert (record["outcome"], record["reason"]) == ("would_deny", reasons.TOOL_NOT_IN_SCOPE)
    data = reader.get_metrics_data()
    assert data is not None
    counted: dict[Any, Any] = {}
    for rm in data.resource_metrics:
        for sm in rm.scope_metrics:
            for metric in sm.metrics:
                if metric.name == sc.METRIC_DECISIONS:
                    counted = {frozenset(p.attributes.items()): p.value for p in metric.data.data_points}
    assert counted == {frozenset({(sc.DECISION_OUTCOME, "would_deny"), (sc.DECISION_REASON, "tool_not_in_scope"),
                                  (sc.TOOL_NAME, "refund")}): 1}
    meters.shutdown()


async def test_async_shadow_mode(shadow: Guard, plan: Plan, identity: AgentIdentity) -> None:
    """aauthorize and atool_call report the same would_deny decisions as the sync path."""
    async with shadow.task(plan, identity=identity):
        stray = await shadow.aauthorize("send_email", {"to": "x@evil.example", "subject": "s", "body": "b"})
        call = await shadow.atool_call("crm_lookup", {"customer_id": "C-9"})
        with call:
            assert call.allowed and call.decision.reason == reasons.ARGUMENT_MISMATCH
    await asyncio.sleep(0)
    assert (stray.allowed, stray.outcome, stray.reason) == (True, "would_deny", reasons.ARGUMENT_MISMATCH)


def test_enforcing_guard_is_unchanged(guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
    """mode defaults to enforce: refusals block and read outcome deny."""
    assert guard.mode == "enforce"
    with guard.task(plan, identity=identity):
        refused = guard.authorize("delete_account", {})
    assert (refused.allowed, refused.outcome, refused.reason) == (False, "deny", reasons.TOOL_NOT_IN_SCOPE)


def test_decision_outcome_must_agree_with_allowed() -> None:
    """A Decision's outcome defaults from allowed, and a contradiction is refused (the record stays honest)."""
    assert Decision(allowed=False, tool="t", reason="no_grant").outcome == "deny"
    assert Decision(allowed=True, tool="t").outcome == "allow"
    assert Decision(allowed=True, tool="t", reason="no_grant", outcome="would_deny")
    with pytest.raises(ValidationError, match="contradicts"):
        Decision(allowed=False, tool="t", reason="no_grant", outcome="allow")
    with pytest.raises(ValidationError, match="needs the reason"):
        Decision(allowed=True, tool="t", outcome="would_deny")
