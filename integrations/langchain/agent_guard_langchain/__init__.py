"""agent_guard for LangChain v1 and LangGraph: task-scoped, expiring grants on every tool call.

- :class:`AgentGuardMiddleware` for ``langchain.agents.create_agent`` (plan -> grant per run,
  every tool call decided, grant revoked at the end);
- :class:`LLMPlanner`, which asks a chat model for the plan, showing it only the user's request
  and the tool catalog;
- :class:`GuardedTool` / :func:`guard_tools` for any other code that calls LangChain tools;
- :func:`tool_node_wrappers` for LangGraph ``ToolNode`` in custom graphs and ``create_react_agent``;
- :func:`interrupt_approver`, an approval hook that asks a human through ``interrupt()``.

Test helpers (a scripted chat model) are in :mod:`agent_guard_langchain.testing`.
"""

from __future__ import annotations

from agent_guard_langchain._checks import OnViolation
from agent_guard_langchain._graph import (
    APPROVAL_INTERRUPT_TYPE,
    TaskResolver,
    approval_payload,
    interrupt_approver,
    tool_node_wrappers,
)
from agent_guard_langchain._messages import denial_message
from agent_guard_langchain._middleware import (
    STATE_KEY,
    AgentGuardMiddleware,
    AgentGuardState,
    IdentityProvider,
)
from agent_guard_langchain._planner import LLMPlanner, Planner, PlannerFn, request_text, tool_specs
from agent_guard_langchain._tools import GuardedTool, guard_tools

__all__ = [
    "APPROVAL_INTERRUPT_TYPE",
    "STATE_KEY",
    "AgentGuardMiddleware",
    "AgentGuardState",
    "GuardedTool",
    "IdentityProvider",
    "LLMPlanner",
    "OnViolation",
    "Planner",
    "PlannerFn",
    "TaskResolver",
    "approval_payload",
    "denial_message",
    "guard_tools",
    "interrupt_approver",
    "request_text",
    "tool_node_wrappers",
    "tool_specs",
]
