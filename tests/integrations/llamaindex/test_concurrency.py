"""Concurrent guarded runs with different plans stay isolated, even when they share tool objects."""

from __future__ import annotations

import asyncio

from agent_guard_llamaindex import guard_tools, guarded_run
from agent_guard_llamaindex.testing import scripted_llm, tool_call, tool_calls
from llama_index.core.agent.workflow import FunctionAgent

from agent_guard import Plan, Step, reasons
from agent_guard import semconv as sc


def _plan(customer):
    return Plan(goal=f"look up {customer}", steps=[
        Step("crm_lookup", args={"customer_id": customer}),
        Step("remember", args={"key": {"any": True}, "value": {"any": True}}),
    ])


def _script(own, other, run):
    return scripted_llm(
        tool_calls(tool_call("crm_lookup", {"customer_id": other}, id=f"{run}-steal")),
        tool_calls(tool_call("crm_lookup", {"customer_id": own}, id=f"{run}-own"),
                   tool_call("remember", {"key": run, "value": own}, id=f"{run}-note")),
        f"{run} done",
    )


async def test_two_concurrent_runs_stay_isolated(raw_tools, guard, identity, ledger, spans):
    """Each run may only touch its own customer; the other's id is refused in each run."""
    tools = guard_tools(raw_tools, guard)  # the same tool objects serve both runs
    agent_a = FunctionAgent(tools=tools, llm=_script("C-1", "C-2", "a"))
    agent_b = FunctionAgent(tools=tools, llm=_script("C-2", "C-1", "b"))
    run_a = guarded_run(agent_a, "look up C-1", guard=guard, planner=_plan("C-1"), identity=identity)
    run_b = guarded_run(agent_b, "look up C-2", guard=guard, planner=_plan("C-2"), identity=identity)
    result_a, result_b = await asyncio.gather(run_a, run_b)

    assert (str(result_a), str(result_b)) == ("a done", "b done")
    assert sorted(args["customer_id"] for name, args in ledger.ran if name == "crm_lookup") == ["C-1", "C-2"]
    assert run_a.task.id != run_b.task.id and run_a.task.revoked and run_b.task.revoked
    assert await run_a.handler.ctx.store.get("note:a") == "C-1"
    assert await run_b.handler.ctx.store.get("note:b") == "C-2"
    by_id = {s.attributes[sc.TOOL_CALL_ID]: s.attributes for s in spans.named("execute_tool")}
    for run, name in ((run_a, "a"), (run_b, "b")):
        assert by_id[f"{name}-steal"][sc.DECISION_REASON] == reasons.ARGUMENT_MISMATCH
        for suffix in ("steal", "own", "note"):
            assert by_id[f"{name}-{suffix}"][sc.TASK_ID] == run.task.id
        assert by_id[f"{name}-own"][sc.DECISION_OUTCOME] == "allow"
