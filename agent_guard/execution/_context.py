"""The current task, held in a ContextVar (isolated per thread and per asyncio task)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from agent_guard.execution._task import Task

__all__ = ["current_task", "run_in_task_context", "use_task"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

CURRENT_TASK: contextvars.ContextVar[Task | None] = contextvars.ContextVar("agent_guard_task", default=None)


def current_task() -> Task | None:
    """The task entered in this context (``with guard.task(...)``), or ``None``."""
    return CURRENT_TASK.get()


class use_task:  # lower case: used like a function, ``with use_task(task):``
    """Make an existing, already opened ``task`` the current task for the duration of a block.

    For adapters whose framework runs a task's tool calls in contexts the task was not entered
    in (e.g. a LangGraph node): ``with use_task(task): ...``. It neither mints nor revokes.
    ``use_task(None)`` makes the block run with no task, so every call in it is denied (``no_grant``).
    A class rather than a generator, since adapters enter it once per tool call.
    """

    __slots__ = ("_task", "_token")

    def __init__(self, task: Task | None) -> None:
        self._task = task
        self._token: contextvars.Token[Task | None] | None = None

    def __enter__(self) -> Task | None:
        self._token = CURRENT_TASK.set(self._task)
        return self._task

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            CURRENT_TASK.reset(self._token)
            self._token = None


def run_in_task_context(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Bind ``fn`` to a copy of the current context, so a worker thread sees the current task.

    ``executor.submit(run_in_task_context(tool), ...)`` is the same as submitting
    ``contextvars.copy_context().run`` with ``tool``: the copy is taken now, when this is called.
    """
    ctx = contextvars.copy_context()

    def bound(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return ctx.copy().run(fn, *args, **kwargs)

    return bound
