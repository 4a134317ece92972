"""Limits over time and money (in memory): running totals and rates, per task, user, agent and tenant."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from agent_guard import (
    AgentIdentity,
    Capability,
    ConfigError,
    Guard,
    InMemoryGrantStore,
    Limit,
    Plan,
    PlanRejected,
    Policy,
    Step,
    reasons,
    run_in_task_context,
)
from agent_guard._frozen import canonical_hash
from agent_guard.audit import DecisionLog, read_log
from agent_guard.execution._task import Task
from agent_guard.stores._base import Charge, LimitBucket
from agent_guard.testing import FakeClock, SpanCapture, assert_allowed, assert_denied

DAY = Limit(sum_of="amount", max=1000, per="user", window_s=86400)
RATE = Limit(calls=3, per="agent", window_s=60)
LABEL = "transfer: sum_of amount per user per 86400 s"


def bank_policy(*limits: Limit) -> Policy:
    """A bank bot that may transfer any amount to anyone, within ``limits``."""
    return Policy(agent_id="bank-bot", capabilities=[
        Capability("transfer", args={"amount": {"any": True}, "to": {"any": True}}, limits=list(limits)),
        Capability("balance", args={}),
    ])


def transfers(max_calls: int = 1000) -> Plan:
    """A plan of many transfers (the step budget never binds in these tests)."""
    return Plan(steps=[Step("transfer", args={"amount": {"any": True}, "to": {"any": True}}, max_calls=max_calls),
                       Step("balance", max_calls=max_calls)])


def user(name: str, tenant: str | None = None) -> AgentIdentity:
    """The bank bot acting for ``name``."""
    return AgentIdentity(agent_id="bank-bot", user_id=name, tenant=tenant)


def pay(guard: Guard, amount: Any, to: str = "bob") -> Any:
    """One transfer's decision in the current task."""
    return guard.decide("transfer", {"amount": amount, "to": to})


