"""The compiled scope: first matching step in plan order, and the literal index for large plans."""

from __future__ import annotations

from agent_guard import Plan, Policy, Step, derive_scope, reasons
from agent_guard.authorization._matcher import CompiledScope


def compiled(plan: Plan, policy: Policy) -> CompiledScope:
    return CompiledScope(derive_scope(plan, policy))


def test_candidates_in_plan_order(policy: Policy) -> None:
    """Every step that accepts the call is a candidate, in plan order."""
    scope = compiled(Plan(steps=[Step("crm_lookup", args={"customer_id": {"any": True}}),
                                 Step("send_email", args={"to": "a@example.com"}),
                                 Step("crm_lookup", args={"customer_id": "C-1"})]), policy)
    assert list(scope.match("crm_lookup", {"customer_id": "C-1"}).candidates) == [0, 2]
    assert list(scope.match("crm_lookup", {"customer_id": "C-2"}).candidates) == [0]


def test_reason_precedence(policy: Policy) -> None:
    """A value refusal beats an unlisted argument when steps disagree; the argument is named."""
    scope = compiled(Plan(steps=[Step("send_email", args={"to": "a@example.com"}),
                                 Step("send_email", args={"to": "b@example.com", "subject": {"any": True}})]), policy)
    m = scope.match("send_email", {"to": "c@example.com", "subject": "s"})
    assert (m.reason, m.argument) == (reasons.ARGUMENT_MISMATCH, "to")
    m = scope.match("send_email", {"to": "a@example.com", "cc": "x"})
    assert (m.reason, m.argument) == (reasons.ARGUMENT_NOT_ALLOWED, "cc")


def test_literal_index_matches_the_full_scan(policy: Policy) -> None:
    """With many same-tool steps the index finds the same candidates and the same denial reasons."""
    steps = [Step("send_email", args={"to": f"u{i % 50}@example.com", "body": {"any": True}}) for i in range(200)]
    steps.append(Step("send_email", args={"to": {"any": True}, "subject": {"any": True}}))
    plan = Plan(steps=steps)
    scope = compiled(plan, policy)
    assert "send_email" not in scope.indexes  # the last step pins nothing, so no index
    indexed = compiled(Plan(steps=steps[:-1]), policy)
    assert indexed.indexes["send_email"][0] == "to"
    plain = compiled(Plan(steps=steps[:-1]), policy)
    plain.indexes = {}  # the same scope without its index: the reference full scan
    for args in ({"to": "u7@example.com", "body": "b"}, {"to": "u7@example.com", "bcc": "x"},
                 {"to": "zz@example.com"}, {"to": 7}, {"to": ["u7@example.com"]}, {"body": "b"}):
        a, b = indexed.match("send_email", args), plain.match("send_email", args)
        assert (a.candidates, a.reason, a.argument) == (b.candidates, b.reason, b.argument), args
    assert indexed.match("send_email", {"to": "u7@example.com", "body": "b"}).candidates == [7, 57, 107, 157]


def test_index_is_type_strict(policy: Policy) -> None:
    """1, 1.0 and True are different literals for the index, as for eq."""
    policy = Policy(agent_id="a", capabilities=[{"tool": "t", "args": {"n": {"any": True}}}])
    scope = compiled(Plan(steps=[Step("t", args={"n": 1})] * 6), policy)
    assert list(scope.match("t", {"n": 1}).candidates) == [0, 1, 2, 3, 4, 5]
    assert scope.match("t", {"n": True}).reason == reasons.ARGUMENT_MISMATCH
    assert scope.match("t", {"n": 1.0}).reason == reasons.ARGUMENT_MISMATCH
