"""The handoff of a multi-agent ``AgentWorkflow`` as a guarded decision.

``AgentWorkflow`` builds its ``handoff`` tool itself, in ``get_tools(agent_name)``, for the
model's turn and again for the call. :func:`guard_handoffs` wraps that method on the workflow
instance (once): under a guarded multi-agent run, the handoff tool it returns is a
:class:`GuardedHandoffTool`, which decides ``handoff`` with ``{"to_agent": ...}`` against the
acting agent's grant before the workflow's own handoff runs. A refused handoff returns an error
output and never runs, so ``next_agent`` is not set and the workflow does not switch agents.
Outside a guarded run the workflow's tool is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from llama_index.core.agent.workflow import AgentWorkflow
from llama_index.core.tools import AsyncBaseTool, BaseTool, FunctionTool, ToolMetadata, ToolOutput

from agent_guard import ConfigError, Decision, ToolCallDenied
from agent_guard_llamaindex._agents import HANDOFF, AgentGrants
from agent_guard_llamaindex._arguments import ToolInput
from agent_guard_llamaindex._callid import current_tool_call
from agent_guard_llamaindex._invoke import async_runner
from agent_guard_llamaindex._state import CURRENT_RUN
from agent_guard_llamaindex._tools import CTX_PARAM, GuardedFunctionTool

__all__ = ["GuardedHandoffTool", "guard_handoffs"]

_MARK = "__agent_guard_handoffs__"


def _refuse_direct_call(*args: Any, **kwargs: Any) -> Any:
    raise ConfigError("GuardedHandoffTool: the workflow calls it through acall")


class GuardedHandoffTool(FunctionTool):
    """The workflow's ``handoff`` tool, decided first: ``handoff`` with ``{"to_agent": ...}``.

    The decision is made against the acting agent's grant (a plan step
    ``Step("handoff", args={"to_agent": "billing"})``); ``reason`` is the model's free text and
    is not decided. Its metadata (name, description, schema, ``return_direct``) is the workflow
    tool's own.
    """

    def __init__(self, tool: FunctionTool, agents: AgentGrants) -> None:
        super().__init__(fn=_refuse_direct_call, async_fn=_refuse_direct_call, metadata=tool.metadata)
        self.inner = tool
        self.agents = agents
        self.requires_context = True
        self.ctx_param_name = CTX_PARAM
        self._inner_ctx = tool.ctx_param_name
        self._input = ToolInput(tool, HANDOFF, self._inner_ctx)
        self._arun: Callable[..., Awaitable[ToolOutput]] = async_runner(tool)

    @property
    def metadata(self) -> ToolMetadata:
        """The workflow tool's metadata, unchanged."""
        return self.inner.metadata

    def call(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Not supported: ``AgentWorkflow`` hands off on the async path."""
        raise ConfigError("the guarded handoff is decided on the async path (acall) only")

    async def acall(self, *args: Any, **kwargs: Any) -> ToolOutput:
        """Decide the handoff against the acting agent's grant; hand off only when allowed."""
        if args:
            raise TypeError("handoff: pass the arguments by name")
        kwargs = dict(kwargs)
        ctx = kwargs.pop(CTX_PARAM, None)
        if self._inner_ctx is not None:
            kwargs.pop(self._inner_ctx, None)  # never an argument: a model's value is dropped
        arguments = self._input.resolve(kwargs, is_async=True)  # TypeError for a call it cannot take
        running = current_tool_call()
        call_id = running[1] if running is not None and running[0] == HANDOFF else None
        decided = {"to_agent": arguments.get("to_agent")}
        guard = self.agents.guard
        async with self.agents.acting(ctx, HANDOFF) as actor:
            call = await guard.atool_call(HANDOFF, decided, call_id=call_id, description=self.metadata.description)
            actor.mark(call)
            with call as c:
                if not c.allowed:
                    return _denied(c.decision, arguments)
                inner = {**arguments, self._inner_ctx: ctx} if self._inner_ctx is not None else arguments
                output = await self._arun(**inner)
                c.record_result(output.content)
                return output

    def __repr__(self) -> str:
        return "GuardedHandoffTool('handoff')"


def _denied(decision: Decision, arguments: dict[str, Any]) -> ToolOutput:
    return ToolOutput(content=decision.message, tool_name=HANDOFF, raw_input={"args": (), "kwargs": arguments},
                      raw_output=None, is_error=True, exception=ToolCallDenied(decision))


def _is_workflow_handoff(tool: BaseTool) -> bool:
    return (isinstance(tool, FunctionTool) and not isinstance(tool, (GuardedFunctionTool, GuardedHandoffTool))
            and tool.metadata.name == HANDOFF)


def guard_handoffs(workflow: AgentWorkflow) -> None:
    """Make ``workflow.get_tools`` return a guarded handoff tool under a guarded run (idempotent)."""
    current = workflow.get_tools
    if getattr(current, _MARK, False):
        return
    original: Callable[..., Awaitable[Sequence[AsyncBaseTool]]] = current

    async def get_tools(agent_name: str, input_str: str | None = None) -> Sequence[AsyncBaseTool]:
        tools = await original(agent_name, input_str)
        run = CURRENT_RUN.get()
        agents = run.agents if run is not None else None
        if agents is None:
            return tools  # not a guarded multi-agent run: the workflow as it is
        return [GuardedHandoffTool(t, agents) if _is_workflow_handoff(t) else t  # type: ignore[arg-type]
                for t in tools]

    setattr(get_tools, _MARK, True)
    workflow.get_tools = get_tools  # type: ignore[method-assign]
