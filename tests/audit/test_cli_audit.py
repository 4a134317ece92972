"""``agent-guard audit show`` and ``verify``: the table, its filters and the error paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from agent_guard import AgentIdentity, Guard, Plan, Policy
from agent_guard.audit import DecisionLog
from agent_guard.cli import main


@pytest.fixture
def two_task_log(tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity) -> tuple[Path, list[str]]:
    """A log of two tasks: each with an allowed lookup and a denied refund; returns it and the task ids."""
    path = tmp_path / "audit.jsonl"
    ids = []
    with DecisionLog(path) as log:
        guard = Guard(policy, decision_log=log)
        for n in range(2):
            with guard.task(plan, identity=identity) as task:
                ids.append(task.id)
                guard.authorize("crm_lookup", {"customer_id": "C-42"}, call_id=f"look-{n}")
                guard.authorize("refund", {"amount": 10, "order_id": "O-1"}, call_id=f"refund-{n}")
    return path, ids


def rows(out: str) -> list[list[str]]:
    """The table's data rows, split into cells (header and rule dropped)."""
    return [line.split() for line in out.splitlines()[2:]]


def test_show_prints_every_record_as_a_table(
    two_task_log: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """All 8 records, with the header naming the columns and a denied row showing its reason."""
    path, _ = two_task_log
    assert main(["audit", "show", str(path)]) == 0
    out = capsys.readouterr().out
    header = out.splitlines()[0].split()
    assert header == ["line", "time", "event", "task", "agent", "user", "tool", "outcome", "reason", "step", "call_id"]
    assert len(rows(out)) == 8
    assert any("refund" in r and "deny" in r and "tool_not_in_scope" in r and "refund-1" in r for r in rows(out))


def test_show_filters_by_outcome_tool_and_task(
    two_task_log: tuple[Path, list[str]], capsys: pytest.CaptureFixture[str]
) -> None:
    """--outcome, --tool and --task (a prefix is enough) each narrow the rows."""
    path, ids = two_task_log
    main(["audit", "show", str(path), "--outcome", "deny"])
    denied = rows(capsys.readouterr().out)
    assert len(denied) == 2 and all("deny" in r and "refund" in r for r in denied)
    main(["audit", "show", str(path), "--tool", "crm_lookup"])
    lookups = rows(capsys.readouterr().out)
    assert [r[-1] for r in lookups] == ["look-0", "look-1"]
    main(["audit", "show", str(path), "--task", ids[1][:6]])
    second = rows(capsys.readouterr().out)
    assert len(second) == 4 and all(ids[1] in r for r in second)
    main(["audit", "show", str(path), "--task", ids[0], "--decisions-only", "--outcome", "allow"])
    assert [r[-1] for r in rows(capsys.readouterr().out)] == ["look-0"]
    main(["audit", "show", str(path), "--limit", "1"])
    (last,) = rows(capsys.readouterr().out)
    assert "grant_revoked" in last and "task_exit" in last
    main(["audit", "show", str(path), "--tool", "nope"])
    assert capsys.readouterr().out.strip() == "(no decisions)"


def test_verify_and_show_report_a_missing_or_foreign_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file or a file that is not a decision log is an error (exit 2) or a broken chain (exit 1)."""
    missing = tmp_path / "missing.jsonl"
    assert main(["audit", "verify", str(missing)]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["audit", "show", str(missing)]) == 2
    assert "No such file" in capsys.readouterr().err
    foreign = tmp_path / "foreign.jsonl"
    foreign.write_text("hello\n")
    assert main(["audit", "verify", str(foreign)]) == 1
    assert "BROKEN at line 1" in capsys.readouterr().err
    assert main(["audit", "show", str(foreign)]) == 2
    assert "foreign.jsonl:1: not a JSON record" in capsys.readouterr().err


def test_audit_without_an_action_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    """``agent-guard audit`` alone shows its usage and exits 2."""
    assert main(["audit"]) == 2
    assert "verify" in capsys.readouterr().out
