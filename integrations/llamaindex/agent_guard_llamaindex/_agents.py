"""Per-agent grants in a multi-agent ``AgentWorkflow``: each agent acts under its own delegated grant.

The run's task (one grant for the plan) is the parent. The first time an agent of the workflow
makes a tool call, it gets a child grant (:meth:`~agent_guard.Guard.aopen_delegated`) for its
share of the plan: the steps reserved to it (``Step(..., agent="billing")``) and the steps
without ``agent`` whose tool it holds. Its calls are decided against that grant only; they spend
the run's budget; closing the run's task closes every child.

The acting agent is the workflow's own record of it: ``current_agent_name`` in the state store
of the run's ``Context``, which ``AgentWorkflow`` sets before any agent step and changes only
after a handoff's results are aggregated. The guarded tool receives that ``Context`` (it always
asks for it), so the agent is read from the store of the very run it belongs to.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Final

from llama_index.core.agent.workflow import AgentWorkflow, BaseWorkflowAgent
from llama_index.core.tools import BaseTool, FunctionTool
from opentelemetry import trace

from agent_guard import ConfigError, GrantError, Guard, Plan, PlanRejected, Policy, Task, ToolCall
from agent_guard import semconv as sc

__all__ = ["ACTING_AGENT_KEY", "HANDOFF", "AgentGrants", "Actor", "WorkflowAgents"]

_log = logging.getLogger("agent_guard")

HANDOFF: Final = "handoff"
"""The name of ``AgentWorkflow``'s handoff tool, and of the plan steps that allow a handoff."""
ACTING_AGENT_KEY: Final = "current_agent_name"
"""Where ``AgentWorkflow`` keeps the name of the agent currently in control (its state store)."""


def _handoff_targets(agent: BaseWorkflowAgent, names: list[str]) -> list[str]:
    """The agents ``agent`` may hand off to (as ``AgentWorkflow.get_tools`` builds its handoff tool)."""
    allowed = agent.can_handoff_to
    if allowed is not None and not allowed:
        return []
    return [n for n in names if n != agent.name and (allowed is None or n in allowed)]


@dataclass(frozen=True)
class WorkflowAgents:
    """The agents of a multi-agent ``AgentWorkflow``: the tools each one holds (``handoff`` included)."""

    tools: Mapping[str, frozenset[str]]
    """Agent name -> the names of the tools it may call (``handoff`` when it can hand off)."""
    descriptions: Mapping[str, str]

    @classmethod
    def of(cls, agent: object) -> WorkflowAgents | None:
        """The agents of ``agent`` when it is an ``AgentWorkflow`` of two agents or more, else ``None``."""
        if not isinstance(agent, AgentWorkflow) or len(agent.agents) < 2:
            return None
        names = list(agent.agents)
        tools: dict[str, frozenset[str]] = {}
        for name, member in agent.agents.items():
            own = {t.metadata.name for t in (member.tools or []) if isinstance(t, BaseTool) and t.metadata.name}
            if HANDOFF in own:
                raise ConfigError(
                    f"agent {name!r}: a tool named {HANDOFF!r} clashes with the AgentWorkflow's handoff tool, "
                    "which agent_guard decides itself; rename the tool"
                )
            if _handoff_targets(member, names):
                own.add(HANDOFF)
            tools[name] = frozenset(own)
        return cls(tools=tools, descriptions={n: a.description for n, a in agent.agents.items()})

    def check_plan(self, plan: Plan, policy: Policy | None) -> None:
        """Refuse, before anything runs, a plan (or policy) whose agent steps cannot be delegated."""
        if policy is not None and policy.max_delegation_depth < 1:
            raise ConfigError(
                f"policy: each agent of a multi-agent AgentWorkflow acts under a grant delegated from the run's, "
                f"and the policy of {policy.agent_id!r} allows no delegation (max_delegation_depth=0)"
            )
        if plan.ordered:
            raise ConfigError(
                "plan: each agent of a multi-agent AgentWorkflow acts under a grant delegated from the run's, "
                "and an ordered plan cannot be delegated; use an unordered plan (LLMPlanner(llm, ordered=False))"
            )
        for index, step in enumerate(plan.steps):
            if step.agent is None:
                continue
            if step.agent not in self.tools:
                raise ConfigError(
                    f"plan step {index} ({step.tool!r}) is reserved to agent {step.agent!r}, which is not an agent of "
                    f"this workflow ({', '.join(sorted(self.tools))})"
                )
            if step.tool not in self.tools[step.agent]:
                raise ConfigError(
                    f"plan step {index} ({step.tool!r}) is reserved to agent {step.agent!r}, which does not have "
                    "this tool"
                )

    def plan_for(self, name: str, plan: Plan, remaining: tuple[int, ...]) -> Plan | None:
        """Agent ``name``'s share of ``plan``: its reserved steps and the open steps of its tools.

        Each step asks for no more calls than the run has left for it (another agent may have
        spent some); ``None`` when nothing is left for this agent.
        """
        tools = self.tools.get(name, frozenset())
        steps = []
        for index, step in enumerate(plan.steps):
            if step.tool not in tools or step.agent not in (None, name):
                continue
            left = remaining[index] if index < len(remaining) else 0
            if left < 1:
                continue
            steps.append(step if step.max_calls <= left else step.model_copy(update={"max_calls": left}))
        if not steps:
            return None
        return Plan(goal=plan.goal, steps=steps)

    def handoff_spec(self) -> FunctionTool:
        """The planner's view of the handoff: ``handoff(to_agent)`` (never run; the workflow's own tool is)."""
        agents = "; ".join(f"{n}: {d}" for n, d in self.descriptions.items())

        def handoff(to_agent: str) -> str:
            raise ConfigError("the handoff planning spec is not a tool; the workflow's handoff tool runs")

        return FunctionTool.from_defaults(
            handoff, name=HANDOFF,
            description=f"Hand the conversation over to another agent of the workflow. Agents: {agents}",
        )


