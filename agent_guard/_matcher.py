"""A task scope compiled once into plain predicates, for the per-call path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agent_guard import reasons
from agent_guard._constraints import Predicate, compile_conjunction
from agent_guard._scope import ScopedStep, TaskScope

__all__ = ["CompiledScope", "CompiledStep", "Match"]


class CompiledStep:
    """One step as sets and predicates: allowed names, required names, value checks."""

    __slots__ = ("allowed", "checks", "index", "max_calls", "required", "tool")

    def __init__(self, step: ScopedStep) -> None:
        self.index = step.index
        self.tool = step.tool
        self.max_calls = step.max_calls
        self.allowed = frozenset(step.args)
        self.required = frozenset(step.required)
        checks: list[tuple[str, Predicate]] = []
        for name, specs in step.args.items():
            predicate = compile_conjunction(specs)
            if predicate is not None:
                checks.append((name, predicate))
        self.checks = tuple(checks)


class Match:
    """Result of matching a call against the scope: candidate steps, or why none fits."""

    __slots__ = ("argument", "candidates", "reason")

    def __init__(self, candidates: list[int], reason: str | None, argument: str | None) -> None:
        self.candidates = candidates
        self.reason = reason
        self.argument = argument


class CompiledScope:
    """The scope indexed by tool; :meth:`match` is the constraint check of every call."""

    __slots__ = ("by_tool", "tools")

    def __init__(self, scope: TaskScope) -> None:
        by_tool: dict[str, list[CompiledStep]] = {}
        for step in scope.steps:
            by_tool.setdefault(step.tool, []).append(CompiledStep(step))
        self.by_tool = {tool: tuple(steps) for tool, steps in by_tool.items()}
        self.tools = tuple(self.by_tool)

    def match(self, tool: str, args: Mapping[str, Any]) -> Match:
        """Steps (plan order) whose tool and constraints accept this call."""
        steps = self.by_tool.get(tool)
        if steps is None:
            return Match([], reasons.TOOL_NOT_IN_SCOPE, None)
        candidates: list[int] = []
        reason = reasons.ARGUMENT_NOT_ALLOWED
        argument: str | None = None
        for step in steps:
            allowed = step.allowed
            extra = next((name for name in args if name not in allowed), None)
            if extra is not None:
                if argument is None:
                    argument = extra
                continue
            missing = next((name for name in step.required if name not in args), None)
            if missing is not None:
                reason, argument = reasons.ARGUMENT_MISMATCH, missing
                continue
            for name, check in step.checks:
                if name in args and not check(args[name]):
                    reason, argument = reasons.ARGUMENT_MISMATCH, name
                    break
            else:
                candidates.append(step.index)
        if candidates:
            return Match(candidates, None, None)
        return Match(candidates, reason, argument)
