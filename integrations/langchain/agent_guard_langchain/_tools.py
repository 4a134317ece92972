"""``GuardedTool``: a LangChain ``BaseTool`` that decides every call before the wrapped tool runs.

The wrapper is the tool as LangChain sees it -- the wrapped tool's name, description, schemas,
``return_direct``, ``response_format``, error handling, tags, metadata and callbacks -- and runs
LangChain's own ``run``/``arun``: the wrapped tool's input parsing (``_to_args_and_kwargs``),
one callback run, output formatting. Only ``_run``/``_arun`` differ: they receive exactly what
the wrapped tool's ``_run``/``_arun`` would (validated, coerced, defaults and injected values in),
decide on that (:mod:`._arguments`) inside the tool run -- so the decision span is a child of the
framework's tool span under an instrumentor -- and then call the wrapped ``_run``/``_arun``.

A refused call never reaches the wrapped tool: with a tool call id it returns the error
``ToolMessage``, without one (plain arguments) it raises :class:`~agent_guard.ToolCallDenied`;
``on_violation="raise"`` always raises. Callback handlers (LangSmith, OpenInference, your own)
see every refusal as a failed tool run: ``on_tool_start``, then ``on_tool_error`` with the
``ToolCallDenied`` -- also when the model gets the error ToolMessage (the refusal is reported
on the run's own callback manager, which then has nothing more to report).

A coroutine-only tool (``StructuredTool`` with a ``coroutine`` and no ``func``, as
``langchain-mcp-adapters`` builds them) run synchronously raises LangChain's own
``NotImplementedError`` ("does not support sync invocation") *before* anything is decided, so no
budget is spent on a call that could not run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Final

from langchain_core.callbacks import AsyncCallbackManagerForToolRun, CallbackManagerForToolRun
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import BaseTool, StructuredTool, Tool
from langchain_core.utils.pydantic import TypeBaseModel
from pydantic import ConfigDict, PrivateAttr

from agent_guard import Decision, Guard, ToolCallDenied
from agent_guard_langchain._arguments import Target, decision_args, forged_values, injected_keys, target_of
from agent_guard_langchain._calls import aguarded_call, guarded_call
from agent_guard_langchain._checks import (
    OnViolation,
    check_guard,
    check_on_violation,
    check_tool,
    check_tool_coverage,
    check_tool_list,
)
from agent_guard_langchain._messages import denial_message
from agent_guard_langchain._sentinel import ARMED, disarmed

__all__ = ["GuardedTool", "guard_tools"]

_CALL_KEY: Final = "agent_guard:call"
"""The keyword ``_to_args_and_kwargs`` hands ``_run`` the call's id and forged values under (not an identifier)."""


@dataclass(frozen=True)
class _Call:
    call_id: str | None
    forged: dict[str, Any] | None


