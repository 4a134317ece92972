"""The Guard: tasks, every in-process reason code, budgets, revocation, approvals, isolation."""

from __future__ import annotations

import asyncio
import contextvars
import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from agent_guard import (
    AgentIdentity,
    ApprovalRequest,
    Capability,
    ConfigError,
    ConsumeResult,
    GrantError,
    Guard,
    InMemoryGrantStore,
    Plan,
    PlanRejected,
    Policy,
    Step,
    ToolCallDenied,
    current_task,
    reasons,
    run_in_task_context,
)
from agent_guard.testing import FakeClock, SpanCapture


def crm_lookup(customer_id: str) -> dict[str, str]:
    """Look a customer up."""
    return {"id": customer_id}


class TestQuickstart:
    """The issue's contract, call by call."""

    def test_allowed_mismatch_out_of_scope_and_no_grant(self, guard: Guard, plan: Plan,
                                                         identity: AgentIdentity) -> None:
        """Planned call runs, wrong literal is argument_mismatch, unplanned tool is tool_not_in_scope."""
        lookup = guard.wrap(crm_lookup)
        with guard.task(plan, identity=identity, ttl_s=300) as task:
            assert task.grant.count(".") == 2 and task.claims.txn == task.id
            assert current_task() is task
            with pytest.raises(ToolCallDenied) as denied:
                lookup(customer_id="C-7")
            assert denied.value.reason == reasons.ARGUMENT_MISMATCH and denied.value.decision.argument == "customer_id"
            assert lookup(customer_id="C-42") == {"id": "C-42"}
            decision = guard.authorize("delete_account", {})
            assert not decision.allowed and decision.reason == reasons.TOOL_NOT_IN_SCOPE
        assert current_task() is None
        assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).reason == reasons.NO_GRANT

    def test_unlisted_argument_vs_refused_value(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """An injected bcc is argument_not_allowed; a listed argument with a bad value is argument_mismatch."""
        with guard.task(plan, identity=identity):
            ok = {"to": "alice@example.com", "subject": "s", "body": "b"}
            bcc = guard.authorize("send_email", {**ok, "bcc": "mallory@evil.com"})
            assert bcc.reason == reasons.ARGUMENT_NOT_ALLOWED and bcc.argument == "bcc"
            wrong = guard.authorize("send_email", {**ok, "to": "mallory@evil.com"})
            assert wrong.reason == reasons.ARGUMENT_MISMATCH and wrong.argument == "to"
            assert guard.authorize("send_email", {**ok, "body": "x" * 2001}).reason == reasons.ARGUMENT_MISMATCH
            assert guard.authorize("send_email", {"subject": "s"}).reason == reasons.ARGUMENT_MISMATCH  # to missing
            assert guard.authorize("send_email", ok).allowed

    def test_denial_message_never_echoes_values(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """The message names tool, argument and reason, never the refused value."""
        with guard.task(plan, identity=identity) as task:
            d = guard.authorize("send_email", {"to": "mallory@evil.com", "body": "secret-body"})
        assert "mallory" not in d.message and "secret-body" not in d.message and task.grant not in d.message
        assert "'send_email'" in d.message and "argument_mismatch" in d.message and "crm_lookup" in d.message


class TestBudgetsAndRevocation:
    """Budgets are consumed atomically; the grant dies at plan completion, task exit and expiry."""

    def test_budget_exhausted(self, guard: Guard, identity: AgentIdentity) -> None:
        """A step with max_calls=2 allows two calls, then budget_exhausted."""
        plan = Plan(steps=[Step("crm_lookup", args={"customer_id": {"any": True}}, max_calls=2),
                           Step("send_email", args={"to": "a@example.com"})])
        with guard.task(plan, identity=identity):
            results = [guard.authorize("crm_lookup", {"customer_id": "C-1"}) for _ in range(3)]
        assert [r.reason for r in results] == [None, None, reasons.BUDGET_EXHAUSTED]
        assert [r.step for r in results[:2]] == [0, 0]

    def test_plan_completion_revokes(self, guard: Guard, plan: Plan, identity: AgentIdentity,
                                     spans: SpanCapture) -> None:
        """Spending the last budget revokes the grant (plan_completed); later calls read scope reasons first."""
        with guard.task(plan, identity=identity) as task:
            assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).allowed
            assert guard.authorize("send_email", {"to": "alice@example.com", "subject": "s", "body": "b"}).allowed
            assert task.revoked and task.revocation_reason == "plan_completed"
            again = guard.authorize("crm_lookup", {"customer_id": "C-42"})
            assert again.reason == reasons.BUDGET_EXHAUSTED and "plan allows" not in again.message
            assert guard.authorize("delete_records", {}).reason == reasons.TOOL_NOT_IN_SCOPE
            assert not guard.store.is_active(task.id)
        (task_span,) = spans.named("invoke_agent")
        events = [(e.name, dict(e.attributes or {}).get("agent_guard.grant.revocation.reason")) for e in task_span.events]
        assert events == [("agent_guard.grant.issued", None), ("agent_guard.grant.revoked", "plan_completed")]

    def test_task_exit_revokes(self, guard: Guard, plan: Plan, identity: AgentIdentity, spans: SpanCapture) -> None:
        """Leaving the task revokes the run in the store, also when the body raised."""
        with pytest.raises(RuntimeError), guard.task(plan, identity=identity) as task:
            raise RuntimeError("boom")
        assert task.revocation_reason == "task_exit" and not guard.store.is_active(task.id)
        (task_span,) = spans.named("invoke_agent")
        assert dict(task_span.events[-1].attributes or {})["agent_guard.grant.revocation.reason"] == "task_exit"

    def test_expiry(self, guard: Guard, plan: Plan, identity: AgentIdentity, clock: FakeClock) -> None:
        """After the TTL every call is expired, and the grant is recorded as revoked for expiry."""
        with guard.task(plan, identity=identity, ttl_s=10) as task:
            clock.advance(10)
            assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).reason == reasons.EXPIRED
            assert task.revocation_reason == "expired"
            assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).reason == reasons.EXPIRED

    def test_manual_revoke(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """task.revoke() denies the next call."""
        with guard.task(plan, identity=identity) as task:
            task.revoke()
            assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).reason == reasons.REVOKED
        assert task.revocation_reason == "manual"

    def test_out_of_order(self, guard: Guard, identity: AgentIdentity) -> None:
        """With ordered=True a call that skips ahead is out_of_order."""
        plan = Plan(ordered=True, steps=[Step("crm_lookup", args={"customer_id": "C-42"}),
                                         Step("send_email", args={"to": "alice@example.com"})])
        with guard.task(plan, identity=identity):
            assert guard.authorize("send_email", {"to": "alice@example.com"}).reason == reasons.OUT_OF_ORDER
            assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).allowed
            assert guard.authorize("send_email", {"to": "alice@example.com"}).allowed

    def test_threads_race_on_one_budget(self, guard: Guard, identity: AgentIdentity) -> None:
        """8 threads racing on a budget of 10 allow exactly 10 calls."""
        plan = Plan(steps=[Step("crm_lookup", args={"customer_id": {"any": True}}, max_calls=10),
                           Step("send_email", args={"to": "a@example.com"})])
        barrier = threading.Barrier(8)

        def worker() -> list[bool]:
            barrier.wait()
            return [guard.decide("crm_lookup", {"customer_id": "C-1"}).allowed for _ in range(10)]

        with guard.task(plan, identity=identity), ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(run_in_task_context(worker)) for _ in range(8)]
            allowed = sum(sum(f.result()) for f in futures)
        assert allowed == 10


