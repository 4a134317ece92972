"""agent_guard for LangChain v1 and LangGraph: task-scoped, expiring grants on every tool call.

- :class:`AgentGuardMiddleware` for ``langchain.agents.create_agent`` (plan -> grant per run,
  every tool call decided, grant revoked at the end; runs that pause, resume in another process,
  stream or get edited by other middlewares stay inside their plan);
- :class:`LLMPlanner`, which asks a chat model for the plan, showing it only the user's own
  messages and the tool catalog (never tool outputs);
- :class:`GuardedTool` / :func:`guard_tools` for any other code that calls LangChain tools;
- :func:`tool_node_wrappers` for LangGraph ``ToolNode`` in custom graphs and ``create_react_agent``;
- :func:`interrupt_approver`, an approval hook that asks a human through ``interrupt()``;
- :func:`delegated_tool`, a sub-agent run as a tool under a grant delegated from the calling run;
- :class:`RunWatcher` (``mw.watch(agent)``), which ends the grant of a run that stops early.

Test helpers (a scripted chat model) are in :mod:`agent_guard_langchain.testing`.
"""

from __future__ import annotations

from agent_guard_langchain._approval import APPROVAL_INTERRUPT_TYPE, approval_payload, interrupt_approver
from agent_guard_langchain._checks import OnViolation, RunOnViolation
from agent_guard_langchain._delegate import delegated_tool
from agent_guard_langchain._graph import TaskResolver, tool_node_wrappers
from agent_guard_langchain._messages import denial_message
from agent_guard_langchain._middleware import (
    STATE_KEY,
    AgentGuardMiddleware,
    AgentGuardState,
    IdentityProvider,
)
from agent_guard_langchain._planner import (
    LLMPlanner,
    Planner,
    PlannerFn,
    request_text,
    tool_specs,
    user_turns,
)
from agent_guard_langchain._tools import GuardedTool, guard_tools
from agent_guard_langchain._watch import RunWatcher

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
    "RunOnViolation",
    "RunWatcher",
    "TaskResolver",
    "approval_payload",
    "delegated_tool",
    "denial_message",
    "guard_tools",
    "interrupt_approver",
    "request_text",
    "tool_node_wrappers",
    "tool_specs",
    "user_turns",
]
