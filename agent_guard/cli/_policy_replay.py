"""``agent-guard policy replay``: re-decide every decision of a decision log under a candidate policy.

The log must have been written by a guard with ``record_arguments=True``: its decision records
hold the arguments, and its ``grant_issued`` records the plan of each task (and, for a delegated
or replanned grant, the grant it comes from). Replay walks the log in order with a fresh guard
for the candidate policy, a fresh in-memory store and the log's timestamps as the clock: each
grant is opened again (delegated, replanned) at the time it was issued, with the lifetime it had
(capped by the policy), each ``task_exit``/``manual`` revocation closes it again, and each decision
is decided again, so budgets, limits and expiry replay in order. Approvals are taken as given
(the approver said yes then). A decision whose grant the candidate policy refuses is a denial
with the mint-time reason (``plan_exceeds_policy``). A ``would_deny`` of a shadow-mode log counts
as a denial.
"""

from __future__ import annotations

import calendar
import time
from collections import Counter
from pathlib import Path
from typing import Any, Final, Literal, NamedTuple

from agent_guard.audit._chain import read_log
from agent_guard.authorization._approval import ApprovalRequest
from agent_guard.authorization._models import AgentIdentity, Plan, Policy
from agent_guard.exceptions import ConfigError, GrantError, PlanRejected
from agent_guard.execution._guard import Guard
from agent_guard.execution._task import Task

__all__ = ["Flip", "ReplayReport", "replay_log"]

_CLOSED_BY_HAND: Final = frozenset({"task_exit", "manual"})


class Flip(NamedTuple):
    """One decision the candidate policy decides the other way."""

    line: int
    tool: str
    kind: Literal["allow-to-deny", "deny-to-allow"]
    reason: str | None
    """The reason of the denial: the new one for allow-to-deny, the logged one for deny-to-allow."""
    task: str | None
    call_id: str | None


class ReplayReport(NamedTuple):
    """What a replay found: decisions re-decided, the flips, and what could not be replayed (and why)."""

    decided: int
    tasks: int
    flips: list[Flip]
    skipped: Counter[str]


class _Clock:
    """The log's time: set to each record's timestamp before it is replayed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _timestamp(value: Any, line: int) -> float:
    """Seconds since the epoch of a record's RFC 3339 ``time`` (``2027-01-15T08:00:00.000000Z``)."""
    if not isinstance(value, str) or not value.endswith("Z") or "." not in value:
        raise ConfigError(f"line {line}: the record has no readable time")
    whole, _, fraction = value[:-1].partition(".")
    try:
        seconds = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S"))
        return float(seconds) + int(fraction) / 10.0 ** len(fraction)
    except ValueError:
        raise ConfigError(f"line {line}: the record has no readable time") from None


def _approve_all(request: ApprovalRequest) -> bool:
    return True


