"""The ``with`` handles over the explicit lifecycle: ``guard.task(...)`` and ``guard.attach(...)``.

A handle is sugar: entering calls the guard's open (or resume) and makes the task current;
leaving restores the context and closes (or releases) the task in a ``finally``. Restoring the
context may be impossible (an async generator finalized by asyncio runs ``__aexit__`` in a new
task; a handle may be left from another thread): that is tolerated, and the close still runs.
"""

from __future__ import annotations

from types import TracebackType
from typing import Protocol

from agent_guard.authorization._models import Plan, Policy
from agent_guard.exceptions import ConfigError
from agent_guard.execution._context import use_task
from agent_guard.execution._task import Task
from agent_guard.identity import AgentIdentity

__all__ = ["Lifecycle", "TaskContext"]


class Lifecycle(Protocol):
    """The explicit lifecycle a handle is sugar over (the guard's methods)."""

    def open(self, plan: Plan, *, identity: AgentIdentity, ttl_s: int | None = None) -> Task: ...
    async def aopen(self, plan: Plan, *, identity: AgentIdentity, ttl_s: int | None = None) -> Task: ...
    def close(self, task: Task, reason: str = "task_exit") -> None: ...
    async def aclose(self, task: Task, reason: str = "task_exit") -> None: ...
    def resume(self, grant: str, *, identity: AgentIdentity | None = None) -> Task: ...
    async def aresume(self, grant: str, *, identity: AgentIdentity | None = None) -> Task: ...
    def release(self, task: Task) -> None: ...
    async def arelease(self, task: Task) -> None: ...
    def open_delegated(
        self, parent: Task, plan: Plan, *, agent_id: str, ttl_s: int | None = None, policy: Policy | None = None
    ) -> Task: ...
    async def aopen_delegated(
        self, parent: Task, plan: Plan, *, agent_id: str, ttl_s: int | None = None, policy: Policy | None = None
    ) -> Task: ...


class TaskContext:
    """``with`` / ``async with`` handle returned by :meth:`Guard.task` and :meth:`Guard.attach`.

    Single use: entering a handle a second time raises :class:`ConfigError` (call
    ``guard.task(...)`` again for another task). For explicit control use :meth:`Guard.open`,
    :meth:`Guard.use` and :meth:`Guard.close`.
    """

    __slots__ = (
        "_delegate", "_entered", "_grant", "_identity", "_lifecycle", "_plan", "_task", "_ttl_s", "_use",
    )

    def __init__(
        self, lifecycle: Lifecycle, *, plan: Plan | None = None, grant: str | None = None,
        identity: AgentIdentity | None = None, ttl_s: int | None = None,
        delegate: tuple[Task, str, Policy | None] | None = None,
    ) -> None:
        self._lifecycle = lifecycle
        self._delegate = delegate
        self._plan = plan
        self._grant = grant
        self._identity = identity
        self._ttl_s = ttl_s
        self._entered = False
        self._task: Task | None = None
        self._use: use_task | None = None

    def _open(self) -> Task:
        if self._delegate is not None:
            parent, agent_id, policy = self._delegate
            assert self._plan is not None
            return self._lifecycle.open_delegated(parent, self._plan, agent_id=agent_id, ttl_s=self._ttl_s, policy=policy)
        if self._plan is not None:
            assert self._identity is not None
            return self._lifecycle.open(self._plan, identity=self._identity, ttl_s=self._ttl_s)
        assert self._grant is not None
        return self._lifecycle.resume(self._grant, identity=self._identity)

    async def _aopen(self) -> Task:
        if self._delegate is not None:
            parent, agent_id, policy = self._delegate
            assert self._plan is not None
            return await self._lifecycle.aopen_delegated(
                parent, self._plan, agent_id=agent_id, ttl_s=self._ttl_s, policy=policy
            )
        if self._plan is not None:
            assert self._identity is not None
            return await self._lifecycle.aopen(self._plan, identity=self._identity, ttl_s=self._ttl_s)
        assert self._grant is not None
        return await self._lifecycle.aresume(self._grant, identity=self._identity)

    def _close(self, task: Task) -> None:
        if self._plan is not None:
            self._lifecycle.close(task)
        else:  # an attached grant: the minting side owns its run
            self._lifecycle.release(task)

    async def _aclose(self, task: Task) -> None:
        if self._plan is not None:
            await self._lifecycle.aclose(task)
        else:
            await self._lifecycle.arelease(task)

    @property
    def task(self) -> Task | None:
        """The task once entered (``None`` before)."""
        return self._task

    def _claim(self) -> None:
        if self._entered:
            raise ConfigError(
                "this task handle was already entered; each guard.task(...)/guard.attach(...) call opens one "
                "task -- call it again, or use guard.open/guard.use/guard.close to reuse a task"
            )
        self._entered = True

    def _made_current(self, task: Task) -> Task:
        self._task = task
        self._use = use_task(task)
        self._use.__enter__()
        return task

    def _left(self) -> Task:
        task = self._task
        if task is None:
            raise ConfigError("this task handle was left without being entered")
        use, self._use = self._use, None
        if use is not None:
            use.__exit__(None, None, None)  # a no-op when left from another context
        return task

    def __enter__(self) -> Task:
        self._claim()
        return self._made_current(self._open())

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        task = self._task
        try:
            self._left()
        finally:
            if task is not None:
                self._close(task)

    async def __aenter__(self) -> Task:
        self._claim()
        return self._made_current(await self._aopen())

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        task = self._task
        try:
            self._left()
        finally:
            if task is not None:
                await self._aclose(task)
