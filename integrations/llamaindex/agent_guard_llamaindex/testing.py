"""Scripted LlamaIndex models for tests and demos: real agent loops, no network.

``scripted_llm(*turns)`` returns a ``MockFunctionCallingLLM`` that answers each model call with
the next turn: ``tool_calls(tool_call("search", {"q": "x"}))`` for function calls, plain text for a
final answer (or a ReAct step: ``react_action(...)`` / ``react_answer(...)``), and
``planned(draft)`` for an :class:`~agent_guard_llamaindex.LLMPlanner` structured output.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping, Sequence
from typing import Any

from llama_index.core.base.llms.types import ToolCallBlock
from llama_index.core.llms import ChatMessage
from llama_index.core.llms.mock import MockFunctionCallingLLM
from pydantic import PrivateAttr

from agent_guard.planning import PlanDraft

__all__ = [
    "ScriptExhausted",
    "ScriptedLLM",
    "Turn",
    "planned",
    "react_action",
    "react_answer",
    "scripted_llm",
    "tool_call",
    "tool_calls",
]

Turn = str | ChatMessage
"""One scripted model answer: text, or a ChatMessage (e.g. from :func:`tool_calls`)."""

_ids = itertools.count(1)


class ScriptExhausted(RuntimeError):
    """The scripted model was called more times than it has turns."""


def tool_call(name: str, args: Mapping[str, Any] | None = None, *, id: str | None = None) -> ToolCallBlock:
    """One function call the model makes: tool ``name`` with ``args`` (id generated when omitted)."""
    return ToolCallBlock(tool_call_id=id or f"call-{next(_ids)}", tool_name=name, tool_kwargs=dict(args or {}))


def tool_calls(*calls: ToolCallBlock) -> ChatMessage:
    """An assistant turn that makes the given function calls (in parallel when several)."""
    if not calls:
        raise ValueError("tool_calls: pass at least one tool_call(...)")
    return ChatMessage(role="assistant", blocks=list(calls))


def planned(draft: PlanDraft | Mapping[str, Any] | str) -> ChatMessage:
    """The turn a planner model answers with: a ``PlanDraft`` function call (structured output).

    ``draft`` may be malformed on purpose (a dict or string that is not a valid ``PlanDraft``).
    """
    if isinstance(draft, PlanDraft):
        kwargs: dict[str, Any] | str = draft.model_dump()
    elif isinstance(draft, Mapping):
        kwargs = dict(draft)
    else:
        kwargs = draft
    block = ToolCallBlock(tool_call_id=f"call-{next(_ids)}", tool_name=PlanDraft.__name__, tool_kwargs=kwargs)
    return ChatMessage(role="assistant", blocks=[block])


def react_action(tool: str, args: Mapping[str, Any], thought: str = "I need a tool.") -> str:
    """A ReAct turn that calls ``tool`` with ``args``."""
    return f"Thought: {thought}\nAction: {tool}\nAction Input: {json.dumps(dict(args))}"


def react_answer(answer: str, thought: str = "I can answer without more tools.") -> str:
    """A ReAct turn that gives the final answer."""
    return f"Thought: {thought}\nAnswer: {answer}"


class ScriptedLLM(MockFunctionCallingLLM):
    """A ``MockFunctionCallingLLM`` that plays a fixed script and records what it was shown."""

    _turns: list[Turn] = PrivateAttr(default_factory=list)
    _seen: list[list[ChatMessage]] = PrivateAttr(default_factory=list)

    @property
    def seen(self) -> list[list[ChatMessage]]:
        """The messages of every model call so far, in order."""
        return self._seen

    @property
    def remaining(self) -> int:
        """How many scripted turns are left."""
        return len(self._turns)

    def _next(self, messages: Sequence[ChatMessage], **kwargs: Any) -> ChatMessage:
        self._seen.append(list(messages))
        if not self._turns:
            raise ScriptExhausted(f"the scripted LLM has no turn left for model call {len(self._seen)}")
        turn = self._turns.pop(0)
        return turn if isinstance(turn, ChatMessage) else ChatMessage(role="assistant", content=turn)


def scripted_llm(*turns: Turn) -> ScriptedLLM:
    """A function-calling mock LLM that answers model calls with ``turns``, in order."""
    llm = ScriptedLLM()
    llm._turns = list(turns)
    llm.response_generator = llm._next
    return llm
