"""Cost of the durable decision log (agent_guard.audit.DecisionLog).

1. Per-call overhead: median µs of ``guard.authorize`` (allowed call, 3 arguments, no-op tracer)
   without a log, with the log (fsync="batch", the default; "never"; "always"; "batch" with signed
   checkpoints every 100 records), vs an unguarded call.
2. Burst throughput: 20,000 decisions from 4 threads at once into one log, records/s (and a
   smaller burst with fsync="always", where the disk's fsync latency sets the pace), unsigned and signed.
3. Verifying the burst log: chain only, and chain + every checkpoint signature (``--jwks``).

Run: ``.venv/bin/python benchmarks/bench_audit.py`` (about 30-60 s). Prints figures, asserts nothing.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from opentelemetry.trace import NoOpTracerProvider

from agent_guard import AgentIdentity, Capability, Guard, KeySet, Plan, Policy, Step
from agent_guard.audit import DecisionLog, verify_log

CALLS = 5_000
REPEATS = 7
BURST = 20_000
THREADS = 4
ARGS = {"to": "alice@example.com", "subject": "Hello", "body": "Your order shipped."}

POLICY = Policy(agent_id="bench-bot", capabilities=[
    Capability("send_email", args={"to": {"glob": "*@example.com"}, "subject": {"max_len": 200},
                                   "body": {"max_len": 2000}}),
])
ME = AgentIdentity(agent_id="bench-bot", user_id="u-1")
KEYS = KeySet.generate()


def plan(calls: int) -> Plan:
    """One step allowing ``calls`` emails to example.com."""
    return Plan(goal="bench", steps=[Step("send_email", args={"to": {"glob": "*@example.com"},
                                                               "subject": {"any": True}, "body": {"any": True}},
                                          max_calls=calls)])


def send_email(to: str, subject: str, body: str) -> str:
    """The unguarded tool."""
    return to


def per_call_us(guard: Guard | None) -> float:
    """Median over REPEATS of the mean µs per call over CALLS calls."""
    samples = []
    for _ in range(REPEATS):
        if guard is None:
            start = time.perf_counter_ns()
            for _ in range(CALLS):
                send_email(**ARGS)
            samples.append((time.perf_counter_ns() - start) / CALLS / 1000)
            continue
        with guard.task(plan(CALLS), identity=ME):
            authorize = guard.authorize
            start = time.perf_counter_ns()
            for _ in range(CALLS):
                authorize("send_email", ARGS)
            samples.append((time.perf_counter_ns() - start) / CALLS / 1000)
    return statistics.median(samples)


def with_log(directory: Path, name: str, **options: object) -> tuple[Guard, DecisionLog]:
    """A guard (no-op tracer) writing to a fresh log."""
    log = DecisionLog(directory / f"{name}.jsonl", **options)  # type: ignore[arg-type]
    return Guard(POLICY, keys=KEYS, tracer_provider=NoOpTracerProvider(), decision_log=log), log


def burst(directory: Path, name: str, total: int, **options: object) -> tuple[float, int]:
    """``total`` decisions from THREADS threads released together; returns (records/s, records)."""
    guard, log = with_log(directory, name, **options)
    per_thread = total // THREADS
    barrier = threading.Barrier(THREADS + 1)

    def worker() -> None:
        with guard.task(plan(per_thread), identity=ME):
            barrier.wait()
            for _ in range(per_thread):
                guard.authorize("send_email", ARGS)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    log.close()
    result = verify_log(log.path)
    assert result.ok, result
    decisions = per_thread * THREADS
    return decisions / elapsed, result.records


def main() -> int:
    """Run both measurements and print a small report."""
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs; {CALLS} calls x {REPEATS} repeats, median")
    with tempfile.TemporaryDirectory(prefix="bench-audit-") as tmp:
        directory = Path(tmp)
        bare = per_call_us(None)
        no_log = per_call_us(Guard(POLICY, tracer_provider=NoOpTracerProvider()))
        print(f"\n{'case':48} {'µs/call':>9} {'vs guard w/o log':>17} {'log overhead µs':>16}")
        print(f"{'unguarded call':48} {bare:9.2f}")
        print(f"{'guard.authorize, no log':48} {no_log:9.2f} {1.0:16.2f}x")
        for fsync, signed in (("batch", False), ("never", False), ("always", False), ("batch", True)):
            extra = {"signing_keys": KEYS} if signed else {}
            guard, log = with_log(directory, f"per-call-{fsync}-{signed}", fsync=fsync, **extra)
            us = per_call_us(guard)
            log.close()
            label = f"guard.authorize + DecisionLog({fsync!r}{', signed' if signed else ''})"
            print(f"{label:48} {us:9.2f} {us / no_log:16.2f}x {us - no_log:16.2f}")

        print(f"\nburst: {BURST} decisions from {THREADS} threads at once")
        rate, records = burst(directory, "burst-batch", BURST)
        print(f"  fsync='batch'  {rate:10,.0f} records/s  ({records} records in the log, chain verified)")
        rate, records = burst(directory, "burst-signed", BURST, signing_keys=KEYS)
        print(f"  fsync='batch', signed {rate:10,.0f} records/s  ({records} records, checkpoints every 100, verified)")
        rate, records = burst(directory, "burst-never", BURST, fsync="never")
        print(f"  fsync='never'  {rate:10,.0f} records/s  ({records} records in the log, chain verified)")
        small = 4_000
        rate, records = burst(directory, "burst-always", small, fsync="always")
        print(f"  fsync='always' {rate:10,.0f} records/s  ({small} decisions; {records} records, chain verified)")

        signed_log = directory / "burst-signed.jsonl"
        start = time.perf_counter()
        chain = verify_log(signed_log)
        chain_s = time.perf_counter() - start
        start = time.perf_counter()
        full = verify_log(signed_log, jwks=KEYS.jwks(), require_final_checkpoint=True)
        full_s = time.perf_counter() - start
        assert chain.ok and full.ok, full
        print(f"\nverify {full.records} records: chain only {chain_s * 1000:.0f} ms; "
              f"chain + {full.checkpoints} checkpoint signatures {full_s * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
