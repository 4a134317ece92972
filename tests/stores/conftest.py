"""Redis fixtures: a real redis-server on 127.0.0.1 at a free port, started and stopped by the tests."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from agent_guard import AgentIdentity, Capability, Guard, KeySet, Policy
from agent_guard.stores import RedisGrantStore

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # lets the tests and spawned worker processes import `_workers`
    sys.path.insert(0, str(HERE))
_workers = importlib.import_module("_workers")
ROOT: Path = _workers.ROOT
free_port = _workers.free_port
Workers = _workers.Workers


def ensure_redis_server() -> str:
    """Path of redis-server, installing it with scripts/ensure-redis.sh when missing."""
    found = shutil.which("redis-server")
    if found is None:
        subprocess.run(["bash", str(ROOT / "scripts" / "ensure-redis.sh")], check=True)
        found = shutil.which("redis-server")
    if found is None:
        raise RuntimeError("redis-server is not installed and scripts/ensure-redis.sh could not install it")
    return found


class RedisServer:
    """One redis-server process on 127.0.0.1 (no persistence), which can be stopped and restarted."""

    def __init__(self, port: int | None = None) -> None:
        self.binary = ensure_redis_server()
        self.port = port or free_port()
        self.dir = tempfile.mkdtemp(prefix="agent-guard-redis-")
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """``redis://127.0.0.1:PORT/0``."""
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        """Start the server and wait until it answers PING."""
        args = [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.dir, "--daemonize", "no", "--loglevel", "warning"]
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        client = redis.Redis(host="127.0.0.1", port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 15
        try:
            while True:
                if self.proc.poll() is not None:
                    err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                    raise RuntimeError(f"redis-server exited at start: {err}")
                try:
                    if client.ping():
                        return self
                except redis.RedisError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)
        finally:
            client.close()

    def stop(self) -> None:
        """Stop the server (SIGTERM, then SIGKILL) and wait for it to exit."""
        if self.proc is None:
            return
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.proc = None

    def cleanup(self) -> None:
        """Stop and remove the data directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """URL of a redis-server started for this test session (stopped at the end)."""
    server = RedisServer().start()
    try:
        yield server.url
    finally:
        server.cleanup()


@pytest.fixture
def redis_factory() -> Iterator[Callable[[], RedisServer]]:
    """Makes private redis-servers a test may stop and restart; all are cleaned up after the test."""
    made: list[RedisServer] = []

    def make() -> RedisServer:
        server = RedisServer().start()
        made.append(server)
        return server

    yield make
    for server in made:
        server.cleanup()


@pytest.fixture
def store(redis_url: str) -> Iterator[RedisGrantStore]:
    """A RedisGrantStore on the session's redis-server."""
    s = RedisGrantStore(redis_url)
    yield s
    s.close()


@pytest.fixture
def wide_policy() -> Policy:
    """A ceiling for the multi-worker tests: lookups and emails."""
    return Policy(
        agent_id="worker-bot",
        max_ttl_s=900,
        capabilities=[
            Capability("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}),
            Capability("send_email", args={"to": {"glob": "*@example.com"}, "body": {"max_len": 2000}}),
        ],
    )


@pytest.fixture
def worker_identity() -> AgentIdentity:
    """The worker bot acting for user u-7."""
    return AgentIdentity(agent_id="worker-bot", user_id="u-7")


@pytest.fixture
def issuer_keys() -> KeySet:
    """The issuer's signing keys (only their JWKS goes to workers)."""
    return KeySet.generate()



@pytest.fixture
def make_store() -> Iterator[Callable[..., RedisGrantStore]]:
    """Builds RedisGrantStores for a test and closes them afterwards."""
    made: list[RedisGrantStore] = []

    def make(url: str, **kwargs: object) -> RedisGrantStore:
        s = RedisGrantStore(url, **kwargs)  # type: ignore[arg-type]
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


@pytest.fixture
def workers() -> Iterator[list[Workers]]:
    """Collects Workers groups started by a test and stops them afterwards."""
    made: list[Workers] = []
    yield made
    for group in made:
        group.close()


@pytest.fixture
def minter_for(make_store, wide_policy: Policy, issuer_keys: KeySet):
    """Builds the minting process's guard (signing keys + Redis store) for a Redis URL."""
    return lambda url: Guard(wide_policy, keys=issuer_keys, store=make_store(url))
