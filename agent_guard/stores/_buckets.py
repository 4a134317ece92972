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

from agent_guard.stores._base import Charge

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
        """Charge every charge, or none: ``None`` when all fit, else the index of the first that does not."""
        buckets = self._buckets
        with self._lock:
            planned: list[tuple[str, float, float, float]] = []
            for i, (bucket, amount) in enumerate(charges):
                window = bucket.window_s
                current = float(math.floor(now / window)) if window else 0.0
                found = buckets.get(bucket.key)
                total = 0.0
                if found is not None and current <= found[0]:
                    current, total = found[0], found[1]  # this window, or a clock that went back: the latest
                total += amount
                if total > bucket.max:
                    return i
                forget = (current + 2) * window if window else bucket.until
                planned.append((bucket.key, current, total, forget))
            for key, current, total, forget in planned:
                found = buckets.get(key)
                if found is None:
                    buckets[key] = [current, total, forget]
                else:
                    found[0], found[1], found[2] = current, total, max(found[2], forget)
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
            return None if found is None else (found[0], found[1])

    def total(self, key: str, now: float, window_s: int) -> float:
        """The running total of bucket ``key`` in the window of ``now`` (0 when none): for tests and tools."""
        with self._lock:
            found = self._buckets.get(key)
            if found is None:
                return 0.0
            current = float(math.floor(now / window_s)) if window_s else 0.0
            return found[1] if current <= found[0] else 0.0
