"""Delegation and replanning: grants that only ever narrow."""

from __future__ import annotations

import threading

import pytest

from agent_guard import (
    AgentIdentity,
    ApprovalRequest,
    Capability,
    Guard,
    Plan,
    Policy,
    Step,
    current_task,
    reasons,
    verify_grant,
)
from agent_guard.exceptions import ConfigError, GrantError, PlanRejected
from agent_guard.testing import FakeClock, SpanCapture

POLICY = Policy(
    agent_id="support-bot",
    capabilities=[
        Capability("search", args={"q": {"max_len": 100}}),
        Capability("send_email", args={"to": {"any": True}, "body": {"max_len": 500}}),
        Capability("refund", args={"amount": {"min": 0, "max": 500}}),
    ],
)
ME = AgentIdentity(agent_id="support-bot", user_id="u-1")
PARENT = Plan(steps=[
    Step("search", args={"q": {"any": True}}, max_calls=3),
    Step("send_email", args={"to": "alice@example.com", "body": {"any": True}}),
])


@pytest.fixture
def guard(clock: FakeClock, spans: SpanCapture) -> Guard:
    return Guard(POLICY, tracer_provider=spans.provider, clock=clock)


def _rejected(info: pytest.ExceptionInfo[PlanRejected]) -> list[tuple[str, str | None]]:
    return [(v.reason, v.argument) for v in info.value.violations]


class TestChildScope:
    def test_a_child_cannot_widen_tool_value_or_budget(self, guard: Guard) -> None:
        """Each widening is refused exceeds_parent_scope, all listed at once."""
        with guard.task(PARENT, identity=ME):
            wider = Plan(steps=[
                Step("refund", args={"amount": 10}),
                Step("send_email", args={"to": "bob@example.com", "body": {"any": True}}),
                Step("search", args={"q": {"any": True}}, max_calls=4),
                Step("search", args={"q": {"any": True}, "lang": "en"}),
            ])
            with pytest.raises(PlanRejected) as info, guard.delegate(wider, agent_id="researcher"):
                pass
        assert info.value.reason == reasons.EXCEEDS_PARENT_SCOPE
        assert _rejected(info) == [
            (reasons.EXCEEDS_PARENT_SCOPE, None), (reasons.EXCEEDS_PARENT_SCOPE, "to"),
            (reasons.EXCEEDS_PARENT_SCOPE, None), (reasons.EXCEEDS_PARENT_SCOPE, "lang"),
        ]
        assert [v.step for v in info.value.violations] == [0, 1, 2, 3]

    def test_two_child_steps_share_one_parent_step(self, guard: Guard) -> None:
        """Budgets of child steps mapped to the same parent step add up."""
        with guard.task(PARENT, identity=ME):
            plan = Plan(steps=[Step("search", args={"q": "a"}, max_calls=2), Step("search", args={"q": "b"}, max_calls=2)])
            with pytest.raises(PlanRejected, match="max_calls 2 is above the 1 call"), \
                    guard.delegate(plan, agent_id="researcher"):
                pass

    def test_child_constraint_is_the_conjunction(self, guard: Guard) -> None:
        """A child's {"any": true} under a parent's literal keeps the literal."""
        with guard.task(PARENT, identity=ME):
            plan = Plan(steps=[Step("send_email", args={"to": {"any": True}, "body": {"any": True}})])
            with guard.delegate(plan, agent_id="mailer"):
                assert guard.authorize("send_email", {"to": "bob@example.com", "body": "x"}).reason == (
                    reasons.ARGUMENT_MISMATCH)
                assert guard.authorize("send_email", {"to": "alice@example.com", "body": "x"}).allowed

    def test_delegate_outside_a_task_is_a_config_error(self, guard: Guard) -> None:
        with pytest.raises(ConfigError, match="no current task"):
            guard.delegate(PARENT, agent_id="researcher")