class _Replayer:
    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.clock = _Clock()
        self.guard = Guard(policy, clock=self.clock, approver=_approve_all)
        self.tasks: dict[str, Task] = {}
        self.refused: dict[str, str] = {}
        """Grant id -> the reason the candidate policy refuses to issue it (its calls are denied with it)."""
        self.unknown: dict[str, str] = {}
        """Grant id -> why it cannot be replayed (its calls are skipped)."""
        self.opened = 0

    def _ttl(self, record: dict[str, Any]) -> int:
        try:
            left = _timestamp(record.get("expires_at"), record["line"]) - self.clock.now
        except ConfigError:
            left = self.policy.max_ttl_s
        return int(min(max(1, round(left)), self.policy.max_ttl_s))

    def issued(self, record: dict[str, Any]) -> None:
        grant = record.get("grant")
        if not isinstance(grant, str):
            return
        if "plan" not in record:
            self.unknown[grant] = "no plan recorded for the grant (resumed here, or logged without record_arguments)"
            return
        try:
            plan = Plan.model_validate(record["plan"])
        except ConfigError:
            self.unknown[grant] = "the recorded plan does not load"
            return
        parent = record.get("delegated_from")
        if isinstance(parent, str) and parent not in self.tasks:  # a child of a grant that was not opened again
            if parent in self.refused:
                self.refused[grant] = self.refused[parent]
            else:
                self.unknown[grant] = self.unknown.get(parent, "its parent grant was not replayed")
            return
        try:
            task = self._open(record, plan, self._ttl(record))
        except (PlanRejected, GrantError) as err:
            self.refused[grant] = err.reason
            return
        except ConfigError as err:
            self.unknown[grant] = f"the grant cannot be opened again ({err})"
            return
        if task is None:
            self.unknown[grant] = "a grant of another agent than the policy's"
            return
        self.tasks[grant] = task
        self.opened += 1

    def _open(self, record: dict[str, Any], plan: Plan, ttl: int) -> Task | None:
        parent = self.tasks.get(record.get("delegated_from") or "")
        if parent is not None:
            return self.guard.open_delegated(parent, plan, agent_id=str(record.get("agent")), ttl_s=ttl)
        old = self.tasks.get(record.get("replaces") or "")
        if old is not None and not old.revoked:  # else (the old grant was refused or is spent): a task of its own
            return self.guard.replan(old, plan)
        if record.get("agent") != self.policy.agent_id:
            return None
        identity = AgentIdentity(agent_id=self.policy.agent_id, user_id=record.get("user"), tenant=record.get("tenant"))
        return self.guard.open(plan, identity=identity, ttl_s=ttl)

    def revoked(self, record: dict[str, Any]) -> None:
        task = self.tasks.get(str(record.get("grant")))
        if task is not None and record.get("reason") in _CLOSED_BY_HAND:
            self.guard.close(task, str(record["reason"]))

    def decide(self, record: dict[str, Any]) -> tuple[bool, str | None] | str:
        """(allowed, reason) under the candidate policy, or why the decision cannot be replayed."""
        grant = record.get("grant")
        if grant is None:  # decided outside any task: refused then, refused now
            return False, "no_grant"
        if "arguments" not in record:
            return "no arguments recorded"
        if grant in self.refused:
            return False, self.refused[grant]
        task = self.tasks.get(str(grant))
        if task is None:
            return self.unknown.get(str(grant), "no grant_issued record for the grant")
        args = record["arguments"]
        if not isinstance(args, dict) or not isinstance(record.get("tool"), str):
            return "the recorded call is not a tool name with a JSON object of arguments"
        with self.guard.use(task):
            decision = self.guard.decide(record["tool"], args)
        return decision.allowed, decision.reason


def replay_log(path: str | Path, policy: Policy) -> ReplayReport:
    """Re-decide every decision of the log at ``path`` under ``policy`` (see the module doc).

    Raises :class:`ConfigError` when the log holds decisions but none with arguments (it was
    written without ``record_arguments=True``), and :class:`~agent_guard.AuditLogError` when a
    line is not a record.
    """
    records = list(read_log(path))
    decisions = [r for r in records if r.get("event") == "decision"]
    if decisions and not any("arguments" in r for r in decisions):
        raise ConfigError(
            f"{path}: its decisions hold no arguments, so they cannot be decided again; the log was written "
            "by a guard without record_arguments=True (use Guard(..., decision_log=log, record_arguments=True) "
            "for a log you mean to replay; argument values are customer data, so keep such a log protected)"
        )
    replayer = _Replayer(policy)
    flips: list[Flip] = []
    skipped: Counter[str] = Counter()
    decided = 0
    for record in records:
        event = record.get("event")
        if event not in ("grant_issued", "grant_revoked", "decision"):
            continue
        replayer.clock.now = _timestamp(record.get("time"), record["line"])
        if event == "grant_issued":
            replayer.issued(record)
            continue
        if event == "grant_revoked":
            replayer.revoked(record)
            continue
        found = replayer.decide(record)
        if isinstance(found, str):
            skipped[found] += 1
            continue
        decided += 1
        allowed, reason = found
        was_allowed = record.get("outcome") == "allow"
        if allowed == was_allowed:
            continue
        flips.append(Flip(
            line=record["line"], tool=str(record.get("tool")), kind="deny-to-allow" if allowed else "allow-to-deny",
            reason=(reason if not allowed else record.get("reason")),
            task=record.get("task"), call_id=record.get("call_id"),
        ))
    return ReplayReport(decided=decided, tasks=replayer.opened, flips=flips, skipped=skipped)
