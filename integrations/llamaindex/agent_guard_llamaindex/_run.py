"""``guarded_run``: plan, open the task, run the agent, revoke, with or without ``stream_events()``.

A :class:`GuardedRun` is a coroutine object as well as an awaitable: ``asyncio.run(guarded_run(...))``,
``asyncio.create_task``, ``asyncio.gather`` and ``await`` all accept it, and ``async with`` streams it.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Generator, Sequence
from types import TracebackType
from typing import Any

from llama_index.core.agent.workflow import AgentWorkflow, BaseWorkflowAgent
from llama_index.core.llms import ChatMessage
from llama_index.core.tools import BaseTool
from workflows.errors import WorkflowCancelledByUser
from workflows.events import Event
from workflows.handler import WorkflowHandler

from agent_guard import AgentIdentity, ConfigError, Decision, Guard, Plan, Task, ToolCallDenied
from agent_guard_llamaindex._agents import AgentGrants, WorkflowAgents
from agent_guard_llamaindex._checks import check_guard, check_identity, from_langchain
from agent_guard_llamaindex._handoff import guard_handoffs
from agent_guard_llamaindex._planner import LLMPlanner, _request_text
from agent_guard_llamaindex._state import CURRENT_RUN, RunState
from agent_guard_llamaindex._tools import GuardedFunctionTool

__all__ = ["GuardedRun", "PlannerLike", "agent_tools", "guarded_run"]

PlannerLike = Plan | LLMPlanner | Callable[[str, Sequence[BaseTool]], Plan | Awaitable[Plan]]
"""A fixed :class:`~agent_guard.Plan`, an :class:`LLMPlanner`, or ``(user_msg, tools) -> Plan`` (sync or async)."""


def agent_tools(agent: BaseWorkflowAgent | AgentWorkflow) -> list[BaseTool]:
    """The tools an agent (or every agent of an ``AgentWorkflow``) may call."""
    if isinstance(agent, AgentWorkflow):
        agents = list(agent.agents.values())
    elif isinstance(agent, BaseWorkflowAgent):
        agents = [agent]
    elif from_langchain(agent):
        raise ConfigError(
            f"agent: {type(agent).__name__} is a LangChain/LangGraph agent; guard it with "
            "agent_guard_langchain.AgentGuardMiddleware, or pass a LlamaIndex agent here"
        )
    else:
        raise ConfigError(
            f"agent: expected a LlamaIndex FunctionAgent, ReActAgent, another workflow agent or an "
            f"AgentWorkflow, got {type(agent).__name__}"
        )
    tools: list[BaseTool] = []
    for a in agents:
        if not isinstance(a, BaseWorkflowAgent):
            raise ConfigError(f"agent: expected a LlamaIndex workflow agent in the AgentWorkflow, got {type(a).__name__}")
        if a.tool_retriever is not None:
            raise ConfigError(f"agent {a.name!r}: a tool_retriever cannot be checked; pass guarded tools= instead")
        tools.extend(t for t in (a.tools or []) if isinstance(t, BaseTool))
    return tools


def _check_guarded(tools: Sequence[BaseTool], guard: Guard) -> None:
    for tool in tools:
        if not isinstance(tool, GuardedFunctionTool):
            raise ConfigError(
                f"agent tool {tool.metadata.name!r} is not guarded; build the agent with guard_tools(tools, guard)"
            )
        if tool.guard is not guard:
            raise ConfigError(f"agent tool {tool.metadata.name!r} is guarded by another Guard than this run's")


def _check_planner(planner: object) -> None:
    if from_langchain(planner):
        raise ConfigError(
            f"planner: {type(planner).__name__} comes from LangChain; with a LlamaIndex agent use "
            "agent_guard_llamaindex.LLMPlanner(llm), a Plan, or a function (user_msg, tools) -> Plan"
        )
    if not isinstance(planner, (Plan, LLMPlanner)) and not callable(planner):
        raise ConfigError(
            f"planner: expected a Plan, an LLMPlanner, or a function (user_msg, tools) -> Plan, "
            f"got {type(planner).__name__}"
        )


async def _make_plan(planner: PlannerLike, user_msg: Any, tools: Sequence[BaseTool], guard: Guard) -> Plan:
    if isinstance(planner, Plan):
        return planner
    if isinstance(planner, LLMPlanner):
        return await planner.aplan(user_msg, tools, policy=guard.policy)
    if callable(planner):
        result = planner(_request_text(user_msg), tools)
        if inspect.isawaitable(result):
            result = await result
        if not isinstance(result, Plan):
            raise ConfigError(f"planner: returned {type(result).__name__}, expected an agent_guard.Plan")
        return result
    raise ConfigError("planner: expected a Plan, an LLMPlanner, or a callable (user_msg, tools) -> Plan")


class GuardedRun(Coroutine[Any, Any, Any]):
    """One guarded agent run: ``await`` it for the result, or ``async with`` it to stream events.

    The run is driven by its own asyncio task: plan, open the task (mint and attach the grant),
    ``agent.run(...)``, await the result, revoke. The grant lives in that task's context only, never
    in the caller's, and is revoked whatever happens: the run finishes, raises, is stopped by a
    violation in ``"raise"`` mode, or the consumer leaves ``async with`` early (the run is then
    cancelled first). Create it with :func:`guarded_run`.

    It is also a coroutine object (``send``/``throw``/``close``), so ``asyncio.run(run)``,
    ``asyncio.create_task(run)`` and ``asyncio.gather(run, ...)`` accept it; like any coroutine,
    drive it one way only (one ``await``, one task), though awaiting a finished run again returns
    its result again.
    """

    def __init__(
        self,
        agent: BaseWorkflowAgent | AgentWorkflow,
        user_msg: str | ChatMessage,
        *,
        guard: Guard,
        planner: PlannerLike,
        identity: AgentIdentity,
        ttl_s: int | None,
        tools: Sequence[BaseTool],
        run_kwargs: dict[str, Any],
        agents: WorkflowAgents | None = None,
    ) -> None:
        self._agent = agent
        self._user_msg = user_msg
        self._guard = guard
        self._planner = planner
        self._identity = identity
        self._ttl_s = ttl_s
        self._tools = list(tools)
        self._run_kwargs = run_kwargs
        self._agents = agents
        self._state = RunState()
        self._driver: asyncio.Task[Any] | None = None
        self._started: asyncio.Future[WorkflowHandler] | None = None
        self._task: Task | None = None
        self._plan: Plan | None = None
        self._retrieved = False
        self._coro: Coroutine[Any, Any, Any] | None = None

    # -- driving ------------------------------------------------------------------------------
    def _ensure_started(self) -> asyncio.Task[Any]:
        if self._driver is None:
            loop = asyncio.get_running_loop()
            self._started = loop.create_future()
            self._driver = loop.create_task(self._drive(), name="agent_guard_llamaindex.guarded_run")
        return self._driver

    async def _drive(self) -> Any:
        started = self._started
        assert started is not None
        state = self._state
        CURRENT_RUN.set(state)  # the driver task's own context, never the caller's
        try:
            agents = self._agents
            catalog = self._tools if agents is None else [*self._tools, agents.handoff_spec()]
            self._plan = await _make_plan(self._planner, self._user_msg, catalog, self._guard)
            if agents is not None:
                agents.check_plan(self._plan, self._guard.policy)
            async with self._guard.task(self._plan, identity=self._identity, ttl_s=self._ttl_s) as task:
                self._task = task
                if agents is not None:  # each agent acts under its own grant, delegated from this one
                    state.agents = AgentGrants(self._guard, task, self._plan, agents, state)
                handler = self._agent.run(user_msg=self._user_msg, **self._run_kwargs)
                state.handler = handler
                started.set_result(handler)
                try:
                    return await handler
                except WorkflowCancelledByUser:
                    if state.violation is not None:
                        raise ToolCallDenied(state.violation) from None
                    raise
                except BaseException:
                    if not handler.is_done():
                        await asyncio.shield(handler.cancel_run())
                    raise
        except BaseException as err:
            if not started.done():
                if isinstance(err, asyncio.CancelledError):
                    started.cancel()
                else:
                    started.set_exception(err)
                    started.exception()  # mark it seen: whoever awaits the run gets the error from the driver
            raise

    async def _wait_started(self) -> WorkflowHandler:
        driver = self._ensure_started()
        assert self._started is not None
        try:
            return await asyncio.shield(self._started)
        except BaseException:
            if self._started.done():  # the run failed to start (rather than this waiter being cancelled)
                await asyncio.wait([driver])
                if not driver.cancelled():
                    driver.exception()  # the error is raised here; mark the driver's copy as seen
                self._retrieved = True
            raise

    @property
    def plan(self) -> Plan | None:
        """The plan the grant was minted for, once planned."""
        return self._plan

    @property
    def task(self) -> Task | None:
        """The agent_guard task of this run (its grant, claims and scope), once started."""
        return self._task

    @property
    def agent_tasks(self) -> dict[str, Task]:
        """In a multi-agent ``AgentWorkflow``: the delegated task of each agent that acted, by agent name.

        Empty for a single agent (its calls are decided against :attr:`task`).
        """
        agents = self._state.agents
        return agents.tasks if agents is not None else {}

    @property
    def handler(self) -> WorkflowHandler | None:
        """The LlamaIndex workflow handler, once started (``handler.ctx`` is the run's Context)."""
        handler: WorkflowHandler | None = self._state.handler
        return handler

    @property
    def violation(self) -> Decision | None:
        """The denied decision that stopped the run (``"raise"`` mode), if any."""
        return self._state.violation

    # -- consuming ----------------------------------------------------------------------------
    async def _result(self) -> Any:
        driver = self._ensure_started()
        try:
            return await asyncio.shield(driver)
        except asyncio.CancelledError:
            if not driver.done():
                await asyncio.shield(self._stop())
            raise
        finally:
            self._retrieved = True

    def __await__(self) -> Generator[Any, None, Any]:
        return self._result().__await__()

    # -- the coroutine protocol (asyncio.run / create_task / gather drive the run through it) ---
    def _stepper(self) -> Coroutine[Any, Any, Any]:
        if self._coro is None:
            self._coro = self._result()
        return self._coro

    def send(self, value: Any) -> Any:
        """Advance the run (coroutine protocol); raises ``StopIteration`` carrying the result."""
        return self._stepper().send(value)

    def throw(self, typ: Any, val: Any = None, tb: TracebackType | None = None, /) -> Any:
        """Raise an exception inside the run (coroutine protocol: how asyncio cancels it)."""
        if val is None and tb is None:
            return self._stepper().throw(typ)
        return self._stepper().throw(typ, val, tb)

    def close(self) -> None:
        """Close the coroutine driving this run, if one was started (coroutine protocol)."""
        if self._coro is not None:
            self._coro.close()

    async def stream_events(self) -> AsyncIterator[Event]:
        """The run's workflow events (``handler.stream_events()``); closing the stream early stops the run."""
        handler = await self._wait_started()
        finished = False
        try:
            async for event in handler.stream_events():
                yield event
            finished = True
        finally:
            if not finished:
                await self._stop()

    async def _stop(self) -> None:
        handler = self._state.handler
        if handler is not None and not handler.is_done():
            await handler.cancel_run()
        if self._driver is not None:
            await asyncio.wait([self._driver])
            if not self._driver.cancelled():
                self._driver.exception()  # seen: `await run` still raises it; asyncio must not log it as lost

    async def __aenter__(self) -> GuardedRun:
        await self._wait_started()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        driver = self._ensure_started()
        handler = self._state.handler
        stopped = handler is not None and not handler.is_done() and self._state.violation is None
        await self._stop()
        if driver.cancelled():
            return
        error = driver.exception()  # always retrieve it, so asyncio never reports it as lost
        if self._retrieved or et is not None or error is None:
            return
        if stopped and isinstance(error, WorkflowCancelledByUser):
            return  # the consumer left early: cancelling the run was the point
        raise error

    def __repr__(self) -> str:
        state = "not started" if self._driver is None else ("done" if self._driver.done() else "running")
        return f"<GuardedRun {state} task={self._task!r}>"


def guarded_run(
    agent: BaseWorkflowAgent | AgentWorkflow,
    user_msg: str | ChatMessage,
    *,
    guard: Guard,
    planner: PlannerLike,
    identity: AgentIdentity,
    ttl_s: int | None = None,
    **run_kwargs: Any,
) -> GuardedRun:
    """Run a LlamaIndex agent under a task grant derived from a plan; revoke it when the run ends.

    ``planner`` is a :class:`~agent_guard.Plan`, an :class:`LLMPlanner` (it sees only
    ``user_msg`` and the tool catalog), or a callable ``(user_msg, tools) -> Plan`` (sync or async).
    Every agent tool must come from :func:`guard_tools` with this ``guard``. ``run_kwargs`` go to
    ``agent.run`` (e.g. ``ctx=``, ``chat_history=``, ``max_iterations=``). Returns a
    :class:`GuardedRun`: ``result = await guarded_run(...)``, ``asyncio.run(guarded_run(...))``,
    or ``async with guarded_run(...) as run: async for ev in run.stream_events(): ...``. Raises
    :class:`~agent_guard.PlanRejected` or :class:`~agent_guard.PlannerError` before anything runs,
    :class:`~agent_guard.ToolCallDenied` when a ``"raise"``-mode tool stopped the run, and
    :class:`~agent_guard.ConfigError` at once for arguments of the wrong type.
    """
    check_guard(guard)
    check_identity(identity)
    _check_planner(planner)
    if ttl_s is not None and type(ttl_s) is not int:
        raise ConfigError(f"ttl_s: expected whole seconds (an int) or None, got {type(ttl_s).__name__}")
    if "user_msg" in run_kwargs:
        raise ConfigError("user_msg: pass it once, as guarded_run's second argument")
    _request_text(user_msg)
    tools = agent_tools(agent)
    _check_guarded(tools, guard)
    agents = WorkflowAgents.of(agent)
    if agents is not None:
        assert isinstance(agent, AgentWorkflow)
        guard_handoffs(agent)

    return GuardedRun(
        agent, user_msg, guard=guard, planner=planner, identity=identity, ttl_s=ttl_s, tools=tools,
        run_kwargs=run_kwargs, agents=agents,
    )
