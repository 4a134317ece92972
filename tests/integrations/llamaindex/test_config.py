"""Wrong arguments to the adapter raise ConfigError naming the field and the fix; one on_violation vocabulary."""

from __future__ import annotations

import pytest
from agent_guard_llamaindex import (
    GuardedFunctionTool,
    LLMPlanner,
    agent_tools,
    guard_tools,
    guarded_run,
    tool_specs,
)
from agent_guard_llamaindex.testing import scripted_llm
from llama_index.core.agent.workflow import FunctionAgent

from agent_guard import ConfigError, reasons


def _langchain_tool():
    tools = pytest.importorskip("langchain_core.tools")

    @tools.tool
    def crm_lookup(customer_id: str) -> str:
        """Look a customer up."""
        return customer_id

    return crm_lookup


def _foreign(module: str, name: str) -> object:
    """An object whose class claims to come from ``module`` (how the adapter recognises LangChain)."""
    return type(name, (), {"__module__": module})()


def test_a_langchain_tool_points_to_the_langchain_adapter(raw_tools, guard):
    """A LangChain tool, alone or in the list, names agent_guard_langchain."""
    lc = _langchain_tool()
    with pytest.raises(ConfigError, match=r"tools: .*LangChain tool.*agent_guard_langchain\.guard_tools"):
        guard_tools([raw_tools[0], lc], guard)
    with pytest.raises(ConfigError, match="agent_guard_langchain"):
        guard_tools(lc, guard)
    with pytest.raises(ConfigError, match="agent_guard_langchain"):
        GuardedFunctionTool(lc, guard)
    with pytest.raises(ConfigError, match="agent_guard_langchain"):
        tool_specs([lc])


def test_a_plain_function_says_how_to_make_it_a_tool(guard):
    """A bare function is refused with the FunctionTool.from_defaults fix."""

    def lookup(customer_id: str) -> str:
        return customer_id

    with pytest.raises(ConfigError, match=r"'lookup' is a plain callable.*FunctionTool\.from_defaults\(lookup\)"):
        guard_tools([lookup], guard)
    with pytest.raises(ConfigError, match="list of tools"):
        guard_tools("crm_lookup", guard)
    with pytest.raises(ConfigError, match="list of tools"):
        guard_tools(None, guard)


def test_a_function_whose_signature_cannot_be_read_is_refused(guard):
    """Its arguments could not be checked against what it receives, so it is not wrapped (fail closed)."""
    from llama_index.core.tools import FunctionTool

    def lookup(customer_id: str) -> str:
        return customer_id

    tool = FunctionTool.from_defaults(lookup, async_fn=max)  # max has no readable signature
    with pytest.raises(ConfigError, match=r"tools: 'lookup': its function's signature cannot be read"):
        guard_tools([tool], guard)


def test_a_non_guard_names_agent_guard_guard(raw_tools, policy, guard):
    """A policy, None or anything else given as the guard names agent_guard.Guard."""
    for wrong in (policy, None, "guard"):
        with pytest.raises(ConfigError, match=r"guard: expected an agent_guard\.Guard, got .*agent_guard\.Guard\(policy\)"):
            guard_tools(raw_tools, wrong)
        with pytest.raises(ConfigError, match=r"agent_guard\.Guard"):
            GuardedFunctionTool(raw_tools[0], wrong)


def test_on_violation_uses_the_langchain_vocabulary(raw_tools, guard):
    """'message' and 'raise' are accepted; anything else names both."""
    assert {t.on_violation for t in guard_tools(raw_tools, guard, on_violation="message")} == {"message"}
    assert guard_tools(raw_tools, guard)[0].on_violation == "message"  # the default
    for wrong in ("ignore", "MESSAGE", None, 1):
        with pytest.raises(ConfigError, match=r"on_violation: expected 'message' or 'raise'"):
            guard_tools(raw_tools, guard, on_violation=wrong)


async def test_output_is_a_deprecated_alias_of_message(raw_tools, guard, ledger):
    """on_violation='output' warns (naming 'message') once per call and behaves exactly like 'message'."""
    with pytest.warns(DeprecationWarning, match='use on_violation="message"') as warned:
        tools = guard_tools(raw_tools, guard, on_violation="output")
    assert len(warned) == 1 and warned[0].filename == __file__
    with pytest.warns(DeprecationWarning, match='"message"'):
        single = GuardedFunctionTool(raw_tools[0], guard, on_violation="output")
    assert {t.on_violation for t in [*tools, single]} == {"message"}
    out = await tools[0].acall(customer_id="C-42")
    assert out.is_error and reasons.NO_GRANT in out.content and ledger.ran == []


def test_guarded_run_arguments_are_checked_before_anything_runs(raw_tools, guard, plan, identity):
    """Agent, planner, identity, guard and ttl_s of the wrong type raise ConfigError at once, naming the fix."""
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=scripted_llm("x"))
    graph = _foreign("langgraph.graph.state", "CompiledStateGraph")
    with pytest.raises(ConfigError, match=r"agent: .*LangChain/LangGraph.*agent_guard_langchain\.AgentGuardMiddleware"):
        guarded_run(graph, "hi", guard=guard, planner=plan, identity=identity)
    with pytest.raises(ConfigError, match=r"agent: expected a LlamaIndex FunctionAgent, ReActAgent"):
        agent_tools(object())
    lc_planner = _foreign("agent_guard_langchain._planner", "LLMPlanner")
    with pytest.raises(ConfigError, match=r"planner: .*agent_guard_llamaindex\.LLMPlanner"):
        guarded_run(agent, "hi", guard=guard, planner=lc_planner, identity=identity)
    with pytest.raises(ConfigError, match=r"planner: expected a Plan, an LLMPlanner"):
        guarded_run(agent, "hi", guard=guard, planner={"steps": []}, identity=identity)
    with pytest.raises(ConfigError, match=r"identity: expected an agent_guard\.AgentIdentity, got str"):
        guarded_run(agent, "hi", guard=guard, planner=plan, identity="support-bot")
    with pytest.raises(ConfigError, match=r"guard: expected an agent_guard\.Guard"):
        guarded_run(agent, "hi", guard=guard.policy, planner=plan, identity=identity)
    with pytest.raises(ConfigError, match=r"ttl_s: expected whole seconds"):
        guarded_run(agent, "hi", guard=guard, planner=plan, identity=identity, ttl_s="60")


def test_llm_planner_arguments_are_checked():
    """A LangChain chat model points to agent_guard_langchain.LLMPlanner; other wrong types are named."""
    fake = pytest.importorskip("langchain_core.language_models.fake_chat_models")
    with pytest.raises(ConfigError, match=r"llm: .*LangChain model.*agent_guard_langchain\.LLMPlanner"):
        LLMPlanner(fake.FakeListChatModel(responses=["x"]))
    with pytest.raises(ConfigError, match=r"llm: expected a LlamaIndex LLM .*got str"):
        LLMPlanner("gpt-4o")
    with pytest.raises(ConfigError, match="ordered: expected True or False"):
        LLMPlanner(scripted_llm(), ordered="yes")
    with pytest.raises(ConfigError, match="llm_kwargs: expected a dict"):
        LLMPlanner(scripted_llm(), llm_kwargs=[("temperature", 0)])
