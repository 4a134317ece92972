"""The embedded grant store: one process, nothing to start, cost independent of past work.

Live runs are a dict of small records; expiry is a heap, so activating a run pops only the
records that expired (amortized O(log n)), never a sweep of every run. A run that ends (revoked,
completed or expired) keeps **no** record: a run id the store does not know is refused as
``revoked``, which is exactly what refusing that grant needs until it expires.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Sequence

from agent_guard.stores._base import COMPLETED_AT, OK_AT, REVOKED, ConsumeResult, GrantStore, prebuild_results

__all__ = ["InMemoryGrantStore"]

_COMPACT_SLACK = 64
"""The expiry heap is rebuilt from the live runs once it holds this many more entries than twice their count."""


class _Run:
    __slots__ = ("budgets", "cursor", "expires_at", "lock", "ordered", "remaining", "used")

    def __init__(self, budgets: Sequence[int], ordered: bool, expires_at: float) -> None:
        self.budgets = list(budgets)
        self.used = [0] * len(self.budgets)
        self.ordered = ordered
        self.expires_at = expires_at
        self.remaining = sum(self.budgets)
        self.cursor = -1
        self.lock = threading.Lock()


class InMemoryGrantStore(GrantStore):
    """The embedded default: a dict of live runs, a lock per run, an expiry heap. One process only."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._runs: dict[str, _Run] = {}
        self._expiry: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._clock = clock

    def __len__(self) -> int:
        """How many runs are live (activated, not yet ended or found expired)."""
        return len(self._runs)

    def activate(self, run_id: str, *, budgets: Sequence[int], ordered: bool, expires_at: float) -> None:
        """Record ``run_id`` as active (see :meth:`GrantStore.activate`)."""
        run = _Run(budgets, ordered, expires_at)
        prebuild_results(len(run.budgets))
        with self._lock:
            self._drop_expired(self._clock())
            self._runs[run_id] = run
            heapq.heappush(self._expiry, (expires_at, run_id))
            if len(self._expiry) > 2 * len(self._runs) + _COMPACT_SLACK:
                self._expiry = [(r.expires_at, rid) for rid, r in self._runs.items()]
                heapq.heapify(self._expiry)

    def _drop_expired(self, now: float) -> None:
        heap, runs = self._expiry, self._runs
        while heap and heap[0][0] <= now:
            expires_at, run_id = heapq.heappop(heap)
            run = runs.get(run_id)
            if run is not None and run.expires_at == expires_at:
                del runs[run_id]

    def _forget(self, run_id: str) -> None:
        with self._lock:
            self._runs.pop(run_id, None)

    def consume(self, run_id: str, candidates: Sequence[int]) -> ConsumeResult:
        """Charge one call atomically (see :meth:`GrantStore.consume`)."""
        run = self._runs.get(run_id)
        if run is None:
            return REVOKED
        with run.lock:
            if run.remaining <= 0 or run.expires_at <= self._clock():
                return REVOKED
            saw_budget = False
            for step in candidates:
                if run.used[step] >= run.budgets[step]:
                    continue
                saw_budget = True
                if run.ordered and not (step == run.cursor or step == run.cursor + 1):
                    continue
                if run.ordered and step != run.cursor:
                    if run.cursor >= 0:  # moving on closes the previous step: its leftover budget is dead
                        run.remaining -= run.budgets[run.cursor] - run.used[run.cursor]
                    run.cursor = step
                run.used[step] += 1
                run.remaining -= 1
                if run.remaining <= 0:
                    break
                return OK_AT[step]
            else:
                return ConsumeResult("out_of_order" if saw_budget else "exhausted")
        self._forget(run_id)  # completed: nothing is left to spend, so nothing is kept
        return COMPLETED_AT[step]

    def revoke(self, run_id: str) -> bool:
        """End the run now; True when it was active until now."""
        with self._lock:
            run = self._runs.pop(run_id, None)
        if run is None:
            return False
        with run.lock:
            was_active = run.remaining > 0 and run.expires_at > self._clock()
            run.remaining = 0  # a consume that already holds the record refuses from now on
            return was_active

    def is_active(self, run_id: str) -> bool:
        """True while the run is active (not revoked, completed or expired)."""
        run = self._runs.get(run_id)
        return run is not None and run.remaining > 0 and run.expires_at > self._clock()
