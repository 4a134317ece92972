"""End to end: a guarded agent exports its decisions by OTLP to a real Arize Phoenix, read back by REST."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from agent_guard import AgentIdentity, Capability, Guard, Plan, Policy, Step, ToolCallDenied
from agent_guard.audit import DecisionLog, read_log, verify_log
from agent_guard.telemetry import configure_otlp

pytestmark = pytest.mark.phoenix

# What a scripted model asks for, turn by turn: the second call follows an injected instruction.
SCRIPT = [
    {"id": "call_lookup_1", "name": "crm_lookup", "args": {"customer_id": "C-42"}},
    {"id": "call_delete_2", "name": "delete_customer", "args": {"customer_id": "C-42"}},
    {"id": "call_email_3", "name": "send_email", "args": {"to": "alice@example.com", "body": "Your summary"}},
]


def crm_lookup(customer_id: str) -> dict[str, str]:
    """Look a customer up."""
    return {"id": customer_id, "name": "Alice"}


def send_email(to: str, body: str) -> str:
    """Send an email."""
    return f"sent to {to}"


def delete_customer(customer_id: str) -> str:
    """Delete a customer (never planned)."""
    raise AssertionError("a denied tool must not run")


TOOLS: dict[str, Callable[..., Any]] = {f.__name__: f for f in (crm_lookup, send_email, delete_customer)}


def run_agent(guard: Guard, identity: AgentIdentity) -> list[str]:
    """A minimal agent loop: each scripted tool call goes through guard.tool_call, like an adapter does."""
    plan = Plan(goal="email Alice her summary", steps=[
        Step("crm_lookup", args={"customer_id": "C-42"}),
        Step("send_email", args={"to": "alice@example.com", "body": {"any": True}}),
    ])
    observations = []
    with guard.task(plan, identity=identity):
        for call in SCRIPT:
            with guard.tool_call(call["name"], call["args"], call_id=call["id"],
                                 description=TOOLS[call["name"]].__doc__) as tool_call:
                if tool_call.allowed:
                    result = TOOLS[call["name"]](**call["args"])
                    tool_call.record_result(result)
                    observations.append(str(result))
                else:
                    observations.append(tool_call.decision.message)
        # A plain wrapped tool after the plan is done: denied (revoked), raised to the caller.
        with pytest.raises(ToolCallDenied):
            guard.wrap(crm_lookup)(customer_id="C-42")
    return observations


def test_denied_call_is_readable_in_phoenix(phoenix: Any, tmp_path: Path) -> None:
    """The denied call's outcome, reason and tool call id arrive in Phoenix, in the log's trace."""
    project = f"agent-guard-e2e-{uuid.uuid4().hex[:8]}"
    policy = Policy(agent_id="support-bot", capabilities=[
        Capability("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}),
        Capability("send_email", args={"to": {"glob": "*@example.com"}, "body": {"max_len": 2000}}),
        Capability("delete_customer", args={"customer_id": {"regex": r"C-\d+"}}),
    ])
    provider = configure_otlp(phoenix.url, service_name="agent-guard-e2e", project_name=project)
    log_path = tmp_path / "audit.jsonl"
    try:
        with DecisionLog(log_path) as log:
            guard = Guard(policy, tracer_provider=provider, decision_log=log)
            observations = run_agent(guard, AgentIdentity(agent_id="support-bot", user_id="u-1"))
    finally:
        provider.shutdown()
    assert observations[0] == "{'id': 'C-42', 'name': 'Alice'}"
    assert "delete_customer" in observations[1] and "tool_not_in_scope" in observations[1]
    assert observations[2] == "sent to alice@example.com"

    denied = phoenix.wait_for_spans(
        project, lambda spans: any(s["attributes"].get("gen_ai.tool.call.id") == "call_delete_2" for s in spans),
        attribute="agent_guard.decision.outcome:deny",
    )
    span = next(s for s in denied if s["attributes"].get("gen_ai.tool.call.id") == "call_delete_2")
    attributes = span["attributes"]
    assert span["name"] == "execute_tool delete_customer"
    assert span["status_code"] == "ERROR" and span["span_kind"] == "TOOL"
    assert attributes["agent_guard.decision.outcome"] == "deny"
    assert attributes["agent_guard.decision.reason"] == "tool_not_in_scope"
    assert attributes["gen_ai.tool.name"] == "delete_customer"
    assert attributes["error.type"] == "agent_guard.ToolCallDenied"

    trace_id = span["context"]["trace_id"]
    everything = phoenix.wait_for_spans(project, lambda spans: len(spans) >= 5, trace_id=trace_id)
    by_name = sorted(s["name"] for s in everything)
    assert by_name == ["execute_tool crm_lookup", "execute_tool crm_lookup", "execute_tool delete_customer",
                       "execute_tool send_email", "invoke_agent support-bot"]
    root = next(s for s in everything if s["name"] == "invoke_agent support-bot")
    assert [e["name"] for e in root["events"]] == ["agent_guard.grant.issued", "agent_guard.grant.revoked"]
    allowed = [s for s in everything if s["attributes"].get("agent_guard.decision.outcome") == "allow"]
    assert {s["attributes"]["gen_ai.tool.call.id"] for s in allowed} == {"call_lookup_1", "call_email_3"}

    # The durable log tells the same story, and points at the same trace.
    assert verify_log(log_path).ok
    logged = {r["call_id"]: r for r in read_log(log_path) if r["event"] == "decision" and r["call_id"]}
    assert logged["call_delete_2"]["outcome"] == "deny"
    assert logged["call_delete_2"]["reason"] == "tool_not_in_scope"
    assert logged["call_delete_2"]["trace_id"] == trace_id


def test_a_langchain_agent_run_is_one_trace_in_phoenix(phoenix: Any, langchain_agent: Any, tmp_path: Path) -> None:
    """create_agent + AgentGuardMiddleware + OpenInference's LangChainInstrumentor, exported to Phoenix:
    the framework's CHAIN/LLM/TOOL spans, the guard's task span and both decisions, in one trace."""
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tool_of_call = {"call_lookup_1": "crm_lookup", "call_email_2": "send_email"}
    project = f"agent-guard-lc-{uuid.uuid4().hex[:8]}"
    provider = configure_otlp(phoenix.url, service_name="support-bot", project_name=project)
    sent = InMemorySpanExporter()  # what was exported, to know when Phoenix has all of it
    provider.add_span_processor(SimpleSpanProcessor(sent))
    log_path = tmp_path / "audit.jsonl"
    try:
        statuses = langchain_agent(provider, log_path=log_path)
    finally:
        provider.shutdown()
    assert statuses == {"call_lookup_1": "success", "call_email_2": "error"}
    exported = {f"{s.context.span_id:016x}": s for s in sent.get_finished_spans()}
    expected = len(exported)

    spans = phoenix.wait_for_spans(project, lambda found: len(found) >= expected, limit=1000)
    assert len(spans) == expected
    assert len({s["context"]["trace_id"] for s in spans}) == 1  # the whole run is one trace
    trace_id = spans[0]["context"]["trace_id"]
    by_id = {s["context"]["span_id"]: s for s in spans}
    assert set(by_id) == set(exported)  # Phoenix holds exactly the spans the run exported

    def parent(span: dict[str, Any]) -> dict[str, Any]:
        return by_id[span["parent_id"]]

    def one(name: str) -> dict[str, Any]:
        (span,) = [s for s in spans if s["name"] == name]
        return span

    # The framework's spans (OpenInference): the graph, the model calls, the tool runs.
    (root,) = [s for s in spans if s["parent_id"] is None]
    assert root["name"] == "LangGraph" and root["span_kind"] == "CHAIN"
    assert len([s for s in spans if s["span_kind"] == "LLM"]) == 3  # the scripted model answered three times
    assert {s["name"] for s in spans if s["span_kind"] == "CHAIN"} >= {"LangGraph", "model", "tools"}
    framework_tools = {s["name"]: s for s in spans if s["span_kind"] == "TOOL" and not s["name"].startswith("execute_tool")}
    assert set(framework_tools) == {"crm_lookup", "send_email"}

    # The guard's task span: AGENT, under the graph's span, with its grant events.
    task = one("invoke_agent support-bot")
    # Phoenix reads `openinference.span.kind` into `span_kind` (and drops the attribute): check both ends.
    assert task["span_kind"] == "AGENT" and parent(task) is root
    assert exported[task["context"]["span_id"]].attributes["openinference.span.kind"] == "AGENT"
    assert [e["name"] for e in task["events"]] == ["agent_guard.grant.issued", "agent_guard.grant.revoked"]

    # Each decision: TOOL, under the framework's TOOL span of the same call.
    allowed, denied = one("execute_tool crm_lookup"), one("execute_tool send_email")
    for decision, call_id in ((allowed, "call_lookup_1"), (denied, "call_email_2")):
        assert decision["span_kind"] == "TOOL"
        assert exported[decision["context"]["span_id"]].attributes["openinference.span.kind"] == "TOOL"
        assert parent(decision) is framework_tools[tool_of_call[call_id]]
        assert decision["attributes"]["gen_ai.tool.call.id"] == call_id
        assert decision["attributes"]["agent_guard.task.id"] == task["attributes"]["agent_guard.task.id"]
    assert allowed["status_code"] != "ERROR" and allowed["attributes"]["agent_guard.decision.outcome"] == "allow"
    assert denied["status_code"] == "ERROR" and denied["status_message"] == "argument_mismatch"
    assert denied["attributes"]["agent_guard.decision.outcome"] == "deny"
    assert denied["attributes"]["agent_guard.decision.reason"] == "argument_mismatch"
    assert denied["attributes"]["error.type"] == "agent_guard.ToolCallDenied"

    # Phoenix finds the denial by attribute, and the durable log points at the same trace.
    found = phoenix.spans(project, attribute="agent_guard.decision.outcome:deny")
    assert [s["context"]["span_id"] for s in found] == [denied["context"]["span_id"]]
    assert verify_log(log_path).ok
    logged = {r["call_id"]: r for r in read_log(log_path) if r["event"] == "decision"}
    assert {k: (r["outcome"], r["reason"], r["trace_id"]) for k, r in logged.items()} == {
        "call_lookup_1": ("allow", None, trace_id), "call_email_2": ("deny", "argument_mismatch", trace_id)}
