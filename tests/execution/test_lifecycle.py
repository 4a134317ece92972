"""The explicit task lifecycle: open / use / close / resume, and the ``with`` sugar over it."""

from __future__ import annotations

import asyncio
import contextvars
import gc
import logging
import threading
from collections.abc import AsyncIterator

import pytest

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step, current_task, reasons
from agent_guard.exceptions import ConfigError, GrantError
from agent_guard.testing import FakeClock, SpanCapture


def _dead(guard: Guard, task_id: str) -> bool:
    return not guard.store.is_active(task_id)


class TestExplicitApi:
    def test_open_does_not_touch_the_current_context(self, guard: Guard, plan: Plan, identity: AgentIdentity,
                                                      spans: SpanCapture) -> None:
        """open() mints, records the run and starts the span; only use() makes the task current."""
        task = guard.open(plan, identity=identity)
        assert current_task() is None and guard.store.is_active(task.id) and task.span is not None
        assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).reason == reasons.NO_GRANT
        with guard.use(task):
            assert current_task() is task
            assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).allowed
        assert current_task() is None
        guard.close(task)
        assert _dead(guard, task.id) and task.closed and task.revocation_reason == "task_exit"
        (task_span,) = spans.named("invoke_agent")
        denied, allowed = spans.named("execute_tool")
        assert allowed.parent is not None and allowed.parent.span_id == task_span.context.span_id
        assert denied.parent is None  # decided outside the task: no parent

    def test_close_is_idempotent(self, guard: Guard, plan: Plan, identity: AgentIdentity, spans: SpanCapture) -> None:
        """A second close (any reason) changes nothing: one revocation, one span end, one revoked event."""
        task = guard.open(plan, identity=identity)
        guard.close(task, "manual")
        guard.close(task)
        guard.close(task, "expired")
        assert task.revocation_reason == "manual"
        (task_span,) = spans.named("invoke_agent")
        revoked = [e for e in task_span.events if e.name == "agent_guard.grant.revoked"]
        assert len(revoked) == 1

    def test_close_after_plan_completed_still_ends_the_span(self, guard: Guard, identity: AgentIdentity,
                                                            spans: SpanCapture) -> None:
        """A plan that completed revoked the grant already; close only ends the span."""
        task = guard.open(Plan(steps=[Step("crm_lookup", args={"customer_id": "C-42"})]), identity=identity)
        with guard.use(task):
            assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).allowed
        assert task.revocation_reason == "plan_completed" and not task.closed
        guard.close(task)
        assert task.closed and task.revocation_reason == "plan_completed"
        assert spans.named("invoke_agent")[0].end_time is not None

    def test_close_from_another_thread(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """A task opened here may be closed from a worker thread."""
        task = guard.open(plan, identity=identity)
        worker = threading.Thread(target=guard.close, args=(task,))
        worker.start()
        worker.join()
        assert _dead(guard, task.id) and task.closed
        with guard.use(task):
            assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).reason == reasons.REVOKED

    def test_close_rejects_what_is_not_a_task(self, guard: Guard) -> None:
        """close() of anything else is a ConfigError naming the fix."""
        with pytest.raises(ConfigError, match="Task"):
            guard.close("a task id")  # type: ignore[arg-type]
        with pytest.raises(ConfigError, match=r"guard\.open"):
            guard.use("a task id")  # type: ignore[arg-type]

    async def test_async_open_and_close(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """aopen/aclose do the same with the store's async path."""
        task = await guard.aopen(plan, identity=identity)
        with guard.use(task):
            assert (await guard.aauthorize("crm_lookup", {"customer_id": "C-42"})).allowed
        await guard.aclose(task)
        await guard.aclose(task)
        assert _dead(guard, task.id) and task.closed

    def test_a_store_failure_at_close_is_logged_and_denied_locally(
        self, guard: Guard, plan: Plan, identity: AgentIdentity, caplog: pytest.LogCaptureFixture
    ) -> None:
        """close() never raises for an unreachable store; this process refuses the task from then on."""
        task = guard.open(plan, identity=identity)

        def broken(run_id: str) -> bool:
            raise OSError("store down")

        guard.store.revoke = broken  # type: ignore[method-assign]
        with caplog.at_level(logging.WARNING, logger="agent_guard"):
            guard.close(task)
        assert task.revoked and task.closed and "could not revoke" in caplog.text
        with guard.use(task):
            assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).reason == reasons.REVOKED


