"""Helpers for the multi-worker tests: plans, and a worker process driven over a pipe.

Imported by spawned processes (``multiprocessing`` with the ``spawn`` start method), so it only
uses importable, top-level functions.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import socket
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from agent_guard import GrantError, Guard, Plan, Step
from agent_guard.stores import RedisGrantStore

ROOT = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def lookup_plan(max_calls: int, *, email: bool = True, ordered: bool = False) -> Plan:
    """A plan with a lookup step of ``max_calls`` and (optionally) an email step after it."""
    steps = [Step("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}, max_calls=max_calls)]
    if email:
        steps.append(Step("send_email", args={"to": "alice@example.com", "body": {"any": True}}))
    return Plan(goal="look customers up", steps=steps, ordered=ordered)


def worker_main(conn: Connection, url: str, jwks: dict[str, Any], grant: str) -> None:
    """A worker: verify-only guard + Redis store, attach ``grant``, then run commands from ``conn``.

    Commands: ``("attach", grant)`` -> ``("attached", task_id)``; ``("call", tool, args)`` -> ``(allowed, reason, step)``;
    ``("burst", tool, args, n)`` -> ``{"allowed": k, "reasons": {reason: count}}``; ``("stop",)``.
    """
    store = RedisGrantStore(url)
    guard = Guard(jwks=jwks, store=store)
    try:
        ctx = guard.attach(grant)
        task = ctx.__enter__()
    except GrantError as err:
        conn.send(("attach_error", err.reason))
        conn.close()
        return
    conn.send(("ready", {"pid": os.getpid(), "task_id": task.id, "tools": list(task.tools)}))
    try:
        while True:
            cmd = conn.recv()
            if cmd[0] == "stop":
                break
            if cmd[0] == "attach":  # switch to another grant
                ctx.__exit__(None, None, None)
                ctx = guard.attach(cmd[1])
                conn.send(("attached", ctx.__enter__().id))
            elif cmd[0] == "call":
                d = guard.decide(cmd[1], cmd[2])
                conn.send((d.allowed, d.reason, d.step))
            elif cmd[0] == "burst":
                allowed, reasons = 0, {}
                for _ in range(cmd[3]):
                    d = guard.decide(cmd[1], cmd[2])
                    allowed += d.allowed
                    if not d.allowed:
                        reasons[d.reason] = reasons.get(d.reason, 0) + 1
                conn.send({"allowed": allowed, "reasons": reasons})
    finally:
        ctx.__exit__(None, None, None)
        store.close()
        conn.close()


class Workers:
    """N spawned worker processes, each with a verify-only guard attached to one grant."""

    def __init__(self, n: int, url: str, jwks: dict[str, Any], grant: str) -> None:
        ctx = multiprocessing.get_context("spawn")
        self.procs = []
        self.conns = []
        for _ in range(n):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(child, url, jwks, grant), daemon=True)
            proc.start()
            child.close()
            self.procs.append(proc)
            self.conns.append(parent)
        self.hello = [self._recv(c) for c in self.conns]

    @staticmethod
    def _recv(conn: Any) -> Any:
        if not conn.poll(60):
            raise TimeoutError("worker did not answer within 60 s")
        return conn.recv()

    def ask_all(self, *cmd: Any) -> list[Any]:
        """Send ``cmd`` to every worker first (so they run concurrently), then collect the answers."""
        for conn in self.conns:
            conn.send(cmd)
        return [self._recv(conn) for conn in self.conns]

    def close(self) -> None:
        """Stop every worker."""
        for conn, proc in zip(self.conns, self.procs, strict=True):
            with contextlib.suppress(OSError):
                conn.send(("stop",))
            proc.join(timeout=15)
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
            conn.close()