class FailingStore(InMemoryGrantStore):
    """A store that stops answering after activation."""

    def consume(self, run_id: str, candidates: Sequence[int]) -> ConsumeResult:
        raise ConnectionError("store down")


def test_store_failure_denies(policy: Policy, plan: Plan, identity: AgentIdentity) -> None:
    """Any store error denies with store_unavailable (fail closed)."""
    guard = Guard(policy, store=FailingStore())
    with guard.task(plan, identity=identity):
        assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).reason == reasons.STORE_UNAVAILABLE


class AsyncStore(InMemoryGrantStore):
    """A store with an async path of its own (as a networked store has): records which path was used."""

    def __init__(self) -> None:
        super().__init__()
        self.paths: list[str] = []

    def consume(self, run_id: str, candidates: Sequence[int]) -> ConsumeResult:
        self.paths.append("sync")
        return super().consume(run_id, candidates)

    async def aconsume(self, run_id: str, candidates: Sequence[int]) -> ConsumeResult:
        self.paths.append("async")
        return await asyncio.sleep(0, super().consume(run_id, candidates))


async def test_async_decisions_use_the_stores_async_path(policy: Policy, plan: Plan, identity: AgentIdentity) -> None:
    """An overridden aconsume is awaited; the default one (which only calls consume) is skipped."""
    for store, expected in ((AsyncStore(), ["async"]), (FailingStore(), [])):
        guard = Guard(policy, store=store)
        async with guard.task(plan, identity=identity):
            decision = await guard.aauthorize("crm_lookup", {"customer_id": "C-42"})
        if isinstance(store, AsyncStore):
            assert decision.allowed and store.paths == expected
        else:
            assert decision.reason == reasons.STORE_UNAVAILABLE  # the sync consume was called and failed


