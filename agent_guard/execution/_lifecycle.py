"""The ``with`` handles over the explicit lifecycle: ``guard.task(...)`` and ``guard.attach(...)``.

A handle is sugar: entering calls the guard's open (or resume) and makes the task current;
leaving restores the context and closes (or releases) the task in a ``finally``. Restoring the
context may be impossible (an async generator finalized by asyncio runs ``__aexit__`` in a new
task; a handle may be left from another thread): that is tolerated, and the close still runs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from types import TracebackType

from agent_guard.exceptions import ConfigError
from agent_guard.execution._context import use_task
from agent_guard.execution._task import Task

__all__ = ["TaskContext"]

Opener = Callable[[], Task]
AsyncOpener = Callable[[], Awaitable[Task]]
Closer = Callable[[Task], None]
AsyncCloser = Callable[[Task], Awaitable[None]]


class TaskContext:
    """``with`` / ``async with`` handle returned by :meth:`Guard.task` and :meth:`Guard.attach`.

    Single use: entering a handle a second time raises :class:`ConfigError` (call
    ``guard.task(...)`` again for another task). For explicit control use :meth:`Guard.open`,
    :meth:`Guard.use` and :meth:`Guard.close`.
    """

    __slots__ = ("_aclose", "_aopen", "_close", "_entered", "_open", "_task", "_use")

    def __init__(self, opener: Opener, aopener: AsyncOpener, closer: Closer, acloser: AsyncCloser) -> None:
        self._open = opener
        self._aopen = aopener
        self._close = closer
        self._aclose = acloser
        self._entered = False
        self._task: Task | None = None
        self._use: use_task | None = None

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
