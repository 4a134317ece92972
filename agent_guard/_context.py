"""The current task, held in a ContextVar (isolated per thread and per asyncio task)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, ParamSpec, TypeVar

if TYPE_CHECKING:
    from agent_guard._task import Task

__all__ = ["current_task", "run_in_task_context", "use_task"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

CURRENT_TASK: contextvars.ContextVar[Task | None] = contextvars.ContextVar("agent_guard_task", default=None)


def current_task() -> Task | None:
    """The task entered in this context (``with guard.task(...)``), or ``None``."""
    return CURRENT_TASK.get()


@contextmanager
def use_task(task: Task | None) -> Iterator[Task | None]:
    """Make an existing, already opened ``task`` the current task for the duration of a block.

    For adapters whose framework runs a task's tool calls in contexts the task was not entered
    in (e.g. a LangGraph node): ``with use_task(task): ...``. It neither mints nor revokes.
    ``use_task(None)`` makes the block run with no task, so every call in it is denied (``no_grant``).
    """
    token = CURRENT_TASK.set(task)
    try:
        yield task
    finally:
        CURRENT_TASK.reset(token)


def run_in_task_context(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Bind ``fn`` to a copy of the current context, so a worker thread sees the current task.

    ``executor.submit(run_in_task_context(tool), ...)`` is the same as submitting
    ``contextvars.copy_context().run`` with ``tool``: the copy is taken now, when this is called.
    """
    ctx = contextvars.copy_context()

    def bound(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return ctx.copy().run(fn, *args, **kwargs)

    return bound
