"""Models: frozen, loadable from dicts/JSON/YAML files, errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from agent_guard import AgentIdentity, Capability, ConfigError, Decision, Plan, Policy, Step
from agent_guard.authorization._models import MAX_PLAN_STEPS

POLICY = {
    "agent_id": "support-bot",
    "max_ttl_s": 600,
    "capabilities": [
        {"tool": "crm_lookup", "args": {"customer_id": {"regex": "C-\\d+"}}},
        {"tool": "send_email", "args": {"to": {"glob": "*@example.com"}}, "requires_approval": True},
    ],
}


def test_policy_from_dict_json_and_files(tmp_path: Path) -> None:
    """The same policy loads from a dict, JSON text, a .json file and a .yaml file."""
    from_dict = Policy.model_validate(POLICY)
    assert Policy.model_validate_json(json.dumps(POLICY)) == from_dict
    (tmp_path / "p.json").write_text(json.dumps(POLICY))
    assert Policy.from_file(tmp_path / "p.json") == from_dict
    import yaml

    (tmp_path / "p.yaml").write_text(yaml.safe_dump(POLICY))
    assert Policy.from_file(tmp_path / "p.yaml") == from_dict
    assert from_dict.capability("send_email").requires_approval  # type: ignore[union-attr]
    assert from_dict.capability("nope") is None


def test_policy_file_errors(tmp_path: Path) -> None:
    """Missing file, bad syntax and a wrong suffix each give a clear ConfigError."""
    with pytest.raises(ConfigError, match="cannot be read"):
        Policy.from_file(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ConfigError, match="not valid JSON"):
        Policy.from_file(tmp_path / "bad.json")
    (tmp_path / "p.toml").write_text("")
    with pytest.raises(ConfigError, match=r"\.json, \.yaml"):
        Policy.from_file(tmp_path / "p.toml")


def test_errors_name_the_field() -> None:
    """A bad nested value is reported with its path."""
    bad = {**POLICY, "capabilities": [{"tool": "x", "args": {"to": {"regexp": "a"}}}]}
    with pytest.raises(ConfigError) as info:
        Policy.model_validate(bad)
    assert "capabilities[0].args" in str(info.value) and "unknown operator 'regexp'" in str(info.value)
    with pytest.raises(ConfigError, match=r"max_ttl_s"):
        Policy(agent_id="a", max_ttl_s=901)
    with pytest.raises(ConfigError, match=r"steps"):
        Plan(steps=[])
    with pytest.raises(ConfigError, match=r"max_calls"):
        Step("t", max_calls=0)
    with pytest.raises(ConfigError, match="appears twice"):
        Policy(agent_id="a", capabilities=[Capability("t"), Capability("t")])
    with pytest.raises(ConfigError, match=r"[Ee]xtra"):
        Step("t", argz={})


def test_config_error_is_a_value_error() -> None:
    """ConfigError subclasses ValueError, so generic handlers still catch it."""
    with pytest.raises(ValueError):
        AgentIdentity(agent_id="")


def test_models_are_frozen_and_steps_default_to_one_call() -> None:
    """Assignment fails; Step.max_calls defaults to 1; literal args become eq."""
    step = Step("crm_lookup", args={"customer_id": "C-42"})
    assert step.max_calls == 1
    assert step.args == {"customer_id": {"eq": "C-42"}}
    with pytest.raises(ValidationError):
        step.max_calls = 3  # type: ignore[misc]
    assert Step(tool="x") == Step("x")


def test_plan_hash_is_canonical() -> None:
    """Equal plans hash equal; any change changes the hash."""
    a = Plan(goal="g", steps=[Step("t", args={"a": 1, "b": 2})])
    b = Plan.model_validate({"goal": "g", "steps": [{"tool": "t", "args": {"b": 2, "a": 1}}]})
    assert a.plan_hash == b.plan_hash and a.plan_hash.startswith("sha-256:")
    assert Plan(goal="g", steps=[Step("t", args={"a": 1, "b": 3})]).plan_hash != a.plan_hash
    assert a.tools == ("t",)


def test_identity_subject() -> None:
    """The grant subject is the user, or the agent when it acts for no one."""
    assert AgentIdentity(agent_id="bot", user_id="u").subject == "u"
    assert AgentIdentity(agent_id="bot").subject == "bot"


def test_decision_is_truthy_when_allowed() -> None:
    """bool(decision) is the verdict."""
    assert Decision(allowed=True, tool="t") and not Decision(allowed=False, tool="t", reason="no_grant")


class TestHostilePolicies:
    """Oversized or overdeep policies and plans are ConfigErrors naming the problem, never a crash."""

    DEEP = '{"agent_id": "a", "capabilities": [{"tool": "t", "args": {"x": {"eq": ' + "[" * 50_000 + "]" * 50_000 + "}}}]}"

    def test_a_50_000_deep_json_policy_file(self, tmp_path: Path) -> None:
        (tmp_path / "deep.json").write_text(self.DEEP)
        with pytest.raises(ConfigError, match="nested too deeply"):
            Policy.from_file(tmp_path / "deep.json")

    def test_a_deep_yaml_policy_file(self, tmp_path: Path) -> None:
        (tmp_path / "deep.yaml").write_text("agent_id: a\ncapabilities: " + "[" * 50_000 + "]" * 50_000 + "\n")
        with pytest.raises(ConfigError, match="nested too deeply"):
            Policy.from_file(tmp_path / "deep.yaml")

    def test_deep_json_text_and_dicts(self) -> None:
        with pytest.raises(ConfigError):
            Policy.model_validate_json(self.DEEP)
        deep: object = []
        for _ in range(50_000):
            deep = [deep]
        with pytest.raises(ConfigError, match="nested deeper than 32"):
            Policy.model_validate({"agent_id": "a", "capabilities": [{"tool": "t", "args": {"x": {"eq": deep}}}]})
        each: object = {"any": True}
        for _ in range(5_000):
            each = {"each": each}
        with pytest.raises(ConfigError, match="nested deeper than 8"):
            Step("t", args={"x": each})

    def test_numbers_beyond_the_limits(self) -> None:
        with pytest.raises(ConfigError, match=r"amount\.min: needs a number within ±2\*\*53"):
            Capability("refund", args={"amount": {"min": 10**400}})

    def test_plan_size_limit(self) -> None:
        assert MAX_PLAN_STEPS == 1_000
        Plan(steps=[Step("t")] * MAX_PLAN_STEPS)
        with pytest.raises(ConfigError, match="1,001 steps, above the limit of 1,000; split the task"):
            Plan(steps=[Step("t")] * (MAX_PLAN_STEPS + 1))
