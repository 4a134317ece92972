"""``delegated_tool``: run a sub-agent as a tool, under a grant delegated from the calling run's.

The tool's call is a decision of the parent run like any other (plan it: ``Step(name,
args={"request": ...})``). When it runs, it opens ``guard.open_delegated(<the current task>,
plan, agent_id=...)`` -- the child plan ∩ the parent's scope, refused at mint with
``exceeds_parent_scope`` when it asks for a tool, a value or more calls than the parent holds --
runs the sub-agent with the child task current, and closes the child. The sub-agent's tools
(``guard_tools(tools, guard)``, or ``tool_node_wrappers(guard)`` on its ToolNode) then decide
against the child grant: every call spends the child's budget *and* the parent's, and its
decision spans name the sub-agent. While the sub-agent runs, a tool run that no guard decides is
stopped before it runs (see :mod:`._sentinel`): give the sub-agent guarded tools. A sub-agent
built with its own ``AgentGuardMiddleware`` would mint a grant of its own: that is refused with
a ``ConfigError``.

A refused delegation (or one called outside a guarded run) is the tool's error answer: the
parent's model gets an error ToolMessage saying why, and the parent run goes on.
"""

from __future__ import annotations

import contextvars
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool, StructuredTool, ToolException
from pydantic import BaseModel, Field

from agent_guard import Guard, Plan, PlannerError, PlanRejected, Policy, Task
from agent_guard.exceptions import ConfigError, GrantError
from agent_guard_langchain._checks import check_guard
from agent_guard_langchain._planner import LLMPlanner, Planner, resolve_async, resolve_sync
from agent_guard_langchain._sentinel import UndecidedToolRun, armed

__all__ = ["DELEGATED", "delegated_tool"]

DELEGATED: contextvars.ContextVar[Task | None] = contextvars.ContextVar("agent_guard_lc_delegated", default=None)
"""The delegated task a sub-agent started by :func:`delegated_tool` runs under (``None`` elsewhere)."""


class _Request(BaseModel):
    request: str = Field(description="What the sub-agent should do, in plain words.")


def _answer(output: Any) -> str:
    """The sub-agent's final answer: the text of its last AI message."""
    messages = output.get("messages") if isinstance(output, Mapping) else None
    if isinstance(messages, Sequence):
        for message in reversed(messages):
            if isinstance(message, AIMessage):
                return str(message.text)
    return str(output)


class _Delegation:
    """The function behind a delegated tool (sync and async)."""

    def __init__(self, agent: Runnable[Any, Any], guard: Guard, agent_id: str, plan: Planner,
                 catalog: Sequence[BaseTool], policy: Policy | None, ttl_s: int | None) -> None:
        self.agent = agent
        self.guard = guard
        self.agent_id = agent_id
        self.planner = plan
        self.catalog = list(catalog)
        self.policy = policy
        self.ttl_s = ttl_s

    def _parent(self) -> Task:
        parent = self.guard.current_task()
        if parent is None:
            raise ToolException(
                f"agent_guard refused the delegation to {self.agent_id!r} (no_grant): there is no current task; "
                "call this tool inside a guarded run"
            )
        return parent

    def _refused(self, err: Exception) -> ToolException:
        reason = getattr(err, "reason", "refused")
        return ToolException(f"agent_guard refused the delegation to {self.agent_id!r} ({reason}): {err}")

    def _unguarded(self, err: UndecidedToolRun) -> ConfigError:
        return ConfigError(
            f"agent: the sub-agent {self.agent_id!r} ran a tool that no guard decides ({err.tool!r}); give it guarded "
            "tools -- create_agent(model, guard_tools(tools, guard)) or ToolNode(tools, wrap_tool_call=...) from "
            "tool_node_wrappers(guard) -- so that its calls are decided against the delegated grant"
        )

    def _input(self, request: str) -> dict[str, list[BaseMessage]]:
        return {"messages": [HumanMessage(request)]}

    def _ceiling(self) -> Policy | None:
        return self.policy if self.policy is not None else self.guard.policy

    def run(self, request: str) -> str:
        parent = self._parent()
        try:
            plan = resolve_sync(self.planner, [HumanMessage(request)], self.catalog, self._ceiling())
            child = self.guard.open_delegated(parent, plan, agent_id=self.agent_id, ttl_s=self.ttl_s,
                                              policy=self.policy)
        except (PlanRejected, PlannerError, GrantError) as err:
            raise self._refused(err) from None
        token = DELEGATED.set(child)
        try:
            with self.guard.use(child), armed(self.guard, None):
                output = self.agent.invoke(self._input(request))
        except UndecidedToolRun as err:
            raise self._unguarded(err) from None
        finally:
            DELEGATED.reset(token)
            self.guard.close(child)
        return _answer(output)

    async def arun(self, request: str) -> str:
        parent = self._parent()
        try:
            plan = await resolve_async(self.planner, [HumanMessage(request)], self.catalog, self._ceiling())
            child = await self.guard.aopen_delegated(parent, plan, agent_id=self.agent_id, ttl_s=self.ttl_s,
                                                     policy=self.policy)
        except (PlanRejected, PlannerError, GrantError) as err:
            raise self._refused(err) from None
        token = DELEGATED.set(child)
        try:
            with self.guard.use(child), armed(self.guard, None):
                output = await self.agent.ainvoke(self._input(request))
        except UndecidedToolRun as err:
            raise self._unguarded(err) from None
        finally:
            DELEGATED.reset(token)
            await self.guard.aclose(child)
        return _answer(output)


