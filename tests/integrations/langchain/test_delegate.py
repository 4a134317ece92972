"""``delegated_tool``: a create_agent sub-agent run as a tool under a grant delegated from the parent run's.

The parent's call of the sub-agent tool is a decision of the parent; the sub-agent's tools decide
against the child grant (its plan ∩ the parent's scope), spend the parent's budget too, and their
decision spans name the sub-agent.
"""

from __future__ import annotations

from typing import Any

import pytest
from agent_guard_langchain import AgentGuardMiddleware, delegated_tool, guard_tools
from agent_guard_langchain.testing import ScriptedChatModel, calls, tool_call
from langchain.agents import create_agent
from langchain_core.messages import HumanMessage, ToolMessage
from langchain_core.tools import BaseTool, tool

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step, reasons
from agent_guard import semconv as sc
from agent_guard.exceptions import ConfigError

POLICY = Policy(agent_id="support-bot", capabilities=[
    Capability("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}),
    Capability("send_email", args={"to": {"glob": "*@example.com"}, "body": {"max_len": 2000}}),
    Capability("research", args={"request": {"max_len": 500}}),
])
PARENT = Plan(goal="research C-42", steps=[
    Step("research", args={"request": {"any": True}}),
    Step("crm_lookup", args={"customer_id": "C-42"}, max_calls=3),
])
CHILD = Plan(goal="look C-42 up", steps=[Step("crm_lookup", args={"customer_id": "C-42"}, max_calls=2)])
ME = AgentIdentity(agent_id="support-bot", user_id="u-1")


def _tools(ran: list[tuple[str, str]]) -> list[BaseTool]:
    @tool
    def crm_lookup(customer_id: str) -> str:
        """Look a customer up."""
        ran.append(("crm_lookup", customer_id))
        return f"{customer_id}: Alice"

    @tool
    def send_email(to: str, body: str) -> str:
        """Send an email."""
        ran.append(("send_email", to))
        return "sent"

    return [crm_lookup, send_email]


def _setup(guard: Guard, sub_script: list[Any], parent_script: list[Any], ran: list[Any], *,
           plan: Plan | None = CHILD, planner: Any = None, sub_tools: list[BaseTool] | None = None,
           sub_middleware: list[Any] | None = None) -> tuple[Any, ScriptedChatModel]:
    tools = _tools(ran)
    sub_model = ScriptedChatModel(sub_script)
    sub_agent = create_agent(sub_model, sub_tools if sub_tools is not None else guard_tools(tools, guard),
                             middleware=sub_middleware or [])
    research = delegated_tool(sub_agent, guard, agent_id="researcher", plan=plan, planner=planner, name="research",
                              description="Ask the research sub-agent.")
    mw = AgentGuardMiddleware(guard, planner=PARENT, identity=ME)
    agent = create_agent(ScriptedChatModel(parent_script), [research, *tools], middleware=[mw])
    return agent, sub_model


def _answers(out: dict[str, Any]) -> dict[str, ToolMessage]:
    return {m.tool_call_id: m for m in out["messages"] if isinstance(m, ToolMessage)}


async def test_the_sub_agent_runs_under_the_child_grant_and_spends_the_parents_budget(spans, run, mode):
    """The sub-agent looks C-42 up twice (allowed by the child grant); that spends two of the parent's three
    lookups too, so the parent's own lookups afterwards get one more call, then budget_exhausted. Spans name
    each agent."""
    guard = Guard(POLICY, tracer_provider=spans.provider)
    ran: list[Any] = []
    sub = [calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "s1")),
           calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "s2")), "C-42 is Alice"]
    parent = [calls(tool_call("research", {"request": "who is C-42?"}, "p1")),
              calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "p2")),
              calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "p3")), "done"]
    agent, _ = _setup(guard, sub, parent, ran)
    out = await run(agent, {"messages": [HumanMessage("research C-42")]}, mode)
    answers = _answers(out)
    assert answers["p1"].status == "success" and answers["p1"].content == "C-42 is Alice"
    assert answers["p2"].status == "success"
    assert answers["p3"].status == "error" and reasons.BUDGET_EXHAUSTED in answers["p3"].content
    assert ran == [("crm_lookup", "C-42")] * 3
    by_agent = [(s.attributes[sc.TOOL_CALL_ID], s.attributes[sc.AGENT_ID]) for s in spans.named("execute_tool")]
    assert sorted(by_agent) == [("p1", "support-bot"), ("p2", "support-bot"), ("p3", "support-bot"),
                                ("s1", "researcher"), ("s2", "researcher")]
    tasks = {s.attributes[sc.AGENT_ID]: s for s in spans.named("invoke_agent")}
    assert set(tasks) == {"support-bot", "researcher"}
    assert tasks["researcher"].parent.span_id == tasks["support-bot"].context.span_id
    assert all(s.end_time for s in tasks.values())


