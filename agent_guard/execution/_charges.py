"""One task's limits compiled into store charges: which buckets a call charges, and how much.

Built once per task, on its first limited call: a bucket is named by a hash of the tool, the limit
and whose total it is, so nothing per call is hashed or formatted. Whose total:

- ``task``: the task id (``txn``), shared by delegated children and replans;
- ``user``: the grant's ``sub`` (the user, or the agent acting for no one) within its tenant;
- ``agent``: the *root* agent of the delegation chain (the agent the task was opened for), so a
  sub-agent's calls count against the agent that delegated to it;
- ``tenant``: ``tctx.tenant`` (tasks without one share a single bucket).

These all come from the grant's claims, so a verify-only worker charges the same buckets as the
process that minted the grant.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from agent_guard.authorization._limits import Limit, amount_of
from agent_guard.authorization._scope import TaskScope
from agent_guard.stores._base import Charge, LimitBucket

__all__ = ["LimitCharger"]


class _Rule(NamedTuple):
    bucket: LimitBucket
    argument: str | None
    """The summed argument, or ``None`` for a rate (then ``fixed`` is the charge)."""
    fixed: Charge | None


class _StepCharges(NamedTuple):
    """A step's limits, split for the per-call path: rates are the same charges every call."""

    rules: tuple[_Rule, ...]
    fixed: tuple[Charge, ...]
    """The step's charges when it sums no argument (then nothing is built per call)."""
    sums: tuple[str, ...]
    """The summed arguments (their amounts come from each call)."""


def _bucket_key(tool: str, limit: Limit, who: Any) -> str:
    raw = json.dumps([tool, limit.to_json(), who], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return base64.urlsafe_b64encode(hashlib.sha256(raw.encode()).digest()[:24]).decode()


class LimitCharger:
    """The limit buckets of every step of one task; :meth:`charges` builds the charges of one call."""

    __slots__ = ("_by_step",)

    def __init__(
        self, scope: TaskScope, *, task_id: str, subject: str, tenant: str | None, root_agent: str,
        expires_at: float,
    ) -> None:
        whose: dict[str, Any] = {
            "task": ["task", task_id],
            "user": ["user", tenant, subject],
            "agent": ["agent", root_agent],
            "tenant": ["tenant", tenant],
        }
        made: dict[tuple[str, Limit], _Rule] = {}
        by_step: list[_StepCharges] = []
        for step in scope.steps:
            rules: list[_Rule] = []
            for limit in step.limits:
                rule = made.get((step.tool, limit))
                if rule is None:
                    key = _bucket_key(step.tool, limit, whose[limit.per])
                    bucket = LimitBucket(
                        key=key, tag=task_id.partition(":")[0] if limit.per == "task" else key, max=limit.cap,
                        window_s=limit.window_s or 0, until=expires_at, label=limit.label(step.tool),
                    )
                    fixed = Charge(bucket, 1.0) if limit.sum_of is None else None
                    rule = made[(step.tool, limit)] = _Rule(bucket, limit.sum_of, fixed)
                rules.append(rule)
            by_step.append(_split(tuple(dict.fromkeys(rules))))
        self._by_step = by_step

    def charges(self, candidates: Sequence[int], args: Mapping[str, Any]) -> Sequence[Charge] | str:
        """The charges of a call matched to ``candidates``, or the name of a summed argument that is no amount.

        With several candidate steps (the store picks one) every candidate's limits are charged:
        steps of one tool share their capability's limits, so this only matters for a hand-made grant,
        and it errs on the strict side.
        """
        if len(candidates) == 1:
            step = self._by_step[candidates[0]]
        else:
            step = _split(tuple(dict.fromkeys(rule for c in candidates for rule in self._by_step[c].rules)))
        if not step.sums:
            return step.fixed
        out: list[Charge] = []
        for bucket, argument, fixed in step.rules:  # in the policy's order: a refusal names the first that is full
            if fixed is not None:
                out.append(fixed)
                continue
            amount = amount_of(args.get(argument))  # type: ignore[arg-type]
            if amount is None:
                return argument  # type: ignore[return-value]
            out.append(Charge(bucket, amount))
        return out


def _split(rules: tuple[_Rule, ...]) -> _StepCharges:
    fixed = tuple(rule.fixed for rule in rules if rule.fixed is not None)
    sums = tuple(rule.argument for rule in rules if rule.argument is not None)
    return _StepCharges(rules, fixed, sums)