class TestApprovals:
    """requires_approval capabilities go through the approval hook before minting."""

    @pytest.fixture
    def refund_plan(self) -> Plan:
        """A plan with one approval-gated step."""
        return Plan(steps=[Step("refund", args={"amount": 20, "order_id": "O-1"})])

    def test_no_hook_means_approval_required(self, guard: Guard, refund_plan: Plan, identity: AgentIdentity) -> None:
        """Without an approver the plan is rejected with approval_required."""
        with pytest.raises(PlanRejected) as info, guard.task(refund_plan, identity=identity):
            pass
        assert info.value.reason == reasons.APPROVAL_REQUIRED

    @pytest.mark.parametrize("answer", [True, False])
    def test_sync_approver(self, policy: Policy, refund_plan: Plan, identity: AgentIdentity, answer: bool) -> None:
        """The hook sees the step; a no is approval_denied, a yes mints."""
        seen: list[ApprovalRequest] = []

        def approver(request: ApprovalRequest) -> bool:
            seen.append(request)
            return answer

        guard = Guard(policy, approver=approver)
        if answer:
            with guard.task(refund_plan, identity=identity):
                assert guard.authorize("refund", {"amount": 20, "order_id": "O-1"}).allowed
        else:
            with pytest.raises(PlanRejected) as info, guard.task(refund_plan, identity=identity):
                pass
            assert info.value.reason == reasons.APPROVAL_DENIED
        assert [(r.tool, r.step, r.args["amount"]) for r in seen] == [("refund", 0, {"eq": 20})]

    async def test_async_approver(self, policy: Policy, refund_plan: Plan, identity: AgentIdentity) -> None:
        """An async hook is awaited under `async with`; under a running loop a sync `with` says to use async."""

        async def approver(request: ApprovalRequest) -> bool:
            await asyncio.sleep(0)
            return request.tool == "refund"

        guard = Guard(policy, approver=approver)
        async with guard.task(refund_plan, identity=identity) as task:
            assert (await guard.aauthorize("refund", {"amount": 20, "order_id": "O-1"})).allowed
        assert task.revoked
        with pytest.raises(ConfigError, match="async with"), guard.task(refund_plan, identity=identity):
            pass

    def test_async_approver_from_sync_code(self, policy: Policy, refund_plan: Plan, identity: AgentIdentity) -> None:
        """Outside an event loop an async hook is run to completion."""

        async def approver(request: ApprovalRequest) -> bool:
            return True

        with Guard(policy, approver=approver).task(refund_plan, identity=identity) as task:
            assert task.tools == ("refund",)


