"""Shared timing helpers for the benchmark scripts: interleaved samples, median µs per call.

Cases are measured in interleaved rounds (each round visits every case once, in a new random
order), so load from other processes on this shared 2-core machine spreads over all cases alike.
Async cases (callables returning awaitables) are awaited back to back inside the running loop.
"""

from __future__ import annotations

import gc
import random
import statistics
import time
from collections.abc import Awaitable, Callable, Mapping

Samples = dict[str, list[float]]
"""µs per call of each case, one value per round."""


def _sample(fn: Callable[[], object], number: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(number):
        fn()
    return (time.perf_counter_ns() - start) / number / 1000


async def _asample(fn: Callable[[], Awaitable[object]], number: int) -> float:
    start = time.perf_counter_ns()
    for _ in range(number):
        await fn()
    return (time.perf_counter_ns() - start) / number / 1000


def _orders(names: list[str], rounds: int, seed: int) -> list[list[str]]:
    rng = random.Random(seed)
    orders = []
    for _ in range(rounds):
        order = list(names)
        rng.shuffle(order)
        orders.append(order)
    return orders


def samples(cases: Mapping[str, tuple[Callable[[], object], int]], *, rounds: int = 15, seed: int = 1) -> Samples:
    """Per-round µs per call of each case: ``{name: (fn, calls_per_sample)}``, GC on, warmed up."""
    for fn, number in cases.values():
        _sample(fn, min(number, 100))
    out: Samples = {name: [] for name in cases}
    gc.collect()
    for order in _orders(list(cases), rounds, seed):
        for name in order:
            fn, number = cases[name]
            out[name].append(_sample(fn, number))
    return out


async def asamples(
    cases: Mapping[str, tuple[Callable[[], Awaitable[object]], int]], *, rounds: int = 15, seed: int = 1
) -> Samples:
    """Async :func:`samples`: each case returns an awaitable, awaited in the running event loop."""
    for fn, number in cases.values():
        await _asample(fn, min(number, 100))
    out: Samples = {name: [] for name in cases}
    gc.collect()
    for order in _orders(list(cases), rounds, seed):
        for name in order:
            fn, number = cases[name]
            out[name].append(await _asample(fn, number))
    return out


def medians(found: Samples) -> dict[str, float]:
    """The median of each case's samples."""
    return {name: statistics.median(values) for name, values in found.items()}


def compare(cases: Mapping[str, tuple[Callable[[], object], int]], *, rounds: int = 15, seed: int = 1) -> dict[str, float]:
    """Median µs per call of each case: ``{name: (fn, calls_per_sample)}`` (see :func:`samples`)."""
    return medians(samples(cases, rounds=rounds, seed=seed))


async def acompare(
    cases: Mapping[str, tuple[Callable[[], Awaitable[object]], int]], *, rounds: int = 15, seed: int = 1
) -> dict[str, float]:
    """Async :func:`compare`."""
    return medians(await asamples(cases, rounds=rounds, seed=seed))


def per_call_us(fn: Callable[[], object], *, number: int = 2000, repeat: int = 15) -> float:
    """Median µs per call of one case (see :func:`compare` for several)."""
    return compare({"x": (fn, number)}, rounds=repeat)["x"]


def row(label: str, value: float, unit: str = "µs", note: str = "") -> str:
    """One aligned result line."""
    return f"  {label:<60} {value:>9.2f} {unit:<3} {note}"
