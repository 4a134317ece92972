"""Live tasks of guarded runs in this process, keyed by their run record's key.

One registry per :class:`~agent_guard.Guard` (shared by every middleware built on it), so a
middleware built anew in the same process -- a restarted agent, another request handler -- finds
the live task of a paused thread instead of minting again. An entry is bound to the LangGraph
thread it was created on. The Task (which holds the signed grant) stays in memory; the agent state
carries only the run record (:mod:`._record`).

An entry whose task is closed stays until its grant's expiry when it still says something: a run
aborted by a raised refusal (parallel calls of the same turn re-raise that refusal), a run ended
by ``on_violation="end"`` or revoked by :meth:`RunRegistry.close_owned` (its calls are refused
and the run ends; no grant is minted again for it in this process), a run paused by the graph
(released: its grant lives on in the store).
``sweep`` closes and drops every entry whose grant has expired. Closing goes through the core
lifecycle: :meth:`Guard.close` / :meth:`Guard.aclose` revoke the grant and end the task's span.
"""

from __future__ import annotations

import concurrent.futures
import threading
import weakref
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any
from uuid import UUID

from agent_guard import Guard, Task, ToolCallDenied

__all__ = ["RunEntry", "RunRegistry", "registry_for", "thread_id_of"]


def thread_id_of(runtime: Any) -> str | None:
    """The LangGraph thread id of a ``Runtime``/``ToolRuntime`` (``None`` without a checkpointer)."""
    info = getattr(runtime, "execution_info", None)
    value = getattr(info, "thread_id", None)
    return str(value) if value is not None else None


@dataclass
class RunEntry:
    """One run's live state in this process."""

    key: str
    thread: str | None
    task: Task
    owner: int
    """``id()`` of the middleware that registered or last resumed the run (for ``active_runs``/``close``)."""
    root: UUID | None = None
    """The graph run (callback run id) executing it now, when a :class:`~._watch.RunWatcher` is attached."""
    aborted: ToolCallDenied | None = None
    """The refusal that aborted the run in raise mode (re-raised for the other calls of the turn)."""
    ending: str | None = None
    """Why the run ends (the refusal of ``on_violation="end"``, or a revocation): the final message says it."""
    extra: dict[str, Any] = field(default_factory=dict)

    def current(self) -> Task:
        """The task, following replacements (``guard.replan``) to the latest one."""
        task = self.task
        while task.successor is not None:
            task = task.successor
        return task


class RunRegistry:
    """Thread-safe map: run key -> :class:`RunEntry`; single-flight minting per key."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard
        self._runs: dict[str, RunEntry] = {}
        self._lock = threading.Lock()
        self._flights: dict[str, concurrent.futures.Future[Task]] = {}

    def __len__(self) -> int:
        return len(self._runs)

    def entries(self) -> Iterator[RunEntry]:
        """A snapshot of the entries."""
        with self._lock:
            return iter(list(self._runs.values()))

    def active(self, owner: int) -> int:
        """How many runs registered by ``owner`` hold a task that is not closed."""
        return sum(1 for e in self.entries() if e.owner == owner and not e.current().closed)

    def put(self, key: str, thread: str | None, task: Task, owner: int, root: UUID | None = None) -> RunEntry:
        """Register (or replace) the task of ``key``."""
        entry = RunEntry(key, thread, task, owner, root)
        with self._lock:
            self._runs[key] = entry
        return entry

    def get(self, key: object, thread: str | None) -> RunEntry | None:
        """The entry of ``key`` if it exists and belongs to ``thread``; else ``None``."""
        if not isinstance(key, str):
            return None
        entry = self._runs.get(key)
        if entry is None or entry.thread != thread:
            return None
        return entry

    def pop(self, key: object, thread: str | None) -> RunEntry | None:
        """Remove and return the entry of ``key`` (on ``thread``)."""
        if not isinstance(key, str):
            return None
        with self._lock:
            entry = self._runs.get(key)
            if entry is None or entry.thread != thread:
                return None
            return self._runs.pop(key)

    def forget(self, key: str) -> None:
        """Drop ``key`` without closing its task (its task was replaced or is closed elsewhere)."""
        with self._lock:
            self._runs.pop(key, None)

    def attached_to(self, root: UUID) -> list[RunEntry]:
        """The entries the graph run ``root`` executes."""
        return [e for e in self.entries() if e.root == root]

    # -- single-flight: one mint per run key at a time --------------------------------------------
    def flight(self, key: str) -> tuple[concurrent.futures.Future[Task], bool]:
        """``(future, leader)``: the leader mints and settles the future; the others wait for it."""
        with self._lock:
            found = self._flights.get(key)
            if found is not None:
                return found, False
            future: concurrent.futures.Future[Task] = concurrent.futures.Future()
            self._flights[key] = future
            return future, True

    def land(self, key: str, future: concurrent.futures.Future[Task]) -> None:
        """End the flight of ``key`` (after its future was settled)."""
        with self._lock:
            if self._flights.get(key) is future:
                del self._flights[key]

    # -- closing ---------------------------------------------------------------------------------
    def _expired(self) -> list[RunEntry]:
        now = self._guard.clock()
        with self._lock:
            dead = [k for k, e in self._runs.items() if now >= e.current().expires_at]
            return [self._runs.pop(k) for k in dead]

    def sweep(self) -> int:
        """Close and drop every run whose grant has expired. Returns how many were dropped."""
        entries = self._expired()
        for entry in entries:
            self._guard.close(entry.task, "expired")
        return len(entries)

    async def asweep(self) -> int:
        """Async :meth:`sweep`."""
        entries = self._expired()
        for entry in entries:
            await self._guard.aclose(entry.task, "expired")
        return len(entries)

    def close_owned(self, owner: int, reason: str) -> int:
        """Revoke every live run ``owner`` executes (e.g. at shutdown); their calls in this process are then
        refused and the runs end. Returns how many were live."""
        entries = [e for e in self.entries() if e.owner == owner and not e.current().closed]
        for entry in entries:
            if entry.ending is None:
                entry.ending = f"The run's grant was revoked ({reason})."
            self._guard.close(entry.task, reason)
        return len(entries)


_REGISTRIES: weakref.WeakKeyDictionary[Guard, RunRegistry] = weakref.WeakKeyDictionary()
_REGISTRIES_LOCK = threading.Lock()


def registry_for(guard: Guard) -> RunRegistry:
    """The registry of ``guard`` (one per guard and process)."""
    with _REGISTRIES_LOCK:
        found = _REGISTRIES.get(guard)
        if found is None:
            found = _REGISTRIES[guard] = RunRegistry(guard)
        return found