class TestSugar:
    def test_a_handle_enters_once(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """Entering one handle twice is refused (the first task's grant is never orphaned)."""
        handle = guard.task(plan, identity=identity)
        with handle as first:
            with pytest.raises(ConfigError, match="already entered"), handle:
                pass
            assert current_task() is first
        assert _dead(guard, first.id)

    def test_exit_in_a_copied_context_still_revokes(self, guard: Guard, plan: Plan, identity: AgentIdentity,
                                                      spans: SpanCapture) -> None:
        """__exit__ run in another context cannot restore the ContextVar, but revokes and ends the span."""
        handle = guard.task(plan, identity=identity)
        task = contextvars.copy_context().run(handle.__enter__)  # entered in one context...
        contextvars.copy_context().run(handle.__exit__, None, None, None)  # ...left in another
        assert _dead(guard, task.id) and task.revocation_reason == "task_exit" and task.closed
        assert spans.named("invoke_agent")[0].end_time is not None

    def test_exit_from_another_thread_still_revokes(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """A handle entered here and left in a worker thread revokes all the same."""
        handle = guard.task(plan, identity=identity)
        task = contextvars.copy_context().run(handle.__enter__)  # (a copy: the test's own context stays clean)
        errors: list[BaseException] = []

        def leave() -> None:
            try:
                handle.__exit__(None, None, None)
            except BaseException as err:  # pragma: no cover - the assertion below reports it
                errors.append(err)

        worker = threading.Thread(target=leave)
        worker.start()
        worker.join()
        assert not errors and _dead(guard, task.id) and task.closed

    async def test_abandoned_async_generator_revokes(self, guard: Guard, plan: Plan, identity: AgentIdentity,
                                                     spans: SpanCapture) -> None:
        """A consumer that breaks out of an async generator holding ``async with guard.task``: asyncio
        finalizes the generator in a new task (another context), and the grant is still revoked."""
        seen: list[str] = []

        async def stream() -> AsyncIterator[int]:
            async with guard.task(plan, identity=identity) as task:
                seen.append(task.id)
                for i in range(10):
                    yield i

        async for _ in stream():
            break
        gc.collect()
        for _ in range(20):  # the finalizer runs as a task of the loop, then flushes in the executor
            await asyncio.sleep(0.01)
            if _dead(guard, seen[0]) and spans.named("invoke_agent") and \
                    spans.named("invoke_agent")[0].end_time is not None:
                break
        assert _dead(guard, seen[0])
        assert spans.named("invoke_agent")[0].end_time is not None

    async def test_async_handle_is_single_use(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """async with on a used handle is refused too."""
        handle = guard.task(plan, identity=identity)
        async with handle:
            pass
        with pytest.raises(ConfigError, match="already entered"):
            async with handle:
                pass

    def test_bad_arguments_fail_when_the_handle_is_made(self, guard: Guard, plan: Plan) -> None:
        """guard.task() checks its arguments at once, not when entered."""
        with pytest.raises(ConfigError, match="identity"):
            guard.task(plan, identity="support-bot")  # type: ignore[arg-type]


class TestResume:
    def test_resume_in_another_guard_shares_budget_and_revocation(
        self, guard: Guard, plan: Plan, identity: AgentIdentity, clock: FakeClock
    ) -> None:
        """A second guard of the same policy, keys and store resumes the grant; close there revokes everywhere."""
        task = guard.open(plan, identity=identity)
        other = Guard(guard.policy, keys=guard.keys, store=guard.store, clock=clock)
        resumed = other.resume(task.grant)
        assert resumed.id == task.id and not resumed.owner and resumed.identity == identity
        with other.use(resumed):
            assert other.authorize("crm_lookup", {"customer_id": "C-42"}).allowed
        with guard.use(task):
            assert guard.authorize("crm_lookup", {"customer_id": "C-42"}).reason == reasons.BUDGET_EXHAUSTED
        other.close(resumed)
        assert _dead(guard, task.id)
        with pytest.raises(GrantError) as info:
            other.resume(task.grant)
        assert info.value.reason == reasons.REVOKED

    async def test_aresume_refuses_a_revoked_grant(self, guard: Guard, plan: Plan, identity: AgentIdentity) -> None:
        """The async twin checks the store too."""
        task = guard.open(plan, identity=identity)
        guard.close(task)
        with pytest.raises(GrantError) as info:
            await guard.aresume(task.grant)
        assert info.value.reason == reasons.REVOKED

    def test_resume_refuses_another_agents_grant(self, guard: Guard, identity: AgentIdentity, clock: FakeClock) -> None:
        """A reader-bot guard sharing keys and store refuses (resume and attach) an admin-bot grant."""
        admin = Guard(Policy(agent_id="admin-bot", capabilities=[Capability("delete_user", args={"id": {"any": True}})]),
                      keys=guard.keys, store=guard.store, clock=clock)
        reader = Guard(Policy(agent_id="reader-bot", capabilities=[Capability("read_doc")]),
                       keys=guard.keys, store=guard.store, clock=clock)
        with admin.task(Plan(steps=[Step("delete_user", args={"id": {"any": True}})]),
                        identity=AgentIdentity(agent_id="admin-bot")) as task:
            with pytest.raises(GrantError, match="admin-bot") as info:
                reader.resume(task.grant)
            assert info.value.reason == reasons.INVALID_GRANT
            with pytest.raises(GrantError, match="accept_foreign_grants"), reader.attach(task.grant):
                pass
            opted_in = Guard(reader.policy, keys=guard.keys, store=guard.store, clock=clock,
                             accept_foreign_grants=True)
            with opted_in.attach(task.grant):
                assert opted_in.authorize("delete_user", {"id": 7}).allowed

    def test_resume_refuses_a_grant_of_another_policy(self, guard: Guard, plan: Plan, identity: AgentIdentity,
                                                       policy: Policy, clock: FakeClock) -> None:
        """Same agent, a different policy (its policy_hash differs): refused unless opted in."""
        task = guard.open(plan, identity=identity)
        narrower = Policy(agent_id=policy.agent_id, capabilities=policy.capabilities[:1])
        stricter = Guard(narrower, keys=guard.keys, store=guard.store, clock=clock)
        with pytest.raises(GrantError, match="another policy"):
            stricter.resume(task.grant)

    def test_a_verify_only_worker_without_policy_accepts_any_agent(self, guard: Guard, plan: Plan,
                                                                    identity: AgentIdentity, clock: FakeClock) -> None:
        """Without a policy of its own a worker has nothing to compare: the grant's scope is the whole rule."""
        task = guard.open(plan, identity=identity)
        worker = Guard(jwks=guard.jwks(), store=guard.store, clock=clock)
        with worker.attach(task.grant) as attached:
            assert attached.identity.agent_id == "support-bot"
        assert guard.store.is_active(task.id)  # leaving attach does not revoke: the minting side owns the run


class TestStoreCost:
    def test_a_closed_task_leaves_nothing_in_the_memory_store(self, guard: Guard, plan: Plan,
                                                              identity: AgentIdentity) -> None:
        """Closed or completed runs keep no record: an unknown run is refused as revoked."""
        tasks = [guard.open(plan, identity=identity) for _ in range(50)]
        assert len(guard.store) == 50  # type: ignore[arg-type]
        for task in tasks:
            guard.close(task)
        assert len(guard.store) == 0  # type: ignore[arg-type]

    def test_expired_runs_are_dropped_on_the_next_open(self, guard: Guard, plan: Plan, identity: AgentIdentity,
                                                       clock: FakeClock) -> None:
        """Tasks that are never closed are dropped once their grant expired (no sweep of every run)."""
        for _ in range(20):
            guard.open(plan, identity=identity, ttl_s=10)
        clock.advance(11)
        guard.open(plan, identity=identity, ttl_s=10)
        assert len(guard.store) == 1  # type: ignore[arg-type]

    def test_tasks_of_one_plan_share_the_compiled_scope(self, guard: Guard, plan: Plan,
                                                        identity: AgentIdentity) -> None:
        """The scope is derived and compiled once per (plan, policy)."""
        first, second = guard.open(plan, identity=identity), guard.open(plan, identity=identity)
        assert first.compiled is second.compiled and first.scope is second.scope
        assert first.grant != second.grant and first.id != second.id
