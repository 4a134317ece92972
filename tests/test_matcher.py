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


class _SneakyName(str):
    """A name that hashes and compares like 'to' (a dict lookup would take it for the real one)."""

    def __hash__(self) -> int:
        return hash("to")

    def __eq__(self, other: object) -> bool:
        return True


def _email_scope() -> CompiledScope:
    policy = Policy(agent_id="a", capabilities=[{"tool": "send", "args": {
        "to": {"email_domain_in": ["example.com"]}, "cc": {"each": {"email_domain_in": ["example.com"]}},
        "n": {"min": 0, "max": 5, "optional": True}}}])
    plan = Plan(steps=[Step("send", args={"to": {"any": True}, "cc": {"any": True},
                                          "n": {"any": True, "optional": True}})])
    return compiled(plan, policy)


def test_argument_names_must_be_exact_strings() -> None:
    """A non-str name, or a str subclass posing as a listed name, is refused argument_not_allowed, never raises."""
    scope = _email_scope()
    ok = {"to": "a@example.com", "cc": []}
    assert scope.match("send", ok).reason is None
    for bad in ({**ok, 1: "x"}, {**ok, ("to",): "x"}, {**ok, b"to": "x"}, {_SneakyName("x"): "a@example.com", "cc": []}):
        found = scope.match("send", bad)
        assert (found.reason, found.argument) == (reasons.ARGUMENT_NOT_ALLOWED, None), bad


def test_the_arguments_must_be_an_exact_dict() -> None:
    """A mapping that is not an exact dict could hide keys or lie about values: argument_mismatch."""
    from collections import UserDict
    from types import MappingProxyType

    scope = _email_scope()
    for args in (MappingProxyType({"to": "a@example.com", "cc": []}), UserDict({"to": "a@example.com", "cc": []})):
        assert scope.match("send", args).reason == reasons.ARGUMENT_MISMATCH  # type: ignore[arg-type]


def test_values_that_are_not_plain_json_are_mismatches() -> None:
    """Tuples, subclasses, NaN, huge ints and objects under a narrowed argument: argument_mismatch."""
    scope = _email_scope()
    for cc in (("a@example.com",), [object()], [["a@example.com"]], ["a@example.com"] * 1_001):
        found = scope.match("send", {"to": "a@example.com", "cc": cc})
        assert (found.reason, found.argument) == (reasons.ARGUMENT_MISMATCH, "cc"), cc
    for n in (float("nan"), float("inf"), 10**400, True, "3", 5.5):
        found = scope.match("send", {"to": "a@example.com", "cc": [], "n": n})
        assert (found.reason, found.argument) == (reasons.ARGUMENT_MISMATCH, "n"), n


def test_a_wrong_value_is_named_before_a_missing_argument() -> None:
    """With a bad 'to' and no 'cc', the denial names 'to' (what the call got wrong, not what it left out)."""
    found = _email_scope().match("send", {"to": "mallory@evil.com"})
    assert (found.reason, found.argument) == (reasons.ARGUMENT_MISMATCH, "to")
    found = _email_scope().match("send", {"to": "a@example.com"})
    assert (found.reason, found.argument) == (reasons.ARGUMENT_MISMATCH, "cc")
