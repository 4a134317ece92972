"""A Redis-backed :class:`~agent_guard.GrantStore`: one grant shared by many workers.

Every worker (process, machine, replica) that enforces a grant talks to the same Redis. The
active-run record, revocation and budgets live there, and every :meth:`consume` is one atomic Lua
script run with ``EVALSHA`` (one round trip), so 400 concurrent attempts on a budget of 100 allow
exactly 100 wherever they come from. Anything that goes wrong talking to Redis raises
:class:`~agent_guard.StoreUnavailable`, and the guard denies with ``store_unavailable``.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, Final, cast
from urllib.parse import urlsplit

from agent_guard._redact import redact_url
from agent_guard.exceptions import ConfigError, MissingDependencyError, StoreUnavailable
from agent_guard.stores import _lua
from agent_guard.stores._base import Charge, ConsumeResult, ConsumeStatus, Delegation, GrantStore

try:
    import redis
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry as AsyncRetry
    from redis.backoff import NoBackoff
    from redis.exceptions import NoScriptError, RedisError
    from redis.retry import Retry
    from redis.typing import EncodableT
except ImportError:  # pragma: no cover - exercised in a subprocess without redis
    raise MissingDependencyError("agent_guard.stores.RedisGrantStore", "pip install 'agent-guard[redis]'") from None

__all__ = ["RedisGrantStore"]

DEFAULT_TIMEOUT_S: Final = 0.5
DEFAULT_SKEW_S: Final = 30
_STATUSES: Final = frozenset({"ok", "completed", "revoked", "exhausted", "out_of_order", "limit_exceeded"})
_FAILURES: Final = (RedisError, OSError)


class RedisGrantStore(GrantStore):
    """Grant store on Redis (≥ 6): active runs, revocation and budgets shared by every worker.

    ``url`` is a ``redis://``, ``rediss://`` or ``unix://`` URL. ``timeout_s`` bounds connecting
    and every reply (short on purpose: a slow store must deny quickly, not hang the agent);
    commands are never retried, so a lost reply can only under-spend a budget, never overspend it.
    Keys are ``<key_prefix>{<run_id>}:run``, one hash per run, expiring ``skew_s`` seconds after
    the grant. ``clock`` is the time the expiry check uses (``time.time``; keep the workers' clocks
    in sync, as for JWT ``exp``). Sync methods use :mod:`redis`, the ``a*`` methods
    :mod:`redis.asyncio` (one client per event loop). Safe to share between threads.
    """

    def __init__(
        self,
        url: str,
        *,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        key_prefix: str = "agent_guard:",
        skew_s: int = DEFAULT_SKEW_S,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not isinstance(url, str) or urlsplit(url).scheme not in ("redis", "rediss", "unix"):
            raise ConfigError("url: expected a redis://, rediss:// or unix:// URL, e.g. redis://127.0.0.1:6379/0")
        if not 0 < timeout_s <= 30:
            raise ConfigError(f"timeout_s: {timeout_s} is outside (0, 30] seconds")
        if not 0 <= skew_s <= 300:
            raise ConfigError(f"skew_s: {skew_s} is outside 0..300 seconds")
        if not isinstance(key_prefix, str) or "{" in key_prefix or "}" in key_prefix:
            raise ConfigError("key_prefix: expected a string without '{' or '}' (they mark the hash tag)")
        self.url = url
        self.timeout_s = timeout_s
        self.key_prefix = key_prefix
        self.skew_s = skew_s
        self._clock = clock
        self._where = redact_url(url)
        options: dict[str, Any] = {
            "socket_timeout": timeout_s,
            "socket_connect_timeout": timeout_s,
            "decode_responses": True,
            "health_check_interval": 0,
        }
        self._options = options
        self._client = redis.Redis.from_url(url, retry=Retry(NoBackoff(), 0), **options)
        self._aclients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, aioredis.Redis] = (
            weakref.WeakKeyDictionary()
        )

    def __repr__(self) -> str:
        return f"RedisGrantStore({self._where!r}, key_prefix={self.key_prefix!r})"

    def key(self, run_id: str) -> str:
        """The Redis key of a run's record.

        The hash tag (``{...}``, one Redis Cluster slot) is the run id up to its first ``:``: a
        delegated run's id is ``<txn>:<jti>``, so a whole delegation chain lives in one slot.
        """
        if not isinstance(run_id, str) or not run_id or "{" in run_id or "}" in run_id:
            raise ConfigError("run_id: expected a non-empty string without '{' or '}'")
        tag, sep, rest = run_id.partition(":")
        return f"{self.key_prefix}{{{tag}}}{sep}{rest}:run"

    def _unavailable(self, operation: str, err: BaseException) -> StoreUnavailable:
        return StoreUnavailable(
            f"grant store unavailable: {operation} failed at {self._where} ({type(err).__name__}); "
            "failing closed"
        )

    # -- activation -------------------------------------------------------------------------
    def _record(
        self, budgets: Sequence[int], ordered: bool, expires_at: float, parent: Delegation | None
    ) -> tuple[dict[EncodableT, EncodableT], int]:
        budgets = [int(b) for b in budgets]
        if not budgets or any(b < 1 for b in budgets):
            raise ConfigError("budgets: expected one budget >= 1 per plan step")
        record: dict[EncodableT, EncodableT] = {
            "status": "active",
            "exp": repr(float(expires_at)),
            "ordered": int(bool(ordered)),
            "cursor": -1,
            "remaining": sum(budgets),
            "steps": len(budgets),
        }
        for i, budget in enumerate(budgets):
            record[f"b{i}"] = budget
            record[f"u{i}"] = 0
        if parent is not None:
            if len(parent.steps) != len(budgets):
                raise ConfigError("parent.steps: expected one parent step index per child step")
            record["parent"] = self.key(parent.run_id)
            for i, step in enumerate(parent.steps):
                record[f"p{i}"] = int(step)
        ttl = math.ceil(expires_at - self._clock()) + self.skew_s
        return record, ttl

    def activate(
        self, run_id: str, *, budgets: Sequence[int], ordered: bool, expires_at: float,
        parent: Delegation | None = None,
    ) -> None:
        """Write the run's record (status active, budgets, TTL) in one transaction, before any grant exists."""
        key = self.key(run_id)
        record, ttl = self._record(budgets, ordered, expires_at, parent)
        try:
            with self._client.pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if ttl > 0:
                    pipe.hset(key, mapping=record)
                    pipe.expire(key, ttl)
                pipe.execute()
        except _FAILURES as err:
            raise self._unavailable("activate", err) from None

    async def aactivate(
        self, run_id: str, *, budgets: Sequence[int], ordered: bool, expires_at: float,
        parent: Delegation | None = None,
    ) -> None:
        """Async :meth:`activate`."""
        key = self.key(run_id)
        record, ttl = self._record(budgets, ordered, expires_at, parent)
        try:
            async with self._aclient().pipeline(transaction=True) as pipe:
                pipe.delete(key)
                if ttl > 0:
                    pipe.hset(key, mapping=record)
                    pipe.expire(key, ttl)
                await pipe.execute()
        except _FAILURES as err:
            raise self._unavailable("activate", err) from None

    # -- scripts ----------------------------------------------------------------------------
    def _run(
        self, operation: str, script: str, sha: str, key: str, args: Sequence[str | int], more: Sequence[str] = ()
    ) -> Any:
        try:
            try:
                return self._client.evalsha(sha, 1 + len(more), key, *more, *args)
            except NoScriptError:  # first use on this server, or after SCRIPT FLUSH / a restart
                return self._client.eval(script, 1 + len(more), key, *more, *args)
        except _FAILURES as err:
            raise self._unavailable(operation, err) from None

    async def _arun(
        self, operation: str, script: str, sha: str, key: str, args: Sequence[str | int], more: Sequence[str] = ()
    ) -> Any:
        client = self._aclient()
        try:
            try:
                return await client.evalsha(sha, 1 + len(more), key, *more, *args)
            except NoScriptError:
                return await client.eval(script, 1 + len(more), key, *more, *args)
        except _FAILURES as err:
            raise self._unavailable(operation, err) from None

    def _now(self) -> str:
        return repr(float(self._clock()))

    @staticmethod
    def _result(reply: Any) -> ConsumeResult:
        status, step = str(reply[0]), int(reply[1])
        if status not in _STATUSES:  # pragma: no cover - only if the script and this module disagree
            raise StoreUnavailable(f"grant store returned an unknown status {status!r}")
        return ConsumeResult(cast(ConsumeStatus, status), None if step < 0 else step)

    def bucket_key(self, charge: Charge) -> str:
        """The Redis key of a limit bucket: ``<prefix>{<tag>}:limit:<key>`` (a per-task one in the run's slot)."""
        bucket = charge.bucket
        if "{" in bucket.tag or "}" in bucket.tag:
            raise ConfigError("charges: a limit bucket's tag must not hold '{' or '}'")
        return f"{self.key_prefix}{{{bucket.tag}}}:limit:{bucket.key}"

    def _consume_args(
        self, candidates: Sequence[int], charges: Sequence[Charge]
    ) -> tuple[list[str | int], list[str]]:
        args: list[str | int] = [self._now(), len(candidates), *(int(c) for c in candidates), self.skew_s]
        for charge in charges:
            bucket = charge.bucket
            args += [repr(float(charge.amount)), repr(float(bucket.max)), int(bucket.window_s), repr(float(bucket.until))]
        return args, [self.bucket_key(c) for c in charges]

    def consume(self, run_id: str, candidates: Sequence[int], charges: Sequence[Charge] = ()) -> ConsumeResult:
        """Charge one call to the first candidate step with budget left, and every limit charge:
        one atomic script, one round trip (the buckets are more keys of the same ``EVALSHA``).

        On Redis Cluster a per-user, per-agent or per-tenant bucket lives in another slot than the
        run, which a script may not touch: such a call fails (``store_unavailable``, fail closed);
        use limits per task there, or one Redis node.
        """
        args, more = self._consume_args(candidates, charges)
        return self._result(self._run("consume", _lua.CONSUME, _lua.CONSUME_SHA, self.key(run_id), args, more))

    async def aconsume(self, run_id: str, candidates: Sequence[int], charges: Sequence[Charge] = ()) -> ConsumeResult:
        """Async :meth:`consume`."""
        args, more = self._consume_args(candidates, charges)
        return self._result(await self._arun("consume", _lua.CONSUME, _lua.CONSUME_SHA, self.key(run_id), args, more))

    def revoke(self, run_id: str) -> bool:
        """Mark the run revoked in Redis: every worker's next call is denied. True when it was active."""
        return bool(self._run("revoke", _lua.REVOKE, _lua.REVOKE_SHA, self.key(run_id), ()))

    async def arevoke(self, run_id: str) -> bool:
        """Async :meth:`revoke`."""
        return bool(await self._arun("revoke", _lua.REVOKE, _lua.REVOKE_SHA, self.key(run_id), ()))

    def is_active(self, run_id: str) -> bool:
        """True while the run is active and unexpired (raises :class:`StoreUnavailable` when unreachable)."""
        return bool(self._run("is_active", _lua.STATUS, _lua.STATUS_SHA, self.key(run_id), (self._now(),)))

    async def ais_active(self, run_id: str) -> bool:
        """Async :meth:`is_active`."""
        return bool(await self._arun("is_active", _lua.STATUS, _lua.STATUS_SHA, self.key(run_id), (self._now(),)))

    def remaining(self, run_id: str) -> tuple[int, ...] | None:
        """Calls left per step of a live run, bounded by its ancestors (``None`` when not live)."""
        reply = self._run("remaining", _lua.REMAINING, _lua.REMAINING_SHA, self.key(run_id), (self._now(),))
        return tuple(int(n) for n in reply) if reply else None

    async def aremaining(self, run_id: str) -> tuple[int, ...] | None:
        """Async :meth:`remaining`."""
        reply = await self._arun("remaining", _lua.REMAINING, _lua.REMAINING_SHA, self.key(run_id), (self._now(),))
        return tuple(int(n) for n in reply) if reply else None

    # -- clients ----------------------------------------------------------------------------
    def _aclient(self) -> aioredis.Redis:
        loop = asyncio.get_running_loop()
        client = self._aclients.get(loop)
        if client is None:
            client = aioredis.Redis.from_url(self.url, retry=AsyncRetry(NoBackoff(), 0), **self._options)
            self._aclients[loop] = client
        return client

    def ping(self) -> bool:
        """True when Redis answers (for health checks); never raises."""
        try:
            return bool(self._client.ping())
        except _FAILURES:
            return False

    def close(self) -> None:
        """Close the sync client's connections (the store reconnects if used again)."""
        self._client.close()

    async def aclose(self) -> None:
        """Close the async client of the running event loop."""
        loop = asyncio.get_running_loop()
        client = self._aclients.pop(loop, None)
        if client is not None:
            await client.aclose()
