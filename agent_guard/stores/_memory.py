"""The embedded grant store: one process, nothing to start, cost independent of past work.

Live runs are a dict of small records; expiry is a heap, so activating a run pops only the
records that expired (amortized O(log n)), never a sweep of every run. A revoked or expired run
keeps **no** record: a run id the store does not know is refused as ``revoked``, which is exactly
what refusing that grant needs. A run that spent its whole plan keeps only its id and expiry until
the grant expires, so a late call under it reads ``exhausted`` (over budget), as on Redis.
"""

from __future__ import annotations

import heapq
import threading
import time
from collections.abc import Callable, Sequence

from agent_guard.stores._base import (
    COMPLETED_AT,
    EXHAUSTED,
    OK_AT,
    REVOKED,
    Charge,
    ConsumeResult,
    Delegation,
    GrantStore,
    prebuild_results,
)
from agent_guard.stores._buckets import LimitTable

__all__ = ["InMemoryGrantStore"]

_COMPACT_SLACK = 64
"""The expiry heap is rebuilt from the live runs once it holds this many more entries than twice their count."""


class _Run:
    __slots__ = (
        "budgets", "cursor", "expires_at", "lock", "ordered", "parent", "parent_steps", "remaining", "revoked",
        "run_id", "used",
    )

    def __init__(
        self, run_id: str, budgets: Sequence[int], ordered: bool, expires_at: float,
        parent: _Run | None = None, parent_steps: Sequence[int] = (),
    ) -> None:
        self.run_id = run_id
        self.budgets = list(budgets)
        self.used = [0] * len(self.budgets)
        self.ordered = ordered
        self.expires_at = expires_at
        self.remaining = sum(self.budgets)
        self.revoked = False
        self.cursor = -1
        # a delegated run shares its root's lock, so one call charges the whole chain atomically
        self.lock: threading.Lock = parent.lock if parent is not None else threading.Lock()
        self.parent = parent
        self.parent_steps = tuple(parent_steps)

    def live(self, now: float) -> bool:
        """This run and every ancestor are active and unexpired."""
        run: _Run | None = self
        while run is not None:
            if run.remaining <= 0 or run.expires_at <= now:
                return False
            run = run.parent
        return True

    def refused(self, now: float) -> ConsumeResult:
        """Why a run that is not live refuses: revoked (or expired) anywhere in the chain, else spent."""
        run: _Run | None = self
        while run is not None:
            if run.revoked or run.expires_at <= now:
                return REVOKED
            run = run.parent
        return EXHAUSTED

    def chain_has_budget(self, step: int) -> bool:
        """Every ancestor still has a call left on the step this run's ``step`` spends from."""
        run, index = self, step
        while run.parent is not None:
            index = run.parent_steps[index]
            run = run.parent
            if run.used[index] >= run.budgets[index]:
                return False
        return True


