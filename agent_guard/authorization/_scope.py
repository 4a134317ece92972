"""Task scope: a plan intersected with the policy ceiling, and its wire form in a grant."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from pydantic import Field

from agent_guard import reasons
from agent_guard._frozen import Frozen
from agent_guard.authorization._constraints import Constraint, compile_constraint, is_narrowing, is_optional
from agent_guard.authorization._limits import MAX_LIMITS, Limit
from agent_guard.authorization._models import Capability, Plan, Policy
from agent_guard.exceptions import ConfigError, GrantError, PlanRejected, PlanViolation

__all__ = ["DETAIL_TYPE", "ScopedStep", "TaskScope", "derive_scope", "literal_values"]

DETAIL_TYPE: Final = "urn:agent-guard:tool-call"
"""The RFC 9396 ``type`` of every ``authorization_details`` entry in a grant."""


class ScopedStep(Frozen):
    """One step of a scope: its effective constraints are step AND ceiling, per argument."""

    index: int = Field(ge=0)
    tool: str
    args: dict[str, tuple[Constraint, ...]] = Field(default_factory=dict)
    required: tuple[str, ...] = ()
    max_calls: int = Field(default=1, ge=1)
    requires_approval: bool = False
    agent: str | None = None
    """Only this agent may make the call (through a delegated grant); ``None``: any agent of the task."""
    limits: tuple[Limit, ...] = ()
    """The capability's limits over time and money (running totals, rates) every call must fit in."""

    def to_detail(self) -> dict[str, Any]:
        """This step as one RFC 9396 ``authorization_details`` entry.

        ``limits`` holds ``max_calls`` and, when the capability has limits over time or money,
        ``rules``: one object per :class:`~agent_guard.Limit`, so a verify-only worker enforces them too.
        """
        limits: dict[str, Any] = {"max_calls": self.max_calls}
        if self.limits:
            limits["rules"] = [limit.to_json() for limit in self.limits]
        detail = {
            "type": DETAIL_TYPE,
            "identifier": self.tool,
            "actions": ["invoke"],
            "args": {name: list(specs) for name, specs in self.args.items()},
            "required": list(self.required),
            "limits": limits,
            "step": self.index,
        }
        if self.agent is not None:
            detail["agent"] = self.agent
        return detail


class TaskScope(Frozen):
    """What one task may do: the plan's steps, each capped by the policy ceiling."""

    agent_id: str
    steps: tuple[ScopedStep, ...] = Field(min_length=1)
    ordered: bool = False
    plan_hash: str = ""
    policy_hash: str = ""

    @property
    def tools(self) -> tuple[str, ...]:
        """The distinct tools in scope, in plan order."""
        return tuple(dict.fromkeys(s.tool for s in self.steps))

    def authorization_details(self) -> list[dict[str, Any]]:
        """The scope as the grant's ``authorization_details`` claim (one entry per step)."""
        return [step.to_detail() for step in self.steps]

    @classmethod
    def from_authorization_details(
        cls, details: Sequence[Mapping[str, Any]], *, agent_id: str, ordered: bool, plan_hash: str, policy_hash: str
    ) -> TaskScope:
        """Rebuild a scope from a verified grant. Anything malformed raises :class:`GrantError`.

        Constraint operands are not re-validated here: the compiler fails closed on them.
        """
        steps: list[ScopedStep] = []
        try:
            for i, entry in enumerate(details):
                if entry.get("type") != DETAIL_TYPE:
                    raise GrantError(f"authorization_details[{i}] has an unknown type")
                if entry.get("actions") != ["invoke"]:
                    raise GrantError(f"authorization_details[{i}] has unknown actions")
                args = entry.get("args")
                limits = entry.get("limits")
                if not isinstance(args, Mapping) or not isinstance(limits, Mapping):
                    raise GrantError(f"authorization_details[{i}] lacks args or limits")
                steps.append(
                    ScopedStep.model_construct(
                        index=_int(entry.get("step"), i),
                        tool=_str(entry.get("identifier"), i),
                        args={_str(k, i): tuple(_constraints(v, i)) for k, v in args.items()},
                        required=tuple(_str(r, i) for r in _list(entry.get("required", []), i)),
                        max_calls=_int(limits.get("max_calls"), i, minimum=1),
                        requires_approval=False,
                        agent=_str(entry["agent"], i) if "agent" in entry else None,
                        limits=_rules(limits.get("rules", []), i),
                    )
                )
        except (AttributeError, TypeError) as err:
            raise GrantError(f"authorization_details is malformed ({type(err).__name__})") from None
        if not steps:
            raise GrantError("authorization_details is empty")
        if [s.index for s in steps] != list(range(len(steps))):
            raise GrantError("authorization_details steps are not numbered 0..n-1")
        return cls.model_construct(
            agent_id=agent_id, steps=tuple(steps), ordered=ordered, plan_hash=plan_hash, policy_hash=policy_hash
        )


def _str(value: Any, i: int) -> str:
    if not isinstance(value, str) or not value:
        raise GrantError(f"authorization_details[{i}] has a non-string name")
    return value


def _int(value: Any, i: int, minimum: int = 0) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise GrantError(f"authorization_details[{i}] has an invalid number")
    return value


