"""How many calls of each plan step a run already made, read from its checkpointed messages.

Used when a run's grant must be minted again from its recorded plan (the grant expired during a
long pause, or the run resumed in a process that does not hold it): each step's budget is then
the plan's minus the calls already made. Three sources are combined and the largest count per
step wins, so a gap in one never gives a call back:

- the grant store, while the old grant's run is still active (exact, other workers included);
- the run record's ``spent`` snapshot, written at each model call (survives summarization);
- the messages: every tool call of this run that has an answer, except the answers that show the
  tool never ran -- an agent_guard refusal, or an answer a human gave in its place (LangChain's
  HITL ``reject``/``respond``, marked ``lc_source``). A call whose arguments the plan no longer
  matches (edited, coerced) is charged to the first step of its tool with budget left.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, ToolMessage

from agent_guard import Guard, Task

__all__ = ["answered_calls", "astore_spent", "is_refusal", "merge_spent", "spent_from_messages", "store_spent"]


def is_refusal(message: ToolMessage) -> bool:
    """True for an agent_guard refusal (the tool did not run)."""
    artifact = message.artifact
    return message.status == "error" and isinstance(artifact, Mapping) and isinstance(artifact.get("agent_guard"),
                                                                                        Mapping)


def _not_run(message: ToolMessage) -> bool:
    """True when the answer shows the tool never ran: a refusal, or an answer a human gave instead."""
    return is_refusal(message) or bool(message.additional_kwargs.get("lc_source"))


def _run_messages(messages: Sequence[BaseMessage], turn: str | None) -> Sequence[BaseMessage]:
    """The messages of the run that answers the user message ``turn`` (or the latest user message)."""
    start = 0
    for i in range(len(messages) - 1, -1, -1):
        message = messages[i]
        if isinstance(message, HumanMessage) and (message.id == turn if turn else True):
            start = i + 1
            break
    return messages[start:]


def answered_calls(messages: Sequence[BaseMessage], turn: str | None) -> list[tuple[str, dict[str, Any]]]:
    """``(tool, model arguments)`` of each call of the run that has an answer showing it ran (or may have)."""
    run = _run_messages(messages, turn)
    answers = {m.tool_call_id: m for m in run if isinstance(m, ToolMessage)}
    out: list[tuple[str, dict[str, Any]]] = []
    for message in run:
        if not isinstance(message, AIMessage):
            continue
        for call in message.tool_calls:
            answer = answers.get(call.get("id") or "")
            if answer is None or _not_run(answer):
                continue
            args = call.get("args")
            out.append((str(call.get("name")), dict(args) if isinstance(args, Mapping) else {}))
    return out


def spent_from_messages(task: Task, calls: Sequence[tuple[str, dict[str, Any]]], floor: Sequence[int]) -> list[int]:
    """Add ``calls`` to ``floor`` (calls per step already known), each to the step the plan would charge.

    A call is charged to the first step it matches with budget left, else to the first step of its
    tool with budget left; a tool the plan does not have is not charged (it never got budget).
    Counts never exceed a step's budget.
    """
    budgets = [s.max_calls for s in task.scope.steps]
    used = [min(int(n), b) for n, b in zip(floor, budgets, strict=True)]
    for name, args in calls:
        match = task.compiled.match(name, args)
        candidates = list(match.candidates) if match.reason is None else []
        candidates += [i for i, s in enumerate(task.scope.steps) if s.tool == name and i not in candidates]
        for step in candidates:
            if used[step] < budgets[step]:
                used[step] += 1
                break
    return used


def merge_spent(*counts: Sequence[int] | None) -> list[int]:
    """The largest count per step of every source given (``None`` sources are skipped)."""
    known = [list(c) for c in counts if c is not None]
    if not known:
        return []
    return [max(col) for col in zip(*known, strict=True)]


def _budgets(task: Task) -> list[int]:
    return [s.max_calls for s in task.scope.steps]


def _live(guard: Guard, task: Task) -> bool:
    return not task.closed and task.revocation_reason is None and guard.clock() < task.expires_at


def store_spent(guard: Guard, task: Task) -> list[int] | None:
    """Calls spent per step of ``task``'s grant as the store reports them (``None`` when it cannot tell)."""
    if task.revocation_reason == "plan_completed":
        return _budgets(task)
    if not _live(guard, task):
        return None
    try:
        left = guard.store.remaining(task.run_id)
    except Exception:  # a store that cannot tell (or cannot be reached): keep the last snapshot
        return None
    return [b - n for b, n in zip(_budgets(task), left, strict=True)] if left is not None else None


async def astore_spent(guard: Guard, task: Task) -> list[int] | None:
    """Async :func:`store_spent`."""
    if task.revocation_reason == "plan_completed":
        return _budgets(task)
    if not _live(guard, task):
        return None
    try:
        left = await guard.store.aremaining(task.run_id)
    except Exception:
        return None
    return [b - n for b, n in zip(_budgets(task), left, strict=True)] if left is not None else None