class TestTheModel:
    """Limit and Capability.limits refuse what they cannot enforce, naming the field and the fix."""

    @pytest.mark.parametrize(("kwargs", "fragment"), [
        ({"per": "user", "window_s": 60}, "give exactly one"),
        ({"sum_of": "amount", "calls": 3, "max": 5, "per": "user", "window_s": 60}, "give exactly one"),
        ({"sum_of": "amount", "per": "user", "window_s": 60}, "needs max"),
        ({"calls": 3, "max": 5, "per": "user", "window_s": 60}, "drop max"),
        ({"calls": 3, "per": "user"}, "window_s: a limit per user needs a window"),
        ({"sum_of": "amount", "max": True, "per": "task"}, "finite number"),
        ({"sum_of": "amount", "max": float("nan"), "per": "task"}, "finite number"),
        ({"sum_of": "amount", "max": -5, "per": "task"}, "above 0"),
        ({"sum_of": "amount", "max": 2**60, "per": "task"}, "2**53"),
        ({"calls": "3", "per": "task"}, "whole number"),
        ({"calls": 3, "per": "task", "window_s": 1.5}, "whole number"),
        ({"calls": 3, "per": "everyone", "window_s": 60}, "per"),
    ])
    def test_bad_limits_are_config_errors(self, kwargs: dict[str, Any], fragment: str) -> None:
        """Each malformed limit is refused at load with a ConfigError that says what to fix."""
        with pytest.raises(ConfigError, match="Limit") as err:
            Limit(**kwargs)
        assert fragment in str(err.value)

    def test_sum_of_must_name_an_argument_of_the_capability(self) -> None:
        """A limit summing an argument the capability does not list could never be charged."""
        with pytest.raises(ConfigError, match=r"limits\[0\]\.sum_of: 'amount' is not an argument of 'transfer'"):
            Capability("transfer", args={"to": {"any": True}}, limits=[DAY])

    def test_at_most_eight_limits(self) -> None:
        """Each limit is one more bucket per call: the count is bounded."""
        with pytest.raises(ConfigError, match="limits"):
            Capability("balance", limits=[Limit(calls=n, per="task") for n in range(1, 10)])

    def test_limits_load_from_a_policy_file_and_enter_the_policy_hash(self, tmp_path: Any) -> None:
        """A YAML policy carries limits; they change the hash; a policy without limits hashes as before."""
        path = tmp_path / "policy.json"
        path.write_text(json.dumps({"agent_id": "bank-bot", "capabilities": [
            {"tool": "transfer", "args": {"amount": {"min": 0}},
             "limits": [{"sum_of": "amount", "max": 1000, "per": "user", "window_s": 86400}]}]}))
        loaded = Policy.from_file(path)
        assert loaded.capabilities[0].limits == (Limit(sum_of="amount", max=1000, per="user", window_s=86400),)
        plain = Policy(agent_id="bank-bot", capabilities=[Capability("transfer", args={"amount": {"min": 0}})])
        assert loaded.policy_hash != plain.policy_hash
        tighter = Policy.model_validate({**loaded.model_dump(), "capabilities": [
            {**loaded.capabilities[0].model_dump(), "limits": [{"sum_of": "amount", "max": 999, "per": "user",
                                                                "window_s": 86400}]}]})
        assert tighter.policy_hash != loaded.policy_hash
        # A policy without limits keeps the hash it had before limits existed (grants in flight stay valid).
        before = {"agent_id": "bank-bot", "capabilities": [
            {"tool": "transfer", "args": {"amount": {"min": 0}}, "requires_approval": False, "max_calls": None,
             "description": None}], "max_ttl_s": 900, "max_delegation_depth": 2}
        assert plain.policy_hash == canonical_hash(before)

    def test_a_step_must_list_the_summed_argument(self) -> None:
        """A plan step that does not list `amount` could never be charged: the plan is refused at mint."""
        guard = Guard(bank_policy(DAY))
        with pytest.raises(PlanRejected) as refused:
            guard.open(Plan(steps=[Step("transfer", args={"to": {"any": True}})]), identity=user("u-1"))
        (violation,) = refused.value.violations
        assert violation.argument == "amount" and LABEL in violation.message

    def test_the_grant_carries_the_limits_for_a_verify_only_worker(self, clock: FakeClock) -> None:
        """Each step's authorization_details entry holds its rules; a worker with only the JWKS enforces them."""
        minter = Guard(bank_policy(DAY, RATE), clock=clock)
        with minter.task(transfers(), identity=user("u-1")) as task:
            detail = task.claims.authorization_details[0]
            assert detail["limits"] == {"max_calls": 1000, "rules": [
                {"sum_of": "amount", "max": 1000, "per": "user", "window_s": 86400},
                {"calls": 3, "per": "agent", "window_s": 60}]}
            assert "rules" not in task.claims.authorization_details[1]["limits"]  # no limits: as before
            worker = Guard(jwks=minter.jwks(), store=minter.store, clock=clock)
            with worker.attach(task.grant) as attached:
                assert attached.scope.steps[0].limits == (DAY, RATE)
                assert [pay(worker, 300).allowed for _ in range(4)] == [True, True, True, False]
                assert pay(worker, 1).limit == "transfer: calls per agent per 60 s"  # 901 fits, the rate does not

    def test_a_forged_malformed_rule_is_an_invalid_grant(self) -> None:
        """Rules in a grant are validated like a policy's: a bad one fails the scope (GrantError)."""
        from agent_guard.authorization._scope import TaskScope
        from agent_guard.exceptions import GrantError

        entry = {"type": "urn:agent-guard:tool-call", "identifier": "transfer", "actions": ["invoke"],
                 "args": {"amount": [{"any": True}]}, "required": [], "step": 0,
                 "limits": {"max_calls": 1, "rules": [{"sum_of": "amount", "max": "lots", "per": "user"}]}}
        with pytest.raises(GrantError, match="malformed limit"):
            TaskScope.from_authorization_details([entry], agent_id="a", ordered=False, plan_hash="h", policy_hash="p")


