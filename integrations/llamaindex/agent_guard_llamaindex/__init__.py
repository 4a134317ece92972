"""agent_guard for LlamaIndex: task-scoped, expiring permissions on every agent tool call.

- :func:`guard_tools` wraps tools so each call is decided by a :class:`agent_guard.Guard`
  (one decision, one budget unit, one ``execute_tool`` span) on exactly the arguments the tool
  will receive, defaults included; a denied call never runs.
- :class:`LLMPlanner` asks a LlamaIndex LLM for a plan from the request and tool catalog only.
- :func:`guarded_run` plans, opens the task, runs a ``FunctionAgent`` / ``ReActAgent`` /
  ``AgentWorkflow`` and revokes the grant when the run ends (``await`` it, ``asyncio.run`` it, or
  stream its events). In a multi-agent ``AgentWorkflow`` each agent acts under its own grant,
  delegated from the run's, and every handoff is decided against the plan.
"""

from __future__ import annotations

from agent_guard_llamaindex._planner import LLMPlanner, tool_specs
from agent_guard_llamaindex._run import GuardedRun, PlannerLike, agent_tools, guarded_run
from agent_guard_llamaindex._tools import CTX_PARAM, GuardedFunctionTool, OnViolation, guard_tools

__all__ = [
    "CTX_PARAM",
    "GuardedFunctionTool",
    "GuardedRun",
    "LLMPlanner",
    "OnViolation",
    "PlannerLike",
    "agent_tools",
    "guard_tools",
    "guarded_run",
    "tool_specs",
]
