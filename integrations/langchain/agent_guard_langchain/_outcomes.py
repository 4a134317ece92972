"""How a run's tool calls end when they do not simply run: abort (raise), end (end mode), cannot continue.

- ``on_violation="raise"``: the first refusal aborts the run -- its task is closed and that refusal
  is remembered, so the other calls of the same turn (parallel tool calls) raise *that* refusal
  rather than the ``no_grant``/``revoked`` they would read once the run was closed.
- ``on_violation="end"``: the first refusal ends the run -- its task is closed (reason
  ``violation``) and the refusal remembered; the middleware's model hook answers the next model
  call with a final message naming it.
- A run that cannot continue (no grant can be found or minted for it): its call is refused as a
  ``no_grant`` decision saying why, marked so that the run ends after this turn.
"""

from __future__ import annotations

from langgraph.prebuilt.tool_node import ToolCallRequest

from agent_guard import Decision, Guard, Task, ToolCallDenied
from agent_guard import reasons as rc
from agent_guard_langchain._checks import RunOnViolation
from agent_guard_langchain._messages import denial_message
from agent_guard_langchain._node import ToolResult
from agent_guard_langchain._record import RunRecord
from agent_guard_langchain._resolve import Unresumable
from agent_guard_langchain._runs import RunRegistry

__all__ = ["Outcomes", "unresumable_text"]


def unresumable_text(err: Unresumable) -> str:
    """How a refusal and a final message say that a run cannot continue."""
    return f"this run cannot continue: {err}."


class Outcomes:
    """The abort / end / cannot-continue paths of one middleware."""

    def __init__(self, guard: Guard, registry: RunRegistry, on_violation: RunOnViolation) -> None:
        self.guard = guard
        self.registry = registry
        self.on_violation: RunOnViolation = on_violation

    def cannot_continue(self, request: ToolCallRequest, err: Unresumable) -> ToolResult:
        """Refuse a call of a run that cannot continue (recorded as a ``no_grant`` decision); the run then ends."""
        name, call_id = str(request.tool_call.get("name")), request.tool_call.get("id")
        with self.guard.use(None), self.guard.tool_call(name, {}, call_id=call_id) as call:
            message = f"agent_guard refused the call to {name!r} ({rc.NO_GRANT}): {unresumable_text(err)}"
            decision = call.decision.model_copy(update={"message": message})
        if self.on_violation == "raise":
            raise ToolCallDenied(decision)
        return denial_message(decision, name, call_id, end_run=True)

    def _first(self, record: RunRecord | None, err: ToolCallDenied) -> tuple[Task | None, ToolCallDenied]:
        entry = self.registry.get(record["key"], record["thread"]) if record is not None else None
        if entry is None:
            return None, err
        if entry.aborted is None:
            entry.aborted = err
            return entry.task, err
        if err.reason in (rc.REVOKED, rc.NO_GRANT, rc.EXPIRED):  # refused only because the run was aborted
            return None, entry.aborted
        return None, err

    def denied(self, record: RunRecord | None, err: ToolCallDenied) -> ToolCallDenied:
        """Raise mode: the exception to raise (the run's first refusal), closing the run's task once."""
        task, raised = self._first(record, err)
        if task is not None:
            self.guard.close(task, "task_exit")
        return raised

    async def adenied(self, record: RunRecord | None, err: ToolCallDenied) -> ToolCallDenied:
        """Async :meth:`denied`."""
        task, raised = self._first(record, err)
        if task is not None:
            await self.guard.aclose(task, "task_exit")
        return raised

    def ends(self, record: RunRecord | None, decision: Decision | None) -> Task | None:
        """End mode: remember the run's first refusal; returns the task to close (once)."""
        if self.on_violation != "end" or record is None or decision is None or decision.allowed:
            return None
        entry = self.registry.get(record["key"], record["thread"])
        if entry is None or entry.ending is not None:
            return None
        entry.ending = decision.message
        return entry.task
