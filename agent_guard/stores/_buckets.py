"""The running totals of limits in one process (the in-memory store's half of a limited call).

One dict of buckets under one lock: a limit is shared across runs (per user, agent, tenant), so
its bucket cannot live under a run's lock. The store takes a run's lock first and this lock
inside it (always in that order), checks every charge, then charges them all, so a call is
charged to all its limits and its step, or to nothing.

A bucket is ``[window, total, forget_at]``. Windows are fixed and aligned to the epoch
(``floor(now / window_s)``); a later window starts at 0; an earlier one (a clock that went back)
charges the bucket's own window, so a spent window never reopens while the bucket is kept. A
bucket is kept until the end of the window after its latest one (whole-task buckets until the
task expires) and swept in amortized O(1).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Final

from agent_guard.stores._base import Charge, LimitBucket

__all__ = ["LimitTable"]

_SWEEP_FROM: Final = 64
"""Sweep expired buckets once the table holds this many (then twice the count left after a sweep)."""


class LimitTable:
    """Buckets of every limit a store has charged: check-all-then-charge-all under one lock."""

    __slots__ = ("_buckets", "_lock", "_sweep_at")

    def __init__(self) -> None:
        self._buckets: dict[str, list[float]] = {}
        self._lock = threading.Lock()
        self._sweep_at = _SWEEP_FROM

    def __len__(self) -> int:
        """How many buckets are kept."""
        return len(self._buckets)

    def try_charge(self, charges: Sequence[Charge], now: float) -> int | None:
        """Charge every charge, or none: ``None`` when all fit, else the index of the first that does not.

        Windows are ``floor(now / window_s)`` (not ``now // window_s``, which can differ by one at a
        boundary): exactly what the Redis script computes, so both stores agree.
        """
        buckets = self._buckets
        floor = math.floor
        with self._lock:
            staged: list[tuple[LimitBucket, list[float] | None, float, float]] = []
            for index, (bucket, amount) in enumerate(charges):
                window = bucket[3]  # LimitBucket(key, tag, max, window_s, until, label), read by index: hot path
                current: float = floor(now / window) if window else 0
                state = buckets.get(bucket[0])
                if state is not None and current <= state[0]:  # this window, or a clock that went back: the latest
                    current, total = state[0], state[1] + amount
                else:
                    total = 0.0 + amount
                if total > bucket[2]:
                    return index
                staged.append((bucket, state, current, total))
            for bucket, state, current, total in staged:
                window = bucket[3]
                forget = (current + 2) * window if window else bucket[4]
                if state is None:
                    buckets[bucket[0]] = [current, total, forget]
                else:
                    state[0], state[1] = current, total
                    if forget > state[2]:
                        state[2] = forget
            if len(buckets) >= self._sweep_at:
                self._sweep(now)
        return None

    def _sweep(self, now: float) -> None:
        """Drop buckets past their keeping time (the lock is held)."""
        buckets = self._buckets
        for key in [k for k, b in buckets.items() if b[2] <= now]:
            del buckets[key]
        self._sweep_at = max(_SWEEP_FROM, 2 * len(buckets))

    def state(self, key: str) -> tuple[float, float] | None:
        """``(window, total)`` of bucket ``key`` as kept (``None`` when it is not): for tests and tools."""
        with self._lock:
            found = self._buckets.get(key)
            return None if found is None else (float(found[0]), found[1])

    def total(self, key: str, now: float, window_s: int) -> float:
        """The running total of bucket ``key`` in the window of ``now`` (0 when none): for tests and tools."""
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                return 0.0
            current = float(math.floor(now / window_s)) if window_s else 0.0
            return found[1] if current <= found[0] else 0.0