async def test_a_sub_agent_call_beyond_the_child_grant_is_refused(spans, run, mode):
    """Inside the sub-agent: another customer (a value beyond the grant) and an email (a tool beyond it)
    are refused to the sub-agent's model; nothing of it runs."""
    guard = Guard(POLICY, tracer_provider=spans.provider)
    ran: list[Any] = []
    sub = [calls(tool_call("crm_lookup", {"customer_id": "C-7"}, "s1"),
                 tool_call("send_email", {"to": "bob@example.com", "body": "x"}, "s2")), "could not"]
    parent = [calls(tool_call("research", {"request": "look up C-7"}, "p1")), "done"]
    agent, sub_model = _setup(guard, sub, parent, ran)
    out = await run(agent, {"messages": [HumanMessage("research")]}, mode)
    assert ran == [] and _answers(out)["p1"].content == "could not"
    inner = {m.tool_call_id: m for m in sub_model.prompts[-1] if isinstance(m, ToolMessage)}
    assert reasons.ARGUMENT_MISMATCH in inner["s1"].content and reasons.TOOL_NOT_IN_SCOPE in inner["s2"].content


async def test_a_child_plan_beyond_the_parent_is_refused_exceeds_parent_scope(spans, run, mode):
    """The sub-agent's planner, fed the parent model's request, plans another customer: the delegation is
    refused at mint (exceeds_parent_scope) and the parent gets an error ToolMessage; the sub-agent never runs."""
    guard = Guard(POLICY, tracer_provider=spans.provider)
    ran: list[Any] = []

    def planner(messages: list[Any], tools: list[Any]) -> Plan:
        return Plan(goal="x", steps=[Step("crm_lookup", args={"customer_id": "C-7"})])

    parent = [calls(tool_call("research", {"request": "look up C-7"}, "p1")), "done"]
    agent, sub_model = _setup(guard, ["never"], parent, ran, plan=None, planner=planner)
    out = await run(agent, {"messages": [HumanMessage("research")]}, mode)
    answer = _answers(out)["p1"]
    assert answer.status == "error" and reasons.EXCEEDS_PARENT_SCOPE in answer.content
    assert sub_model.remaining == 1 and ran == []
    assert [s.attributes[sc.AGENT_ID] for s in spans.named("invoke_agent")] == ["support-bot"]


async def test_a_sub_agent_with_unguarded_tools_runs_nothing(spans, run, mode):
    """Sub-agent tools that no guard decides are stopped before they run: a ConfigError says how to fix it."""
    guard = Guard(POLICY, tracer_provider=spans.provider)
    ran: list[Any] = []
    sub = [calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "s1")), "x"]
    parent = [calls(tool_call("research", {"request": "who is C-42?"}, "p1")), "done"]
    agent, _ = _setup(guard, sub, parent, ran, sub_tools=_tools(ran))
    with pytest.raises(ConfigError, match="guard_tools"):
        await run(agent, {"messages": [HumanMessage("research")]}, mode)
    assert ran == []


async def test_a_sub_agent_with_its_own_middleware_is_a_config_error(spans, run, mode):
    """A sub-agent with its own AgentGuardMiddleware would mint a grant of its own: refused."""
    guard = Guard(POLICY, tracer_provider=spans.provider)
    ran: list[Any] = []
    parent = [calls(tool_call("research", {"request": "who is C-42?"}, "p1")), "done"]
    own = AgentGuardMiddleware(guard, planner=CHILD, identity=ME)
    agent, _ = _setup(guard, ["x"], parent, ran, sub_middleware=[own])
    with pytest.raises(ConfigError, match="delegated_tool"):
        await run(agent, {"messages": [HumanMessage("research")]}, mode)


def test_delegated_tool_arguments_are_checked():
    """Wrong arguments are ConfigErrors naming the field."""
    guard = Guard(POLICY)
    sub = create_agent(ScriptedChatModel([]), [])
    with pytest.raises(ConfigError, match="plan/planner"):
        delegated_tool(sub, guard, agent_id="r", name="n", description="d")
    with pytest.raises(ConfigError, match="agent:"):
        delegated_tool(object(), guard, agent_id="r", plan=CHILD, name="n", description="d")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="agent_id"):
        delegated_tool(sub, guard, agent_id="", plan=CHILD, name="n", description="d")
    with pytest.raises(ConfigError, match="policy"):
        delegated_tool(sub, guard, agent_id="r", plan=CHILD, name="n", description="d", policy=POLICY)


def test_outside_a_run_the_delegated_tool_refuses():
    """Called with no current task: an error answer (no_grant), the sub-agent never runs."""
    guard = Guard(POLICY)
    model = ScriptedChatModel(["never"])
    research = delegated_tool(create_agent(model, []), guard, agent_id="r", plan=CHILD, name="research",
                              description="d")
    out = research.invoke({"type": "tool_call", "name": "research", "args": {"request": "x"}, "id": "t1"})
    assert out.status == "error" and "no_grant" in out.content and model.remaining == 1