def _list(value: Any, i: int) -> list[Any]:
    if not isinstance(value, list):
        raise GrantError(f"authorization_details[{i}] has a malformed list")
    return value


def _rules(value: Any, i: int) -> tuple[Limit, ...]:
    rules = _list(value, i)
    if len(rules) > MAX_LIMITS:
        raise GrantError(f"authorization_details[{i}] has more than {MAX_LIMITS} limits")
    try:
        return tuple(Limit.model_validate(rule) for rule in rules)
    except (ConfigError, RecursionError):
        raise GrantError(f"authorization_details[{i}] has a malformed limit") from None


def _constraints(value: Any, i: int) -> list[Constraint]:
    specs = _list(value, i)
    if not all(isinstance(s, dict) for s in specs):
        raise GrantError(f"authorization_details[{i}] has a malformed constraint")
    return specs


def literal_values(spec: Constraint) -> list[Any] | None:
    """The concrete values a step spec admits, when it is a pure literal (``eq``/``in``)."""
    ops = set(spec) - {"optional"}
    if ops == {"eq"}:
        return [spec["eq"]]
    if ops == {"in"}:
        return list(spec["in"])
    return None


def _check_step_args(index: int, tool: str, args: Mapping[str, Constraint], cap: Capability) -> list[PlanViolation]:
    violations: list[PlanViolation] = []
    for name, spec in args.items():
        ceiling = cap.args.get(name)
        if ceiling is None:
            allowed = ", ".join(sorted(cap.args)) or "none"
            violations.append(
                PlanViolation(index, tool, reasons.PLAN_EXCEEDS_POLICY,
                              f"the policy does not allow this argument (allowed: {allowed})", argument=name)
            )
            continue
        values = literal_values(spec)
        if values is not None and is_narrowing(ceiling):
            check = compile_constraint(ceiling)
            if not all(check(v) for v in values):
                violations.append(
                    PlanViolation(index, tool, reasons.PLAN_EXCEEDS_POLICY,
                                  "the planned value is outside the policy's constraint", argument=name)
                )
    return violations


def _permits_absence(spec: Constraint) -> bool:
    return is_optional(spec) or not is_narrowing(spec)


def _may_be_absent(step_spec: Constraint, ceiling: Constraint) -> bool:
    """An argument may be left out only when the step AND the ceiling each allow its absence.

    A spec allows absence when it marks the argument ``optional`` or does not narrow it. So a
    ceiling ``{"max": 100}`` makes ``amount`` required even under a step ``{"any": true}`` (the
    tool's own default is a value the ceiling never saw), and a step's ``optional`` cannot relax
    a ceiling that narrows without ``optional``.
    """
    return _permits_absence(step_spec) and _permits_absence(ceiling)


def derive_scope(plan: Plan, policy: Policy) -> TaskScope:
    """Intersect ``plan`` with the ``policy`` ceiling.

    Each step's effective constraint per argument is the step's AND the ceiling's, and so is
    whether it may be absent: an argument is required unless both the step and the ceiling allow
    its absence (each either marks it ``optional`` or does not narrow it). A step whose
    tool or argument the ceiling does not allow, or whose literal value the ceiling refuses,
    rejects the whole plan: :class:`PlanRejected` lists every violation. Approval is not asked
    here; steps on capabilities with ``requires_approval`` are flagged for the guard. Each step
    carries its capability's limits over time and money (a step must list a summed argument).
    """
    violations: list[PlanViolation] = []
    steps: list[ScopedStep] = []
    for index, step in enumerate(plan.steps):
        cap = policy.capability(step.tool)
        if cap is None:
            violations.append(
                PlanViolation(index, step.tool, reasons.PLAN_EXCEEDS_POLICY,
                              f"the policy for agent {policy.agent_id!r} does not include this tool")
            )
            continue
        violations.extend(_check_step_args(index, step.tool, step.args, cap))
        for limit in cap.limits:
            if limit.sum_of is not None and limit.sum_of not in step.args:
                violations.append(
                    PlanViolation(index, step.tool, reasons.PLAN_EXCEEDS_POLICY,
                                  f"the policy limits the total of this argument ({limit.label(step.tool)}); "
                                  "the step must list it", argument=limit.sum_of)
                )
        if cap.max_calls is not None and step.max_calls > cap.max_calls:
            violations.append(
                PlanViolation(index, step.tool, reasons.PLAN_EXCEEDS_POLICY,
                              f"max_calls {step.max_calls} is above the policy's limit of {cap.max_calls}")
            )
        args = {
            name: (spec, cap.args[name]) if is_narrowing(cap.args.get(name, {})) else (spec,)
            for name, spec in step.args.items()
            if name in cap.args
        }
        required = tuple(n for n, spec in step.args.items() if not _may_be_absent(spec, cap.args.get(n, {})))
        steps.append(
            ScopedStep(index=index, tool=step.tool, args=args, required=required, max_calls=step.max_calls,
                       requires_approval=cap.requires_approval, agent=step.agent, limits=cap.limits)
        )
    if violations:
        raise PlanRejected(violations)
    return TaskScope(
        agent_id=policy.agent_id, steps=tuple(steps), ordered=plan.ordered, plan_hash=plan.plan_hash,
        policy_hash=policy.policy_hash,
    )
