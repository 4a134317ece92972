"""The execution layer: the policy enforcement point.

:class:`Guard` opens tasks (mint, record, attach), decides every tool call against the task's
grant, and revokes the grant when the task ends; :class:`Task` is one live task and
:class:`ToolCall` one decided call. It builds on the authorization, stores and audit layers.
"""

from __future__ import annotations

from agent_guard.execution._call import ToolCall
from agent_guard.execution._context import current_task, run_in_task_context, under_span, use_task
from agent_guard.execution._guard import Guard
from agent_guard.execution._lifecycle import TaskContext
from agent_guard.execution._task import Task

__all__ = ["Guard", "Task", "TaskContext", "ToolCall", "current_task", "run_in_task_context", "under_span", "use_task"]
