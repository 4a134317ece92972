"""`agent-guard policy check` and `agent-guard policy replay`: policies tested like code."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from agent_guard import AgentIdentity, Capability, Guard, Limit, Plan, Policy, Step
from agent_guard.audit import DecisionLog, read_log
from agent_guard.cli import main
from agent_guard.testing import FakeClock, assert_allowed, assert_denied

ME = AgentIdentity(agent_id="bank-bot", user_id="u-1")
TRANSFERS = Plan(steps=[Step("transfer", args={"amount": {"any": True}, "to": {"any": True}}, max_calls=10),
                        Step("balance", max_calls=5)])


def write(path: Path, data: Any) -> Path:
    """Write ``data`` as YAML or JSON (by suffix) and return the path."""
    path.write_text(yaml.safe_dump(data) if path.suffix != ".json" else json.dumps(data), encoding="utf-8")
    return path


def bank(*, limits: list[dict[str, Any]] | None = None, extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """A policy document: transfers (with ``limits``), balance, and ``extra`` capabilities."""
    transfer: dict[str, Any] = {"tool": "transfer", "args": {"amount": {"min": 0}, "to": {"any": True}}}
    if limits:
        transfer["limits"] = limits
    return {"agent_id": "bank-bot", "capabilities": [transfer, {"tool": "balance"}, *(extra or [])]}


DAILY = [{"sum_of": "amount", "max": 1000, "per": "user", "window_s": 86400}]


class TestCheck:
    """policy check: errors exit 1, warnings exit 0 unless --strict, every name escaped."""

    def test_a_clean_policy_and_its_plans_pass(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """No finding: exit 0 and an OK line."""
        policy = write(tmp_path / "policy.yaml", bank(limits=DAILY))
        plans = tmp_path / "plans"
        plans.mkdir()
        write(plans / "pay.json", TRANSFERS.model_dump(mode="json"))
        assert main(["policy", "check", str(policy), "--plans", str(plans), "--strict"]) == 0
        assert capsys.readouterr().out.strip().endswith("OK, 0 error(s), 0 warning(s)")

    def test_errors_exit_1_and_name_the_field(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A tool twice, a key twice, a literal its own operators refuse, a limit no call fits, a plan too wide."""
        doc = bank(limits=[{"sum_of": "amount", "max": 10, "per": "user", "window_s": 60}], extra=[
            {"tool": "balance"},
            {"tool": "note", "args": {"text": {"eq": "hello", "max_len": 3}}},
        ])
        doc["capabilities"][0]["args"]["amount"] = {"min": 50}
        policy = tmp_path / "policy.yaml"
        policy.write_text(yaml.safe_dump(doc) + "max_ttl_s: 300\nmax_ttl_s: 600\n", encoding="utf-8")
        plans = tmp_path / "plans"
        plans.mkdir()
        write(plans / "wide.yaml", {"steps": [{"tool": "wire", "args": {}}]})
        assert main(["policy", "check", str(policy), "--plans", str(plans)]) == 1
        out = capsys.readouterr().out
        assert "key 'max_ttl_s' appears twice" in out
        assert "capabilities[2] (balance): error: the tool is already listed at capabilities[1]" in out
        assert "capabilities[2] (note).args.text: error: admits no value" in out
        assert "capabilities[0] (transfer).limits[0]: error: no call fits" in out
        assert "wide.yaml steps[0] (wire): error: plan_exceeds_policy" in out
        assert "FAILED, 5 error(s)" in out

    def test_a_policy_that_does_not_load_is_an_error(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """An unknown operator (a constraint that does not compile) is reported with its field."""
        policy = write(tmp_path / "policy.json", {"agent_id": "a", "capabilities": [
            {"tool": "t", "args": {"x": {"globb": "*"}}}]})
        assert main(["policy", "check", str(policy)]) == 1
        out = capsys.readouterr().out
        assert "capabilities[0].args" in out and "unknown operator 'globb'" in out
        assert main(["policy", "check", str(tmp_path / "missing.yaml")]) == 1

    def test_warnings_pass_unless_strict(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A glob on an address or URL points to the typed operators; a literal that reads like a pattern is flagged."""
        policy = write(tmp_path / "policy.yaml", bank(extra=[
            {"tool": "send_email", "args": {"to": {"glob": "*@example.com"}, "body": {"any": True}}},
            {"tool": "fetch", "args": {"url": {"prefix": "https://api.example.com"}}},
            {"tool": "notify", "args": {"channel": {"glob": "https://hooks.example.com/*"}}},
            {"tool": "forward", "args": {"to": "*@example.com"}},
        ]))
        assert main(["policy", "check", str(policy)]) == 0
        out = capsys.readouterr().out
        assert "(send_email).args.to: warning: glob '*@example.com'" in out and "email_domain_in" in out
        assert "(fetch).args.url: warning: prefix 'https://api.example.com'" in out and "host_in" in out
        assert "(notify).args.channel: warning: glob" in out
        assert "(forward).args.to: warning: the literal '*@example.com' looks like a pattern" in out
        assert "OK, 0 error(s), 4 warning(s)" in out
        assert main(["policy", "check", str(policy), "--strict"]) == 1
        assert "FAILED, 0 error(s), 4 warning(s) (--strict: warnings fail)" in capsys.readouterr().out

    def test_unused_capabilities_and_pattern_literals_in_plans(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """With --plans: a capability no sample plan uses is a warning; so is a plan literal that reads like a glob."""
        policy = write(tmp_path / "policy.yaml", bank(extra=[{"tool": "send_email", "args": {"to": {"any": True}}}]))
        plans = tmp_path / "plans"
        plans.mkdir()
        write(plans / "mail.yaml", {"steps": [{"tool": "send_email", "args": {"to": "*@example.com"}}]})
        assert main(["policy", "check", str(policy), "--plans", str(plans)]) == 0
        out = capsys.readouterr().out
        assert "mail.yaml steps[0] (send_email).args.to: warning: the literal '*@example.com'" in out
        assert "capabilities[0] (transfer): warning: no sample plan uses this capability" in out
        assert "capabilities[1] (balance): warning: no sample plan uses" in out

    def test_hostile_names_are_escaped(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A tool name holding an escape sequence or a newline is printed as visible escapes."""
        policy = write(tmp_path / "policy.json", {"agent_id": "a", "capabilities": [
            {"tool": "t\x1b[2J\nforged", "args": {"to": {"glob": "*@x.com"}}}]})
        assert main(["policy", "check", str(policy)]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "t\\x1b[2J\\x0aforged" in out


def _log(tmp_path: Path, policy: Policy, *, shadow: bool = False, record_arguments: bool = True) -> Path:
    """A decision log of two tasks of u-1 (transfers, a delegated child, a replan) written under ``policy``."""
    clock = FakeClock()
    path = tmp_path / "audit.jsonl"
    with DecisionLog(path, clock=clock) as log:
        guard = Guard(policy, clock=clock, decision_log=log, record_arguments=record_arguments,
                      mode="shadow" if shadow else "enforce")
        with guard.task(TRANSFERS, identity=ME) as task:
            for amount in (400, 400, 400):
                clock.advance(1)
                guard.authorize("transfer", {"amount": amount, "to": "bob"}, call_id=f"c{amount}")
            child = Plan(steps=[Step("transfer", args={"amount": {"any": True}, "to": {"any": True}}, max_calls=2)])
            with guard.delegate(child, agent_id="payer"):
                guard.authorize("transfer", {"amount": 150, "to": "carol"}, call_id="child")
            guard.authorize("wire\x1b[2J", {}, call_id="stray")
            task = guard.replan(task, Plan(steps=[Step("balance")]))
            guard.authorize("balance", {}, call_id="after-replan")
        clock.advance(60)
        with guard.task(TRANSFERS, identity=ME):
            guard.authorize("transfer", {"amount": 100, "to": "dan"}, call_id="second-task")
    return path


class TestReplay:
    """policy replay: flips allow -> deny and deny -> allow, counted per tool and reason; --fail-on for CI."""

    def test_the_log_records_plans_only_with_record_arguments(self, tmp_path: Path) -> None:
        """grant_issued holds the plan (and where a grant comes from) when arguments are recorded, else nothing new."""
        old = Policy.model_validate(bank())
        records = [r for r in read_log(_log(tmp_path, old)) if r["event"] == "grant_issued"]
        assert [("plan" in r, "delegated_from" in r, "replaces" in r) for r in records] == [
            (True, False, False), (True, True, False), (True, False, True), (True, False, False)]
        assert Plan.model_validate(records[0]["plan"]) == TRANSFERS
        assert records[1]["agent"] == "payer" and records[1]["delegated_from"] == records[0]["grant"]
        quiet = tmp_path / "quiet"
        quiet.mkdir()
        assert not any("plan" in r for r in read_log(_log(quiet, old, record_arguments=False)))

    def test_a_new_limit_flips_allow_to_deny(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Adding 1,000 per user per day turns the third 400 and the child's 150... into limit_exceeded."""
        log = _log(tmp_path, Policy.model_validate(bank()))
        new = write(tmp_path / "new.yaml", bank(limits=DAILY))
        assert main(["policy", "replay", str(log), "--policy", str(new)]) == 0
        out = capsys.readouterr().out
        assert "replayed 7 decision(s) of 4 task(s)" in out
        assert "allow -> deny: 2, deny -> allow: 0, unchanged: 5, skipped: 0" in out
        assert "transfer  limit_exceeded  2" in out
        flips = [line.split() for line in out.splitlines() if "allow-to-deny" in line]
        assert [(f[1], f[-1]) for f in flips] == [("transfer", "c400"), ("transfer", "second-task")]
        assert main(["policy", "replay", str(log), "--policy", str(new), "--fail-on", "allow-to-deny"]) == 1
        assert "FAILED: decisions flip allow -> deny (--fail-on)" in capsys.readouterr().out
        assert main(["policy", "replay", str(log), "--policy", str(new), "--fail-on", "deny-to-allow"]) == 0

    def test_a_wider_policy_flips_deny_to_allow(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """A log written under a limit, replayed without it: the refused transfer would now run."""
        log = _log(tmp_path, Policy.model_validate(bank(limits=DAILY)))
        new = write(tmp_path / "new.json", bank())
        assert main(["policy", "replay", str(log), "--policy", str(new), "--fail-on", "deny-to-allow"]) == 1
        out = capsys.readouterr().out
        assert "allow -> deny: 0, deny -> allow: 2" in out
        assert "deny -> allow by tool and reason (the reason it was denied):" in out
        assert "transfer  limit_exceeded  2" in out

    def test_a_tool_dropped_from_the_policy_refuses_the_whole_plan(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A plan the new ceiling refuses: its calls are denied with the mint-time reason."""
        log = _log(tmp_path, Policy.model_validate(bank()))
        new = write(tmp_path / "new.json", {"agent_id": "bank-bot", "capabilities": [{"tool": "balance"}]})
        assert main(["policy", "replay", str(log), "--policy", str(new)]) == 0
        assert "transfer  plan_exceeds_policy  5" in capsys.readouterr().out

    def test_hostile_tool_names_from_the_log_are_escaped(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A tool name holding ESC and a newline flips, and prints as visible escapes."""
        name = "wire\x1b[2J\nline 1  transfer  deny-to-allow"
        clock = FakeClock()
        policy = Policy(agent_id="bank-bot", capabilities=[Capability(name)])
        with DecisionLog(tmp_path / "audit.jsonl", clock=clock) as log:
            guard = Guard(policy, clock=clock, decision_log=log, record_arguments=True)
            with guard.task(Plan(steps=[Step(name)]), identity=ME):
                assert guard.authorize(name, {}).allowed
        new = write(tmp_path / "new.json", {"agent_id": "bank-bot", "capabilities": [{"tool": "balance"}]})
        assert main(["policy", "replay", str(tmp_path / "audit.jsonl"), "--policy", str(new)]) == 0
        out = capsys.readouterr().out
        assert "\x1b" not in out and "wire\\x1b[2J\\x0aline 1" in out
        assert not [line for line in out.splitlines() if line.lstrip().startswith("line 1")]  # no forged row
        assert all("wire" in line for line in out.splitlines() if "deny-to-allow" in line)

    def test_a_shadow_log_counts_would_deny_as_deny(self, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
        """Replaying a shadow-mode log under the same policy flips nothing."""
        policy = Policy.model_validate(bank(limits=DAILY))
        log = _log(tmp_path, policy, shadow=True)
        assert any(r.get("outcome") == "would_deny" for r in read_log(log))
        same = write(tmp_path / "same.yaml", bank(limits=DAILY))
        assert main(["policy", "replay", str(log), "--policy", str(same), "--fail-on", "allow-to-deny",
                     "--fail-on", "deny-to-allow"]) == 0
        assert "allow -> deny: 0, deny -> allow: 0, unchanged: 7" in capsys.readouterr().out

    def test_a_log_without_arguments_is_refused_with_the_reason(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """Exit 2, saying the log was written without record_arguments=True."""
        log = _log(tmp_path, Policy.model_validate(bank()), record_arguments=False)
        new = write(tmp_path / "new.yaml", bank())
        assert main(["policy", "replay", str(log), "--policy", str(new)]) == 2
        err = capsys.readouterr().err
        assert "hold no arguments" in err and "record_arguments=True" in err

    def test_the_log_timestamps_drive_windows_and_expiry(
        self, tmp_path: Path, capsys: pytest.CaptureFixture[str]
    ) -> None:
        """A rate of 2 per minute: the log's second task came 60 s later, in a new window, so it stays allowed."""
        log = _log(tmp_path, Policy.model_validate(bank()))
        rate = [{"calls": 2, "per": "user", "window_s": 60}]
        new = write(tmp_path / "new.yaml", bank(limits=rate))
        assert main(["policy", "replay", str(log), "--policy", str(new)]) == 0
        out = capsys.readouterr().out
        flips = [line.split() for line in out.splitlines() if "allow-to-deny" in line]
        assert [f[-1] for f in flips] == ["c400", "child"]  # the 3rd and 4th transfer of the first minute


def test_policy_unit_tests_with_the_testing_helpers() -> None:
    """The policy unit-test helpers on this suite's bank policy (the README shows them too)."""
    policy = Policy.model_validate(bank(limits=DAILY))
    assert_allowed(policy, TRANSFERS, "transfer", {"amount": 999, "to": "bob"})
    assert_denied(policy, TRANSFERS, "transfer", {"amount": -1, "to": "bob"}, reason="argument_mismatch")
    assert_denied(policy, TRANSFERS, "wire", {}, reason="tool_not_in_scope")
    assert Capability("transfer", args={"amount": {"min": 0}}, limits=[Limit(calls=1, per="task")])
