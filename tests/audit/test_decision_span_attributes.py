"""Decision spans built from kept attributes carry exactly what a span built afresh would carry.

A plain allow is one ``Decision`` object per plan step of a task, so the span emitter keeps its
attributes (all but the call id) and its span name; these tests hold it to the attributes of
:meth:`SpanEmitter._attributes`, the one definition, whatever the calls in between.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from agent_guard import AgentIdentity, Guard, Plan, Policy, Step
from agent_guard import semconv as sc
from agent_guard.audit._spans import _ALLOWED_KEPT, SpanEmitter
from agent_guard.testing import FakeClock, SpanCapture


def attrs(span: Any) -> dict[str, Any]:
    return dict(span.attributes or {})


def expected(guard: Guard, step: int, *, call_id: str | None = None, description: str | None = None) -> dict[str, Any]:
    """The attributes of an allowed call of ``step`` as built afresh, without the kept table."""
    task = guard.current_task()
    assert task is not None
    return SpanEmitter._attributes(task.allow(step), task, call_id, description)


@pytest.fixture
def many_calls_plan() -> Plan:
    return Plan(goal="look up twice, email once", steps=[
        Step("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}, max_calls=20),
        Step("send_email", args={"to": "alice@example.com", "subject": {"any": True}, "body": {"any": True}}),
    ])


def test_repeated_calls_of_one_step_carry_their_own_call_id_and_description(
    guard: Guard, many_calls_plan: Plan, identity: AgentIdentity, spans: SpanCapture
) -> None:
    calls: list[tuple[str | None, str | None]] = [
        ("c1", "Look a customer up."), ("c2", "Look a customer up."), (None, "Look a customer up."),
        ("c4", None), ("c5", "Another description."), (None, None), ("c7", "x" * 300),
    ]
    with guard.task(many_calls_plan, identity=identity):
        want = [expected(guard, 0, call_id=c, description=d) for c, d in calls]
        for call_id, description in calls:
            with guard.tool_call("crm_lookup", {"customer_id": "C-1"}, call_id=call_id, description=description):
                pass
    got = [attrs(s) for s in spans.named("execute_tool")]
    assert got == want
    assert [g.get(sc.TOOL_CALL_ID) for g in got] == [c for c, _ in calls]
    assert len(got[-1][sc.TOOL_DESCRIPTION]) == 256
    assert all(s.name == "execute_tool crm_lookup" and s.status.status_code == StatusCode.UNSET
               for s in spans.named("execute_tool"))


def test_two_tasks_of_one_plan_name_their_own_task_and_grant(
    guard: Guard, many_calls_plan: Plan, identity: AgentIdentity, spans: SpanCapture
) -> None:
    ids = []
    for _ in range(2):
        with guard.task(many_calls_plan, identity=identity) as task:
            guard.authorize("crm_lookup", {"customer_id": "C-1"}, call_id="c1")
            ids.append((task.id, task.grant_id))
    got = [(attrs(s)[sc.TASK_ID], attrs(s)[sc.GRANT_ID]) for s in spans.named("execute_tool")]
    assert got == ids and ids[0] != ids[1]


def test_arguments_recorded_with_kept_attributes(
    policy: Policy, many_calls_plan: Plan, identity: AgentIdentity, clock: FakeClock, spans: SpanCapture
) -> None:
    guard = Guard(policy, tracer_provider=spans.provider, clock=clock, record_arguments=True)
    with guard.task(many_calls_plan, identity=identity):
        for n, call_id in enumerate(("c1", None, "c3")):
            with guard.tool_call("crm_lookup", {"customer_id": f"C-{n}"}, call_id=call_id) as call:
                call.record_result({"n": n})
    got = [attrs(s) for s in spans.named("execute_tool")]
    assert [g[sc.TOOL_CALL_ARGUMENTS] for g in got] == ['{"customer_id": "C-0"}', '{"customer_id": "C-1"}',
                                                          '{"customer_id": "C-2"}']
    assert [g.get(sc.TOOL_CALL_ID) for g in got] == ["c1", None, "c3"]
    assert [g[sc.TOOL_CALL_RESULT] for g in got] == ['{"n": 0}', '{"n": 1}', '{"n": 2}']


def test_denials_and_would_deny_are_built_afresh(
    policy: Policy, plan: Plan, identity: AgentIdentity, clock: FakeClock, spans: SpanCapture
) -> None:
    enforce = Guard(policy, tracer_provider=spans.provider, clock=clock)
    shadow = Guard(policy, tracer_provider=spans.provider, clock=clock, mode="shadow")
    for guard in (enforce, shadow):
        with guard.task(plan, identity=identity):
            guard.authorize("crm_lookup", {"customer_id": "C-42"}, call_id="ok")
            guard.authorize("delete_customer", {"customer_id": "C-42"}, call_id="no")
            guard.authorize("send_email", {"to": "mallory@evil.com", "subject": "s", "body": "b"}, call_id="no2")
    rows = [(attrs(s)[sc.DECISION_OUTCOME], attrs(s).get(sc.DECISION_REASON), s.status.status_code,
             s.status.description) for s in spans.named("execute_tool")]
    assert rows == [
        ("allow", None, StatusCode.UNSET, None),
        ("deny", "tool_not_in_scope", StatusCode.ERROR, "tool_not_in_scope"),
        ("deny", "argument_mismatch", StatusCode.ERROR, "argument_mismatch"),
        ("allow", None, StatusCode.UNSET, None),
        ("would_deny", "tool_not_in_scope", StatusCode.UNSET, None),
        ("would_deny", "argument_mismatch", StatusCode.UNSET, None),
    ]
    assert attrs(spans.named("execute_tool")[1])[sc.ERROR_TYPE] == "agent_guard.ToolCallDenied"


def test_the_kept_table_is_bounded(
    policy: Policy, identity: AgentIdentity, clock: FakeClock, spans: SpanCapture
) -> None:
    """More plain allows than the table holds: it is emptied and refilled, and every span stays right."""
    guard = Guard(policy, tracer_provider=spans.provider, clock=clock)
    plan = Plan(steps=[Step("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}, max_calls=2)])
    tasks = []
    for _ in range(_ALLOWED_KEPT + 10):
        task = guard.open(plan, identity=identity)
        with guard.use(task):
            guard.authorize("crm_lookup", {"customer_id": "C-1"}, call_id="first")
        tasks.append(task)
        assert len(guard._spans._allowed) <= _ALLOWED_KEPT
    for task in tasks[:3]:  # tasks whose entries were dropped: built again, same attributes
        with guard.use(task):
            guard.authorize("crm_lookup", {"customer_id": "C-1"}, call_id="again")
        guard.close(task)
    for task in tasks[3:]:
        guard.close(task)
    spans_by_task: dict[str, list[dict[str, Any]]] = {}
    for span in spans.named("execute_tool"):
        spans_by_task.setdefault(attrs(span)[sc.TASK_ID], []).append(attrs(span))
    for task in tasks[:3]:
        first, again = spans_by_task[task.id]
        assert {**first, sc.TOOL_CALL_ID: "again"} == again and first[sc.GRANT_ID] == task.grant_id
