"""derive_scope: plan ∩ ceiling, every violation listed; the grant wire form round-trips."""

from __future__ import annotations

import pytest

from agent_guard import GrantError, Plan, PlanRejected, Policy, Step, TaskScope, derive_scope, reasons
from agent_guard.authorization._scope import DETAIL_TYPE


def test_scope_conjoins_step_and_ceiling(plan: Plan, policy: Policy) -> None:
    """Each argument's effective constraint is the step's AND the ceiling's."""
    scope = derive_scope(plan, policy)
    assert scope.tools == ("crm_lookup", "send_email")
    lookup, email = scope.steps
    assert lookup.args["customer_id"] == ({"eq": "C-42"}, {"regex": r"C-\d+"})
    assert email.args["body"] == ({"any": True}, {"max_len": 2000})
    assert lookup.required == ("customer_id",)
    assert email.required == ("to", "subject", "body")  # the ceiling narrows subject and body: required
    assert scope.plan_hash == plan.plan_hash and scope.policy_hash == policy.policy_hash


def test_every_violation_is_listed(policy: Policy) -> None:
    """Unknown tool, unknown argument and a literal outside the ceiling are all reported at once."""
    bad = Plan(
        steps=[
            Step("delete_account", args={"customer_id": "C-1"}),
            Step("send_email", args={"to": "mallory@evil.com", "bcc": "x@example.com"}),
            Step("crm_lookup", args={"customer_id": {"in": ["C-1", "DROP TABLE"]}}),
        ]
    )
    with pytest.raises(PlanRejected) as info:
        derive_scope(bad, policy)
    err = info.value
    assert err.reason == reasons.PLAN_EXCEEDS_POLICY
    found = {(v.step, v.tool, v.argument) for v in err.violations}
    assert found == {(0, "delete_account", None), (1, "send_email", "to"), (1, "send_email", "bcc"),
                     (2, "crm_lookup", "customer_id")}
    assert "step 1 (send_email, argument 'bcc')" in str(err)


def test_max_calls_capped_by_ceiling() -> None:
    """A capability's max_calls caps how many calls one step may plan."""
    policy = Policy(agent_id="a", capabilities=[{"tool": "t", "max_calls": 2}])
    derive_scope(Plan(steps=[Step("t", max_calls=2)]), policy)
    with pytest.raises(PlanRejected, match="above the policy's limit"):
        derive_scope(Plan(steps=[Step("t", max_calls=3)]), policy)


def test_optional_argument_may_be_absent() -> None:
    """A narrowed argument may be absent only when the step AND the ceiling allow its absence."""
    def required(step_spec: dict[str, object], ceiling: dict[str, object]) -> bool:
        policy = Policy(agent_id="a", capabilities=[{"tool": "t", "args": {"x": ceiling}}])
        return derive_scope(Plan(steps=[Step("t", args={"x": step_spec})]), policy).steps[0].required == ("x",)

    narrow, narrow_optional = {"max": 100}, {"max": 100, "optional": True}
    anything, anything_optional = {"any": True}, {"any": True, "optional": True}
    assert not required(anything, anything)
    assert not required(narrow_optional, anything)
    assert not required(narrow_optional, narrow_optional)
    assert not required(anything, narrow_optional)
    assert required(narrow, anything)  # the step narrows without optional
    assert required(anything, narrow)  # the ceiling narrows without optional: the tool default is unvetted
    assert required(narrow_optional, narrow)  # a step's optional cannot relax the ceiling
    assert required(anything_optional, narrow)


def test_a_narrowing_ceiling_makes_the_argument_required_at_call_time() -> None:
    """Policy amount ≤ 100, step amount any: a call without amount is refused (the default is unvetted)."""
    from agent_guard.authorization._matcher import CompiledScope

    policy = Policy(agent_id="a", capabilities=[{"tool": "refund", "args": {"amount": {"max": 100}}}])
    scope = CompiledScope(derive_scope(Plan(steps=[Step("refund", args={"amount": {"any": True}})]), policy))
    missing = scope.match("refund", {})
    assert (missing.reason, missing.argument) == (reasons.ARGUMENT_MISMATCH, "amount")
    assert scope.match("refund", {"amount": 100}).reason is None
    assert scope.match("refund", {"amount": 101}).reason == reasons.ARGUMENT_MISMATCH


def test_authorization_details_round_trip(plan: Plan, policy: Policy) -> None:
    """The grant form has one RFC 9396 entry per step and rebuilds the same steps."""
    scope = derive_scope(plan, policy)
    details = scope.authorization_details()
    assert [d["type"] for d in details] == [DETAIL_TYPE, DETAIL_TYPE]
    assert details[0]["identifier"] == "crm_lookup" and details[0]["limits"] == {"max_calls": 1}
    again = TaskScope.from_authorization_details(details, agent_id="support-bot", ordered=False,
                                                 plan_hash=scope.plan_hash, policy_hash=scope.policy_hash)
    assert [(s.tool, s.args, s.required, s.max_calls) for s in again.steps] == [
        (s.tool, s.args, s.required, s.max_calls) for s in scope.steps
    ]


@pytest.mark.parametrize(
    "mutate",
    [
        lambda d: d[0].update(type="urn:other"),
        lambda d: d[0].update(actions=["delete"]),
        lambda d: d[0].update(args="x"),
        lambda d: d[0].update(limits={"max_calls": 0}),
        lambda d: d[0].update(step=5),
        lambda d: d[0].update(identifier=7),
        lambda d: d[0]["args"].update(customer_id="nope"),
        lambda d: d.clear(),
    ],
)
def test_malformed_details_fail_closed(plan: Plan, policy: Policy, mutate: object) -> None:
    """Any malformed entry raises GrantError instead of producing a scope."""
    details = derive_scope(plan, policy).authorization_details()
    mutate(details)  # type: ignore[operator]
    with pytest.raises(GrantError):
        TaskScope.from_authorization_details(details, agent_id="a", ordered=False, plan_hash="h", policy_hash="p")
