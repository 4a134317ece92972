"""Frozen data models: identity, policy ceiling, plan, decision.

Every model loads from plain dicts or JSON (``Model.model_validate(...)``,
``Model.model_validate_json(...)``); policies also from a YAML or JSON file
(:meth:`Policy.from_file`). Invalid input raises :class:`~agent_guard.ConfigError`
naming the offending field.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sized
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, field_validator, model_validator

from agent_guard._decision import Decision
from agent_guard._frozen import Frozen, canonical_hash
from agent_guard.authorization._constraints import Constraint, normalize_constraint
from agent_guard.authorization._limits import MAX_LIMITS, Limit
from agent_guard.exceptions import ConfigError, MissingDependencyError
from agent_guard.identity import AgentIdentity

__all__ = [
    "MAX_PLAN_STEPS", "MAX_TTL_S", "AgentIdentity", "Capability", "Decision", "Limit", "Plan", "Policy", "Step",
    "canonical_hash",
]

MAX_TTL_S = 900
"""Hard cap on a grant's lifetime, whatever the policy says."""
MAX_PLAN_STEPS = 1_000
"""Most steps in one plan (a grant carries one entry per step); split a bigger task into several plans."""


def _normalize_args(value: Any) -> dict[str, Constraint]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ValueError("args must be an object mapping argument names to constraints")
    out: dict[str, Constraint] = {}
    for name, spec in value.items():
        if not isinstance(name, str) or not name:
            raise ValueError("argument names must be non-empty strings")
        try:
            out[str.__str__(name)] = normalize_constraint(spec, name)
        except ConfigError as err:
            raise ValueError(str(err)) from None
        except RecursionError:
            raise ValueError(f"{name}: the constraint is nested too deeply; flatten it") from None
    return out


ArgSpecs = Annotated[dict[str, Constraint], BeforeValidator(_normalize_args)]
"""Argument name -> normalized constraint (literals become ``{"eq": value}``)."""


class Capability(Frozen):
    """The most an agent may ever do with one tool: argument constraints, limits and flags.

    ``Capability("send_email", args={"to": {"email_domain_in": ["example.com"]}})``. ``args`` lists every
    argument the agent may ever pass; a plan step may only list arguments named here. ``limits``
    hold across tasks: ``[Limit(sum_of="amount", max=1000, per="user", window_s=86400)]`` (see
    :class:`~agent_guard.Limit`); a ``sum_of`` must name an argument of ``args``.
    """

    tool: str = Field(min_length=1)
    args: ArgSpecs = Field(default_factory=dict)
    requires_approval: bool = False
    max_calls: int | None = Field(default=None, ge=1, description="Most calls one plan step may plan.")
    description: str | None = None
    limits: tuple[Limit, ...] = Field(
        default=(), max_length=MAX_LIMITS, description="Running totals and rates every call must fit in.",
    )

    def __init__(self, tool: str | None = None, /, **data: Any) -> None:
        if tool is not None:
            data["tool"] = tool
        super().__init__(**data)

    @model_validator(mode="after")
    def _limits_sum_listed_arguments(self) -> Capability:
        for i, limit in enumerate(self.limits):
            if limit.sum_of is not None and limit.sum_of not in self.args:
                raise ValueError(
                    f"limits[{i}].sum_of: {limit.sum_of!r} is not an argument of {self.tool!r}; list it in args "
                    f"(e.g. {{{limit.sum_of!r}: {{'min': 0}}}}) or sum another argument"
                )
        return self



