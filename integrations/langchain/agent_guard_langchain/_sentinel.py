"""Fail closed when a call reaches a tool agent_guard did not wrap.

The middleware (and ``tool_node_wrappers``) hand the ``ToolNode`` a guarded copy of the request's
tool, which decides inside the tool run. A ``wrap_tool_call`` listed *after* the guard may replace
``request.tool`` (LangChain's HITL does, for an edit that names another tool; a middleware that
supplies tools dynamically does) -- and the replacement would run undecided.

So while the guard's handler runs, a sentinel is armed: a LangChain callback handler added to
every callback manager configured in that context (``register_configure_hook``) whose
``on_tool_start`` raises, with ``raise_error``. A :class:`~._tools.GuardedTool` disarms it for its
own run (and everything nested in it: the decided call's own work). Any other tool run that starts
while it is armed -- which is exactly a call that would not be decided -- is stopped before its
function runs; the guard turns that into a refusal (``no_grant``, recorded like every decision).
"""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Final

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.tracers.context import register_configure_hook

from agent_guard import Decision, Guard, ToolCallDenied
from agent_guard import reasons as rc

__all__ = ["ARMED", "UndecidedToolRun", "armed", "disarmed"]

_log = logging.getLogger("agent_guard")
_UNDECIDED: Final = (
    "the tool that reached the ToolNode is not the copy agent_guard guards (a middleware listed after "
    "AgentGuardMiddleware replaced request.tool), so no grant decided this call and it did not run"
)


class UndecidedToolRun(ToolCallDenied):
    """A tool run started that no guard decided (raised from ``on_tool_start``, before the tool's function)."""


class _Sentinel(BaseCallbackHandler):
    """Stops every tool run that starts while armed (see the module docstring)."""

    raise_error = True
    run_inline = True
    ignore_llm = True
    ignore_chain = True
    ignore_agent = False  # LangChain dispatches tool events under "ignore_agent"
    ignore_retriever = True
    ignore_chat_model = True
    ignore_custom_event = True

    def __init__(self, guard: Guard, call_id: str | None) -> None:
        self.guard = guard
        self.call_id = call_id
        self.stopped: UndecidedToolRun | None = None

    def on_tool_start(self, serialized: dict[str, Any], input_str: str, **kwargs: Any) -> None:
        """Refuse the undecided run: record the refusal (a decision span) and raise before the tool runs."""
        name = serialized.get("name") if isinstance(serialized, dict) else None
        tool = name if isinstance(name, str) else "?"
        with self.guard.use(None), self.guard.tool_call(tool, {}, call_id=self.call_id) as call:
            decision = call.decision
        message = f"agent_guard refused the call to {tool!r} ({rc.NO_GRANT}): {_UNDECIDED}."
        _log.error("agent_guard: tool call %r: %s", self.call_id, message)
        self.stopped = UndecidedToolRun(decision.model_copy(update={"message": message}))
        raise self.stopped


ARMED: contextvars.ContextVar[_Sentinel | None] = contextvars.ContextVar("agent_guard_lc_sentinel", default=None)
"""The sentinel of the guarded call running in this context (``None``: nothing armed)."""
register_configure_hook(ARMED, inheritable=False)  # only runs started while armed, never their children


@contextmanager
def armed(guard: Guard, call_id: str | None) -> Iterator[_Sentinel]:
    """Arm the sentinel for a block (the guard's handler call)."""
    sentinel = _Sentinel(guard, call_id)
    token = ARMED.set(sentinel)
    try:
        yield sentinel
    finally:
        ARMED.reset(token)


def disarmed() -> contextvars.Token[_Sentinel | None] | None:
    """Disarm for a guarded tool's own run; returns the token to reset (``None`` when nothing was armed)."""
    if ARMED.get() is None:
        return None
    return ARMED.set(None)


def stopped_decision(error: BaseException) -> Decision | None:
    """The decision of an :class:`UndecidedToolRun` (``None`` for any other error)."""
    return error.decision if isinstance(error, UndecidedToolRun) else None