class TestBudgets:
    def test_parent_three_child_two_parent_one_more(self, guard: Guard) -> None:
        """The child's calls count against the parent: 3 = 2 (child) + 1 (parent), exactly."""
        with guard.task(PARENT, identity=ME) as parent:
            with guard.delegate(Plan(steps=[Step("search", args={"q": {"any": True}}, max_calls=2)]),
                                agent_id="researcher"):
                assert guard.authorize("search", {"q": "a"}).allowed
                assert guard.authorize("search", {"q": "b"}).allowed
                assert guard.authorize("search", {"q": "c"}).reason == reasons.BUDGET_EXHAUSTED
            assert current_task() is parent
            assert guard.authorize("search", {"q": "d"}).allowed
            assert guard.authorize("search", {"q": "e"}).reason == reasons.BUDGET_EXHAUSTED

    def test_races_between_parent_and_child_never_overspend(self, guard: Guard) -> None:
        """8 threads on the parent and 8 on the child, budget 3 in all: exactly 3 allowed."""
        plan = Plan(steps=[Step("search", args={"q": {"any": True}}, max_calls=3),
                           Step("send_email", args={"to": "alice@example.com", "body": {"any": True}})])
        parent = guard.open(plan, identity=ME)
        child = guard.open_delegated(parent, Plan(steps=[Step("search", args={"q": {"any": True}}, max_calls=3)]),
                                     agent_id="researcher")
        allowed: list[bool] = []
        lock = threading.Lock()
        start = threading.Barrier(16)

        def call(task: object) -> None:
            start.wait()
            with guard.use(task):  # type: ignore[arg-type]
                ok = guard.authorize("search", {"q": "x"}).allowed
            with lock:
                allowed.append(ok)

        threads = [threading.Thread(target=call, args=(t,)) for t in [parent] * 8 + [child] * 8]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert allowed.count(True) == 3
        assert guard.store.remaining(parent.run_id) == (0, 1)
        guard.close(parent)

    def test_a_child_budget_above_what_is_left_is_refused(self, guard: Guard) -> None:
        """What the parent already spent is not available to a child."""
        with guard.task(PARENT, identity=ME):
            guard.authorize("search", {"q": "a"})
            guard.authorize("search", {"q": "b"})
            with pytest.raises(PlanRejected) as info, guard.delegate(
                    Plan(steps=[Step("search", args={"q": {"any": True}}, max_calls=2)]), agent_id="researcher"):
                pass
        assert info.value.reason == reasons.EXCEEDS_PARENT_SCOPE


class TestLifetime:
    def test_revoking_the_parent_refuses_the_child(self, guard: Guard) -> None:
        """A revoked parent (in the store) refuses the child's next call as revoked."""
        parent = guard.open(PARENT, identity=ME)
        child = guard.open_delegated(parent, Plan(steps=[Step("search", args={"q": {"any": True}})]),
                                     agent_id="researcher")
        parent.revoke()
        with guard.use(child):
            assert guard.authorize("search", {"q": "x"}).reason == reasons.REVOKED
        guard.close(parent)
        assert child.closed and child.revoked

    def test_closing_the_parent_closes_the_child(self, guard: Guard, spans: SpanCapture) -> None:
        parent = guard.open(PARENT, identity=ME)
        child = guard.open_delegated(parent, Plan(steps=[Step("search", args={"q": {"any": True}})]),
                                     agent_id="researcher")
        guard.close(parent)
        assert child.closed and child.revocation_reason == "task_exit"
        assert not guard.store.is_active(child.run_id)

    def test_child_lives_no_longer_than_the_parent(self, guard: Guard, clock: FakeClock) -> None:
        parent = guard.open(PARENT, identity=ME, ttl_s=60)
        clock.advance(50)
        child = guard.open_delegated(parent, Plan(steps=[Step("search", args={"q": {"any": True}})]),
                                     agent_id="researcher", ttl_s=300)
        assert child.expires_at <= parent.expires_at
        clock.advance(11)
        with guard.use(child):
            assert guard.authorize("search", {"q": "x"}).reason == reasons.EXPIRED
        guard.close(parent)

    def test_depth_limit(self, clock: FakeClock) -> None:
        """max_delegation_depth=1: a child may not delegate again."""
        guard = Guard(Policy(agent_id="support-bot", capabilities=POLICY.capabilities, max_delegation_depth=1),
                      clock=clock)
        step = Plan(steps=[Step("search", args={"q": {"any": True}})])
        with guard.task(PARENT, identity=ME), guard.delegate(step, agent_id="a"), \
                pytest.raises(PlanRejected, match="max_delegation_depth") as info, guard.delegate(step, agent_id="b"):
            pass
        assert info.value.reason == reasons.EXCEEDS_PARENT_SCOPE


