"""``AgentGuardMiddleware``: task-scoped grants for ``langchain.agents.create_agent``.

Per run: ``before_agent`` plans, checks the plan against the policy and mints the grant (or, when
an approver must be asked, records the plan and mints at the first model call, so the plan the
human is shown is the one kept in the thread's checkpoint); ``wrap_tool_call`` decides every tool
call against it, inside the tool run; ``wrap_model_call`` ends the run with a final message when
a refusal ends it (``on_violation="end"``) or a resumed run cannot continue, snapshots the calls
spent, and (``hide_out_of_scope_tools``) offers the model only the granted tools; ``after_agent``
revokes the grant.

Where things live: the Task (holding the signed grant) stays in this process's memory, in the
guard's :class:`~._runs.RunRegistry`; the agent state -- which a checkpointer persists -- holds
the run record (:mod:`._record`: the plan, its hash, the grant's identifiers and the calls spent,
never the token). A run resumed where its grant is not in memory, or after it expired, continues
under a successor grant minted from the recorded plan with the calls already made taken off
(:mod:`._resolve`); a new user turn while a run's grant is still live replans it
(``guard.replan``: narrower silently, wider through the approver).
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any, NamedTuple, TypeAlias, TypeVar
from uuid import UUID

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
    PrivateStateAttr,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langgraph.config import get_config
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from langgraph.types import Command
from typing_extensions import NotRequired

from agent_guard import AgentIdentity, Guard, Plan, Task, ToolCallDenied, derive_scope
from agent_guard.exceptions import ConfigError
from agent_guard_langchain._approval import is_interrupt_approver
from agent_guard_langchain._calls import CallCell
from agent_guard_langchain._checks import (
    RunOnViolation,
    check_guard,
    check_run_on_violation,
    check_tool_coverage,
)
from agent_guard_langchain._delegate import DELEGATED
from agent_guard_langchain._messages import ending_in, final_message
from agent_guard_langchain._node import NodeGuard, ToolResult
from agent_guard_langchain._outcomes import Outcomes, unresumable_text
from agent_guard_langchain._planner import LLMPlanner, Planner, resolve_async, resolve_sync
from agent_guard_langchain._record import RunRecord, granted, pending, read_record, with_spent
from agent_guard_langchain._resolve import Resolver, Unresumable, usable
from agent_guard_langchain._runs import registry_for, thread_id_of
from agent_guard_langchain._spent import astore_spent, store_spent
from agent_guard_langchain._watch import RunWatcher

__all__ = ["STATE_KEY", "AgentGuardMiddleware", "AgentGuardState", "IdentityProvider"]

STATE_KEY = "agent_guard_run"
"""The private state field holding the run record (:mod:`._record`; never the grant)."""

IdentityProvider: TypeAlias = AgentIdentity | Callable[[Runtime[Any]], AgentIdentity]
"""An identity, or a function of the run's ``Runtime`` (e.g. reading ``runtime.context``)."""

_G = TypeVar("_G", bound=Runnable[Any, Any])
_CHECKPOINTER_KEY = "__pregel_checkpointer"  # langgraph's CONFIG_KEY_CHECKPOINTER
_NO_RECORD = "the run has no run record (AgentGuardMiddleware.before_agent did not start it)"
_FOREIGN_RECORD = "its run record belongs to another thread or was not written by this adapter"


class AgentGuardState(AgentState[Any]):
    """Agent state with the run record (the plan and the grant's identifiers; never the grant)."""

    agent_guard_run: NotRequired[Annotated[dict[str, Any] | None, PrivateStateAttr]]


def _state_get(state: Any, key: str) -> Any:
    if isinstance(state, Mapping):
        return state.get(key)
    return getattr(state, key, None)


def _messages(state: Any) -> list[BaseMessage]:
    value = _state_get(state, "messages")
    return list(value) if isinstance(value, Sequence) else []


def _tool_name(tool: BaseTool | Mapping[str, Any]) -> str | None:
    if isinstance(tool, BaseTool):
        return tool.name
    fn = tool.get("function")
    name = fn.get("name") if isinstance(fn, Mapping) else tool.get("name")
    return name if isinstance(name, str) else None


