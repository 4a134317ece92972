"""Wrong arguments to the adapter's constructors raise ConfigError naming the field and the fix."""

from __future__ import annotations

from typing import Any

import pytest
from agent_guard_langchain import AgentGuardMiddleware, GuardedTool, guard_tools, tool_node_wrappers
from langchain_core.tools import tool

from agent_guard import Capability, ConfigError, Guard, Plan, Policy, Step

GUARD = Guard(Policy(agent_id="chk", capabilities=[Capability("add", args={"a": {"any": True}})]))
PLAN = Plan(goal="g", steps=[Step("add", args={"a": {"any": True}})])


@tool
def add(a: int) -> int:
    """Add one."""
    return a + 1


def _llamaindex_like() -> Any:
    """An object whose class comes from llama_index.core.tools (recognised by module name, never imported)."""
    base = type("BaseTool", (), {"__module__": "llama_index.core.tools.types"})
    return type("FunctionTool", (base,), {"__module__": "llama_index.core.tools.function_tool"})()


def test_a_llamaindex_tool_points_to_the_llamaindex_adapter():
    """GuardedTool / guard_tools given a LlamaIndex tool say which package guards it."""
    for attempt in (lambda: GuardedTool(_llamaindex_like(), GUARD), lambda: guard_tools([_llamaindex_like()], GUARD),
                    lambda: guard_tools(_llamaindex_like(), GUARD)):
        with pytest.raises(ConfigError, match="agent_guard_llamaindex"):
            attempt()


def test_a_real_llamaindex_tool_points_to_the_llamaindex_adapter():
    """The same with a real LlamaIndex FunctionTool, when LlamaIndex is installed."""
    tools = pytest.importorskip("llama_index.core.tools")
    with pytest.raises(ConfigError, match="agent_guard_llamaindex"):
        GuardedTool(tools.FunctionTool.from_defaults(fn=lambda a: a, name="f", description="f"), GUARD)


def test_wrong_guard_and_tools():
    """A non-Guard names agent_guard.Guard; a plain function, a single tool or a string are refused with the fix."""
    with pytest.raises(ConfigError, match=r"guard: expected an agent_guard\.Guard.*Guard\(policy\)"):
        GuardedTool(add, object())  # type: ignore[arg-type]
    def f() -> None:
        pass

    with pytest.raises(ConfigError, match=r"inner: 'f' is a plain callable.*tool\(f\)"):
        GuardedTool(f, GUARD)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match=r"tools\[1\]"):
        guard_tools([add, f], GUARD)  # type: ignore[list-item]
    with pytest.raises(ConfigError, match="pass a list of tools"):
        guard_tools(add, GUARD)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="pass a list of tools"):
        guard_tools("add", GUARD)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="guard:"):
        tool_node_wrappers("guard")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="task:"):
        tool_node_wrappers(GUARD, task="current")  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["ignore", "output", "Message", None, 1])
def test_on_violation_typo_lists_the_valid_values(value):
    """The same two values everywhere ('message', 'raise'); 'output' (LlamaIndex's old spelling) gets a hint."""
    attempts = [
        lambda: GuardedTool(add, GUARD, on_violation=value),
        lambda: guard_tools([add], GUARD, on_violation=value),
        lambda: tool_node_wrappers(GUARD, on_violation=value),
    ]
    for attempt in attempts:
        with pytest.raises(ConfigError, match="on_violation: expected 'message' or 'raise'") as err:
            attempt()
        assert ("LlamaIndex" in str(err.value)) is (value == "output")
    # The middleware also ends runs: "end" is its third value.
    with pytest.raises(ConfigError, match="on_violation: expected 'message', 'raise' or 'end'"):
        AgentGuardMiddleware(GUARD, planner=PLAN, on_violation=value)
    with pytest.raises(ConfigError, match="on_violation: expected 'message' or 'raise'"):
        GuardedTool(add, GUARD, on_violation="end")  # type: ignore[arg-type]


def test_a_policy_tool_the_agent_lacks_is_reported_at_construction():
    """Where the adapter sees the agent's tools, a capability or a fixed plan's step for a tool the agent
    does not have is a ConfigError now -- not a tool_not_in_scope at run time."""
    from agent_guard_langchain import AgentGuardMiddleware

    guard = Guard(Policy(agent_id="chk", capabilities=[Capability("add", args={"a": {"any": True}}),
                                                        Capability("wire", args={"amount": {"max": 5}})]))
    with pytest.raises(ConfigError, match=r"catalog: .*capabilities for tools the agent does not have: \['wire'\]"):
        AgentGuardMiddleware(guard, planner=PLAN, catalog=[add])
    with pytest.raises(ConfigError, match=r"tools: .*\['wire'\]"):
        tool_node_wrappers(guard, tools=[add])
    with pytest.raises(ConfigError, match=r"tools: .*\['wire'\]"):
        guard_tools([add], guard, complete=True)
    assert len(guard_tools([add], guard)) == 1  # a partial list (the default) is fine
    only_add = Guard(Policy(agent_id="chk", capabilities=[Capability("add", args={"a": {"any": True}})]))
    with pytest.raises(ConfigError, match=r"planner: the plan has steps for tools the agent does not have: \['mul'\]"):
        AgentGuardMiddleware(only_add, planner=Plan(goal="g", steps=[Step("mul", args={})]), catalog=[add])
    AgentGuardMiddleware(only_add, planner=PLAN, catalog=[add])  # consistent: fine


def test_interrupt_approver_without_a_checkpointer_is_a_config_error_at_run_start():
    """interrupt_approver pauses with interrupt(), which only a checkpoint can resume: a graph without a
    checkpointer is refused when the run starts, saying what to add."""
    from agent_guard_langchain import AgentGuardMiddleware, interrupt_approver
    from agent_guard_langchain.testing import ScriptedChatModel
    from langchain.agents import create_agent
    from langgraph.checkpoint.memory import InMemorySaver

    guard = Guard(Policy(agent_id="chk", capabilities=[Capability("add", args={"a": {"any": True}})]),
                  approver=interrupt_approver)
    model = ScriptedChatModel(["never"])
    agent = create_agent(model, [add], middleware=[AgentGuardMiddleware(guard, planner=PLAN)])
    with pytest.raises(ConfigError, match=r"checkpointer: .*interrupt_approver.*InMemorySaver"):
        agent.invoke({"messages": [("user", "x")]})
    assert model.remaining == 1
    model = ScriptedChatModel(["fine"])
    agent = create_agent(model, [add], middleware=[AgentGuardMiddleware(guard, planner=PLAN)],
                         checkpointer=InMemorySaver())
    assert agent.invoke({"messages": [("user", "x")]}, {"configurable": {"thread_id": "t"}})["messages"][-1].content \
        == "fine"
