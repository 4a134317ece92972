"""The run record: what a checkpoint holds about a guarded run (never the grant).

``AgentGuardMiddleware`` keeps one record per run in the private state field ``agent_guard_run``;
a checkpointer persists it with the thread. It holds:

- ``key``: the run's registry key (random, not a credential: it finds the live Task in *this*
  process's memory, bound to the thread);
- ``thread``: the LangGraph thread the run belongs to (a record read on another thread is ignored);
- ``turn``: the id of the user message the plan answers;
- ``plan`` and ``plan_hash``: the plan itself (not a secret) and its hash, checked on every read;
- ``approved``: True once the approver (if any) approved exactly this plan and a grant was minted;
- ``identity``: who the run acts as and for whom (a resumed run must act for the same user);
- ``grant_id``, ``task_id``, ``run_id``, ``expires_at``: which grant was minted last (its ``jti``,
  ``txn``, store run id and expiry) -- identifiers, not the bearer token;
- ``spent``: calls spent per plan step, as the grant store reported them at the last model call;
- ``previous``: for a plan waiting for approval that replaces a live run, that run's record.

The grant (a bearer credential) is never in it: a run resumed where its grant is not in memory
gets a new grant minted from the recorded plan, with each step's budget reduced by the calls
already made (see :mod:`._resolve`).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from typing import Any, Final, TypedDict

from agent_guard import AgentIdentity, Plan, Task
from agent_guard.exceptions import ConfigError

__all__ = [
    "RECORD_VERSION", "RunRecord", "granted", "identity_of", "new_key", "pending", "plan_of", "read_record",
    "with_spent",
]

RECORD_VERSION: Final = 1
_MAX_STEPS: Final = 1000


class RunRecord(TypedDict, total=False):
    """The checkpointed record of one guarded run (see the module docstring)."""

    v: int
    key: str
    thread: str | None
    turn: str | None
    plan: dict[str, Any]
    plan_hash: str
    approved: bool
    identity: dict[str, str | None]
    grant_id: str | None
    task_id: str | None
    run_id: str | None
    expires_at: float | None
    spent: list[int]
    previous: RunRecord | None


_FIELDS: Final = frozenset(RunRecord.__annotations__)


def new_key() -> str:
    """A fresh registry key: 192 random bits, URL-safe, prefixed ``agr_``."""
    return "agr_" + secrets.token_urlsafe(24)


def _identity(identity: AgentIdentity) -> dict[str, str | None]:
    return {"agent_id": identity.agent_id, "user_id": identity.user_id, "tenant": identity.tenant}


def pending(
    plan: Plan, identity: AgentIdentity, *, thread: str | None, turn: str | None, previous: RunRecord | None = None
) -> RunRecord:
    """The record of a planned run whose grant is not minted yet (it waits for approval)."""
    if previous is not None:
        previous = {k: v for k, v in previous.items() if k != "previous"}  # type: ignore[assignment]
    return RunRecord(
        v=RECORD_VERSION, key=new_key(), thread=thread, turn=turn,
        plan=plan.model_dump(mode="json", exclude_none=True), plan_hash=plan.plan_hash, approved=False,
        identity=_identity(identity), grant_id=None, task_id=None, run_id=None, expires_at=None,
        spent=[0] * len(plan.steps), previous=previous,
    )


def granted(record: RunRecord, task: Task, spent: Sequence[int] | None = None) -> RunRecord:
    """``record`` once ``task`` holds its grant (approved, grant identifiers filled in)."""
    out = RunRecord(**record)
    out["approved"] = True
    out["grant_id"] = task.grant_id
    out["task_id"] = task.id
    out["run_id"] = task.run_id
    out["expires_at"] = float(task.expires_at)
    out["previous"] = None
    if spent is not None:
        out["spent"] = list(spent)
    return out


def with_spent(record: RunRecord, spent: Sequence[int]) -> RunRecord:
    """``record`` with a new spent-per-step snapshot."""
    out = RunRecord(**record)
    out["spent"] = list(spent)
    return out


def _is_str_or_none(value: object) -> bool:
    return value is None or isinstance(value, str)


def _valid(value: Mapping[str, Any], thread: str | None) -> bool:
    if value.get("v") != RECORD_VERSION or value.get("thread") != thread:
        return False
    key = value.get("key")
    if not isinstance(key, str) or not key.startswith("agr_"):
        return False
    plan, spent, ident = value.get("plan"), value.get("spent"), value.get("identity")
    if not isinstance(plan, Mapping) or not isinstance(value.get("plan_hash"), str):
        return False
    if not isinstance(spent, list) or len(spent) > _MAX_STEPS or not all(type(n) is int and n >= 0 for n in spent):
        return False
    if not isinstance(ident, Mapping) or not isinstance(ident.get("agent_id"), str):
        return False
    if not all(_is_str_or_none(value.get(k)) for k in ("turn", "grant_id", "task_id", "run_id")):
        return False
    expires = value.get("expires_at")
    if expires is not None and (not isinstance(expires, (int, float)) or not math.isfinite(expires)):
        return False
    return type(value.get("approved")) is bool


_SEEN: dict[int, tuple[object, str | None, RunRecord | None]] = {}
"""Records already read, by ``id`` of the state value (held, so the id is not reused): a run's record is
read on every tool and model call, and the state hands the same object back until it changes."""
_SEEN_MAX: Final = 256


def read_record(value: object, thread: str | None) -> RunRecord | None:
    """The run record in ``value`` if it is a well-formed record of ``thread``; else ``None``.

    A record of another format (an older adapter kept a bare key string), of another thread (a
    copied checkpoint) or with a field of the wrong type is treated as absent: no grant is found
    or minted from it. The record is never modified in place (updates are new records).
    """
    if not isinstance(value, Mapping):
        return None
    hit = _SEEN.get(id(value))
    if hit is not None and hit[0] is value and hit[1] == thread:
        return hit[2]
    record: RunRecord | None = None
    if _valid(value, thread):
        record = RunRecord(**{k: v for k, v in value.items() if k in _FIELDS})  # type: ignore[typeddict-item]
        previous = value.get("previous")
        record["previous"] = read_record(previous, thread) if previous is not None else None
    if len(_SEEN) >= _SEEN_MAX:
        _SEEN.clear()
    _SEEN[id(value)] = (value, thread, record)
    return record


def plan_of(record: RunRecord) -> Plan:
    """The recorded plan, rebuilt and checked against its recorded hash (``ConfigError`` otherwise)."""
    try:
        plan = Plan.model_validate(record["plan"])
    except ValueError as err:
        raise ConfigError(f"agent_guard_run.plan: the checkpointed plan is not a valid Plan ({err})") from None
    if plan.plan_hash != record["plan_hash"]:
        raise ConfigError("agent_guard_run.plan: the checkpointed plan does not match its recorded plan_hash")
    if len(record["spent"]) != len(plan.steps):
        raise ConfigError("agent_guard_run.spent: expected one count per plan step")
    return plan


def identity_of(record: RunRecord) -> AgentIdentity:
    """The identity the run was planned for."""
    ident = record["identity"]
    return AgentIdentity(agent_id=str(ident["agent_id"]), user_id=ident.get("user_id"), tenant=ident.get("tenant"))
