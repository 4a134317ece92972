"""Test helpers: a scripted chat model that drives a real LangChain/LangGraph agent loop.

``ScriptedChatModel`` answers each call with the next scripted message. Unlike LangChain's fake
models it implements ``bind_tools`` (so ``create_agent``/``create_react_agent`` accept it and
``with_structured_output`` works through the standard tool-calling path), never streams (so
tool calls are not dropped), and records what it was offered on every call::

    model = ScriptedChatModel(script=[
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")),
        "All done.",
    ])
    agent = create_agent(model, tools, middleware=[guard_mw])
    agent.invoke({"messages": [("user", "...")]})
    model.offered      # [["crm_lookup", "send_email"], [...]] -- tool names per model call

Build a fresh model per agent run: the script is consumed as the model is called.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, ToolCall
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field, PrivateAttr

from agent_guard.planning import PlanDraft

__all__ = ["ScriptExhausted", "ScriptedChatModel", "calls", "plan_reply", "tool_call"]

Reply = AIMessage | str | Callable[[list[BaseMessage]], AIMessage | str]
"""One scripted turn: a message, its text, or a function of the prompt returning either."""


class ScriptExhausted(AssertionError):
    """The scripted model was called more times than it has scripted replies."""


def tool_call(name: str, args: Mapping[str, Any] | None = None, id: str | None = None) -> ToolCall:
    """A model tool call dict (``{"name", "args", "id", "type": "tool_call"}``)."""
    return ToolCall(name=name, args=dict(args or {}), id=id or f"call_{name}", type="tool_call")


def calls(*tool_calls: ToolCall, content: str = "") -> AIMessage:
    """An assistant message that makes ``tool_calls`` (in parallel when there are several)."""
    return AIMessage(content=content, tool_calls=list(tool_calls))


def plan_reply(draft: PlanDraft | Mapping[str, Any], id: str = "call_plan") -> AIMessage:
    """What a tool-calling model answers to ``with_structured_output(PlanDraft)``: a PlanDraft call.

    ``draft`` may be invalid on purpose (a dict), to test how a planner handles bad output.
    """
    args = draft.model_dump() if isinstance(draft, PlanDraft) else dict(draft)
    return AIMessage(content="", tool_calls=[tool_call(PlanDraft.__name__, args, id)])


def _tool_name(tool: Any) -> str:
    if isinstance(tool, BaseTool):
        return tool.name
    if isinstance(tool, Mapping):
        fn = tool.get("function")
        return str(fn.get("name") if isinstance(fn, Mapping) else tool.get("name", "?"))
    if isinstance(tool, type):
        return tool.__name__
    return str(getattr(tool, "name", getattr(tool, "__name__", "?")))


class ScriptedChatModel(BaseChatModel):
    """A chat model that replies from a script and records every prompt and tool offer."""

    script: list[Any] = Field(default_factory=list)
    """The replies, in order (``AIMessage``, text, or ``fn(messages) -> AIMessage | str``)."""
    disable_streaming: bool | Literal["tool_calling"] = True
    """Always generate whole messages: streaming would drop scripted tool calls."""

    _cursor: int = PrivateAttr(default=0)
    _lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _offered: list[list[str]] = PrivateAttr(default_factory=list)
    _prompts: list[list[BaseMessage]] = PrivateAttr(default_factory=list)
    _tool_choices: list[Any] = PrivateAttr(default_factory=list)

    def __init__(self, script: Sequence[Reply] = (), **kwargs: Any) -> None:
        """Script the replies; the model answers call *n* with ``script[n]``."""
        super().__init__(script=list(script), **kwargs)

    @property
    def _llm_type(self) -> str:
        return "agent-guard-scripted"

    @property
    def offered(self) -> list[list[str]]:
        """The tool names offered to the model, one list per model call."""
        return [list(x) for x in self._offered]

    @property
    def prompts(self) -> list[list[BaseMessage]]:
        """The messages the model received, one list per model call."""
        return [list(x) for x in self._prompts]

    @property
    def tool_choices(self) -> list[Any]:
        """The ``tool_choice`` of each model call (``None`` when not set)."""
        return list(self._tool_choices)

    @property
    def remaining(self) -> int:
        """How many scripted replies are left."""
        return len(self.script) - self._cursor

    def bind_tools(
        self,
        tools: Sequence[Mapping[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Offer ``tools`` to the model (recorded on each call; the script decides the reply)."""
        formatted = [convert_to_openai_tool(t) for t in tools]
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=formatted, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        with self._lock:
            index = self._cursor
            self._cursor += 1
            self._offered.append([_tool_name(t) for t in kwargs.get("tools") or ()])
            self._prompts.append(list(messages))
            self._tool_choices.append(kwargs.get("tool_choice"))
        if index >= len(self.script):
            raise ScriptExhausted(f"ScriptedChatModel: call {index + 1} but only {len(self.script)} scripted replies")
        reply = self.script[index]
        if callable(reply) and not isinstance(reply, BaseMessage):
            reply = reply(list(messages))
        message = AIMessage(content=reply) if isinstance(reply, str) else reply
        if not isinstance(message, AIMessage):
            raise TypeError(f"ScriptedChatModel: script[{index}] is not an AIMessage or text")
        return ChatResult(generations=[ChatGeneration(message=message.model_copy(deep=True))])
