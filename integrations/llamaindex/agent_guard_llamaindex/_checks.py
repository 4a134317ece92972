"""Argument checks of the adapter's entry points: a wrong value says what to pass instead.

LangChain objects are recognised by their class's module name, without importing LangChain.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from typing import Any, Literal

from llama_index.core.tools import BaseTool

from agent_guard import AgentIdentity, ConfigError, Guard

__all__ = [
    "OnViolation", "check_guard", "check_identity", "check_tool", "check_tool_list", "from_langchain",
    "on_violation_mode",
]

OnViolation = Literal["message", "raise"]
"""What a denied call does: ``"message"`` returns an error ``ToolOutput``; ``"raise"`` stops the run.

The same spelling as ``agent_guard_langchain``. ``"output"`` is a deprecated alias of ``"message"``.
"""

_LANGCHAIN = ("langchain", "langgraph", "agent_guard_langchain")


def from_langchain(value: object) -> bool:
    """True when ``value``'s class comes from LangChain, LangGraph or agent_guard_langchain."""
    return type(value).__module__.split(".", 1)[0].startswith(_LANGCHAIN)


def _type(value: object) -> str:
    cls = type(value)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def check_guard(guard: object) -> Guard:
    """``guard`` if it is an :class:`agent_guard.Guard`, else :class:`ConfigError`."""
    if not isinstance(guard, Guard):
        raise ConfigError(
            f"guard: expected an agent_guard.Guard, got {_type(guard)}; build one with agent_guard.Guard(policy)"
        )
    return guard


def check_identity(identity: object) -> AgentIdentity:
    """``identity`` if it is an :class:`agent_guard.AgentIdentity`, else :class:`ConfigError`."""
    if not isinstance(identity, AgentIdentity):
        raise ConfigError(
            f"identity: expected an agent_guard.AgentIdentity, got {_type(identity)}; "
            "e.g. AgentIdentity(agent_id=policy.agent_id, user_id=...)"
        )
    return identity


def check_tool(tool: object) -> BaseTool:
    """``tool`` if it is a LlamaIndex tool, else :class:`ConfigError` saying how to get one."""
    if isinstance(tool, BaseTool):
        return tool
    if from_langchain(tool):
        raise ConfigError(
            f"tools: {_type(tool)} is a LangChain tool; guard LangChain tools with "
            "agent_guard_langchain.guard_tools (pip install agent-guard-langchain), or pass LlamaIndex tools here"
        )
    if callable(tool) and not isinstance(tool, type):
        name = getattr(tool, "__name__", _type(tool))
        raise ConfigError(f"tools: {name!r} is a plain callable; wrap it first: FunctionTool.from_defaults({name})")
    raise ConfigError(f"tools: expected LlamaIndex tools (llama_index.core.tools.BaseTool), got {_type(tool)}")


def check_tool_list(tools: object) -> list[Any]:
    """``tools`` as a list, refusing a single tool, a string or a mapping (a list of tools is needed)."""
    if from_langchain(tools):
        check_tool(tools)  # one LangChain tool: say where it belongs
    if isinstance(tools, (BaseTool, str, bytes, Mapping)) or not isinstance(tools, Iterable):
        raise ConfigError(f"tools: pass a list of tools, e.g. guard_tools([search], guard); got {_type(tools)}")
    return list(tools)


def on_violation_mode(value: object) -> OnViolation:
    """The ``on_violation`` mode; ``"output"`` (deprecated) is read as ``"message"`` with a warning."""
    if value == "output" and isinstance(value, str):
        warnings.warn(
            'on_violation="output" is deprecated; use on_violation="message" (same behaviour, the spelling '
            "agent_guard_langchain uses)",
            DeprecationWarning,
            stacklevel=3,
        )
        return "message"
    if isinstance(value, str) and value in ("message", "raise"):
        return "message" if value == "message" else "raise"
    raise ConfigError(f"on_violation: expected 'message' or 'raise', got {value!r}")