class TestClaims:
    def test_nested_act_is_verified_with_only_the_jwks(self, guard: Guard, clock: FakeClock) -> None:
        """Same sub and txn, own jti, the parent's jti in tctx, the chain in a nested act."""
        with guard.task(PARENT, identity=ME) as parent, guard.delegate(
                Plan(steps=[Step("search", args={"q": {"any": True}})]), agent_id="researcher") as child:
            claims = verify_grant(child.grant, guard.jwks(), clock=clock)
            assert claims.act.sub == "researcher" and claims.act.act is not None
            assert claims.act.act.sub == "support-bot" and claims.actors == ("researcher", "support-bot")
            assert claims.sub == parent.claims.sub == "u-1" and claims.txn == parent.id
            assert claims.jti != parent.grant_id and claims.tctx.parent == parent.grant_id
            with pytest.raises(GrantError, match="delegation chain"):
                verify_grant(child.grant, guard.jwks(), clock=clock, max_delegation_depth=0)
            assert verify_grant(parent.grant, guard.jwks(), clock=clock, max_delegation_depth=0).actors == (
                "support-bot",)

    def test_child_span_nests_under_the_parent_and_names_the_agent(self, guard: Guard, spans: SpanCapture) -> None:
        with guard.task(PARENT, identity=ME), guard.delegate(
                Plan(steps=[Step("search", args={"q": {"any": True}})]), agent_id="researcher"):
            guard.authorize("search", {"q": "x"})
        parent_span, child_span = sorted(spans.named("invoke_agent"), key=lambda s: s.start_time or 0)
        assert child_span.parent is not None and child_span.parent.span_id == parent_span.context.span_id
        assert child_span.attributes["gen_ai.agent.id"] == "researcher"
        assert child_span.attributes["gen_ai.agent.name"] == "researcher"
        (call,) = spans.named("execute_tool")
        assert call.attributes["gen_ai.agent.id"] == "researcher"
        assert call.parent is not None and call.parent.span_id == child_span.context.span_id


class TestPerAgentSteps:
    def test_a_step_for_billing_is_only_billings(self, clock: FakeClock) -> None:
        """The parent cannot use billing's step; billing's delegated grant can; triage's cannot."""
        guard = Guard(POLICY, clock=clock)
        plan = Plan(steps=[Step("search", args={"q": {"any": True}}),
                           Step("refund", args={"amount": 20}, agent="billing")])
        with guard.task(plan, identity=ME):
            assert guard.authorize("refund", {"amount": 20}).reason == reasons.TOOL_NOT_IN_SCOPE
            with pytest.raises(PlanRejected, match=r"for agent 'triage'"), guard.delegate(
                    Plan(steps=[Step("refund", args={"amount": 20})]), agent_id="triage"):
                pass
            with guard.delegate(Plan(steps=[Step("refund", args={"amount": 20})]), agent_id="billing"):
                assert guard.authorize("refund", {"amount": 20}).allowed


