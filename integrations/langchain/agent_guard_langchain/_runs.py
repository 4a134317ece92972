"""Live tasks of one middleware, keyed by an unguessable per-run key.

The key is the only thing the agent state carries: it is not a credential (the Task, which
holds the signed grant, stays in this process's memory) and it is bound to the LangGraph thread
it was created on. A run that dies without ``after_agent`` leaves an entry that is closed and
dropped by the next sweep once its grant has expired (and the grant is useless after its TTL anyway).
Closing goes through the core lifecycle: :meth:`Guard.close` / :meth:`Guard.aclose` revoke the
grant and end the task's span.
"""

from __future__ import annotations

import secrets
import threading
from dataclasses import dataclass
from typing import Any

from agent_guard import Guard, Task

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


class RunRegistry:
    """Thread-safe map: run key -> live Task (and the thread it belongs to)."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
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

    def _pop(self, key: object) -> Task | None:
        if not isinstance(key, str):
            return None
        with self._lock:
            run = self._runs.pop(key, None)
        return run.task if run is not None else None

    def close(self, key: object, reason: str) -> bool:
        """Remove ``key`` and close its task (revoke, end its span). True when it was registered."""
        task = self._pop(key)
        if task is None:
            return False
        self._guard.close(task, reason)
        return True

    async def aclose(self, key: object, reason: str) -> bool:
        """Async :meth:`close` (the store's async path)."""
        task = self._pop(key)
        if task is None:
            return False
        await self._guard.aclose(task, reason)
        return True

    def _expired(self) -> list[Task]:
        now = self._guard.clock()
        with self._lock:
            dead = [k for k, r in self._runs.items() if now >= r.task.expires_at]
            return [self._runs.pop(k).task for k in dead]

    def sweep(self) -> int:
        """Close and drop every run whose grant has expired. Returns how many were dropped."""
        tasks = self._expired()
        for task in tasks:
            self._guard.close(task, "expired")
        return len(tasks)

    async def asweep(self) -> int:
        """Async :meth:`sweep`."""
        tasks = self._expired()
        for task in tasks:
            await self._guard.aclose(task, "expired")
        return len(tasks)

    def close_all(self, reason: str = "manual") -> int:
        """Close and drop every live run (e.g. at shutdown)."""
        with self._lock:
            runs = list(self._runs.values())
            self._runs.clear()
        for run in runs:
            self._guard.close(run.task, reason)
        return len(runs)
