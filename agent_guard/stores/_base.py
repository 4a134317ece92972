"""Grant stores: which runs are active, revocation, atomic call budgets and limits.

A store is the one place that says whether a grant may still be used. The guard calls
:meth:`GrantStore.consume` once per allowed-looking call; the store decides atomically, so
concurrent calls (threads, tasks, worker processes) can never overspend a budget or a limit
(a running total or a rate, see :class:`Charge`). A store that cannot be reached raises
:class:`~agent_guard.StoreUnavailable` and the guard denies.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Final, Literal, NamedTuple

__all__ = [
    "Charge", "ConsumeResult", "ConsumeStatus", "Delegation", "GrantStore", "LimitBucket", "prebuild_results",
]

ConsumeStatus = Literal["ok", "completed", "revoked", "exhausted", "out_of_order", "limit_exceeded"]
"""``ok``: allowed; ``completed``: allowed and no budget is left (for an ordered plan: none in the
current or later steps, since moving to step k closes step k-1), so the run is now revoked;
``revoked``: the run is not active (revoked, expired or unknown); ``exhausted``: every matching
step's budget is spent; ``out_of_order``: an ordered plan does not allow these steps now;
``limit_exceeded``: a step has budget but a charge does not fit its limit (nothing was charged)."""



class ConsumeResult(NamedTuple):
    """What :meth:`GrantStore.consume` decided, and which step it charged.

    For ``limit_exceeded``, ``step`` is the index (in the ``charges`` given) of the first charge
    that did not fit: read it as :attr:`limit`.
    """

    status: ConsumeStatus
    step: int | None = None

    @property
    def limit(self) -> int | None:
        """For ``limit_exceeded``: the index of the charge that did not fit; else ``None``."""
        return self.step if self.status == "limit_exceeded" else None


class LimitBucket(NamedTuple):
    """Where one limit keeps its running total for one task, user, agent or tenant (built once per task)."""

    key: str
    """The bucket's name: a hash of the tool, the limit and whose total it is (no user data in clear)."""
    tag: str
    """The Redis hash tag: the task id for a per-task limit (the run's slot), else the key itself."""
    max: float
    """The most the total may reach in one window (``max``, or ``calls`` for a rate)."""
    window_s: int
    """The window in seconds, aligned to the epoch; 0 for the whole task."""
    until: float
    """For ``window_s == 0``: when the bucket may be forgotten (the task's expiry)."""
    label: str
    """How a refusal names the limit (``transfer: sum_of amount per user per 86400 s``); never a value."""


class Charge(NamedTuple):
    """One limit a call must fit in: the bucket and what the call adds (1 for a rate, the amount for a sum)."""

    bucket: LimitBucket
    amount: float


OK_AT: Final[list[ConsumeResult]] = []
"""``OK_AT[i]``: the shared result "ok, charged step i" (see :func:`prebuild_results`)."""
COMPLETED_AT: Final[list[ConsumeResult]] = []
"""``COMPLETED_AT[i]``: the shared result "completed, charged step i"."""
_RESULTS_LOCK: Final = threading.Lock()
REVOKED: Final = ConsumeResult("revoked")
"""The shared result for a run that is not active (revoked, expired or unknown)."""
EXHAUSTED: Final = ConsumeResult("exhausted")
"""The shared result for a run whose plan is spent (also when its whole plan was completed)."""


def prebuild_results(steps: int) -> None:
    """Make ``OK_AT[i]``/``COMPLETED_AT[i]`` exist for every step index below ``steps``.

    Called at activation, so the per-call path indexes shared results instead of allocating one.
    """
    if len(OK_AT) >= steps:
        return
    with _RESULTS_LOCK:
        for i in range(len(OK_AT), steps):
            OK_AT.append(ConsumeResult("ok", i))
            COMPLETED_AT.append(ConsumeResult("completed", i))


class Delegation(NamedTuple):
    """A child run's link to its parent: every call of the child also spends the parent's budget."""

    run_id: str
    """The parent's run id."""
    steps: tuple[int, ...]
    """For each child step, the parent step it spends from."""


class GrantStore(ABC):
    """Interface of a grant store. Implementations must make :meth:`consume` atomic.

    A run activated with ``parent=`` (a delegated child) charges each call to its own step AND to
    the mapped step of every ancestor, in the same atomic operation; it is refused as soon as any
    ancestor is no longer active. ``charges`` (limits over time and money) are checked and
    charged in that same operation: all of them and the step, or nothing. The guard passes
    ``charges`` only when the matched step has limits, so a store written before limits existed
    keeps working for every policy without them (and refuses, ``store_unavailable``, every call
    that has limits: it cannot take the charges, so the guard fails closed).

    Limit windows are fixed and aligned to the epoch on the store's clock: window
    ``floor(now / window_s)``; a bucket whose recorded window is later than now's (a clock that
    went back) keeps charging its recorded window.
    """

    @abstractmethod
    def activate(
        self, run_id: str, *, budgets: Sequence[int], ordered: bool, expires_at: float,
        parent: Delegation | None = None,
    ) -> None:
        """Record ``run_id`` as active with one call budget per plan step (before the grant is handed out)."""

    @abstractmethod
    def consume(self, run_id: str, candidates: Sequence[int], charges: Sequence[Charge] = ()) -> ConsumeResult:
        """Charge one call to the first of ``candidates`` (step indices, plan order) with budget left,
        and every charge to its limit bucket, atomically; ``limit_exceeded`` when a charge does not fit."""

    @abstractmethod
    def revoke(self, run_id: str) -> bool:
        """Mark the run revoked. True when it was active until now."""

    @abstractmethod
    def is_active(self, run_id: str) -> bool:
        """True while the run is active (not revoked, completed or expired)."""

    def remaining(self, run_id: str) -> tuple[int, ...] | None:
        """Calls left per step of an active run (``None`` when it is not active).

        Needed to delegate from or replan a run; a store that cannot tell raises ``NotImplementedError``.
        """
        raise NotImplementedError(f"{type(self).__name__} cannot report remaining budgets (needed to delegate)")

    async def aactivate(
        self, run_id: str, *, budgets: Sequence[int], ordered: bool, expires_at: float,
        parent: Delegation | None = None,
    ) -> None:
        """Async :meth:`activate` (defaults to the sync method)."""
        self.activate(run_id, budgets=budgets, ordered=ordered, expires_at=expires_at, parent=parent)

    async def aremaining(self, run_id: str) -> tuple[int, ...] | None:
        """Async :meth:`remaining` (defaults to the sync method)."""
        return self.remaining(run_id)

    async def aconsume(self, run_id: str, candidates: Sequence[int], charges: Sequence[Charge] = ()) -> ConsumeResult:
        """Async :meth:`consume` (defaults to the sync method)."""
        if charges:
            return self.consume(run_id, candidates, charges)
        return self.consume(run_id, candidates)

    async def arevoke(self, run_id: str) -> bool:
        """Async :meth:`revoke` (defaults to the sync method)."""
        return self.revoke(run_id)

    async def ais_active(self, run_id: str) -> bool:
        """Async :meth:`is_active` (defaults to the sync method)."""
        return self.is_active(run_id)
