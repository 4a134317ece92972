"""The current task, held in a ContextVar (isolated per thread and per asyncio task)."""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from typing import TYPE_CHECKING, ParamSpec, TypeVar

from opentelemetry import context as otel_context
from opentelemetry import trace

if TYPE_CHECKING:
    from agent_guard.execution._task import Task

__all__ = ["current_task", "run_in_task_context", "under_span", "use_task"]

_P = ParamSpec("_P")
_R = TypeVar("_R")

CURRENT_TASK: contextvars.ContextVar[Task | None] = contextvars.ContextVar("agent_guard_task", default=None)


def current_task() -> Task | None:
    """The task made current in this context (``with guard.task(...)`` or ``guard.use(task)``), or ``None``."""
    return CURRENT_TASK.get()


class use_task:  # lower case: used like a function, ``with use_task(task):``
    """Make an already opened ``task`` the current task for the duration of a block.

    It neither mints nor revokes (that is :meth:`Guard.open` / :meth:`Guard.close`).
    ``use_task(None)`` makes the block run with no task, so every call in it is denied
    (``no_grant``). With ``trace_parent=True`` (default) the task's ``invoke_agent`` span is also
    the current OpenTelemetry span in the block, so decision spans nest under it; adapters that
    run inside a framework's own tool span pass ``False`` to keep that span as the parent.

    Leaving restores the previous task. Leaving in another context than the one entered (an
    async generator finalized by asyncio, a handle closed from another thread) cannot restore a
    ContextVar; it is then a no-op, never an error -- nothing that must happen (revocation)
    depends on it. A class rather than a generator, since adapters enter it once per tool call.
    """

    __slots__ = ("_otel_token", "_task", "_token", "_trace_parent")

    def __init__(self, task: Task | None, *, trace_parent: bool = True) -> None:
        self._task = task
        self._trace_parent = trace_parent
        self._token: contextvars.Token[Task | None] | None = None
        self._otel_token: object = None

    def __enter__(self) -> Task | None:
        self._token = CURRENT_TASK.set(self._task)
        task = self._task
        if self._trace_parent and task is not None:
            span = task.span
            if span is not None and span.get_span_context().is_valid:
                self._otel_token = otel_context.attach(trace.set_span_in_context(span))
        return task

    def __exit__(self, *exc: object) -> None:
        token, self._token = self._token, None
        if token is None:
            return
        try:
            CURRENT_TASK.reset(token)
        except ValueError:  # another context: it was never current here, and its own copy dies with it
            self._otel_token = None
            return
        otel_token, self._otel_token = self._otel_token, None
        if otel_token is not None:
            otel_context.detach(otel_token)  # type: ignore[arg-type]


class under_span:  # lower case: used like a function, ``with under_span(span):``
    """Make ``span`` the current OpenTelemetry span for a block (``None``: leave the context as is).

    For adapters whose framework's instrumentation starts spans without making them current
    (OpenInference's LangChain tracer keeps them in its own run map): the guard's spans started
    in the block -- a task span, a decision span -- become children of that framework span.
    It neither starts nor ends ``span``. Leaving in another context than the one entered is a no-op.
    """

    __slots__ = ("_span", "_token")

    def __init__(self, span: trace.Span | None) -> None:
        self._span = span
        self._token: object = None

    def __enter__(self) -> None:
        span = self._span
        if span is not None and span.get_span_context().is_valid:
            self._token = otel_context.attach(trace.set_span_in_context(span))

    def __exit__(self, *exc: object) -> None:
        token, self._token = self._token, None
        if token is not None:
            otel_context.detach(token)  # type: ignore[arg-type]


def run_in_task_context(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Bind ``fn`` to a copy of the current context, so a worker thread sees the current task.

    ``executor.submit(run_in_task_context(tool), ...)`` is the same as submitting
    ``contextvars.copy_context().run`` with ``tool``: the copy is taken now, when this is called.
    """
    ctx = contextvars.copy_context()

    def bound(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        return ctx.copy().run(fn, *args, **kwargs)

    return bound