class InMemoryGrantStore(GrantStore):
    """The embedded default: a dict of live runs, a lock per run, an expiry heap. One process only.

    Limits (running totals, rates) live in one table of buckets shared by every run; a limited
    call takes its run's lock, then the table's, so the step and every limit are charged
    together or not at all.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._runs: dict[str, _Run] = {}
        self._completed: dict[str, float] = {}
        """Runs that spent their whole plan: id -> expiry (dropped when it passes, or on revoke)."""
        self._expiry: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        self._clock = clock
        self.limits = LimitTable()
        """The running totals of every limit this store has charged."""

    def __len__(self) -> int:
        """How many runs are live (activated, not yet ended or found expired)."""
        return len(self._runs)

    def activate(
        self, run_id: str, *, budgets: Sequence[int], ordered: bool, expires_at: float,
        parent: Delegation | None = None,
    ) -> None:
        """Record ``run_id`` as active (see :meth:`GrantStore.activate`)."""
        prebuild_results(len(budgets))
        with self._lock:
            self._drop_expired(self._clock())
            if parent is None:
                run = _Run(run_id, budgets, ordered, expires_at)
            else:
                above = self._runs.get(parent.run_id)
                if above is None:
                    raise ValueError(f"parent run {parent.run_id!r} is not active")
                if len(parent.steps) != len(budgets) or not all(0 <= s < len(above.budgets) for s in parent.steps):
                    raise ValueError("parent.steps: expected one parent step index per child step")
                run = _Run(run_id, budgets, ordered, expires_at, above, parent.steps)
            self._runs[run_id] = run
            heapq.heappush(self._expiry, (expires_at, run_id))
            if len(self._expiry) > 2 * (len(self._runs) + len(self._completed)) + _COMPACT_SLACK:
                self._expiry = [(r.expires_at, rid) for rid, r in self._runs.items()]
                self._expiry += [(exp, rid) for rid, exp in self._completed.items()]
                heapq.heapify(self._expiry)

    def _drop_expired(self, now: float) -> None:
        heap, runs = self._expiry, self._runs
        while heap and heap[0][0] <= now:
            expires_at, run_id = heapq.heappop(heap)
            run = runs.get(run_id)
            if run is not None and run.expires_at == expires_at:
                del runs[run_id]
            elif self._completed.get(run_id) == expires_at:
                del self._completed[run_id]

    def consume(self, run_id: str, candidates: Sequence[int], charges: Sequence[Charge] = ()) -> ConsumeResult:
        """Charge one call atomically (see :meth:`GrantStore.consume`), to every ancestor and limit too."""
        run = self._runs.get(run_id)
        if run is None:
            expires_at = self._completed.get(run_id)
            return EXHAUSTED if expires_at is not None and expires_at > self._clock() else REVOKED
        completed: list[_Run] = []
        with run.lock:
            now = self._clock()
            if not run.live(now):
                return run.refused(now)
            saw_budget = False
            for step in candidates:
                if run.used[step] >= run.budgets[step] or not run.chain_has_budget(step):
                    continue
                saw_budget = True
                if run.ordered and not (step == run.cursor or step == run.cursor + 1):
                    continue
                if charges:  # the step has budget: now every limit must have room, or nothing is charged
                    refused = self.limits.try_charge(charges, now)
                    if refused is not None:
                        return ConsumeResult("limit_exceeded", refused)
                if run.ordered and step != run.cursor:
                    if run.cursor >= 0:  # moving on closes the previous step: its leftover budget is dead
                        run.remaining -= run.budgets[run.cursor] - run.used[run.cursor]
                    run.cursor = step
                charged: _Run | None = run
                index = step
                while charged is not None:
                    charged.used[index] += 1
                    charged.remaining -= 1
                    if charged.remaining <= 0:
                        completed.append(charged)
                    if charged.parent is not None:
                        index = charged.parent_steps[index]
                    charged = charged.parent
                break
            else:
                return ConsumeResult("out_of_order" if saw_budget else "exhausted")
        if not completed:
            return OK_AT[step]
        with self._lock:  # a completed run keeps only its id and expiry (a late call reads exhausted)
            for done in completed:
                if self._runs.get(done.run_id) is done:
                    del self._runs[done.run_id]
                    self._completed[done.run_id] = done.expires_at
        return COMPLETED_AT[step] if completed[0] is run else OK_AT[step]

    def revoke(self, run_id: str) -> bool:
        """End the run now (its delegated children with it); True when it was active until now."""
        with self._lock:
            run = self._runs.pop(run_id, None)
            self._completed.pop(run_id, None)  # a completed run revoked later reads revoked from now on
        if run is None:
            return False
        with run.lock:
            was_active = run.remaining > 0  # its own state, as Redis reports it (expiry aside)
            run.remaining = 0  # a consume that already holds the record, and every child, refuse from now on
            run.revoked = True
            return was_active

    def is_active(self, run_id: str) -> bool:
        """True while the run and its ancestors are active (not revoked, completed or expired)."""
        run = self._runs.get(run_id)
        return run is not None and run.live(self._clock())

    def remaining(self, run_id: str) -> tuple[int, ...] | None:
        """Calls left per step of a live run, bounded by what its ancestors have left."""
        run = self._runs.get(run_id)
        if run is None:
            return None
        with run.lock:
            if not run.live(self._clock()):
                return None
            left = []
            for step in range(len(run.budgets)):
                n, node, index = run.budgets[step] - run.used[step], run, step
                while node.parent is not None:
                    index = node.parent_steps[index]
                    node = node.parent
                    n = min(n, node.budgets[index] - node.used[index])
                left.append(n)
            return tuple(left)
