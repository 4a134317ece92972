"""LLMPlanner on a scripted LlamaIndex LLM that answers through real structured prediction."""

from __future__ import annotations

import pytest
from agent_guard_llamaindex import LLMPlanner, guard_tools, guarded_run, tool_specs
from agent_guard_llamaindex.testing import planned, scripted_llm, tool_call, tool_calls
from llama_index.core.agent.workflow import FunctionAgent

from agent_guard import Plan, PlanRejected, Step, reasons
from agent_guard.exceptions import PlannerError
from agent_guard.planning import PLANNER_INSTRUCTIONS, PlanDraft, PlannedArgument, PlannedStep

REQUEST = "Look up customer C-42 and email alice@example.com a summary"


def _draft(customer_id="C-42"):
    return PlanDraft(
        goal="Email Alice her summary",
        steps=[
            PlannedStep(tool="crm_lookup", arguments=[PlannedArgument(name="customer_id", pinned=True, value=customer_id)]),
            PlannedStep(tool="send_email", arguments=[
                PlannedArgument(name="to", pinned=True, value="alice@example.com"),
                PlannedArgument(name="subject", pinned=False),
                PlannedArgument(name="body", pinned=False),
            ]),
        ],
    )


async def test_valid_plan_from_request_and_catalog_only(raw_tools, guard):
    """The model sees the instructions, the request and the catalog, nothing else; the plan is exact."""
    llm = scripted_llm(planned(_draft()))
    plan = await LLMPlanner(llm).aplan(REQUEST, raw_tools, policy=guard.policy)
    assert isinstance(plan, Plan) and plan.goal == "Email Alice her summary"
    assert [s.tool for s in plan.steps] == ["crm_lookup", "send_email"]
    assert plan.steps[0].args == {"customer_id": {"eq": "C-42"}}
    assert plan.steps[1].args == {"to": {"eq": "alice@example.com"}, "subject": {"any": True}, "body": {"any": True}}
    (messages,) = llm.seen
    assert [m.role.value for m in messages] == ["system", "user"]
    assert messages[0].content == PLANNER_INSTRUCTIONS
    assert REQUEST in messages[1].content
    assert all(f'"name": "{t.metadata.name}"' in messages[1].content for t in raw_tools)
    assert '"customer_id"' in messages[1].content  # argument schemas are in the catalog


def test_sync_plan_and_tool_specs(raw_tools, guard):
    """plan() works synchronously; tool_specs carries each tool's parameter schema."""
    specs = tool_specs(raw_tools)
    assert specs[0].name == "crm_lookup" and specs[0].argument_names == frozenset({"customer_id"})
    assert specs[2].argument_names == frozenset({"key", "value"})  # the Context parameter is not an argument
    plan = LLMPlanner(scripted_llm(planned(_draft()))).plan(REQUEST, raw_tools, policy=guard.policy)
    assert plan.tools == ("crm_lookup", "send_email")


async def test_plan_beyond_the_ceiling_is_rejected(raw_tools, guard):
    """A pinned value outside the policy raises PlanRejected (plan_exceeds_policy)."""
    llm = scripted_llm(planned(_draft(customer_id="X-9")))
    with pytest.raises(PlanRejected) as info:
        await LLMPlanner(llm).aplan(REQUEST, raw_tools, policy=guard.policy)
    assert info.value.reason == reasons.PLAN_EXCEEDS_POLICY
    assert info.value.violations[0].tool == "crm_lookup"


@pytest.mark.parametrize(
    "answer",
    [
        "Sure! First look up the customer, then send the email.",  # no structured output at all
        planned({"goal": "no steps field"}),  # schema violation
        planned({"goal": "g", "steps": [{"tool": "drop_tables", "arguments": []}]}),  # unknown tool
        planned({"goal": "g", "steps": [{"tool": "crm_lookup", "arguments": [{"name": "cc", "pinned": False}]}]}),
        planned({"goal": "g", "steps": []}),  # empty plan
    ],
    ids=["text", "schema", "unknown-tool", "unknown-argument", "empty"],
)
async def test_malformed_output_is_a_planner_error(raw_tools, guard, answer):
    """Output that is not a usable plan raises PlannerError."""
    with pytest.raises(PlannerError):
        await LLMPlanner(scripted_llm(answer)).aplan(REQUEST, raw_tools, policy=guard.policy)


async def test_malformed_plan_runs_nothing(raw_tools, guard, identity, ledger, spans):
    """Under guarded_run a PlannerError surfaces before the agent's model or any tool runs."""
    agent_llm = scripted_llm(tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"})), "done")
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=agent_llm)
    planner = LLMPlanner(scripted_llm(planned({"goal": "g", "steps": "everything"})))
    with pytest.raises(PlannerError):
        await guarded_run(agent, REQUEST, guard=guard, planner=planner, identity=identity)
    assert agent_llm.seen == [] and ledger.ran == [] and spans.named("execute_tool") == []


async def test_guarded_run_with_llm_planner(raw_tools, guard, identity, ledger):
    """The planner runs once, before any tool output exists; its plan bounds the run."""
    planner_llm = scripted_llm(planned(_draft()))
    agent_llm = scripted_llm(
        tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"})),
        tool_calls(tool_call("crm_lookup", {"customer_id": "C-7"})),
        tool_calls(tool_call("send_email", {"to": "alice@example.com", "subject": "s", "body": "b"})),
        "done",
    )
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=agent_llm)
    run = guarded_run(agent, REQUEST, guard=guard, planner=LLMPlanner(planner_llm), identity=identity)
    assert str(await run) == "done"
    assert run.plan.tools == ("crm_lookup", "send_email")
    assert ledger.ran == [("crm_lookup", {"customer_id": "C-42"}),
                          ("send_email", {"to": "alice@example.com", "subject": "s", "body": "b"})]
    assert len(planner_llm.seen) == 1 and all(m.role.value != "tool" for m in planner_llm.seen[0])
    assert run.task.revocation_reason == "plan_completed"


@pytest.mark.parametrize("is_async", [False, True], ids=["sync", "async"])
async def test_callable_planners(raw_tools, guard, identity, ledger, is_async):
    """A callable planner gets (user_msg, tools) and may be sync or async."""
    got = []

    def make(user_msg, tools):
        got.append((user_msg, [t.metadata.name for t in tools]))
        return Plan(goal="lookup", steps=[Step("crm_lookup", args={"customer_id": "C-42"})])

    async def amake(user_msg, tools):
        return make(user_msg, tools)

    agent = FunctionAgent(tools=guard_tools(raw_tools, guard),
                          llm=scripted_llm(tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"})), "ok"))
    await guarded_run(agent, "Look up C-42", guard=guard, planner=amake if is_async else make, identity=identity)
    assert got == [("Look up C-42", ["crm_lookup", "send_email", "remember", "delete_db"])]
    assert ledger.names() == ["crm_lookup"]
