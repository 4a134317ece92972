"""Per-run state shared by :func:`guarded_run` and the guarded tools (held in a ContextVar).

Nothing here enters the workflow's ``Context``: the run's grant lives in agent_guard's own task
ContextVar. This object lets a tool in ``on_violation="raise"`` mode stop the run it belongs to
and, in a multi-agent ``AgentWorkflow``, find the grant of the agent making a call.
"""

from __future__ import annotations

import asyncio
import contextvars
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from agent_guard import Decision
    from agent_guard_llamaindex._agents import AgentGrants

__all__ = ["CURRENT_RUN", "RunState"]


class RunState:
    """What a guarded tool may need from the run it executes in."""

    def __init__(self) -> None:
        self.handler: Any = None
        self.violation: Decision | None = None
        self.agents: AgentGrants | None = None
        """The per-agent grants of a multi-agent ``AgentWorkflow`` run (``None``: one grant for the run)."""
        self._stopper: asyncio.Task[None] | None = None

    async def stop(self, decision: Decision) -> None:
        """Record the first violation and cancel the run before its loop can go on."""
        if self.violation is None:
            self.violation = decision
        if self._stopper is None and self.handler is not None:
            self._stopper = asyncio.get_running_loop().create_task(self.handler.cancel_run())
            # One turn of the loop lets the cancel request reach the workflow's control loop
            # ahead of this step's own result, so no further step (LLM turn or tool) starts.
            await asyncio.sleep(0)


CURRENT_RUN: contextvars.ContextVar[RunState | None] = contextvars.ContextVar(
    "agent_guard_llamaindex_run", default=None
)