class TestIsolation:
    """Grants never leak between asyncio tasks or threads."""

    async def test_concurrent_async_tasks(self, identity: AgentIdentity) -> None:
        """Two tasks with different plans each see only their own grant."""
        policy = Policy(agent_id="support-bot", capabilities=[Capability("_alookup", args={"customer_id": {"any": True}})])
        guard = Guard(policy)
        lookup = guard.wrap(_alookup)

        async def agent(customer: str, other: str) -> tuple[str, str | None]:
            plan = Plan(steps=[Step("_alookup", args={"customer_id": customer}, max_calls=5)])
            async with guard.task(plan, identity=identity) as task:
                await asyncio.sleep(0)
                assert (await lookup(customer_id=customer)) == customer
                await asyncio.sleep(0)
                with pytest.raises(ToolCallDenied) as denied:
                    await lookup(customer_id=other)
                return task.id, denied.value.decision.task_id

        (a_id, a_seen), (b_id, b_seen) = await asyncio.gather(agent("C-1", "C-2"), agent("C-2", "C-1"))
        assert a_id != b_id and a_seen == a_id and b_seen == b_id

    def test_plain_thread_has_no_grant(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """A bare thread does not inherit the task; run_in_task_context carries it."""
        results: list[str | None] = []
        with guard.task(plan, identity=identity):
            t = threading.Thread(target=lambda: results.append(guard.decide("crm_lookup", {"customer_id": "C-42"}).reason))
            t.start()
            t.join()
            ctx = contextvars.copy_context()
            results.append(ctx.run(guard.decide, "crm_lookup", {"customer_id": "C-42"}).reason)
        assert results == [reasons.NO_GRANT, None]

    def test_nested_tasks_restore_the_previous_one(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """An inner task replaces the current one and restores it on exit."""
        with guard.task(plan, identity=identity) as outer:
            with guard.task(plan, identity=identity) as inner:
                assert current_task() is inner
            assert current_task() is outer and not outer.revoked


async def _alookup(customer_id: str) -> str:
    await asyncio.sleep(0)
    return customer_id


class TestInputs:
    """Bad input is refused with a clear error."""

    def test_task_arguments(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """Wrong identity, TTL above the policy, wrong types."""
        with pytest.raises(ConfigError, match=r"identity\.agent_id"):
            guard.task(plan, identity=AgentIdentity(agent_id="other"))
        with pytest.raises(ConfigError, match="ttl_s"):
            guard.task(plan, identity=identity, ttl_s=901)
        with pytest.raises(ConfigError, match="plan"):
            guard.task({"steps": []}, identity=identity)  # type: ignore[arg-type]
        with guard.task(plan, identity=identity), pytest.raises(ConfigError, match="args"):
            guard.authorize("crm_lookup", ["C-42"])  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="policy"):
            Guard({"agent_id": "x"})  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match="leeway"):
            Guard(leeway_s=60)

    def test_default_ttl_respects_the_policy(self, plan: Plan, identity: AgentIdentity, clock: FakeClock) -> None:
        """Without ttl_s the grant lives min(default_ttl_s, policy.max_ttl_s)."""
        short = Policy(agent_id="support-bot", max_ttl_s=60,
                       capabilities=[Capability("crm_lookup", args={"customer_id": {"any": True}}),
                                     Capability("send_email", args={"to": {"any": True}, "subject": {"any": True},
                                                                    "body": {"any": True}})])
        with Guard(short, clock=clock).task(plan, identity=identity) as task:
            assert task.claims.exp - task.claims.iat == 60
        with Guard(short, clock=clock, default_ttl_s=30).task(plan, identity=identity) as task:
            assert task.claims.exp - task.claims.iat == 30

    def test_wrap_maps_positional_arguments(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """Positional arguments are checked under their parameter names."""
        lookup = guard.wrap(crm_lookup)
        with guard.task(plan, identity=identity):
            assert lookup("C-42") == {"id": "C-42"}
        named = guard.wrap(name="crm_lookup")(lambda customer_id: customer_id)
        with guard.task(plan, identity=identity):
            assert named("C-42") == "C-42"
            with pytest.raises(ConfigError, match="crm_lookup"):
                named("C-42", "extra")


class TestWorkers:
    """A verify-only guard attaches to a grant minted elsewhere and enforces the same scope."""

    def test_attach(self, guard: Guard, plan: Plan, identity: AgentIdentity, clock: FakeClock) -> None:
        """Same store, public keys only: budgets and revocation are shared; leaving attach does not revoke."""
        worker = Guard(jwks=guard.jwks(), store=guard.store, clock=clock)
        with pytest.raises(ConfigError, match="no policy"):
            worker.task(plan, identity=identity)
        with guard.task(plan, identity=identity) as task:
            with worker.attach(task.grant) as attached:
                assert attached.id == task.id and attached.identity.user_id == "u-1"
                assert worker.authorize("crm_lookup", {"customer_id": "C-42"}).allowed
            assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).reason == reasons.BUDGET_EXHAUSTED
            assert guard.store.is_active(task.id)
        with pytest.raises(GrantError) as info, worker.attach(task.grant):
            pass
        assert info.value.reason == reasons.REVOKED

    def test_attach_refuses_foreign_grants(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """A grant signed outside the worker's JWKS fails verification on attach."""
        stranger = Guard(guard.policy)
        with stranger.task(plan, identity=identity) as task, pytest.raises(GrantError) as info, \
                guard.attach(task.grant):
            pass
        assert info.value.reason == reasons.INVALID_GRANT


def test_decision_values(guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
    """An allowed decision names its step, grant and task."""
    with guard.task(plan, identity=identity) as task:
        d: Any = guard.authorize("crm_lookup", {"customer_id": "C-42"})
    assert (d.allowed, d.step, d.grant_id, d.task_id, d.reason) == (True, 0, task.grant_id, task.id, None)