@dataclass
class Actor:
    """The agent a call is made by, and its grant (``None`` when it has none)."""

    name: str | None
    task: Task | None

    def mark(self, call: ToolCall) -> None:
        """Name a known agent on the span of a call it made without a grant (the grant would name it)."""
        if self.task is None and self.name is not None:
            call.span.set_attribute(sc.AGENT_ID, self.name)


class AgentGrants:
    """The delegated grant of each agent of one guarded ``AgentWorkflow`` run, minted on first use."""

    def __init__(self, guard: Guard, parent: Task, plan: Plan, agents: WorkflowAgents, state: Any) -> None:
        self.guard = guard
        self.parent = parent
        self.plan = plan
        self.agents = agents
        self._state = state  # the RunState: its handler holds the run's Context
        self._tasks: dict[str, Task | None] = {}
        self._lock = asyncio.Lock()

    @property
    def tasks(self) -> dict[str, Task]:
        """The agents that got a grant so far, with their tasks."""
        return {name: task for name, task in self._tasks.items() if task is not None}

    def _run_store(self) -> Any:
        ctx = getattr(self._state.handler, "ctx", None)
        return getattr(ctx, "store", None) if ctx is not None else None

    async def acting_agent(self, ctx: Any, tool: str) -> str | None:
        """The agent making a call of ``tool``, read from the run's ``Context``; ``None`` when unknown.

        Unknown: no ``Context``, a ``Context`` of another run (its state store is not this run's),
        no agent recorded, a name that is not an agent of the workflow, or an agent that does
        not hold ``tool`` (so the workflow cannot have routed this call to it).
        """
        store: Any = getattr(ctx, "store", None) if ctx is not None else None
        if store is None or store is not self._run_store():
            return None
        try:
            name = await store.get(ACTING_AGENT_KEY, default=None)
        except Exception:  # an unreadable state: the agent is unknown, the call refused
            return None
        if not isinstance(name, str) or tool not in self.agents.tools.get(name, frozenset()):
            return None
        return name

    async def grant(self, name: str) -> Task | None:
        """Agent ``name``'s grant, delegated from the run's task the first time it acts."""
        if name in self._tasks:
            return self._tasks[name]
        async with self._lock:  # parallel calls of one agent: one grant
            if name in self._tasks:
                return self._tasks[name]
            task, final = await self._delegate(name)
            if final:
                self._tasks[name] = task
            return task

    async def _delegate(self, name: str) -> tuple[Task | None, bool]:
        """The new grant of agent ``name`` (or ``None``), and whether that answer is final."""
        parent = self.parent
        try:
            remaining = await parent.store.aremaining(parent.run_id)
            plan = self.agents.plan_for(name, self.plan, remaining) if remaining is not None else None
            if plan is None:
                return None, True  # no step for this agent, or the run's grant is over: never a grant
            ttl = max(1, math.floor(parent.expires_at - self.guard.clock()))
            return await self.guard.aopen_delegated(parent, plan, agent_id=name, ttl_s=ttl), True
        except (PlanRejected, GrantError) as err:
            _log.warning("agent_guard: no grant delegated to agent %r (%s); its calls are refused", name, err)
            return None, True
        except Exception as err:  # a store failure: refuse this call, try again on the next one
            _log.warning("agent_guard: could not delegate a grant to agent %r (%s); the call is refused",
                         name, type(err).__name__)
            return None, False

    @asynccontextmanager
    async def acting(self, ctx: Any, tool: str) -> AsyncIterator[Actor]:
        """Make the acting agent's grant the current task for one call (no task when it has none).

        The call is decided against that grant only, never the run's own. Its decision span nests
        under the agent's ``invoke_agent`` span, unless a framework span (OpenInference's ``TOOL``
        span) is the current one.
        """
        name = await self.acting_agent(ctx, tool)
        task = await self.grant(name) if name is not None else None
        parent_span = self.parent.span
        under_agent = task is not None and parent_span is not None and trace.get_current_span() is parent_span
        with self.guard.use(task, trace_parent=under_agent):
            yield Actor(name, task)
