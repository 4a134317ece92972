"""``AgentGuardMiddleware``: task-scoped grants for ``langchain.agents.create_agent``.

Per run: ``before_agent`` plans, derives the scope and mints the grant; ``wrap_tool_call``
decides every tool call against it; ``after_agent`` revokes it.

Where the grant lives: the Task (holding the signed grant) stays in an in-memory registry on
the middleware, keyed by an unguessable per-run key. The agent state -- which a checkpointer
persists -- carries only that key (``agent_guard_run``, a private state field). The key is not a
credential: it is useless outside this process, and it is bound to the LangGraph thread it was
minted on. ``wrap_tool_call`` looks the Task up and makes it the current task only for the
duration of the call (``guard.use(task)``), so concurrent runs sharing one middleware never see
each other's grant. A run that dies before ``after_agent`` leaves a grant that expires with its
TTL and is dropped by the next run's sweep.

The task's lifecycle is the core's: ``guard.open``/``aopen`` in ``before_agent`` (under the
graph's span when an instrumentor traces LangChain, see :mod:`._tracing`), ``guard.close``/
``aclose`` in ``after_agent``. Tool calls are decided by :class:`._node.NodeGuard`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Annotated, Any, TypeAlias

from langchain.agents.middleware.types import (
    AgentMiddleware,
    AgentState,
    ExtendedModelResponse,
    ModelRequest,
    ModelResponse,
    PrivateStateAttr,
)
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage
from langchain_core.tools import BaseTool
from langgraph.errors import GraphBubbleUp
from langgraph.prebuilt.tool_node import ToolCallRequest
from langgraph.runtime import Runtime
from typing_extensions import NotRequired

from agent_guard import AgentIdentity, Guard, Plan, Task, ToolCallDenied
from agent_guard.exceptions import ConfigError
from agent_guard.execution import under_span
from agent_guard_langchain._checks import OnViolation, check_guard, check_on_violation
from agent_guard_langchain._node import NodeGuard, ToolResult
from agent_guard_langchain._planner import LLMPlanner, Planner, resolve_async, resolve_sync
from agent_guard_langchain._runs import RunRegistry, thread_id_of
from agent_guard_langchain._tracing import framework_parent_span

__all__ = ["STATE_KEY", "AgentGuardMiddleware", "AgentGuardState", "IdentityProvider"]

STATE_KEY = "agent_guard_run"
"""The private state field holding the run's (non-secret) registry key."""

IdentityProvider: TypeAlias = AgentIdentity | Callable[[Runtime[Any]], AgentIdentity]
"""An identity, or a function of the run's ``Runtime`` (e.g. reading ``runtime.context``)."""

_MAX_PENDING = 1024


class AgentGuardState(AgentState[Any]):
    """Agent state with the run's registry key (never the grant)."""

    agent_guard_run: NotRequired[Annotated[str | None, PrivateStateAttr]]


def _state_get(state: Any, key: str) -> Any:
    if isinstance(state, Mapping):
        return state.get(key)
    return getattr(state, key, None)


def _tool_name(tool: BaseTool | Mapping[str, Any]) -> str | None:
    if isinstance(tool, BaseTool):
        return tool.name
    fn = tool.get("function")
    name = fn.get("name") if isinstance(fn, Mapping) else tool.get("name")
    return name if isinstance(name, str) else None


