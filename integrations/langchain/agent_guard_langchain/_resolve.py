"""From a run record to a live task: find it, or mint it -- never more than the plan has left.

A run's task is looked up in this process's registry by the record's key. When it is not there
(the run resumed on another process, or in this one after the registry forgot it), or its grant
can no longer be used (expired during a long pause, released when the graph paused, revoked when a
stream was abandoned), a successor grant is minted from the **recorded plan** -- the plan the run
was approved for, never a new one -- and each step's budget is reduced by the calls already made
(:mod:`._spent`): the larger of what the grant store still reports for the old grant (while it is
active; it is then revoked, so only the successor can spend), the record's snapshot, and the
calls answered in the checkpointed messages. So the calls of one run, over all its grants, never
exceed the plan's budget.

A run whose record is still *pending* (its plan waits for approval) is minted here too: the
approver is asked about the recorded plan -- the one the human was shown -- and a plan that
replaces a live run goes through ``guard.replan`` (narrower: silently; wider: the approver).

Minting is single-flight per run key: parallel tool calls of one turn share one successor.
When nothing can be minted (another user, a plan the policy no longer allows, a store that cannot
be reached), :class:`Unresumable` says why; the middleware then ends the run with a final message.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from uuid import UUID

from langchain_core.messages import BaseMessage

from agent_guard import AgentIdentity, Guard, Plan, Task
from agent_guard.exceptions import AgentGuardError, ConfigError
from agent_guard.execution import under_span
from agent_guard_langchain._approval import preapproved
from agent_guard_langchain._record import RunRecord, identity_of, plan_of
from agent_guard_langchain._runs import RunRegistry
from agent_guard_langchain._spent import answered_calls, merge_spent, spent_from_messages
from agent_guard_langchain._tracing import framework_parent_span

__all__ = ["Resolver", "Unresumable", "usable"]


class Unresumable(AgentGuardError):
    """The run's grant can neither be found nor minted again; the message says why."""


def usable(task: Task, now: float) -> bool:
    """True while ``task`` can decide calls (open, not revoked, not expired)."""
    return not task.closed and task.revocation_reason is None and now < task.expires_at


def _keeps(task: Task) -> bool:
    """A closed task that still answers for its run: completed (refusals read budget_exhausted)."""
    return task.revocation_reason == "plan_completed"


