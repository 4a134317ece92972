"""A spawned worker process that makes concurrent limited calls on a shared grant (for test_limits_redis.py).

Imported by spawned processes (``multiprocessing`` with the ``spawn`` start method): top-level,
importable functions only.
"""

from __future__ import annotations

import contextvars
import threading
from multiprocessing.connection import Connection
from typing import Any

from agent_guard import Guard
from agent_guard.stores import RedisGrantStore


def limit_worker(conn: Connection, url: str, jwks: dict[str, Any], grant: str, threads: int, calls: int,
                 tool: str, args: dict[str, Any]) -> None:
    """Attach ``grant`` with a verify-only guard, wait for "go", run ``threads`` x ``calls`` decisions, report."""
    store = RedisGrantStore(url)
    guard = Guard(jwks=jwks, store=store)
    try:
        with guard.attach(grant):
            conn.send("ready")
            assert conn.recv() == "go"
            start = threading.Barrier(threads)
            counts: dict[str, int] = {}
            lock = threading.Lock()

            def run() -> None:
                start.wait()
                mine: dict[str, int] = {}
                for _ in range(calls):
                    decision = guard.decide(tool, args)
                    key = "allowed" if decision.allowed else str(decision.reason)
                    mine[key] = mine.get(key, 0) + 1
                with lock:
                    for key, n in mine.items():
                        counts[key] = counts.get(key, 0) + n

            pool = [threading.Thread(target=contextvars.copy_context().run, args=(run,)) for _ in range(threads)]
            for t in pool:
                t.start()
            for t in pool:
                t.join()
            conn.send(counts)
    finally:
        store.close()
        conn.close()