class TestRunningTotals:
    """sum_of: exact under concurrency, per user, refused with the limit's name and never a value."""

    def test_eight_threads_fifty_transfers_of_30_allow_exactly_33(self) -> None:
        """8 threads x 50 transfer(amount=30) against 1,000 per user per day: exactly 33 allowed (990)."""
        guard = Guard(bank_policy(DAY))
        start = threading.Barrier(8)
        allowed: list[int] = []
        reasons_seen: set[str | None] = set()
        lock = threading.Lock()

        def worker() -> None:
            start.wait()
            mine, seen = 0, set()
            for _ in range(50):
                decision = pay(guard, 30)
                mine += decision.allowed
                if not decision.allowed:
                    seen.add(decision.reason)
            with lock:
                allowed.append(mine)
                reasons_seen.update(seen)

        with guard.task(transfers(max_calls=1000), identity=user("u-1")) as task:
            threads = [threading.Thread(target=run_in_task_context(worker)) for _ in range(8)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            store = guard.store
            assert isinstance(store, InMemoryGrantStore)
            assert store.remaining(task.run_id) == (1000 - 33, 1000)  # the step was charged with each allowed call
        assert sum(allowed) == 33 and reasons_seen == {reasons.LIMIT_EXCEEDED}
        bucket = task._charger._by_step[0].rules[0].bucket  # type: ignore[union-attr]
        assert store.limits.total(bucket.key, guard.clock(), bucket.window_s) == 990.0

    def test_refusal_names_the_limit_never_a_value(self, clock: FakeClock, tmp_path: Any) -> None:
        """The decision, its message, its span and its log record name the limit; no amount or total appears."""
        spans = SpanCapture()
        with DecisionLog(tmp_path / "audit.jsonl") as log:
            guard = Guard(bank_policy(DAY), clock=clock, tracer_provider=spans.provider, decision_log=log)
            with guard.task(transfers(), identity=user("u-1")):
                assert guard.authorize("transfer", {"amount": 777, "to": "bob"}).allowed
                refused = guard.authorize("transfer", {"amount": 555, "to": "bob"})
        assert (refused.reason, refused.limit, refused.outcome) == (reasons.LIMIT_EXCEEDED, LABEL, "deny")
        assert f"(limit: {LABEL})" in refused.message
        span = spans.named("execute_tool")[-1]
        assert span.attributes["agent_guard.decision.limit"] == LABEL
        (record,) = [r for r in read_log(tmp_path / "audit.jsonl") if r.get("reason") == reasons.LIMIT_EXCEEDED]
        assert record["limit"] == LABEL
        assert "arguments" not in record
        ids = {"task", "grant", "trace_id", "hash", "prev", "time", "seq", "line", "v"}
        random_ids = {"agent_guard.grant.id", "agent_guard.task.id"}
        shown = [refused.message, *(str(v) for k, v in span.attributes.items() if k not in random_ids),
                 *(str(v) for k, v in record.items() if k not in ids)]
        for value in ("555", "777", "1332"):  # the amounts and the total appear nowhere (ids are random hex)
            assert not any(value in text for text in shown)
        spans.shutdown()

    def test_a_value_that_is_not_an_amount_is_argument_mismatch_and_charges_nothing(self, clock: FakeClock) -> None:
        """Absent, string, bool, negative, NaN, huge or a subclass: argument_mismatch naming `amount`, nothing charged."""

        class Sneaky(int):
            pass

        guard = Guard(bank_policy(DAY), clock=clock)
        with guard.task(transfers(), identity=user("u-1")):
            for bad in ("30", True, -5, float("nan"), float("inf"), 2**60, Sneaky(5), None, [30]):
                decision = pay(guard, bad)
                assert (decision.reason, decision.argument) == (reasons.ARGUMENT_MISMATCH, "amount"), bad
                assert "number from 0 to 2**53" in decision.message
            assert guard.decide("transfer", {"to": "bob"}).reason == reasons.ARGUMENT_MISMATCH  # absent
            assert pay(guard, 1000).allowed  # nothing above was charged: the whole 1,000 is still there
            assert pay(guard, 0.5).reason == reasons.LIMIT_EXCEEDED

    def test_per_user_totals_do_not_leak_across_users_but_span_their_tasks(self, clock: FakeClock) -> None:
        """u-1 spends its limit over two tasks; u-2 (and u-1 in another tenant) still has all of it."""
        guard = Guard(bank_policy(DAY), clock=clock)
        with guard.task(transfers(), identity=user("u-1")):
            assert pay(guard, 600).allowed
        with guard.task(transfers(), identity=user("u-1")):
            assert pay(guard, 400).allowed and pay(guard, 1).reason == reasons.LIMIT_EXCEEDED
        with guard.task(transfers(), identity=user("u-2")):
            assert pay(guard, 1000).allowed
        with guard.task(transfers(), identity=user("u-1", tenant="acme")):
            assert pay(guard, 1000).allowed
        clock.advance(86400)  # the next day (fixed windows aligned to the epoch)
        with guard.task(transfers(), identity=user("u-1")):
            assert pay(guard, 1000).allowed

    def test_totals_are_exact_in_floating_point_as_the_redis_script_adds(self, clock: FakeClock) -> None:
        """Amounts add as IEEE doubles, as Lua adds them (ten 0.1s are not 1.0); the cap is compared after adding."""
        guard = Guard(bank_policy(Limit(sum_of="amount", max=1, per="task")), clock=clock)
        with guard.task(transfers(), identity=user("u-1")):
            results = [pay(guard, 0.1).allowed for _ in range(11)]
        total = 0.0
        expected = []
        for _ in range(11):
            expected.append(total + 0.1 <= 1)
            total = total + 0.1 if expected[-1] else total
        assert results == expected and results.count(True) == 10  # ten 0.1s sum to 0.9999999999999999

    def test_async_decisions_charge_the_same_limits(self, clock: FakeClock) -> None:
        """aauthorize goes through the same charges (the store's default async path)."""
        import asyncio

        guard = Guard(bank_policy(DAY), clock=clock)

        async def run() -> list[str | None]:
            async with guard.task(transfers(), identity=user("u-1")):
                return [(await guard.aauthorize("transfer", {"amount": 400, "to": "b"})).reason for _ in range(3)]

        assert asyncio.run(run()) == [None, None, reasons.LIMIT_EXCEEDED]


class TestRates:
    """calls: a rate per window, with windows aligned to the epoch."""

    def test_a_rate_limit_opens_again_after_its_window(self, clock: FakeClock) -> None:
        """3 calls per agent per minute: the 4th is refused; the next window allows 3 more."""
        guard = Guard(bank_policy(RATE), clock=clock)
        assert clock.now % 60 == 0  # the fake clock starts on a window boundary
        with guard.task(transfers(), identity=user("u-1")):
            assert [pay(guard, 1).reason for _ in range(4)] == [None, None, None, reasons.LIMIT_EXCEEDED]
            clock.advance(59.9)
            assert pay(guard, 1).reason == reasons.LIMIT_EXCEEDED  # same window
            clock.advance(0.1)
            assert [pay(guard, 1).allowed for _ in range(4)] == [True, True, True, False]

    def test_a_clock_that_goes_back_never_reopens_a_spent_window(self, clock: FakeClock) -> None:
        """After spending the window of 08:01, a clock set back to 08:00 keeps charging 08:01's total."""
        guard = Guard(bank_policy(RATE), clock=clock)
        with guard.task(transfers(), identity=user("u-1")):
            clock.advance(60)
            assert [pay(guard, 1).allowed for _ in range(3)] == [True] * 3
            clock.advance(-60)  # NTP step back
            assert pay(guard, 1).reason == reasons.LIMIT_EXCEEDED
            clock.advance(120)  # forward: a new window, as the passing of time would open it
            assert pay(guard, 1).allowed

    def test_per_agent_is_the_root_agent_for_a_delegated_child(self, clock: FakeClock) -> None:
        """A sub-agent's calls count against the agent that delegated (delegating opens no fresh rate)."""
        guard = Guard(bank_policy(RATE), clock=clock)
        with guard.task(transfers(), identity=user("u-1")):
            assert pay(guard, 1).allowed and pay(guard, 1).allowed
            child_plan = Plan(steps=[Step("transfer", args={"amount": {"any": True}, "to": {"any": True}},
                                          max_calls=5)])
            with guard.delegate(child_plan, agent_id="payer") as child:
                assert child.scope.steps[0].limits == (RATE,)
                assert pay(guard, 1).allowed
                assert pay(guard, 1).reason == reasons.LIMIT_EXCEEDED
            assert pay(guard, 1).reason == reasons.LIMIT_EXCEEDED

    def test_a_child_shares_the_users_running_total(self, clock: FakeClock) -> None:
        """Per user: the child of u-1's task spends u-1's total."""
        guard = Guard(bank_policy(DAY), clock=clock)
        with guard.task(transfers(), identity=user("u-1")):
            assert pay(guard, 700).allowed
            child_plan = Plan(steps=[Step("transfer", args={"amount": {"any": True}, "to": {"any": True}},
                                          max_calls=5)])
            with guard.delegate(child_plan, agent_id="payer"):
                assert pay(guard, 400).reason == reasons.LIMIT_EXCEEDED
                assert pay(guard, 300).allowed
            assert pay(guard, 1).reason == reasons.LIMIT_EXCEEDED

    def test_per_task_without_a_window_holds_for_the_whole_task_and_its_replans(self, clock: FakeClock) -> None:
        """window_s=None: one total for the task (its replans too); a new task starts at 0."""
        guard = Guard(bank_policy(Limit(calls=2, per="task")), clock=clock)
        with guard.task(transfers(), identity=user("u-1"), ttl_s=900) as task:
            clock.advance(600)  # a window-less limit has no window to roll over
            assert [pay(guard, 1).allowed for _ in range(2)] == [True, True]
            task = guard.replan(task, transfers(max_calls=10))
            assert pay(guard, 1).reason == reasons.LIMIT_EXCEEDED
        with guard.task(transfers(), identity=user("u-1")):
            assert pay(guard, 1).allowed

    def test_per_tenant(self, clock: FakeClock) -> None:
        """Users of one tenant share a per-tenant rate; another tenant has its own."""
        guard = Guard(bank_policy(Limit(calls=1, per="tenant", window_s=3600)), clock=clock)
        with guard.task(transfers(), identity=user("u-1", tenant="acme")):
            assert pay(guard, 1).allowed
        with guard.task(transfers(), identity=user("u-2", tenant="acme")):
            assert pay(guard, 1).reason == reasons.LIMIT_EXCEEDED
        with guard.task(transfers(), identity=user("u-2", tenant="globex")):
            assert pay(guard, 1).allowed


class TestTheStore:
    """InMemoryGrantStore.consume: step and limits in one atomic operation, or nothing."""

    def test_budget_first_then_limits_and_a_refusal_charges_nothing(self) -> None:
        """Exhausted budget reads exhausted; a charge without room reads limit_exceeded and leaves the step as it was."""
        clock = FakeClock()
        store = InMemoryGrantStore(clock=clock)
        store.activate("run", budgets=[2], ordered=False, expires_at=clock.now + 300)
        bucket = LimitBucket(key="k", tag="k", max=10, window_s=60, until=0, label="t: calls per task per 60 s")
        other = LimitBucket(key="k2", tag="k2", max=1, window_s=0, until=clock.now + 300, label="t: calls per task")
        assert store.consume("run", [0], [Charge(bucket, 6), Charge(other, 1)]) == ("ok", 0)
        refused = store.consume("run", [0], [Charge(bucket, 3), Charge(other, 1)])
        assert refused == ("limit_exceeded", 1) and refused.limit == 1
        assert store.remaining("run") == (1,)
        assert store.limits.total("k", clock.now, 60) == 6  # the first charge fitted, but nothing was charged
        assert store.consume("run", [0], [Charge(bucket, 4)]) == ("completed", 0)
        assert store.consume("run", [0], [Charge(bucket, 0)]).status == "exhausted"

    def test_old_buckets_are_swept(self) -> None:
        """Buckets past the window after their latest one are dropped as the table grows (memory stays bounded)."""
        clock = FakeClock()
        store = InMemoryGrantStore(clock=clock)
        store.activate("run", budgets=[10_000], ordered=False, expires_at=clock.now + 900)
        for i in range(500):
            bucket = LimitBucket(key=f"u{i}", tag=f"u{i}", max=5, window_s=60, until=0, label="x")
            assert store.consume("run", [0], [Charge(bucket, 1)]).status == "ok"
            if i % 100 == 99:
                clock.advance(120)
        assert len(store.limits) < 250


def test_a_step_without_limits_does_no_limit_work(
    clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The plain path is untouched: a task whose steps have no limits never builds charges."""

    def boom(*args: Any) -> Any:
        raise AssertionError("charges built for a task without limits")

    monkeypatch.setattr(Task, "charges", boom)
    guard = Guard(bank_policy(), clock=clock)
    with guard.task(transfers(), identity=user("u-1")):
        assert pay(guard, 5).allowed and guard.decide("balance", {}).allowed


def test_policy_unit_tests_with_the_testing_helpers() -> None:
    """agent_guard.testing.assert_allowed/assert_denied state a policy's behaviour in one line each."""
    policy = bank_policy(DAY)
    assert_allowed(policy, transfers(), "transfer", {"amount": 1000, "to": "bob"})
    assert_denied(policy, transfers(), "transfer", {"amount": 1001, "to": "bob"}, reason="limit_exceeded")
    assert_denied(policy, transfers(), "transfer", {"amount": 600, "to": "bob"}, reason="limit_exceeded",
                  before=[("transfer", {"amount": 500, "to": "carol"})])
    assert_denied(policy, transfers(), "transfer", {"amount": "all", "to": "bob"}, reason="argument_mismatch")
    with pytest.raises(AssertionError, match=r"limit_exceeded.*limit: transfer: sum_of amount per user"):
        assert_allowed(policy, transfers(), "transfer", {"amount": 5000, "to": "bob"})
    with pytest.raises(AssertionError, match="to be denied, but it was allowed"):
        assert_denied(policy, transfers(), "transfer", {"amount": 5, "to": "bob"})
    with pytest.raises(AssertionError, match=r"to be denied tool_not_in_scope, but.*argument_mismatch"):
        assert_denied(policy, transfers(), "transfer", {"amount": -1, "to": "bob"}, reason="tool_not_in_scope")
    # a plan the policy refuses is a denial with the mint-time reason
    wider = Plan(steps=[Step("wire", args={})])
    assert_denied(policy, wider, "wire", {}, reason="plan_exceeds_policy")
