"""Scopes that only ever narrow: a delegated (child) plan inside its parent's scope, and replan diffs.

A child step is covered by the first parent step (plan order) of the same tool that lists every
argument the child lists, admits every literal value the child pins, and still has the calls
the child asks for. The child's effective constraint per argument is the child's spec AND the
parent step's (which already holds the policy ceiling): a conjunction, so no subset proof of
patterns is needed. Anything the parent does not cover is a :class:`Widening`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from pydantic import Field

from agent_guard import reasons
from agent_guard._frozen import Frozen
from agent_guard.authorization._constraints import Constraint, compile_conjunction, is_narrowing, is_optional
from agent_guard.authorization._models import Plan, Policy, Step
from agent_guard.authorization._scope import ScopedStep, TaskScope, derive_scope, literal_values
from agent_guard.exceptions import PlanRejected, PlanViolation

__all__ = ["ScopeDiff", "Widening", "derive_child_scope", "scope_diff"]


class Widening(Frozen):
    """One way a plan asks for more than a scope holds."""

    kind: Literal["tool", "argument", "value", "budget"]
    """``tool``: a tool the scope lacks; ``argument``: an argument it does not list; ``value``: a literal
    it refuses; ``budget``: more calls than it has left."""
    step: int = Field(ge=0)
    """The index of the new plan's step."""
    tool: str
    argument: str | None = None
    detail: str


class ScopeDiff(Frozen):
    """What a new plan adds over an existing scope (empty when the new plan fits inside it)."""

    widenings: tuple[Widening, ...] = ()

    @property
    def narrower(self) -> bool:
        """True when the new plan fits inside the scope (nothing is added)."""
        return not self.widenings

    @property
    def tools_added(self) -> tuple[str, ...]:
        """Tools the new plan uses that the scope does not hold."""
        return tuple(dict.fromkeys(w.tool for w in self.widenings if w.kind == "tool"))

    @property
    def arguments_widened(self) -> tuple[tuple[str, str], ...]:
        """(tool, argument) pairs whose allowed values the new plan widens."""
        return tuple(dict.fromkeys((w.tool, w.argument or "") for w in self.widenings if w.kind in ("argument", "value")))

    @property
    def budget_added(self) -> tuple[tuple[str, str], ...]:
        """(tool, detail) of the steps that ask for more calls than are left."""
        return tuple((w.tool, w.detail) for w in self.widenings if w.kind == "budget")

    def summary(self) -> str:
        """One line per widening, for an approver or an error message."""
        lines = []
        for w in self.widenings:
            what = f"argument {w.argument!r} of " if w.argument else ""
            lines.append(f"step {w.step} ({what}{w.tool!r}): {w.detail}")
        return "\n".join(lines) or "nothing added"


def _gaps(index: int, step: Step, parent: ScopedStep, left: int) -> list[Widening]:
    """Why ``parent`` does not cover ``step`` (empty when it does)."""
    found: list[Widening] = []
    for name, spec in step.args.items():
        specs = parent.args.get(name)
        if specs is None:
            found.append(Widening(kind="argument", step=index, tool=step.tool, argument=name,
                                  detail="the parent's step does not allow this argument"))
            continue
        values = literal_values(spec)
        check = compile_conjunction(specs)
        if values is None:  # a pattern or {"any": true}: the conjunction keeps the parent's bound
            continue
        if check is not None and not all(check(v) for v in values):
            found.append(Widening(kind="value", step=index, tool=step.tool, argument=name,
                                  detail="the planned value is outside the parent's constraint"))
    if not found and step.max_calls > left:
        found.append(Widening(kind="budget", step=index, tool=step.tool,
                              detail=f"max_calls {step.max_calls} is above the {left} call(s) left for this step"))
    return found