def _turn(messages: Sequence[BaseMessage]) -> str | None:
    """The id of the latest message the user wrote (the turn a plan answers)."""
    for message in reversed(messages):
        if isinstance(message, HumanMessage) and not message.additional_kwargs.get("lc_source"):
            return message.id
    return None


def _config() -> Mapping[str, Any] | None:
    try:
        return get_config()
    except RuntimeError:  # called outside a graph (a hook used directly): no run config
        return None


def _previous(record: RunRecord | None) -> RunRecord | None:
    """The run a new plan replaces: the recorded run, or -- for a plan still waiting -- the run it meant to replace."""
    if record is None:
        return None
    return record if record["grant_id"] is not None else record.get("previous")


class _TurnStart(NamedTuple):
    """What ``before_agent`` reads before it plans a turn."""

    config: Any
    thread: str | None
    messages: list[BaseMessage]
    turn: str | None
    previous: RunRecord | None
    identity: AgentIdentity


class AgentGuardMiddleware(AgentMiddleware[AgentGuardState, Any, Any]):
    """Plan -> scope -> grant per run of a ``create_agent`` agent, enforced on every tool call.

    ``planner`` is a :class:`~agent_guard.Plan`, a function ``(messages, tools) -> Plan`` (sync
    or async) or an :class:`LLMPlanner`; ``catalog`` is the agent's tools (what the planner may
    plan with; when given, a policy capability or a fixed plan's step for a tool not in it is a
    ``ConfigError`` now). ``identity`` is an :class:`~agent_guard.AgentIdentity` or a function of
    the ``Runtime`` (default: the policy's agent acting for no user). A refused call becomes
    ``ToolMessage(status="error")`` naming the tool, the reason code and what the plan allows, and
    the loop continues; ``on_violation="raise"`` raises :class:`~agent_guard.ToolCallDenied`
    (aborting the run, after revoking its grant); ``on_violation="end"`` answers the refused call
    with that ToolMessage and ends the run with a final AI message. ``hide_out_of_scope_tools=True``
    also stops offering the model tools outside the grant. ``ttl_s`` overrides the guard's grant
    lifetime. A :class:`~agent_guard.PlanRejected` or :class:`~agent_guard.PlannerError` raised
    while planning propagates out of ``invoke`` and nothing runs.
    """

    state_schema = AgentGuardState

    def __init__(
        self,
        guard: Guard,
        *,
        planner: Planner,
        catalog: Sequence[BaseTool] = (),
        identity: IdentityProvider | None = None,
        on_violation: RunOnViolation = "message",
        hide_out_of_scope_tools: bool = False,
        ttl_s: int | None = None,
    ) -> None:
        """Configure the middleware; one instance may serve any number of concurrent runs."""
        super().__init__()
        guard = check_guard(guard)
        if guard.policy is None:
            raise ConfigError("guard: the middleware mints grants, so the guard needs a policy: Guard(policy, ...)")
        if not isinstance(planner, (Plan, LLMPlanner)) and not callable(planner):
            raise ConfigError("planner: expected a Plan, an LLMPlanner or a function (messages, tools) -> Plan")
        if isinstance(planner, LLMPlanner) and not catalog:
            raise ConfigError("catalog: an LLMPlanner plans over the agent's tools; pass catalog=tools")
        on_violation = check_run_on_violation(on_violation)
        if identity is not None and not isinstance(identity, AgentIdentity) and not callable(identity):
            raise ConfigError("identity: expected an AgentIdentity or a function of the runtime")
        if catalog:
            steps = [s.tool for s in planner.steps] if isinstance(planner, Plan) else []
            check_tool_coverage(guard, [t.name for t in catalog], "catalog", steps)
        self.guard = guard
        self.planner = planner
        self.catalog: list[BaseTool] = list(catalog)
        self.identity = identity
        self.on_violation: RunOnViolation = on_violation
        self.ttl_s = ttl_s
        self._hide = bool(hide_out_of_scope_tools)
        self._registry = registry_for(guard)
        self._resolver = Resolver(guard, self._registry, ttl_s, id(self))
        self._node = NodeGuard(guard, on_violation)
        self._outcomes = Outcomes(guard, self._registry, on_violation)
        self._watcher: RunWatcher | None = None

    # -- introspection -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``"AgentGuardMiddleware"`` (the prefix of its graph nodes)."""
        return "AgentGuardMiddleware"

    @property
    def hide_out_of_scope_tools(self) -> bool:
        """True when the model is offered only the tools the run's grant covers (fixed at construction)."""
        return self._hide

    @property
    def active_runs(self) -> int:
        """How many runs this middleware executes hold a live (open) task in this process."""
        return self._registry.active(id(self))

    def task_for(self, state: Any, runtime: Any) -> Task | None:
        """The live task of the run that ``state``/``runtime`` belong to (``None`` when there is none here)."""
        record = read_record(_state_get(state, STATE_KEY), thread_id_of(runtime))
        return self._resolver.known(record, None) if record is not None else None

    def close(self) -> int:
        """Revoke every live run's grant this middleware executes (e.g. at shutdown). Returns how many."""
        return self._registry.close_owned(id(self), "manual")

    def watch(self, agent: _G) -> _G:
        """``agent`` bound to a callback handler that ends the grant of a run that stops without finishing.

        ``agent = mw.watch(create_agent(...))``: breaking out of ``stream``/``astream`` (a client
        disconnect), cancelling ``ainvoke`` or an error in another node then revokes the run's
        grant and ends its span at once (instead of at the grant's expiry); a graph paused by
        ``interrupt()`` ends the span and keeps the grant for the resume. See :mod:`._watch`.
        """
        if not isinstance(agent, Runnable):
            raise ConfigError("agent: expected the compiled agent (create_agent(...)) or another Runnable")
        if self._watcher is None:
            self._watcher = RunWatcher(self.guard, self._registry)
        return agent.with_config(callbacks=[self._watcher])  # type: ignore[return-value]

    # -- per-run helpers -------------------------------------------------------------------------
    def _identity_for(self, runtime: Any) -> AgentIdentity:
        ident = self.identity
        if ident is None:
            assert self.guard.policy is not None
            return AgentIdentity(agent_id=self.guard.policy.agent_id)
        if isinstance(ident, AgentIdentity):
            return ident
        value = ident(runtime)
        if not isinstance(value, AgentIdentity):
            raise ConfigError(f"identity: the identity function returned {type(value).__name__}, not an AgentIdentity")
        return value

    def _root(self, config: Mapping[str, Any] | None) -> UUID | None:
        """The graph run executing this hook, when the agent is watched (see :meth:`watch`)."""
        if self._watcher is None or config is None:
            return None
        manager = config.get("callbacks")
        return self._watcher.root_of(getattr(manager, "parent_run_id", None))

    def _check_start(self, config: Mapping[str, Any] | None) -> None:
        if DELEGATED.get() is not None:
            raise ConfigError(
                "AgentGuardMiddleware: this agent runs as a sub-agent of delegated_tool, whose grant its tools "
                "use; remove AgentGuardMiddleware from the sub-agent and give it guard_tools(tools, guard)"
            )
        if config is not None and is_interrupt_approver(self.guard.approver):
            configurable = config.get("configurable") or {}
            if configurable.get(_CHECKPOINTER_KEY) is None:
                raise ConfigError(
                    "checkpointer: the guard's approver is interrupt_approver, which pauses the run with "
                    "interrupt() -- a pause that can only be resumed from a checkpoint; compile the agent with a "
                    "checkpointer (create_agent(..., checkpointer=InMemorySaver()) or a persistent one)"
                )

    def _defers(self, plan: Plan, previous: RunRecord | None) -> bool:
        """True when minting may ask the approver: then the plan is recorded first and minted later."""
        assert self.guard.policy is not None
        scope = derive_scope(plan, self.guard.policy)  # PlanRejected now, before anything runs
        if self.guard.approver is None:
            return False
        return previous is not None or any(s.requires_approval for s in scope.steps)

    def _started(self, record: RunRecord, task: Task, thread: str | None, root: UUID | None) -> dict[str, Any]:
        self._registry.put(record["key"], thread, task, id(self), root)
        return {STATE_KEY: granted(record, task)}

    # -- before_agent ----------------------------------------------------------------------------
    def _turn_start(self, state: AgentGuardState, runtime: Runtime[Any]) -> _TurnStart | None:
        """What planning a turn needs; ``None`` when this turn's plan is recorded already (a resume into the node)."""
        config = _config()
        self._check_start(config)
        thread = thread_id_of(runtime)
        messages = _messages(state)
        record = read_record(_state_get(state, STATE_KEY), thread)
        turn = _turn(messages)
        if record is not None and turn is not None and record["turn"] == turn:
            return None
        return _TurnStart(config, thread, messages, turn, _previous(record), self._identity_for(runtime))

    def before_agent(self, state: AgentGuardState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Plan and check the plan; mint the grant (or record the plan for approval); put the record in state."""
        self._registry.sweep()
        start = self._turn_start(state, runtime)
        if start is None:
            return None
        plan = resolve_sync(self.planner, start.messages, list(self.catalog), self.guard.policy)
        fresh = pending(plan, start.identity, thread=start.thread, turn=start.turn, previous=start.previous)
        if self._defers(plan, start.previous):
            return {STATE_KEY: fresh}
        root = self._root(start.config)
        task = self._resolver.open_or_replan(plan, start.previous, start.messages, start.identity, root)
        return self._started(fresh, task, start.thread, root)

    async def abefore_agent(self, state: AgentGuardState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Async :meth:`before_agent`."""
        await self._registry.asweep()
        start = self._turn_start(state, runtime)
        if start is None:
            return None
        plan = await resolve_async(self.planner, start.messages, list(self.catalog), self.guard.policy)
        fresh = pending(plan, start.identity, thread=start.thread, turn=start.turn, previous=start.previous)
        if self._defers(plan, start.previous):
            return {STATE_KEY: fresh}
        root = self._root(start.config)
        task = await self._resolver.aopen_or_replan(plan, start.previous, start.messages, start.identity, root)
        return self._started(fresh, task, start.thread, root)

    # -- after_agent -----------------------------------------------------------------------------
    def _closing(self, state: AgentGuardState, runtime: Runtime[Any]) -> tuple[Task | None, str | None]:
        record = read_record(_state_get(state, STATE_KEY), thread_id_of(runtime))
        if record is None:
            return None, None
        entry = self._registry.pop(record["key"], record["thread"])
        return (entry.task if entry is not None else None), record["run_id"]

    def after_agent(self, state: AgentGuardState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Close the run's task (revoke its grant, end its span) and clear the record from state."""
        task, run_id = self._closing(state, runtime)
        if task is not None:
            self.guard.close(task, "task_exit")
        elif run_id:  # minted by another process: end its run in the store (best effort: it expires anyway)
            with contextlib.suppress(Exception):
                self.guard.store.revoke(run_id)
        return {STATE_KEY: None}

    async def aafter_agent(self, state: AgentGuardState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Async :meth:`after_agent`."""
        task, run_id = self._closing(state, runtime)
        if task is not None:
            await self.guard.aclose(task, "task_exit")
        elif run_id:
            with contextlib.suppress(Exception):
                await self.guard.store.arevoke(run_id)
        return {STATE_KEY: None}

    # -- model calls -----------------------------------------------------------------------------
    def _ending(self, record: RunRecord | None, messages: Sequence[BaseMessage]) -> str | None:
        """Why the run ends now (a refusal in end mode, a run that cannot continue), else ``None``."""
        if record is not None:
            entry = self._registry.get(record["key"], record["thread"])
            if entry is not None and entry.ending is not None:
                return entry.ending
        return ending_in(messages)

    def _record_after(self, record: RunRecord, task: Task, spent: list[int] | None) -> RunRecord | None:
        """The record to write back after the model call's lookup, or ``None`` when unchanged."""
        if record["grant_id"] != task.grant_id:
            return granted(record, task, spent)
        if spent is not None and spent != record["spent"]:
            return with_spent(record, spent)
        return None

    def _visible(self, request: ModelRequest[Any], task: Task | None) -> ModelRequest[Any]:
        if not self._hide:
            return request
        allowed = set(task.tools) if task is not None and usable(task, self.guard.clock()) else set()
        return request.override(tools=[t for t in request.tools if _tool_name(t) in allowed])

    @staticmethod
    def _with(
        response: ModelResponse[Any], update: RunRecord | None
    ) -> ModelResponse[Any] | ExtendedModelResponse[Any]:
        if update is None:
            return response
        return ExtendedModelResponse(model_response=response, command=Command(update={STATE_KEY: update}))

    def _model_call_start(self, request: ModelRequest[Any]) -> AIMessage | tuple[RunRecord | None, list[BaseMessage]]:
        """The run's record and messages before a model call, or the final message that ends the run now."""
        messages = _messages(request.state)
        value = _state_get(request.state, STATE_KEY)
        record = read_record(value, thread_id_of(request.runtime))
        if record is None and value is not None:
            return final_message(unresumable_text(Unresumable(_FOREIGN_RECORD)))
        why = self._ending(record, messages)
        if why is not None:
            return final_message(why)
        return record, messages

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """End the run when it must end; else mint a recorded plan / snapshot the spent calls, then call the model."""
        start = self._model_call_start(request)
        if isinstance(start, AIMessage):
            return start
        record, messages = start
        task, update = None, None
        if record is not None:
            try:
                task = self._resolver.task(record, messages, self._identity_for(request.runtime),
                                           self._root(_config()))
            except Unresumable as err:
                return final_message(unresumable_text(err))
            spent = store_spent(self.guard, task) if thread_id_of(request.runtime) is not None else None
            update = self._record_after(record, task, spent)
        return self._with(handler(self._visible(request, task)), update)

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """Async :meth:`wrap_model_call`."""
        start = self._model_call_start(request)
        if isinstance(start, AIMessage):
            return start
        record, messages = start
        task, update = None, None
        if record is not None:
            try:
                task = await self._resolver.atask(record, messages, self._identity_for(request.runtime),
                                                  self._root(_config()))
            except Unresumable as err:
                return final_message(unresumable_text(err))
            spent = await astore_spent(self.guard, task) if thread_id_of(request.runtime) is not None else None
            update = self._record_after(record, task, spent)
        return self._with(await handler(self._visible(request, task)), update)

    # -- tool calls ------------------------------------------------------------------------------
    def _prepare(self, request: ToolCallRequest) -> tuple[RunRecord, Any]:
        """The run's record (``Unresumable`` when there is none this middleware can use) and the call's config."""
        value = _state_get(request.state, STATE_KEY)
        record = read_record(value, thread_id_of(request.runtime))
        if record is None:
            raise Unresumable(_NO_RECORD if value is None else _FOREIGN_RECORD)
        entry = self._registry.get(record["key"], record["thread"])
        if entry is not None and entry.aborted is not None:  # raise mode: the turn ends with the first refusal
            raise entry.aborted
        return record, getattr(request.runtime, "config", None)

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolResult]
    ) -> ToolResult:
        """Decide the call against this run's grant (inside the tool run); run it, or answer the refusal."""
        try:
            record, config = self._prepare(request)
            task = self._resolver.task(record, _messages(request.state), self._identity_for(request.runtime),
                                       self._root(config))
        except Unresumable as err:
            return self._outcomes.cannot_continue(request, err)
        cell = CallCell(record["key"])
        try:
            with self.guard.use(task):
                result = self._node.run(request, handler, cell)
        except ToolCallDenied as err:
            if self.on_violation == "raise":
                raise self._outcomes.denied(record, err) from None
            raise
        ended = self._outcomes.ends(record, cell.decision)
        if ended is not None:
            self.guard.close(ended, "violation")
        return result

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[ToolResult]]
    ) -> ToolResult:
        """Async :meth:`wrap_tool_call`."""
        try:
            record, config = self._prepare(request)
            task = await self._resolver.atask(record, _messages(request.state), self._identity_for(request.runtime),
                                              self._root(config))
        except Unresumable as err:
            return self._outcomes.cannot_continue(request, err)
        cell = CallCell(record["key"])
        try:
            with self.guard.use(task):
                result = await self._node.arun(request, handler, cell)
        except ToolCallDenied as err:
            if self.on_violation == "raise":
                raise await self._outcomes.adenied(record, err) from None
            raise
        ended = self._outcomes.ends(record, cell.decision)
        if ended is not None:
            await self.guard.aclose(ended, "violation")
        return result

