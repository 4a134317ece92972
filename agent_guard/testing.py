"""Test helpers for agent_guard users: a deterministic clock, an in-memory span capture, and policy asserts.

``SpanCapture`` needs the OpenTelemetry SDK (``pip install 'agent-guard[otlp]'`` or
``pip install opentelemetry-sdk``). :func:`assert_allowed` and :func:`assert_denied` unit-test a
policy the way a test suite tests code::

    assert_allowed(policy, plan, "send_email", {"to": "alice@example.com", "body": "hi"})
    assert_denied(policy, plan, "send_email", {"to": "mallory@evil.com", "body": "hi"}, reason="argument_mismatch")
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from agent_guard._decision import Decision
from agent_guard.authorization._approval import ApprovalRequest
from agent_guard.authorization._models import AgentIdentity, Plan, Policy
from agent_guard.exceptions import ConfigError, MissingDependencyError, PlanRejected
from agent_guard.execution._guard import Guard
from agent_guard.reasons import ReasonCode
from agent_guard.telemetry import decision_rows, format_table

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan, TracerProvider

__all__ = ["FakeClock", "SpanCapture", "assert_allowed", "assert_denied", "decide_once"]


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


def _approve_all(request: ApprovalRequest) -> bool:
    return True


def decide_once(
    policy: Policy, plan: Plan, tool: str, args: Mapping[str, Any], *, identity: AgentIdentity | None = None,
    before: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> Decision:
    """The decision on one call in a fresh task of ``plan`` under ``policy`` (a fresh in-memory store).

    ``identity`` defaults to the policy's agent acting for user ``test-user``. Steps that need
    approval are approved (a unit test checks the policy, not the approver). ``before`` lists
    calls made first in the same task (to spend a budget or a limit). A plan the policy refuses
    gives a denial whose reason is the mint-time code (``plan_exceeds_policy``) and whose message
    lists the violations.
    """
    if not isinstance(policy, Policy) or not isinstance(plan, Plan):
        raise ConfigError("policy, plan: expected an agent_guard.Policy and an agent_guard.Plan")
    guard = Guard(policy, clock=FakeClock(), approver=_approve_all)
    who = identity or AgentIdentity(agent_id=policy.agent_id, user_id="test-user")
    try:
        task = guard.open(plan, identity=who)
    except PlanRejected as refused:
        reason: Any = refused.reason
        return Decision(allowed=False, tool=tool, reason=reason, message=str(refused))
    try:
        with guard.use(task):
            for name, earlier in before:
                guard.decide(name, dict(earlier))
            return guard.decide(tool, dict(args))
    finally:
        guard.close(task)


def assert_allowed(
    policy: Policy, plan: Plan, tool: str, args: Mapping[str, Any], *, identity: AgentIdentity | None = None,
    before: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> Decision:
    """Assert that ``policy`` allows ``tool(**args)`` in a task of ``plan``; returns the decision.

    Raises :class:`AssertionError` carrying the decision's message (the reason code and what was
    refused, never an argument value). See :func:`decide_once` for ``identity`` and ``before``.
    """
    decision = decide_once(policy, plan, tool, args, identity=identity, before=before)
    if not decision.allowed:
        raise AssertionError(f"expected the call to {tool!r} to be allowed, but: {decision.message}")
    return decision


def assert_denied(
    policy: Policy, plan: Plan, tool: str, args: Mapping[str, Any], *, reason: ReasonCode | None = None,
    identity: AgentIdentity | None = None, before: Sequence[tuple[str, Mapping[str, Any]]] = (),
) -> Decision:
    """Assert that ``policy`` refuses ``tool(**args)`` in a task of ``plan`` (with ``reason``, when given).

    Raises :class:`AssertionError` carrying the decision's message. See :func:`decide_once`.
    """
    decision = decide_once(policy, plan, tool, args, identity=identity, before=before)
    if decision.allowed:
        raise AssertionError(f"expected the call to {tool!r} to be denied, but it was allowed ({decision.message})")
    if reason is not None and decision.reason != reason:
        raise AssertionError(f"expected the call to {tool!r} to be denied {reason}, but: {decision.message}")
    return decision
