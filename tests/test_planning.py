"""The framework-neutral planner pieces: prompt, schema, validation against catalog and ceiling."""

from __future__ import annotations

import json

import pytest

from agent_guard import PlannerError, PlanRejected, Policy
from agent_guard.exceptions import ConfigError
from agent_guard.planning import PLANNER_INSTRUCTIONS, PlanDraft, ToolSpec, plan_from_draft, planner_messages

TOOLS = [
    ToolSpec(name="crm_lookup", description="Look a customer up",
             parameters={"type": "object", "properties": {"customer_id": {"type": "string"}}}),
    ToolSpec(name="send_email", description="Send an email",
             parameters={"type": "object", "properties": {"to": {"type": "string"}, "body": {"type": "string"}}}),
]


def draft(*steps: dict[str, object]) -> dict[str, object]:
    return {"goal": "email Alice", "steps": list(steps)}


def test_messages_hold_only_request_and_catalog() -> None:
    """The planner sees the instructions, the request and the catalog, nothing else."""
    (system, user) = planner_messages("Email Alice (C-42)", TOOLS)
    assert system == ("system", PLANNER_INSTRUCTIONS)
    assert user[0] == "user" and "Email Alice (C-42)" in user[1] and '"crm_lookup"' in user[1]
    with pytest.raises(ConfigError):
        planner_messages("  ", TOOLS)


def test_valid_draft_becomes_a_plan(policy: Policy) -> None:
    """Pinned values become literals, free ones become any; checked against the ceiling."""
    plan = plan_from_draft(
        json.dumps(draft(
            {"tool": "crm_lookup", "arguments": [{"name": "customer_id", "pinned": True, "value": "C-42"}]},
            {"tool": "send_email", "arguments": [{"name": "to", "pinned": True, "value": "alice@example.com"},
                                                 {"name": "body", "pinned": False}]},
        )),
        tools=TOOLS, policy=policy,
    )
    assert plan.steps[0].args == {"customer_id": {"eq": "C-42"}}
    assert plan.steps[1].args == {"to": {"eq": "alice@example.com"}, "body": {"any": True}}
    assert PlanDraft.model_json_schema()["required"] == ["goal", "steps"]


def test_plan_beyond_the_ceiling(policy: Policy) -> None:
    """A pinned value the ceiling refuses raises PlanRejected."""
    with pytest.raises(PlanRejected, match="to"):
        plan_from_draft(draft({"tool": "send_email", "arguments": [
            {"name": "to", "pinned": True, "value": "mallory@evil.com"}]}), tools=TOOLS, policy=policy)


@pytest.mark.parametrize(
    ("output", "fragment"),
    [
        ("not json", "not a valid plan"),
        ({"goal": "g"}, "steps"),
        (draft({"tool": "rm_rf", "arguments": []}), "not in the tool catalog"),
        (draft({"tool": "crm_lookup", "arguments": [{"name": "cid", "pinned": False}]}), "no argument 'cid'"),
        (draft({"tool": "crm_lookup", "arguments": [{"name": "customer_id", "pinned": True}]}), "has no value"),
        (draft({"tool": "crm_lookup", "arguments": [{"name": "customer_id", "pinned": False}] * 2}), "twice"),
        (draft(), "no step"),
        (draft({"tool": "crm_lookup", "arguments": [], "max_calls": 0}), "max_calls"),
    ],
)
def test_malformed_output(output: object, fragment: str) -> None:
    """Malformed or unusable output is a PlannerError naming the problem."""
    with pytest.raises(PlannerError) as info:
        plan_from_draft(output, tools=TOOLS)  # type: ignore[arg-type]
    assert fragment in str(info.value)