class GuardedTool(BaseTool):
    """A tool whose every call is decided by ``guard`` first; otherwise identical to ``inner``.

    ``GuardedTool(tool, guard)``. Calls are decided in the current task (``with guard.task(...)``,
    or the run's task under :class:`AgentGuardMiddleware`), on the arguments the wrapped tool's
    function receives. A plain-JSON value in the input for one of the tool's injected parameters
    (``InjectedToolArg``, ``InjectedState``, ...) is decided like a model argument -- refused
    (``argument_not_allowed``) unless the plan lists that argument -- since a model can write one.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    inner: BaseTool
    """The wrapped tool."""
    guard: Guard
    """The guard that decides every call."""
    on_violation: OnViolation = "message"
    """``"message"``: a refused ToolCall becomes an error ToolMessage; ``"raise"``: raise ToolCallDenied."""

    _injectable: frozenset[str] = PrivateAttr(default=frozenset())
    _targets: dict[bool, Target] = PrivateAttr(default_factory=dict)
    _end_run: bool = PrivateAttr(default=False)
    _coroutine_only: bool = PrivateAttr(default=False)

    def __init__(self, inner: BaseTool, guard: Guard, *, on_violation: OnViolation = "message") -> None:
        """Wrap ``inner`` so that ``guard`` decides each call; a wrong argument raises ConfigError."""
        inner = check_tool(inner, "inner")
        guard = check_guard(guard)
        on_violation = check_on_violation(on_violation)
        super().__init__(
            inner=inner,
            guard=guard,
            on_violation=on_violation,
            name=inner.name,
            description=inner.description,
            args_schema=inner.args_schema,
            return_direct=inner.return_direct,
            verbose=inner.verbose,
            callbacks=inner.callbacks,
            response_format=inner.response_format,
            handle_tool_error=inner.handle_tool_error,
            handle_validation_error=inner.handle_validation_error,
            tags=inner.tags,
            metadata=inner.metadata,
            extras=inner.extras,
        )
        self._injectable = injected_keys(inner)
        self._coroutine_only = (isinstance(inner, (StructuredTool, Tool)) and inner.func is None
                                and inner.coroutine is not None)

    @classmethod
    def _for_tool_node(
        cls, tool: BaseTool, guard: Guard, on_violation: OnViolation, trusted: frozenset[str], *, end_run: bool = False
    ) -> GuardedTool:
        """The wrapper a ``ToolNode`` layer (middleware, wrappers) runs ``tool`` through.

        ``trusted``: the injected names LangGraph's ToolNode strips from the model's arguments and
        fills itself; their values are not the model's. ``end_run``: a refusal ends the run
        (the middleware's ``on_violation="end"``).
        """
        wrapper = cls(tool, guard, on_violation=on_violation)
        wrapper._injectable = wrapper._injectable - trusted
        wrapper._end_run = end_run
        return wrapper

    # -- a guarded run disarms the sentinel of the ToolNode layer (see _sentinel) -------------
    def run(self, *args: Any, **kwargs: Any) -> Any:
        """LangChain's ``BaseTool.run``: the decided call's own run is not an undecided tool run."""
        if ARMED.get() is None:
            return super().run(*args, **kwargs)
        token = disarmed()
        try:
            return super().run(*args, **kwargs)
        finally:
            if token is not None:
                ARMED.reset(token)

    async def arun(self, *args: Any, **kwargs: Any) -> Any:
        """Async :meth:`run`."""
        if ARMED.get() is None:
            return await super().arun(*args, **kwargs)
        token = disarmed()
        try:
            return await super().arun(*args, **kwargs)
        finally:
            if token is not None:
                ARMED.reset(token)

    # -- the wrapped tool's schemas, injection markers and parsing ---------------------------
    @property
    def tool_call_schema(self) -> Any:
        """The wrapped tool's schema for model tool calls (injected arguments excluded)."""
        return self.inner.tool_call_schema

    @property
    def args(self) -> dict[str, Any]:
        """The wrapped tool's argument properties."""
        return self.inner.args

    def get_input_schema(self, config: RunnableConfig | None = None) -> TypeBaseModel:
        """The wrapped tool's full input schema (injected arguments included)."""
        return self.inner.get_input_schema(config)

    @property
    def _injected_args_keys(self) -> frozenset[str]:
        return self.inner._injected_args_keys

    def _filter_injected_args(self, tool_input: dict[str, Any]) -> dict[str, Any]:
        return self.inner._filter_injected_args(tool_input)

    def _parse_input(self, tool_input: str | dict[str, Any], tool_call_id: str | None) -> str | dict[str, Any]:
        return self.inner._parse_input(tool_input, tool_call_id)

    def _to_args_and_kwargs(
        self, tool_input: str | dict[str, Any], tool_call_id: str | None
    ) -> tuple[tuple[Any, ...], dict[str, Any]]:
        # Read the caller's injected values before parsing (the parse may write into tool_input).
        forged = forged_values(tool_input, self._injectable) if isinstance(tool_input, dict) else None
        args, kwargs = self.inner._to_args_and_kwargs(tool_input, tool_call_id)
        kwargs[_CALL_KEY] = _Call(tool_call_id, forged)
        return args, kwargs

    @property
    def func(self) -> Callable[..., Any] | None:
        """The wrapped tool's ``func`` (LangGraph reads its annotations to inject runtime/state)."""
        return getattr(self.inner, "func", None)

    @property
    def coroutine(self) -> Callable[..., Any] | None:
        """The wrapped tool's ``coroutine`` (see :attr:`func`)."""
        return getattr(self.inner, "coroutine", None)

    # -- execution ---------------------------------------------------------------------------
    def _target(self, is_async: bool) -> Target:
        target = self._targets.get(is_async)
        if target is None:
            target = self._targets[is_async] = target_of(self.inner, is_async)
        return target

    def _prepare(
        self, is_async: bool, args: tuple[Any, ...], kwargs: dict[str, Any], config: RunnableConfig, run_manager: Any
    ) -> tuple[dict[str, Any], str | None, dict[str, Any]]:
        """(decision arguments, tool call id, keyword arguments for the wrapped ``_run``/``_arun``)."""
        call = kwargs.pop(_CALL_KEY, None)
        call_id, forged = (call.call_id, call.forged) if isinstance(call, _Call) else (None, None)
        target = self._target(is_async)
        decided = decision_args(target, args, kwargs, forged)
        takes_run_manager, config_param = target.run_kwargs
        if takes_run_manager:
            kwargs["run_manager"] = run_manager
        if config_param:
            kwargs[config_param] = config
        return decided, call_id, kwargs

    def _answer(self, decision: Decision, call_id: str | None) -> Any:
        """The refusal as the tool's answer (raises ``ToolCallDenied`` when there is no ToolCall to answer)."""
        if self.on_violation == "raise" or call_id is None:
            raise ToolCallDenied(decision)
        message = denial_message(decision, self.name, call_id, end_run=self._end_run)
        # LangChain unpacks (content, artifact) for such tools; a ToolMessage content is kept whole.
        return (message, None) if self.response_format == "content_and_artifact" else message

    def _refusal(self, call_id: str | None, run_manager: CallbackManagerForToolRun | None) -> Callable[[Decision], Any]:
        def refuse(decision: Decision) -> Any:
            answer = self._answer(decision, call_id)
            if run_manager is not None:  # callbacks see the refused run fail, the model gets the answer
                run_manager.on_tool_error(ToolCallDenied(decision), tool_call_id=call_id)
                run_manager.handlers = []
            return answer

        return refuse

    def _arefusal(
        self, call_id: str | None, run_manager: AsyncCallbackManagerForToolRun | None
    ) -> Callable[[Decision], Awaitable[Any]]:
        async def refuse(decision: Decision) -> Any:
            answer = self._answer(decision, call_id)
            if run_manager is not None:
                await run_manager.on_tool_error(ToolCallDenied(decision), tool_call_id=call_id)
                run_manager.handlers = []
            return answer

        return refuse

    def _check_sync(self) -> None:
        """LangChain's own error for a coroutine-only tool run synchronously -- raised before the decision."""
        if self._coroutine_only:
            kind = "StructuredTool" if isinstance(self.inner, StructuredTool) else "Tool"
            raise NotImplementedError(f"{kind} does not support sync invocation.")

    def _run(
        self, *args: Any, config: RunnableConfig, run_manager: CallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        self._check_sync()
        decided, call_id, inner_kwargs = self._prepare(False, args, kwargs, config, run_manager)
        inner = self.inner
        return guarded_call(self.guard, self.name, decided, call_id, self.description,
                            lambda: inner._run(*args, **inner_kwargs), self._refusal(call_id, run_manager))

    async def _arun(
        self, *args: Any, config: RunnableConfig, run_manager: AsyncCallbackManagerForToolRun | None = None,
        **kwargs: Any,
    ) -> Any:
        decided, call_id, inner_kwargs = self._prepare(True, args, kwargs, config, run_manager)
        inner = self.inner
        return await aguarded_call(self.guard, self.name, decided, call_id, self.description,
                                   lambda: inner._arun(*args, **inner_kwargs), self._arefusal(call_id, run_manager))


# LangChain's run()/arun() read the type hints of _run/_arun on every call (to find the RunnableConfig
# parameter). Under `from __future__ import annotations` they are strings, evaluated anew each time
# (about 20 µs a call): keep them as objects. Only the parameter names and RunnableConfig matter to it.
for _method in (GuardedTool._run, GuardedTool._arun):
    _method.__annotations__ = {"config": RunnableConfig, "return": Any}


def guard_tools(
    tools: Iterable[BaseTool], guard: Guard, *, on_violation: OnViolation = "message", complete: bool = False
) -> list[GuardedTool]:
    """Wrap each tool in a :class:`GuardedTool` (an already guarded tool is re-wrapped around its inner).

    ``complete=True`` says these are all the tools the agent has: a policy capability for a tool
    not among them is then a ``ConfigError`` (a typo or a stale policy, found now rather than as
    ``tool_not_in_scope`` at run time).
    """
    guard = check_guard(guard)
    on_violation = check_on_violation(on_violation)
    checked = check_tool_list(tools)
    if complete:
        check_tool_coverage(guard, [t.name for t in checked], "tools")
    out = []
    for tool in checked:
        inner = tool.inner if isinstance(tool, GuardedTool) else tool
        out.append(GuardedTool(inner, guard, on_violation=on_violation))
    return out