class Policy(Frozen):
    """The ceiling for one agent: every capability it may ever be granted, and the longest TTL."""

    agent_id: str = Field(min_length=1)
    capabilities: tuple[Capability, ...] = ()
    max_ttl_s: int = Field(default=MAX_TTL_S, ge=1, le=MAX_TTL_S)
    max_delegation_depth: int = Field(default=2, ge=0, le=8, description="Deepest chain of sub-agents a task may delegate to.")

    @model_validator(mode="after")
    def _unique_tools(self) -> Policy:
        seen: set[str] = set()
        for cap in self.capabilities:
            if cap.tool in seen:
                raise ValueError(
                    f"capabilities: tool {cap.tool!r} appears twice; merge its argument constraints into one entry"
                )
            seen.add(cap.tool)
        return self

    @cached_property
    def _by_tool(self) -> dict[str, Capability]:
        return {cap.tool: cap for cap in self.capabilities}

    def capability(self, tool: str) -> Capability | None:
        """The capability for ``tool``, or ``None`` when the policy does not allow it."""
        return self._by_tool.get(tool)

    @cached_property
    def policy_hash(self) -> str:
        """Canonical hash of the policy, recorded in every grant's ``tctx`` (limits included).

        A capability without limits hashes as it did before limits existed, so grants minted
        under an unchanged policy stay valid across the upgrade.
        """
        data = self.model_dump(mode="json")
        for cap in data["capabilities"]:
            if not cap.get("limits"):
                cap.pop("limits", None)
        return canonical_hash(data)

    @classmethod
    def from_file(cls, path: str | Path) -> Policy:
        """Load a policy from a ``.json``, ``.yaml`` or ``.yml`` file."""
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"policy file {str(p)!r} cannot be read: {err.strerror}") from None
        if p.suffix.lower() in (".yaml", ".yml"):
            try:
                import yaml
            except ImportError:
                raise MissingDependencyError("loading a YAML policy", "pip install 'agent-guard[yaml]'") from None
            try:
                data = yaml.safe_load(text)
            except yaml.YAMLError as err:
                raise ConfigError(f"policy file {str(p)!r} is not valid YAML: {err}") from None
            except RecursionError:
                raise ConfigError(f"policy file {str(p)!r} is nested too deeply to read; flatten it") from None
        elif p.suffix.lower() == ".json":
            try:
                data = json.loads(text)
            except json.JSONDecodeError as err:
                raise ConfigError(f"policy file {str(p)!r} is not valid JSON: {err}") from None
            except RecursionError:
                raise ConfigError(f"policy file {str(p)!r} is nested too deeply to read; flatten it") from None
        else:
            raise ConfigError(f"policy file {str(p)!r}: use a .json, .yaml or .yml file")
        return cls.model_validate(data)


class Step(Frozen):
    """One planned tool call: the tool, every argument it may pass, and how many calls.

    A literal argument value means "must equal"; a constraint object narrows;
    ``{"any": True}`` lists an argument without narrowing it. An argument a step does not list
    is refused at call time.
    """

    tool: str = Field(min_length=1)
    args: ArgSpecs = Field(default_factory=dict)
    max_calls: int = Field(default=1, ge=1, le=1_000_000)
    description: str | None = None
    agent: str | None = Field(
        default=None, min_length=1,
        description="Only this agent of the task may make the call (through a grant delegated to it); default: any.",
    )

    def __init__(self, tool: str | None = None, /, **data: Any) -> None:
        if tool is not None:
            data["tool"] = tool
        super().__init__(**data)


class Plan(Frozen):
    """The agent's intent for one task: an ordered list of steps.

    With ``ordered=True`` calls must follow the steps in order (a step may be repeated within its
    budget; moving to the next step closes the previous one).
    """

    goal: str = ""
    steps: tuple[Step, ...] = Field(min_length=1)
    ordered: bool = False

    @field_validator("steps", mode="before")
    @classmethod
    def _at_most_max_steps(cls, steps: Any) -> Any:
        """Refuse an oversized plan before validating its steps (a million steps would take seconds)."""
        if isinstance(steps, Sized) and len(steps) > MAX_PLAN_STEPS:
            raise ValueError(
                f"the plan has {len(steps):,} steps, above the limit of {MAX_PLAN_STEPS:,}; "
                "split the task into several plans (one grant each)"
            )
        return steps

    @cached_property
    def plan_hash(self) -> str:
        """Canonical hash of the plan, recorded in every grant's ``tctx``."""
        return canonical_hash(self.model_dump(mode="json"))

    @property
    def tools(self) -> tuple[str, ...]:
        """The distinct tools the plan uses, in first-use order."""
        return tuple(dict.fromkeys(s.tool for s in self.steps))