class TestReplan:
    def test_narrower_replan_needs_no_approver(self, guard: Guard, spans: SpanCapture) -> None:
        """Within what is left: re-minted silently, old grant revoked 'replanned', both ids on the span."""
        with guard.task(PARENT, identity=ME) as task:
            assert guard.authorize("search", {"q": "a"}).allowed
            new = guard.replan(task, Plan(steps=[Step("search", args={"q": {"any": True}}, max_calls=2)]))
            assert current_task() is new and task.revocation_reason == "replanned"
            assert new.id == task.id and new.grant_id != task.grant_id
            assert guard.authorize("search", {"q": "b"}).allowed
            assert guard.authorize("send_email", {"to": "alice@example.com", "body": "x"}).reason == (
                reasons.TOOL_NOT_IN_SCOPE)
            with guard.use(task):
                assert guard.authorize("search", {"q": "c"}).reason == reasons.REVOKED
        assert new.closed and not guard.store.is_active(new.run_id)
        (span,) = spans.named("invoke_agent")
        grant_ids = {e.attributes["agent_guard.grant.id"] for e in span.events}
        assert grant_ids == {task.grant_id, new.grant_id}
        reasons_seen = [e.attributes.get("agent_guard.grant.revocation.reason") for e in span.events
                        if e.name == "agent_guard.grant.revoked"]
        assert reasons_seen == ["replanned", "task_exit"]

    def test_a_narrower_replan_keeps_the_old_constraints(self, guard: Guard) -> None:
        """{"any": true} where the old plan pinned a value is not a widening: the pin stays."""
        with guard.task(PARENT, identity=ME) as task:
            guard.replan(task, Plan(steps=[Step("send_email", args={"to": {"any": True}, "body": {"any": True}})]))
            assert guard.authorize("send_email", {"to": "bob@example.com", "body": "x"}).reason == (
                reasons.ARGUMENT_MISMATCH)

    def test_wider_replan_without_approver_is_refused(self, guard: Guard) -> None:
        with guard.task(PARENT, identity=ME) as task:
            with pytest.raises(PlanRejected) as info:
                guard.replan(task, Plan(steps=[Step("refund", args={"amount": 10})]))
            assert info.value.reason == reasons.APPROVAL_REQUIRED
            assert not task.revoked and guard.authorize("search", {"q": "a"}).allowed

    def test_wider_replan_goes_to_the_approver_with_the_diff(self, clock: FakeClock) -> None:
        seen: list[ApprovalRequest] = []

        def approver(request: ApprovalRequest) -> bool:
            seen.append(request)
            return request.kind == "replan"

        guard = Guard(POLICY, approver=approver, clock=clock)
        with guard.task(PARENT, identity=ME) as task:
            wider = Plan(steps=[Step("search", args={"q": {"any": True}}, max_calls=5),
                                Step("refund", args={"amount": 10})])
            new = guard.replan(task, wider)
            assert guard.authorize("refund", {"amount": 10}).allowed
            assert [guard.authorize("search", {"q": "a"}).allowed for _ in range(6)] == [True] * 5 + [False]
            assert new.revocation_reason == "plan_completed"
        (request,) = seen
        assert request.diff is not None and request.plan_hash == wider.plan_hash
        assert request.diff.tools_added == ("refund",)
        assert [w.kind for w in request.diff.widenings] == ["budget", "tool"]

    def test_a_refused_wider_replan_keeps_the_old_grant(self, clock: FakeClock) -> None:
        guard = Guard(POLICY, approver=lambda r: False, clock=clock)
        with guard.task(PARENT, identity=ME) as task:
            with pytest.raises(PlanRejected) as info:
                guard.replan(task, Plan(steps=[Step("refund", args={"amount": 10})]))
            assert info.value.reason == reasons.APPROVAL_DENIED and not task.revoked

    async def test_async_replan_and_delegate(self, guard: Guard) -> None:
        async with guard.task(PARENT, identity=ME) as task:
            async with guard.delegate(Plan(steps=[Step("search", args={"q": {"any": True}})]), agent_id="r"):
                assert (await guard.aauthorize("search", {"q": "x"})).allowed
            new = await guard.areplan(task, Plan(steps=[Step("search", args={"q": {"any": True}})]))
            assert (await guard.aauthorize("search", {"q": "y"})).allowed
        assert new.closed
