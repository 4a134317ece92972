"""Shared fixtures: a deterministic clock, an in-memory span capture, and a sample policy/plan."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step
from agent_guard.testing import FakeClock, SpanCapture


@pytest.fixture
def clock() -> FakeClock:
    """A clock that only moves when the test says so."""
    return FakeClock()


@pytest.fixture
def spans() -> Iterator[SpanCapture]:
    """Spans captured in memory through a real OpenTelemetry SDK provider."""
    capture = SpanCapture()
    yield capture
    capture.shutdown()


@pytest.fixture
def policy() -> Policy:
    """The support-bot ceiling used across the tests."""
    return Policy(
        agent_id="support-bot",
        max_ttl_s=900,
        capabilities=[
            Capability("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}),
            Capability("send_email", args={"to": {"glob": "*@example.com"}, "subject": {"max_len": 200},
                                           "body": {"max_len": 2000}}),
            Capability("refund", args={"amount": {"min": 0, "max": 500}, "order_id": {"prefix": "O-"}},
                       requires_approval=True),
        ],
    )


@pytest.fixture
def plan() -> Plan:
    """Look a customer up, then email her."""
    return Plan(
        goal="email Alice her summary",
        steps=[
            Step("crm_lookup", args={"customer_id": "C-42"}),
            Step("send_email", args={"to": "alice@example.com", "subject": {"any": True}, "body": {"any": True}}),
        ],
    )


@pytest.fixture
def identity() -> AgentIdentity:
    """The support bot acting for user u-1."""
    return AgentIdentity(agent_id="support-bot", user_id="u-1")


@pytest.fixture
def guard(policy: Policy, clock: FakeClock, spans: SpanCapture) -> Guard:
    """A guard with the sample policy, the fake clock and the span capture."""
    return Guard(policy, tracer_provider=spans.provider, clock=clock)
