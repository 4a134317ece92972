"""Grant stores: which runs are active, revocation, and atomic call budgets.

A store is the one place that says whether a grant may still be used. The guard calls
:meth:`GrantStore.consume` once per allowed-looking call; the store decides atomically, so
concurrent calls (threads, tasks, worker processes) can never overspend a budget. A store that
cannot be reached raises :class:`~agent_guard.StoreUnavailable` and the guard denies.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal, NamedTuple

__all__ = ["ConsumeResult", "ConsumeStatus", "GrantStore", "InMemoryGrantStore"]

ConsumeStatus = Literal["ok", "completed", "revoked", "exhausted", "out_of_order"]
"""``ok``: allowed; ``completed``: allowed and no budget is left (for an ordered plan: none in the
current or later steps, since moving to step k closes step k-1), so the run is now revoked;
``revoked``: the run is not active (revoked, expired or unknown); ``exhausted``: every matching
step's budget is spent; ``out_of_order``: an ordered plan does not allow these steps now."""

OK: Final = "ok"


class ConsumeResult(NamedTuple):
    """What :meth:`GrantStore.consume` decided, and which step it charged."""

    status: ConsumeStatus
    step: int | None = None


_OK_AT: Final[list[ConsumeResult]] = []
_COMPLETED_AT: Final[list[ConsumeResult]] = []
_RESULTS_LOCK: Final = threading.Lock()
_REVOKED: Final = ConsumeResult("revoked")


def _prebuild_results(steps: int) -> None:
    """Make ``_OK_AT[i]``/``_COMPLETED_AT[i]`` exist for every step index below ``steps``.

    Called at activation, so the per-call path indexes shared results instead of allocating one.
    """
    if len(_OK_AT) >= steps:
        return
    with _RESULTS_LOCK:
        for i in range(len(_OK_AT), steps):
            _OK_AT.append(ConsumeResult("ok", i))
            _COMPLETED_AT.append(ConsumeResult("completed", i))


class GrantStore(ABC):
    """Interface of a grant store. Implementations must make :meth:`consume` atomic."""

    @abstractmethod
    def activate(self, run_id: str, *, budgets: Sequence[int], ordered: bool, expires_at: float) -> None:
        """Record ``run_id`` as active with one call budget per plan step (before the grant is handed out)."""

    @abstractmethod
    def consume(self, run_id: str, candidates: Sequence[int]) -> ConsumeResult:
        """Charge one call to the first of ``candidates`` (step indices, plan order) with budget left."""

    @abstractmethod
    def revoke(self, run_id: str) -> bool:
        """Mark the run revoked. True when it was active until now."""

    @abstractmethod
    def is_active(self, run_id: str) -> bool:
        """True while the run is active (not revoked, completed or expired)."""

    async def aactivate(self, run_id: str, *, budgets: Sequence[int], ordered: bool, expires_at: float) -> None:
        """Async :meth:`activate` (defaults to the sync method)."""
        self.activate(run_id, budgets=budgets, ordered=ordered, expires_at=expires_at)

    async def aconsume(self, run_id: str, candidates: Sequence[int]) -> ConsumeResult:
        """Async :meth:`consume` (defaults to the sync method)."""
        return self.consume(run_id, candidates)

    async def arevoke(self, run_id: str) -> bool:
        """Async :meth:`revoke` (defaults to the sync method)."""
        return self.revoke(run_id)


@dataclass(slots=True)
class _Run:
    budgets: list[int]
    used: list[int]
    ordered: bool
    expires_at: float
    remaining: int
    cursor: int = -1
    active: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)


class InMemoryGrantStore(GrantStore):
    """The embedded default: a dict and a lock per run. One process only; nothing to start.

    Records are dropped lazily once their grant has expired.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._runs: dict[str, _Run] = {}
        self._lock = threading.Lock()
        self._clock = clock

    def activate(self, run_id: str, *, budgets: Sequence[int], ordered: bool, expires_at: float) -> None:
        run = _Run(list(budgets), [0] * len(budgets), ordered, expires_at, sum(budgets))
        _prebuild_results(len(budgets))
        with self._lock:
            self._sweep()
            self._runs[run_id] = run

    def _sweep(self) -> None:
        now = self._clock()
        for rid in [rid for rid, r in self._runs.items() if r.expires_at <= now]:
            del self._runs[rid]

    def consume(self, run_id: str, candidates: Sequence[int]) -> ConsumeResult:
        run = self._runs.get(run_id)
        if run is None:
            return _REVOKED
        with run.lock:
            if not run.active or run.expires_at <= self._clock():
                return _REVOKED
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
                if run.remaining == 0:
                    run.active = False
                    return _COMPLETED_AT[step]
                return _OK_AT[step]
            return ConsumeResult("out_of_order" if saw_budget else "exhausted")

    def revoke(self, run_id: str) -> bool:
        run = self._runs.get(run_id)
        if run is None:
            return False
        with run.lock:
            was_active = run.active
            run.active = False
            return was_active

    def is_active(self, run_id: str) -> bool:
        run = self._runs.get(run_id)
        return run is not None and run.active and run.expires_at > self._clock()
