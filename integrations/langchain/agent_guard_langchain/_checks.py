"""Argument checks of the adapter's entry points: a wrong value raises ConfigError saying what to pass.

LlamaIndex objects are recognised by their class's module name, without importing LlamaIndex.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Literal

from langchain_core.tools import BaseTool

from agent_guard import ConfigError, Guard

__all__ = [
    "OnViolation", "RunOnViolation", "check_guard", "check_on_violation", "check_run_on_violation", "check_tool",
    "check_tool_coverage", "check_tool_list", "from_llamaindex",
]

OnViolation = Literal["message", "raise"]
"""What a refused call does: ``"message"`` answers with an error ``ToolMessage``; ``"raise"`` raises.

The same two values as ``agent_guard_llamaindex`` (whose old ``"output"`` is a deprecated alias of
``"message"`` there).
"""

RunOnViolation = Literal["message", "raise", "end"]
""":class:`AgentGuardMiddleware` also has ``"end"``: the refusal's error ToolMessage, then the run
ends with a final AI message (like ``ToolCallLimitMiddleware(exit_behavior="end")``)."""

_MODES: tuple[OnViolation, ...] = ("message", "raise")


def _type(value: object) -> str:
    cls = type(value)
    return cls.__name__ if cls.__module__ == "builtins" else f"{cls.__module__}.{cls.__qualname__}"


def from_llamaindex(value: object) -> bool:
    """True when ``value``'s class (or a base class) comes from LlamaIndex or agent_guard_llamaindex."""
    return any(c.__module__.startswith(("llama_index.", "agent_guard_llamaindex")) for c in type(value).__mro__)


def check_guard(guard: object) -> Guard:
    """``guard`` if it is an :class:`agent_guard.Guard`, else :class:`ConfigError`."""
    if not isinstance(guard, Guard):
        raise ConfigError(
            f"guard: expected an agent_guard.Guard, got {_type(guard)}; build one with agent_guard.Guard(policy)"
        )
    return guard


def check_on_violation(value: object) -> OnViolation:
    """``value`` if it is ``"message"`` or ``"raise"``, else :class:`ConfigError` listing both."""
    if isinstance(value, str) and value in _MODES:
        return "message" if value == "message" else "raise"
    hint = ' ("output" is the LlamaIndex adapter\'s old spelling of "message")' if value == "output" else ""
    raise ConfigError(f"on_violation: expected 'message' or 'raise', got {value!r}{hint}")


def check_run_on_violation(value: object) -> RunOnViolation:
    """``value`` if it is ``"message"``, ``"raise"`` or ``"end"``, else :class:`ConfigError` listing them."""
    if value == "end":
        return "end"
    try:
        return check_on_violation(value)
    except ConfigError:
        raise ConfigError(f"on_violation: expected 'message', 'raise' or 'end', got {value!r}") from None


def check_tool_coverage(guard: Guard, tools: Iterable[str], where: str, steps: Iterable[str] = ()) -> None:
    """:class:`ConfigError` when the guard's policy (or a plan's ``steps``) names a tool not in ``tools``.

    A capability or a plan step for a tool the agent does not have can never be used: it is a
    typo or a stale policy, found here rather than as ``tool_not_in_scope`` at run time.
    """
    names = set(tools)
    policy = guard.policy
    missing_caps = sorted({c.tool for c in policy.capabilities} - names) if policy is not None else []
    if missing_caps:
        raise ConfigError(
            f"{where}: the guard's policy has capabilities for tools the agent does not have: {missing_caps} "
            f"(the agent's tools: {sorted(names)}); remove those capabilities or give the agent the tools"
        )
    missing_steps = sorted(set(steps) - names)
    if missing_steps:
        raise ConfigError(
            f"planner: the plan has steps for tools the agent does not have: {missing_steps} "
            f"(the agent's tools: {sorted(names)}); fix the plan or give the agent the tools"
        )


def check_tool(tool: object, field: str = "tool") -> BaseTool:
    """``tool`` if it is a LangChain ``BaseTool``, else :class:`ConfigError` saying how to get one."""
    if isinstance(tool, BaseTool):
        return tool
    if from_llamaindex(tool):
        raise ConfigError(
            f"{field}: {_type(tool)} is a LlamaIndex tool; guard LlamaIndex tools with "
            "agent_guard_llamaindex.guard_tools (pip install agent-guard-llamaindex), or pass LangChain tools here"
        )
    if callable(tool) and not isinstance(tool, type):
        name = getattr(tool, "__name__", _type(tool))
        raise ConfigError(f"{field}: {name!r} is a plain callable; make it a LangChain tool first: tool({name})")
    raise ConfigError(f"{field}: expected a LangChain tool (langchain_core.tools.BaseTool), got {_type(tool)}")


def check_tool_list(tools: object) -> list[BaseTool]:
    """``tools`` as a list of LangChain tools; a single tool, a string or a mapping is refused."""
    if isinstance(tools, BaseTool) or from_llamaindex(tools):
        raise ConfigError(
            f"tools: pass a list of tools, e.g. guard_tools([search], guard); got one tool, {_type(tools)}"
            + (" (a LlamaIndex tool: use agent_guard_llamaindex.guard_tools)" if from_llamaindex(tools) else "")
        )
    if isinstance(tools, (str, bytes, Mapping)) or not isinstance(tools, Iterable):
        raise ConfigError(f"tools: pass a list of tools, e.g. guard_tools([search], guard); got {_type(tools)}")
    return [check_tool(t, f"tools[{i}]") for i, t in enumerate(tools)]
