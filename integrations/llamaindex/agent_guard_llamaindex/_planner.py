"""An LLM planner on a LlamaIndex LLM: structured prediction of a plan from request + catalog only."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.llms import LLM, ChatMessage
from llama_index.core.prompts import ChatPromptTemplate
from llama_index.core.tools import BaseTool

from agent_guard import ConfigError, Plan, Policy
from agent_guard.exceptions import PlannerError
from agent_guard.planning import PlanDraft, ToolSpec, plan_from_draft, planner_messages
from agent_guard_llamaindex._checks import check_tool, from_langchain

__all__ = ["LLMPlanner", "tool_specs"]

# The prompt's text goes in as template *values*, so braces in the catalog's JSON are never parsed.
_PROMPT = ChatPromptTemplate(
    message_templates=[
        ChatMessage(role="system", content="{agent_guard_instructions}"),
        ChatMessage(role="user", content="{agent_guard_request}"),
    ]
)


def tool_specs(tools: Sequence[BaseTool]) -> list[ToolSpec]:
    """The planner's view of LlamaIndex tools: name, description and argument JSON schema."""
    specs = []
    for tool in tools:
        meta = check_tool(tool).metadata
        if not meta.name:
            raise ConfigError("tools: every tool needs a name (ToolMetadata.name)")
        specs.append(ToolSpec(name=meta.name, description=meta.description or "", parameters=meta.get_parameters_dict()))
    return specs


def _request_text(request: Any) -> str:
    if isinstance(request, ChatMessage):
        return request.content or ""
    if isinstance(request, str):
        return request
    raise ConfigError(f"user_msg: expected text or a ChatMessage, got {type(request).__name__}")


class LLMPlanner:
    """Ask a LlamaIndex LLM for a :class:`~agent_guard.planning.PlanDraft`, then validate it.

    The model sees **only** the user's request and the tool catalog (names, descriptions,
    argument schemas), never tool outputs, history or retrieved text: the plan is fixed before any
    untrusted content enters the conversation, so an injected instruction cannot widen the grant.
    Malformed output raises :class:`~agent_guard.PlannerError`; a plan beyond the policy raises
    :class:`~agent_guard.PlanRejected`. Nothing runs until a plan has passed both checks.
    """

    def __init__(self, llm: LLM, *, ordered: bool = False, llm_kwargs: dict[str, Any] | None = None) -> None:
        if from_langchain(llm):
            raise ConfigError(
                f"llm: {type(llm).__name__} is a LangChain model; plan for LangChain agents with "
                "agent_guard_langchain.LLMPlanner(model), or pass a LlamaIndex LLM here"
            )
        if not isinstance(llm, LLM):
            raise ConfigError(
                f"llm: expected a LlamaIndex LLM (llama_index.core.llms.LLM), got {type(llm).__name__}"
            )
        if not isinstance(ordered, bool):
            raise ConfigError(f"ordered: expected True or False, got {type(ordered).__name__}")
        if llm_kwargs is not None and not isinstance(llm_kwargs, Mapping):
            raise ConfigError(f"llm_kwargs: expected a dict of keyword arguments, got {type(llm_kwargs).__name__}")
        self.llm = llm
        self.ordered = ordered
        self.llm_kwargs = dict(llm_kwargs or {})

    @staticmethod
    def _prompt_args(request: Any, specs: Sequence[ToolSpec]) -> dict[str, str]:
        (_, system), (_, user) = planner_messages(_request_text(request), specs)
        return {"agent_guard_instructions": system, "agent_guard_request": user}

    def _finish(self, draft: Any, specs: Sequence[ToolSpec], policy: Policy | None) -> Plan:
        return plan_from_draft(draft, tools=specs, policy=policy, ordered=self.ordered)

    def plan(self, request: str | ChatMessage, tools: Sequence[BaseTool], *, policy: Policy | None = None) -> Plan:
        """Plan ``request`` over ``tools``; with ``policy``, also check the plan against the ceiling."""
        specs = tool_specs(tools)
        args = self._prompt_args(request, specs)
        try:
            draft = self.llm.structured_predict(PlanDraft, _PROMPT, llm_kwargs=dict(self.llm_kwargs), **args)
        except (ValueError, TypeError) as err:
            raise PlannerError("the planner model did not return a usable plan", [str(err)]) from None
        return self._finish(draft, specs, policy)

    async def aplan(
        self, request: str | ChatMessage, tools: Sequence[BaseTool], *, policy: Policy | None = None
    ) -> Plan:
        """Async :meth:`plan`."""
        specs = tool_specs(tools)
        args = self._prompt_args(request, specs)
        try:
            draft = await self.llm.astructured_predict(PlanDraft, _PROMPT, llm_kwargs=dict(self.llm_kwargs), **args)
        except (ValueError, TypeError) as err:
            raise PlannerError("the planner model did not return a usable plan", [str(err)]) from None
        return self._finish(draft, specs, policy)

    def __repr__(self) -> str:
        return f"LLMPlanner({type(self.llm).__name__})"
