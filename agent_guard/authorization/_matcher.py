"""A task scope compiled once into plain predicates, for the per-call path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from agent_guard import reasons
from agent_guard.authorization._constraints import Predicate, compile_conjunction
from agent_guard.authorization._scope import ScopedStep, TaskScope
from agent_guard.authorization._values import SCALAR_TYPES

__all__ = ["CompiledScope", "CompiledStep", "Match"]


class CompiledStep:
    """One step as sets and predicates: allowed names, required names, value checks."""

    __slots__ = ("allowed", "checks", "index", "literals", "matched", "max_calls", "required", "tool")

    def __init__(self, step: ScopedStep) -> None:
        self.index = step.index
        self.tool = step.tool
        self.max_calls = step.max_calls
        self.allowed = frozenset(step.args)
        self.required = frozenset(step.required)
        self.literals = {
            name: (type(specs[0]["eq"]), specs[0]["eq"])
            for name, specs in step.args.items()
            if specs and specs[0].keys() == {"eq"} and type(specs[0]["eq"]) in SCALAR_TYPES
        }
        """Arguments the step pins to one scalar literal: name -> (type, value)."""
        checks: list[tuple[str, Predicate]] = []
        for name, specs in step.args.items():
            predicate = compile_conjunction(specs)
            if predicate is not None:
                checks.append((name, predicate))
        self.checks = tuple(checks)
        self.matched = Match((self.index,), None, None)
        """The match naming this step alone (the common result, built once)."""


class Match:
    """Result of matching a call against the scope: candidate steps, or why none fits."""

    __slots__ = ("argument", "candidates", "reason")

    def __init__(self, candidates: Sequence[int], reason: str | None, argument: str | None) -> None:
        self.candidates = candidates
        self.reason = reason
        self.argument = argument


_NOT_A_DICT = Match((), reasons.ARGUMENT_MISMATCH, None)
_BAD_NAME = Match((), reasons.ARGUMENT_NOT_ALLOWED, None)
_INDEX_FROM = 4
"""A tool with more steps than this gets a literal index, so matching cost stays flat in plan size."""


def _literal_index(steps: tuple[CompiledStep, ...]) -> tuple[str, dict[tuple[type, Any], tuple[CompiledStep, ...]]] | None:
    """Index steps by an argument every one of them pins to a literal (the first such argument)."""
    for name in steps[0].literals:
        if all(name in step.literals for step in steps):
            index: dict[tuple[type, Any], list[CompiledStep]] = {}
            for step in steps:
                index.setdefault(step.literals[name], []).append(step)
            return name, {key: tuple(group) for key, group in index.items()}
    return None


class CompiledScope:
    """The scope indexed by tool; :meth:`match` is the constraint check of every call."""

    __slots__ = ("by_tool", "indexes", "limited", "tools")

    def __init__(self, scope: TaskScope) -> None:
        self.limited = any(step.limits for step in scope.steps)
        """True when some step has limits over time or money (else a call needs no limit work at all)."""
        by_tool: dict[str, list[CompiledStep]] = {}
        for step in scope.steps:
            if step.agent is not None and step.agent != scope.agent_id:
                continue  # another agent's step: usable only through a grant delegated to that agent
            by_tool.setdefault(step.tool, []).append(CompiledStep(step))
        self.by_tool = {tool: tuple(steps) for tool, steps in by_tool.items()}
        self.tools = tuple(self.by_tool)
        self.indexes = {
            tool: index
            for tool, steps in self.by_tool.items()
            if len(steps) > _INDEX_FROM and (index := _literal_index(steps)) is not None
        }

    def match(self, tool: str, args: Mapping[str, Any]) -> Match:
        """Steps (plan order) whose tool and constraints accept this call.

        Never raises and runs no code of the arguments': ``args`` must be an exact ``dict``
        (else ``argument_mismatch``) whose names are exact ``str`` (else ``argument_not_allowed``);
        a value that is not plain JSON under a narrowed argument is an ``argument_mismatch``.
        """
        if type(args) is not dict:
            return _NOT_A_DICT
        for name in args:
            if type(name) is not str:
                return _BAD_NAME
        steps = self.by_tool.get(tool) if type(tool) is str else None
        if steps is None:
            return Match([], reasons.TOOL_NOT_IN_SCOPE, None)
        indexed = self.indexes.get(tool)
        if indexed is not None:
            name, index = indexed
            value = args.get(name)
            bucket = index.get((type(value), value)) if type(value) in SCALAR_TYPES else None
            if bucket is not None:
                found = self._scan(bucket, args)
                if found.reason is None:
                    return found
            # no step pins this value: the full scan below finds the precise reason (denials only)
        return self._scan(steps, args)

    @staticmethod
    def _scan(steps: tuple[CompiledStep, ...], args: Mapping[str, Any]) -> Match:
        first: CompiledStep | None = None
        more: list[int] | None = None
        reason = reasons.ARGUMENT_NOT_ALLOWED
        argument: str | None = None
        names = args.keys()
        for step in steps:
            if not names <= step.allowed:  # set operations in C; the slow search only on denial
                if argument is None:
                    argument = next(name for name in args if name not in step.allowed)
                continue
            for name, check in step.checks:
                if name in args and not check(args[name]):
                    reason, argument = reasons.ARGUMENT_MISMATCH, name
                    break
            else:
                if not step.required <= names:
                    reason, argument = reasons.ARGUMENT_MISMATCH, next(n for n in step.required if n not in args)
                    continue
                if first is None:
                    first = step
                elif more is None:
                    more = [first.index, step.index]
                else:
                    more.append(step.index)
        if more is not None:
            return Match(more, None, None)
        if first is not None:
            return first.matched
        return Match((), reason, argument)
