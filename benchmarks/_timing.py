"""Shared timing helpers for the benchmark scripts: interleaved samples, median µs per call.

Cases are measured in interleaved rounds (each round visits every case once, in a new random
order), so load from other processes on this shared 2-core machine spreads over all cases alike.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Callable, Mapping


def _sample(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(number):
        fn()
    return (time.perf_counter_ns() - start) / number / 1000


def compare(cases: Mapping[str, tuple[Callable[[], object], int]], *, rounds: int = 15, seed: int = 1) -> dict[str, float]:
    """Median µs per call of each case: ``{name: (fn, calls_per_sample)}``, GC on, warmed up."""
    rng = random.Random(seed)
    for fn, number in cases.values():
        _sample(fn, min(number, 100))
    samples: dict[str, list[float]] = {name: [] for name in cases}
    gc.collect()
    for _ in range(rounds):
        order = list(cases)
        rng.shuffle(order)
        for name in order:
            fn, number = cases[name]
            samples[name].append(_sample(fn, number))
    return {name: statistics.median(values) for name, values in samples.items()}


def per_call_us(fn: Callable[[], object], *, number: int = 2000, repeat: int = 15) -> float:
    """Median µs per call of one case (see :func:`compare` for several)."""
    return compare({"x": (fn, number)}, rounds=repeat)["x"]


def row(label: str, value: float, unit: str = "µs", note: str = "") -> str:
    """One aligned result line."""
    return f"  {label:<60} {value:>9.2f} {unit:<3} {note}"
