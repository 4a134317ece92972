"""The messages the adapter writes back into the conversation."""

from __future__ import annotations

from langchain_core.messages import ToolMessage

from agent_guard import Decision

__all__ = ["denial_message"]


def denial_message(decision: Decision, tool: str, call_id: str | None) -> ToolMessage:
    """The error ``ToolMessage`` a refused call becomes: tool, reason code and what the plan allows."""
    return ToolMessage(
        content=decision.message,
        name=tool,
        tool_call_id=call_id or "",
        status="error",
        artifact={"agent_guard": {"reason": decision.reason, "allowed_tools": list(decision.allowed_tools)}},
    )
