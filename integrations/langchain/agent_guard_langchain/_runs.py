"""Live tasks of one middleware, keyed by an unguessable per-run key.

The key is the only thing the agent state carries: it is not a credential (the Task, which
holds the signed grant, stays in this process's memory) and it is bound to the LangGraph thread
it was created on. A run that dies without ``after_agent`` leaves an entry that is revoked and
dropped by the next sweep once its grant has expired (and the grant is useless after its TTL anyway).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from agent_guard import Task

__all__ = ["RunRegistry", "thread_id_of"]


def thread_id_of(runtime: Any) -> str | None:
    """The LangGraph thread id of a ``Runtime``/``ToolRuntime`` (``None`` without a checkpointer)."""
    info = getattr(runtime, "execution_info", None)
    value = getattr(info, "thread_id", None)
    return str(value) if value is not None else None


@dataclass
class _Run:
    task: Task
    thread_id: str | None


def close_task(task: Task, reason: str) -> None:
    """Revoke ``task`` (a no-op when already revoked) and end its ``invoke_agent`` span."""
    try:
        task.revoke(reason)
    finally:
        span = task.span
        task.span = None
        if span is not None:
            span.end()


class RunRegistry:
    """Thread-safe map: run key -> live Task (and the thread it belongs to)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._runs)

    def add(self, task: Task, thread_id: str | None) -> str:
        """Register ``task`` and return its new key (192 random bits, URL-safe)."""
        key = "agr_" + secrets.token_urlsafe(24)
        with self._lock:
            self._runs[key] = _Run(task, thread_id)
        return key

    def get(self, key: object, thread_id: str | None) -> Task | None:
        """The task of ``key`` if it exists and belongs to ``thread_id``; else ``None``."""
        if not isinstance(key, str):
            return None
        run = self._runs.get(key)
        if run is None or run.thread_id != thread_id:
            return None
        return run.task

    def close(self, key: object, reason: str) -> bool:
        """Remove ``key`` and revoke its task. True when it was registered."""
        if not isinstance(key, str):
            return False
        with self._lock:
            run = self._runs.pop(key, None)
        if run is None:
            return False
        close_task(run.task, reason)
        return True

    def sweep(self) -> int:
        """Drop (and revoke) every run whose grant has expired. Returns how many were dropped."""
        now = self._clock()
        with self._lock:
            dead = [k for k, r in self._runs.items() if now >= r.task.expires_at]
            runs = [self._runs.pop(k) for k in dead]
        for run in runs:
            close_task(run.task, "expired")
        return len(runs)

    def close_all(self, reason: str = "manual") -> int:
        """Revoke and drop every live run (e.g. at shutdown)."""
        with self._lock:
            runs = list(self._runs.values())
            self._runs.clear()
        for run in runs:
            close_task(run.task, reason)
        return len(runs)