def _cover(
    plan: Plan, scope: TaskScope, remaining: Sequence[int], agent_id: str
) -> tuple[list[tuple[int, ScopedStep]], list[Widening]]:
    left = list(remaining)
    chosen: list[tuple[int, ScopedStep]] = []
    widenings: list[Widening] = []
    by_tool: dict[str, list[ScopedStep]] = {}
    for parent_step in scope.steps:
        if parent_step.agent is None or parent_step.agent == agent_id:
            by_tool.setdefault(parent_step.tool, []).append(parent_step)
    for index, step in enumerate(plan.steps):
        if step.agent is not None and step.agent != agent_id:
            widenings.append(Widening(kind="tool", step=index, tool=step.tool,
                                      detail=f"the step is for agent {step.agent!r}, not {agent_id!r}"))
            continue
        candidates = by_tool.get(step.tool)
        if not candidates:
            widenings.append(Widening(kind="tool", step=index, tool=step.tool,
                                      detail=f"the parent's scope does not include this tool for agent {agent_id!r}"))
            continue
        first_gaps: list[Widening] | None = None
        for parent_step in candidates:
            gaps = _gaps(index, step, parent_step, left[parent_step.index])
            if not gaps:
                left[parent_step.index] -= step.max_calls
                chosen.append((index, parent_step))
                break
            if first_gaps is None:
                first_gaps = gaps
        else:
            widenings.extend(first_gaps or ())
    return chosen, widenings


def scope_diff(plan: Plan, scope: TaskScope, remaining: Sequence[int] | None = None) -> ScopeDiff:
    """What ``plan`` asks for beyond ``scope`` with ``remaining`` calls per step (default: full budgets)."""
    left = list(remaining) if remaining is not None else [s.max_calls for s in scope.steps]
    _, widenings = _cover(plan, scope, left, scope.agent_id)
    return ScopeDiff(widenings=tuple(widenings))


def derive_child_scope(
    plan: Plan, parent: TaskScope, remaining: Sequence[int], *, agent_id: str, policy: Policy | None = None
) -> tuple[TaskScope, tuple[int, ...]]:
    """The child scope = ``plan`` ∩ the ``parent`` scope (∩ ``policy``, the child agent's own ceiling).

    Returns the scope and, for each child step, the parent step it spends from. Raises
    :class:`PlanRejected`: ``exceeds_parent_scope`` listing every widening (a tool, an argument,
    a literal value or a budget the parent does not hold), or ``plan_exceeds_policy`` when the
    child agent's own policy refuses the plan.
    """
    ceiling = derive_scope(plan, policy) if policy is not None else None
    chosen, widenings = _cover(plan, parent, remaining, agent_id)
    if widenings:
        raise PlanRejected([
            PlanViolation(w.step, w.tool, reasons.EXCEEDS_PARENT_SCOPE, w.detail, argument=w.argument)
            for w in widenings
        ])
    steps: list[ScopedStep] = []
    parents: list[int] = []
    for index, parent_step in chosen:
        step = plan.steps[index]
        own = ceiling.steps[index].args if ceiling is not None else {}
        args: dict[str, tuple[Constraint, ...]] = {}
        for name, spec in step.args.items():
            mine = own.get(name, (spec,))
            args[name] = (*mine, *parent_step.args[name])
        required = tuple(
            name for name, spec in step.args.items()
            if name in parent_step.required or (is_narrowing(spec) and not is_optional(spec))
            or (ceiling is not None and name in ceiling.steps[index].required)
        )
        # the parent's limits always hold (charged to the same task, user, root agent and tenant), and the child
        # agent's own policy may add its own
        limits = (*parent_step.limits, *(ceiling.steps[index].limits if ceiling is not None else ()))
        steps.append(ScopedStep(index=index, tool=step.tool, args=args, required=required, max_calls=step.max_calls,
                                requires_approval=False, limits=tuple(dict.fromkeys(limits))))
        parents.append(parent_step.index)
    scope = TaskScope(agent_id=agent_id, steps=tuple(steps), ordered=plan.ordered, plan_hash=plan.plan_hash,
                      policy_hash=policy.policy_hash if policy is not None else parent.policy_hash)
    return scope, tuple(parents)
