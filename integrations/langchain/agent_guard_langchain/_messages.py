"""The messages the adapter writes back into the conversation: refusals, and the end of a run."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

from langchain_core.messages import AIMessage, BaseMessage, ToolMessage

from agent_guard import Decision, reasons

__all__ = ["END_KEY", "denial_message", "ending_in", "final_message"]

END_KEY: Final = "end_run"
"""Set in a refusal's ``artifact["agent_guard"]`` when the refusal ends the run."""


def denial_message(decision: Decision, tool: str, call_id: str | None, *, end_run: bool = False) -> ToolMessage:
    """The error ``ToolMessage`` a refused call becomes: tool, reason code and what the plan allows.

    With ``end_run`` the artifact says that the run ends here (``on_violation="end"``, or a resumed
    run that cannot continue): the middleware then answers the next model call itself.
    """
    info: dict[str, Any] = {"reason": decision.reason, "allowed_tools": list(decision.allowed_tools)}
    if end_run:
        info[END_KEY] = decision.message
    return ToolMessage(
        content=decision.message,
        name=tool,
        tool_call_id=call_id or "",
        status="error",
        artifact={"agent_guard": info},
    )


def ending_in(messages: Sequence[BaseMessage]) -> str | None:
    """The refusal that ends the run, if the last tool turn (the answers after the last AI message) has one."""
    for message in reversed(messages):
        if not isinstance(message, ToolMessage):
            return None
        artifact = message.artifact
        info = artifact.get("agent_guard") if isinstance(artifact, Mapping) else None
        if message.status == "error" and isinstance(info, Mapping) and isinstance(info.get(END_KEY), str):
            return str(info[END_KEY])
    return None


def final_message(why: str) -> AIMessage:
    """The assistant's last message of a run agent_guard ends: what was refused, and that the run stops here."""
    return AIMessage(
        content=f"agent_guard ended this run. {why}",
        response_metadata={"agent_guard": {"ended": True, "reason": _reason(why)}},
    )


def _reason(text: str) -> str | None:
    for code in reasons.CALL_REASONS:
        if f"({code})" in text:
            return code
    return None