class Resolver:
    """Finds or mints the task of a run record (sync and async); one per middleware."""

    def __init__(self, guard: Guard, registry: RunRegistry, ttl_s: int | None, owner: int) -> None:
        self.guard = guard
        self.registry = registry
        self.ttl_s = ttl_s
        self.owner = owner

    # -- lookups ---------------------------------------------------------------------------------
    def known(self, record: RunRecord, root: UUID | None, identity: AgentIdentity | None = None) -> Task | None:
        """The registered task of ``record`` when it can still answer for the run, else ``None``.

        Raises :class:`Unresumable` when ``identity`` (who executes the run now) is not the task's.
        """
        entry = self.registry.get(record["key"], record["thread"])
        if entry is None:
            return None
        task = entry.current()
        if identity is not None and identity is not task.identity and task.identity != identity:
            raise Unresumable("the run was planned for another identity (agent, user or tenant) than this one")
        if root is not None:
            entry.root = root
        if usable(task, self.guard.clock()) or _keeps(task) or entry.ending is not None or entry.aborted is not None:
            entry.owner = self.owner  # the middleware executing the run now answers for it
            return task
        return None

    def _prior(self, previous: RunRecord | None, root: UUID | None) -> Task | None:
        """The live task of the run a new plan replaces, when this process holds it."""
        if previous is None or previous["grant_id"] is None:
            return None
        return self.known(previous, root)

    def _active(self, previous: RunRecord) -> bool:
        run_id = previous["run_id"]
        try:
            return bool(run_id) and self.guard.store.is_active(str(run_id))
        except Exception:
            return False

    async def _aactive(self, previous: RunRecord) -> bool:
        run_id = previous["run_id"]
        try:
            return bool(run_id) and await self.guard.store.ais_active(str(run_id))
        except Exception:
            return False

    def _check_identity(self, record: RunRecord, identity: AgentIdentity) -> None:
        if identity_of(record) != identity:
            raise Unresumable("the run was planned for another identity (agent, user or tenant) than this one")

    def _stale_task(self, record: RunRecord) -> Task | None:
        entry = self.registry.get(record["key"], record["thread"])
        return entry.current() if entry is not None else None

    # -- sync --------------------------------------------------------------------------------------
    def task(self, record: RunRecord, messages: Sequence[BaseMessage], identity: AgentIdentity,
             root: UUID | None = None) -> Task:
        """The live task of ``record``: found, or minted (single-flight); raises :class:`Unresumable`."""
        found = self.known(record, root, identity)
        if found is not None:
            return found
        future, leader = self.registry.flight(record["key"])
        if not leader:
            return future.result()
        try:
            found = self.known(record, root, identity)
            task = found if found is not None else self._mint(record, messages, identity, root)
            future.set_result(task)
            return task
        except BaseException as err:
            future.set_exception(err)
            raise
        finally:
            self.registry.land(record["key"], future)

    def _mint(self, record: RunRecord, messages: Sequence[BaseMessage], identity: AgentIdentity,
              root: UUID | None) -> Task:
        self._check_identity(record, identity)
        try:
            plan = plan_of(record)
            if record["grant_id"] is None:
                task = self.open_or_replan(plan, record.get("previous"), messages, identity, root)
            else:
                task = self._successor(record, plan, messages, identity)
        except (Unresumable, ConfigError):
            raise
        except AgentGuardError as err:  # PlanRejected (policy changed), StoreUnavailable, GrantError
            if record["grant_id"] is None:
                raise  # a refused approval or plan propagates, as at the start of a run
            raise Unresumable(f"a grant for the recorded plan could not be minted again ({err})") from None
        self.registry.put(record["key"], record["thread"], task, self.owner, root)
        return task

    def open_or_replan(self, plan: Plan, previous: RunRecord | None, messages: Sequence[BaseMessage],
                       identity: AgentIdentity, root: UUID | None) -> Task:
        """``guard.replan`` the live run ``previous`` (if any) to ``plan``, else ``guard.open`` it."""
        prior = self._prior(previous, root)
        if prior is None and previous is not None and self._active(previous):
            try:  # live in the store but not here: take it over first, so that the replan narrows it
                prior = self.task(previous, messages, identity, root)
            except (Unresumable, ConfigError):
                prior = None
        with under_span(framework_parent_span()):
            if prior is not None and usable(prior, self.guard.clock()) and prior.owner and prior.parent is None:
                task = self.guard.replan(prior, plan)
                assert previous is not None
                self.registry.forget(previous["key"])
                return task
            return self.guard.open(plan, identity=identity, ttl_s=self.ttl_s)

    def _successor(self, record: RunRecord, plan: Plan, messages: Sequence[BaseMessage],
                   identity: AgentIdentity) -> Task:
        stale = self._stale_task(record)
        run_id = stale.run_id if stale is not None else record["run_id"]
        store_spent = self._take_over(run_id, plan)
        if stale is not None:
            self.registry.forget(record["key"])
            self.guard.close(stale, "resumed")
        with preapproved(record["plan_hash"] if record["approved"] else None), \
                under_span(framework_parent_span()):
            task = self.guard.open(plan, identity=identity, ttl_s=self.ttl_s)
        spent = spent_from_messages(task, answered_calls(messages, record["turn"]),
                                    merge_spent(record["spent"], store_spent))
        self._prespend(task, spent)
        return task

    def _take_over(self, run_id: str | None, plan: Plan) -> list[int] | None:
        """Calls spent per step by the old grant's run while it is active; then revoke it (only the successor spends)."""
        if not run_id:
            return None
        store = self.guard.store
        try:
            left = store.remaining(run_id)
        except Exception:  # a store that cannot tell (or cannot be reached): the other sources decide
            return None
        if left is None or len(left) != len(plan.steps):
            return None
        try:
            store.revoke(run_id)
        except Exception:
            raise Unresumable("the grant store could not revoke the run's previous grant") from None
        return [max(0, s.max_calls - n) for s, n in zip(plan.steps, left, strict=True)]

    def _prespend(self, task: Task, spent: Sequence[int]) -> None:
        try:
            for step, count in enumerate(spent):
                for _ in range(count):
                    status = task.store.consume(task.run_id, [step]).status
                    if status == "completed":
                        task.revoke_locally("plan_completed")
                        return
                    if status != "ok":
                        break
        except Exception:
            self.guard.close(task, "failed")
            raise Unresumable("the grant store could not record the calls already made") from None

    # -- async -------------------------------------------------------------------------------------
    async def atask(self, record: RunRecord, messages: Sequence[BaseMessage], identity: AgentIdentity,
                    root: UUID | None = None) -> Task:
        """Async :meth:`task`."""
        found = self.known(record, root, identity)
        if found is not None:
            return found
        future, leader = self.registry.flight(record["key"])
        if not leader:
            return await asyncio.wrap_future(future)
        try:
            found = self.known(record, root, identity)
            task = found if found is not None else await self._amint(record, messages, identity, root)
            future.set_result(task)
            return task
        except BaseException as err:
            future.set_exception(err)
            raise
        finally:
            self.registry.land(record["key"], future)

    async def _amint(self, record: RunRecord, messages: Sequence[BaseMessage], identity: AgentIdentity,
                     root: UUID | None) -> Task:
        self._check_identity(record, identity)
        try:
            plan = plan_of(record)
            if record["grant_id"] is None:
                task = await self.aopen_or_replan(plan, record.get("previous"), messages, identity, root)
            else:
                task = await self._asuccessor(record, plan, messages, identity)
        except (Unresumable, ConfigError):
            raise
        except AgentGuardError as err:
            if record["grant_id"] is None:
                raise
            raise Unresumable(f"a grant for the recorded plan could not be minted again ({err})") from None
        self.registry.put(record["key"], record["thread"], task, self.owner, root)
        return task

    async def aopen_or_replan(self, plan: Plan, previous: RunRecord | None, messages: Sequence[BaseMessage],
                              identity: AgentIdentity, root: UUID | None) -> Task:
        """Async :meth:`open_or_replan`."""
        prior = self._prior(previous, root)
        if prior is None and previous is not None and await self._aactive(previous):
            try:
                prior = await self.atask(previous, messages, identity, root)
            except (Unresumable, ConfigError):
                prior = None
        with under_span(framework_parent_span()):
            if prior is not None and usable(prior, self.guard.clock()) and prior.owner and prior.parent is None:
                task = await self.guard.areplan(prior, plan)
                assert previous is not None
                self.registry.forget(previous["key"])
                return task
            return await self.guard.aopen(plan, identity=identity, ttl_s=self.ttl_s)

    async def _asuccessor(self, record: RunRecord, plan: Plan, messages: Sequence[BaseMessage],
                          identity: AgentIdentity) -> Task:
        stale = self._stale_task(record)
        run_id = stale.run_id if stale is not None else record["run_id"]
        store_spent = await self._atake_over(run_id, plan)
        if stale is not None:
            self.registry.forget(record["key"])
            await self.guard.aclose(stale, "resumed")
        with preapproved(record["plan_hash"] if record["approved"] else None), \
                under_span(framework_parent_span()):
            task = await self.guard.aopen(plan, identity=identity, ttl_s=self.ttl_s)
        spent = spent_from_messages(task, answered_calls(messages, record["turn"]),
                                    merge_spent(record["spent"], store_spent))
        await self._aprespend(task, spent)
        return task

    async def _atake_over(self, run_id: str | None, plan: Plan) -> list[int] | None:
        if not run_id:
            return None
        store = self.guard.store
        try:
            left = await store.aremaining(run_id)
        except Exception:
            return None
        if left is None or len(left) != len(plan.steps):
            return None
        try:
            await store.arevoke(run_id)
        except Exception:
            raise Unresumable("the grant store could not revoke the run's previous grant") from None
        return [max(0, s.max_calls - n) for s, n in zip(plan.steps, left, strict=True)]

    async def _aprespend(self, task: Task, spent: Sequence[int]) -> None:
        try:
            for step, count in enumerate(spent):
                for _ in range(count):
                    status = (await task.store.aconsume(task.run_id, [step])).status
                    if status == "completed":
                        task.revoke_locally("plan_completed")
                        return
                    if status != "ok":
                        break
        except Exception:
            await self.guard.aclose(task, "failed")
            raise Unresumable("the grant store could not record the calls already made") from None