def delegated_tool(
    agent: Runnable[Any, Any],
    guard: Guard,
    *,
    agent_id: str,
    name: str,
    description: str,
    plan: Plan | None = None,
    planner: Planner | None = None,
    catalog: Sequence[BaseTool] = (),
    policy: Policy | None = None,
    ttl_s: int | None = None,
) -> BaseTool:
    """A LangChain tool that runs ``agent`` (a compiled graph, e.g. from ``create_agent``) under a delegated grant.

    Give exactly one of ``plan`` (a fixed child plan) and ``planner`` (a function ``(messages,
    tools) -> Plan`` or an :class:`LLMPlanner`, shown the tool's ``request`` and ``catalog``, the
    sub-agent's tools). ``policy`` is the sub-agent's own ceiling (its ``agent_id`` must match);
    the child grant is its plan ∩ the parent's scope (∩ ``policy``). The tool takes one argument,
    ``request`` (what the sub-agent should do), and answers with the sub-agent's last message.
    Put it in the parent agent's tools: the parent's middleware decides its calls.
    """
    guard = check_guard(guard)
    if not isinstance(agent, Runnable):
        raise ConfigError("agent: expected a compiled graph or another Runnable (e.g. create_agent(...))")
    if not isinstance(agent_id, str) or not agent_id:
        raise ConfigError("agent_id: expected the sub-agent's id, a non-empty string")
    if (plan is None) == (planner is None):
        raise ConfigError("plan/planner: give exactly one: plan=Plan(...) or planner=fn | LLMPlanner(...)")
    chosen: Planner = plan if plan is not None else planner  # type: ignore[assignment]
    if plan is not None and not isinstance(plan, Plan):
        raise ConfigError("plan: expected an agent_guard.Plan")
    if isinstance(chosen, LLMPlanner) and not catalog:
        raise ConfigError("catalog: an LLMPlanner plans over the sub-agent's tools; pass catalog=tools")
    if policy is not None and (not isinstance(policy, Policy) or policy.agent_id != agent_id):
        raise ConfigError(f"policy: expected the Policy of agent {agent_id!r} (or None)")
    if not isinstance(name, str) or not name or not isinstance(description, str) or not description:
        raise ConfigError("name/description: the tool needs a name and a description the model can read")
    delegation = _Delegation(agent, guard, agent_id, chosen, catalog, policy, ttl_s)
    return StructuredTool.from_function(
        func=delegation.run, coroutine=delegation.arun, name=name, description=description,
        args_schema=_Request, handle_tool_error=True,
    )