class AgentGuardMiddleware(AgentMiddleware[AgentGuardState, Any, Any]):
    """Plan -> scope -> grant per run of a ``create_agent`` agent, enforced on every tool call.

    ``planner`` is a :class:`~agent_guard.Plan`, a function ``(messages, tools) -> Plan`` (sync
    or async) or an :class:`LLMPlanner`; ``catalog`` is the agent's tools (what the planner may
    plan with). ``identity`` is an :class:`~agent_guard.AgentIdentity` or a function of the
    ``Runtime`` (default: the policy's agent acting for no user). A refused call becomes
    ``ToolMessage(status="error")`` naming the tool, the reason code and what the plan allows, and
    the loop continues; ``on_violation="raise"`` raises :class:`~agent_guard.ToolCallDenied`
    (aborting the run, after revoking its grant). ``hide_out_of_scope_tools=True`` also stops
    offering the model tools outside the grant. ``ttl_s`` overrides the guard's grant lifetime.
    A :class:`~agent_guard.PlanRejected` or :class:`~agent_guard.PlannerError` raised while
    planning propagates out of ``invoke`` and nothing runs.
    """

    state_schema = AgentGuardState

    def __new__(cls, *args: Any, hide_out_of_scope_tools: bool = False, **kwargs: Any) -> AgentGuardMiddleware:
        """Build the tool-hiding variant when asked: only it has ``wrap_model_call`` hooks.

        ``create_agent`` wraps every model call of an agent whose middleware class overrides
        ``wrap_model_call`` (about 60 µs per call), so the plain middleware does not override it.
        """
        if hide_out_of_scope_tools and cls is AgentGuardMiddleware:
            cls = _ToolHidingMiddleware
        return super().__new__(cls)

    def __init__(
        self,
        guard: Guard,
        *,
        planner: Planner,
        catalog: Sequence[BaseTool] = (),
        identity: IdentityProvider | None = None,
        on_violation: OnViolation = "message",
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
        on_violation = check_on_violation(on_violation)
        if identity is not None and not isinstance(identity, AgentIdentity) and not callable(identity):
            raise ConfigError("identity: expected an AgentIdentity or a function of the runtime")
        self.guard = guard
        self.planner = planner
        self.catalog: list[BaseTool] = list(catalog)
        self.identity = identity
        self.on_violation: OnViolation = on_violation
        self.ttl_s = ttl_s
        self._runs = RunRegistry(guard)
        self._node = NodeGuard(guard, on_violation)
        self._pending: OrderedDict[tuple[str, str], Plan] = OrderedDict()
        self._pending_lock = threading.Lock()

    # -- introspection -------------------------------------------------------------------------
    @property
    def name(self) -> str:
        """``"AgentGuardMiddleware"`` (the prefix of its graph nodes), with or without tool hiding."""
        return "AgentGuardMiddleware"

    @property
    def hide_out_of_scope_tools(self) -> bool:
        """True when the model is offered only the tools the run's grant covers (fixed at construction)."""
        return isinstance(self, _ToolHidingMiddleware)

    @property
    def active_runs(self) -> int:
        """How many runs currently hold a live (registered) task."""
        return len(self._runs)

    def task_for(self, state: Any, runtime: Any) -> Task | None:
        """The live task of the run that ``state``/``runtime`` belong to (``None`` when there is none)."""
        return self._runs.get(_state_get(state, STATE_KEY), thread_id_of(runtime))

    def close(self) -> int:
        """Revoke every live run's grant (e.g. at shutdown). Returns how many were revoked."""
        return self._runs.close_all("manual")

    # -- planning and minting ----------------------------------------------------------------
    def _identity_for(self, runtime: Runtime[Any]) -> AgentIdentity:
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

    def _pending_key(self, messages: Sequence[BaseMessage], thread: str | None) -> tuple[str, str] | None:
        # An approval interrupt re-runs before_agent on resume: reuse the plan the human saw.
        if thread is None:
            return None
        for message in reversed(messages):
            if isinstance(message, HumanMessage):
                return (thread, str(message.id)) if message.id else None
        return None

    def _remember(self, key: tuple[str, str] | None, plan: Plan) -> None:
        if key is None:
            return
        with self._pending_lock:
            self._pending[key] = plan
            while len(self._pending) > _MAX_PENDING:
                self._pending.popitem(last=False)

    def _recall(self, key: tuple[str, str] | None) -> Plan | None:
        if key is None:
            return None
        with self._pending_lock:
            return self._pending.pop(key, None)

    def _previous(self, state: AgentGuardState, runtime: Runtime[Any]) -> tuple[str | None, object]:
        """(thread id, the key of a run still live on this thread: an earlier plan being replaced)."""
        thread = thread_id_of(runtime)
        previous = state.get(STATE_KEY)
        return thread, previous if self._runs.get(previous, thread) is not None else None

    def before_agent(self, state: AgentGuardState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Plan, derive the scope and mint this run's grant; put only its registry key in state."""
        self._runs.sweep()
        thread, previous = self._previous(state, runtime)
        if previous is not None:
            self._runs.close(previous, "replanned")
        messages = list(state["messages"])
        pending = self._pending_key(messages, thread)
        plan = self._recall(pending)
        if plan is None:
            plan = resolve_sync(self.planner, messages, list(self.catalog), self.guard.policy)
        identity = self._identity_for(runtime)
        try:
            with under_span(framework_parent_span()):  # the task span joins the framework's trace
                task = self.guard.open(plan, identity=identity, ttl_s=self.ttl_s)
        except GraphBubbleUp:  # an approval interrupt: keep the plan for the resume
            self._remember(pending, plan)
            raise
        return {STATE_KEY: self._runs.add(task, thread)}

    async def abefore_agent(self, state: AgentGuardState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Async :meth:`before_agent`."""
        await self._runs.asweep()
        thread, previous = self._previous(state, runtime)
        if previous is not None:
            await self._runs.aclose(previous, "replanned")
        messages = list(state["messages"])
        pending = self._pending_key(messages, thread)
        plan = self._recall(pending)
        if plan is None:
            plan = await resolve_async(self.planner, messages, list(self.catalog), self.guard.policy)
        identity = self._identity_for(runtime)
        try:
            with under_span(framework_parent_span()):
                task = await self.guard.aopen(plan, identity=identity, ttl_s=self.ttl_s)
        except GraphBubbleUp:
            self._remember(pending, plan)
            raise
        return {STATE_KEY: self._runs.add(task, thread)}

    def after_agent(self, state: AgentGuardState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Close the run's task (revoke its grant, end its span) and clear its key from state."""
        key = state.get(STATE_KEY)
        if self._runs.get(key, thread_id_of(runtime)) is not None:
            self._runs.close(key, "task_exit")
        return {STATE_KEY: None}

    async def aafter_agent(self, state: AgentGuardState, runtime: Runtime[Any]) -> dict[str, Any] | None:
        """Async :meth:`after_agent`."""
        key = state.get(STATE_KEY)
        if self._runs.get(key, thread_id_of(runtime)) is not None:
            await self._runs.aclose(key, "task_exit")
        return {STATE_KEY: None}

    # -- enforcement ---------------------------------------------------------------------------
    def _run_key(self, request: ToolCallRequest) -> tuple[object, Task | None]:
        key = _state_get(request.state, STATE_KEY)
        return key, self._runs.get(key, thread_id_of(request.runtime))

    def wrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], ToolResult]
    ) -> ToolResult:
        """Decide the call against this run's grant; run it, or answer with an error ToolMessage."""
        key, task = self._run_key(request)
        try:
            with self.guard.use(task):
                return self._node.run(request, handler)
        except ToolCallDenied:
            if self.on_violation == "raise" and task is not None:  # raise mode ends the run: close it first
                self._runs.close(key, "task_exit")
            raise

    async def awrap_tool_call(
        self, request: ToolCallRequest, handler: Callable[[ToolCallRequest], Awaitable[ToolResult]]
    ) -> ToolResult:
        """Async :meth:`wrap_tool_call`."""
        key, task = self._run_key(request)
        try:
            with self.guard.use(task):
                return await self._node.arun(request, handler)
        except ToolCallDenied:
            if self.on_violation == "raise" and task is not None:
                await self._runs.aclose(key, "task_exit")
            raise


class _ToolHidingMiddleware(AgentGuardMiddleware):
    """:class:`AgentGuardMiddleware` with ``hide_out_of_scope_tools=True``: also filters the model's tools."""

    def _visible(self, request: ModelRequest[Any]) -> ModelRequest[Any]:
        task = self.task_for(request.state, request.runtime)
        allowed = set(task.tools) if task is not None and not task.revoked else set()
        return request.override(tools=[t for t in request.tools if _tool_name(t) in allowed])

    def wrap_model_call(
        self, request: ModelRequest[Any], handler: Callable[[ModelRequest[Any]], ModelResponse[Any]]
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """Offer the model only the tools its grant covers."""
        return handler(self._visible(request))

    async def awrap_model_call(
        self,
        request: ModelRequest[Any],
        handler: Callable[[ModelRequest[Any]], Awaitable[ModelResponse[Any]]],
    ) -> ModelResponse[Any] | AIMessage | ExtendedModelResponse[Any]:
        """Async :meth:`wrap_model_call`."""
        return await handler(self._visible(request))
