"""The decision log: one hash-chained JSON line per decision and grant event, durable and fail-closed."""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import pytest

from agent_guard import AgentIdentity, ConfigError, Guard, Plan, Policy, Step, ToolCallDenied
from agent_guard.audit import GENESIS_HASH, AuditLogError, DecisionLog, read_log, verify_log
from agent_guard.testing import FakeClock, SpanCapture


def lines(path: Path) -> list[dict]:
    """The log's records, parsed."""
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def run_support_task(guard: Guard, plan: Plan, identity: AgentIdentity) -> str:
    """Allowed lookup, a denied email to the wrong address, the planned email; returns the grant token."""
    with guard.task(plan, identity=identity) as task:
        assert guard.authorize("crm_lookup", {"customer_id": "C-42"}, call_id="call-1").allowed
        denied = guard.authorize(
            "send_email", {"to": "mallory@evil.test", "subject": "s", "body": "b"}, call_id="call-2"
        )
        assert denied.reason == "argument_mismatch"
        assert guard.authorize(
            "send_email", {"to": "alice@example.com", "subject": "Hi", "body": "secret summary"}, call_id="call-3"
        ).allowed
        return task.grant


def test_each_decision_and_grant_event_is_one_json_line(
    tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity, clock: FakeClock, spans: SpanCapture
) -> None:
    """A task yields grant_issued, three decisions and grant_revoked, with every documented field."""
    path = tmp_path / "audit.jsonl"
    with DecisionLog(path, clock=clock) as log:
        guard = Guard(policy, tracer_provider=spans.provider, clock=clock, decision_log=log)
        run_support_task(guard, plan, identity)
    records = lines(path)
    # The call that spends the plan's last budget is recorded, then the grant is revoked (plan_completed).
    assert [r["event"] for r in records] == ["grant_issued", "decision", "decision", "decision", "grant_revoked"]
    assert [r["seq"] for r in records] == [1, 2, 3, 4, 5]
    issued, allow, deny, allow2, revoked = records
    assert issued["tools"] == ["crm_lookup", "send_email"] and issued["agent"] == "support-bot"
    assert revoked["reason"] == "plan_completed"
    assert allow == {**allow, "tool": "crm_lookup", "outcome": "allow", "reason": None, "step": 0,
                     "call_id": "call-1", "agent": "support-bot", "user": "u-1"}
    assert deny["outcome"] == "deny" and deny["reason"] == "argument_mismatch" and deny["step"] is None
    assert deny["argument"] == "to" and deny["call_id"] == "call-2"
    assert allow2["step"] == 1
    task_span = spans.named("invoke_agent")[0]
    assert {r["task"] for r in records} == {task_span.attributes["agent_guard.task.id"]}
    assert {r["grant"] for r in records} == {task_span.attributes["agent_guard.grant.id"]}
    assert {r["trace_id"] for r in records} == {format(task_span.context.trace_id, "032x")}
    assert all(r["time"] == "2027-01-15T08:00:00.000000Z" for r in records)
    assert all(re.fullmatch(r"[0-9a-f]{64}", r["hash"]) for r in records)


def test_each_line_carries_the_hash_of_the_line_before(
    tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity
) -> None:
    """prev of line 1 is the genesis value; each hash is SHA-256 of the line's bytes without it."""
    path = tmp_path / "audit.jsonl"
    with DecisionLog(path) as log:
        run_support_task(Guard(policy, decision_log=log), plan, identity)
        head = log.head
    prev = GENESIS_HASH
    for raw in path.read_bytes().splitlines():
        record = json.loads(raw)
        assert record["prev"] == prev
        body = raw[: raw.rindex(b',"hash":')] + b"}"
        assert hashlib.sha256(body).hexdigest() == record["hash"]
        prev = record["hash"]
    assert head == (5, prev) and str(head) == f"5:{prev}"
    assert verify_log(path).ok and verify_log(path).head == head.hash


def test_argument_values_are_recorded_only_with_the_opt_in(
    tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity
) -> None:
    """Without record_arguments no value reaches the log; with it each decision carries its arguments."""
    plain, opted = tmp_path / "plain.jsonl", tmp_path / "opted.jsonl"
    with DecisionLog(plain) as log:
        run_support_task(Guard(policy, decision_log=log), plan, identity)
    text = plain.read_text()
    for value in ("C-42", "alice@example.com", "mallory@evil.test", "secret summary"):
        assert value not in text
    assert all("arguments" not in r for r in lines(plain))
    with DecisionLog(opted) as log:
        run_support_task(Guard(policy, decision_log=log, record_arguments=True), plan, identity)
    decisions = [r for r in lines(opted) if r["event"] == "decision"]
    assert decisions[0]["arguments"] == {"customer_id": "C-42"}
    assert decisions[1]["arguments"]["to"] == "mallory@evil.test"
    assert decisions[2]["arguments"]["body"] == "secret summary"
    assert verify_log(opted).ok


def test_the_grant_token_never_reaches_the_log(
    tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity
) -> None:
    """Neither the JWT nor any of its segments is written, even with argument recording on."""
    path = tmp_path / "audit.jsonl"
    with DecisionLog(path) as log:
        token = run_support_task(Guard(policy, decision_log=log, record_arguments=True), plan, identity)
    text = path.read_text()
    assert token.count(".") == 2
    for segment in token.split("."):
        assert segment not in text
    assert "eyJ" not in text


def test_calls_outside_a_task_are_logged_as_no_grant(tmp_path: Path, policy: Policy) -> None:
    """A denial with no task in force is still a record (no task, grant, agent or user)."""
    path = tmp_path / "audit.jsonl"
    with DecisionLog(path) as log:
        guard = Guard(policy, decision_log=log)
        tool = guard.wrap(lambda customer_id: customer_id, name="crm_lookup")
        with pytest.raises(ToolCallDenied):
            tool(customer_id="C-1")
    (record,) = lines(path)
    assert record["reason"] == "no_grant" and record["outcome"] == "deny" and record["tool"] == "crm_lookup"
    assert record["task"] is None and record["agent"] is None and record["user"] is None


async def test_async_tasks_and_calls_are_logged(
    tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity
) -> None:
    """``async with guard.task`` and ``aauthorize`` write the same records."""
    path = tmp_path / "audit.jsonl"
    with DecisionLog(path) as log:
        guard = Guard(policy, decision_log=log)
        async with guard.task(plan, identity=identity):
            await guard.aauthorize("crm_lookup", {"customer_id": "C-42"}, call_id="a1")
            await guard.aauthorize("refund", {"amount": 1}, call_id="a2")
    events = [(r["event"], r.get("call_id"), r.get("reason")) for r in lines(path)]
    assert events == [("grant_issued", None, None), ("decision", "a1", None),
                      ("decision", "a2", "tool_not_in_scope"), ("grant_revoked", None, "task_exit")]


def test_reopening_continues_the_chain(tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity) -> None:
    """A second DecisionLog on the same file chains from the last line and keeps numbering."""
    path = tmp_path / "audit.jsonl"
    with DecisionLog(path) as log:
        run_support_task(Guard(policy, decision_log=log), plan, identity)
        first_head = log.head
    with DecisionLog(path) as log:
        assert log.records == 5 and log.head == first_head
        run_support_task(Guard(policy, decision_log=log), plan, identity)
    records = lines(path)
    assert [r["seq"] for r in records] == list(range(1, 11))
    assert records[5]["prev"] == first_head.hash and first_head.seq == 5
    result = verify_log(path)
    assert result.ok and result.records == 10


def test_a_torn_last_line_is_cut_off_and_noted(
    tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity
) -> None:
    """A crash mid-write loses only that record; reopening records how many bytes were dropped."""
    path = tmp_path / "audit.jsonl"
    with DecisionLog(path) as log:
        run_support_task(Guard(policy, decision_log=log), plan, identity)
    with open(path, "ab") as fh:
        fh.write(b'{"v":1,"seq":6,"time":"2027-01-15T08:00:00.000000Z","event":"decis')
    torn = verify_log(path)
    assert not torn.ok and torn.first_broken_line == 6 and "torn" in (torn.problem or "")
    with DecisionLog(path) as log:
        assert log.records == 6
    recovered = lines(path)[-1]
    assert recovered["event"] == "log_recovered" and recovered["dropped_bytes"] == 66
    assert verify_log(path).ok


def test_a_log_whose_last_line_is_not_a_record_is_refused(tmp_path: Path) -> None:
    """Chaining onto a line that is not a valid record would hide tampering, so opening fails."""
    path = tmp_path / "audit.jsonl"
    path.write_text('{"something": "else"}\n')
    with pytest.raises(AuditLogError, match="last line is not a valid decision-log record"):
        DecisionLog(path)


def test_a_second_writer_on_the_same_file_is_refused(tmp_path: Path) -> None:
    """Two writers would fork the chain; the second open raises until the first is closed."""
    path = tmp_path / "audit.jsonl"
    first = DecisionLog(path)
    with pytest.raises(AuditLogError, match="already open"):
        DecisionLog(path)
    first.close()
    DecisionLog(path).close()


def test_a_closed_log_fails_closed(tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity) -> None:
    """When a decision cannot be recorded, the call does not run."""
    log = DecisionLog(tmp_path / "audit.jsonl")
    guard = Guard(policy, decision_log=log)
    ran = []
    lookup = guard.wrap(lambda customer_id: ran.append(customer_id), name="crm_lookup")
    log.close()
    log.close()  # idempotent
    assert log.closed
    with pytest.raises(AuditLogError, match="closed"):
        guard.authorize("crm_lookup", {"customer_id": "C-42"})
    with pytest.raises(AuditLogError):
        lookup(customer_id="C-42")
    assert ran == []


@pytest.mark.parametrize(("policy_name", "every", "expected"), [("always", 1, 8), ("batch", 2, 5), ("never", 1, 1)])
def test_fsync_policy_decides_how_often_the_file_is_synced(
    tmp_path: Path, policy: Policy, identity: AgentIdentity, monkeypatch: pytest.MonkeyPatch,
    policy_name: str, every: int, expected: int,
) -> None:
    """always: every record; batch: every N records and at grant revocation; never: only on close."""
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    log = DecisionLog(tmp_path / "audit.jsonl", fsync=policy_name, fsync_every=every)  # type: ignore[arg-type]
    guard = Guard(policy, decision_log=log)
    plan = Plan(goal="g", steps=[Step("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}, max_calls=10)])
    with guard.task(plan, identity=identity):  # 1 issued + 5 decisions + 1 revoked = 7 records
        for i in range(5):
            guard.authorize("crm_lookup", {"customer_id": f"C-{i}"})
    log.close()
    # always: 7 records + close; batch/2: records 2, 4, 6, the revocation (7) and close; never: close.
    assert len(synced) == expected
    assert verify_log(tmp_path / "audit.jsonl").records == 7


def test_bad_settings_are_config_errors(tmp_path: Path) -> None:
    """An unknown fsync policy or a zero batch names the field."""
    with pytest.raises(ConfigError, match="fsync"):
        DecisionLog(tmp_path / "a.jsonl", fsync="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="fsync_every"):
        DecisionLog(tmp_path / "a.jsonl", fsync_every=0)


def test_read_log_yields_records_with_line_numbers(
    tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity
) -> None:
    """read_log gives every record in order, each with its 1-based line number."""
    path = tmp_path / "audit.jsonl"
    with DecisionLog(path) as log:
        run_support_task(Guard(policy, decision_log=log), plan, identity)
    records = list(read_log(path))
    assert [r["line"] for r in records] == [1, 2, 3, 4, 5]
    assert records[2]["outcome"] == "deny"


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs Linux's /dev/full to simulate a full disk")
def test_a_write_error_denies_by_raising(policy: Policy, plan: Plan, identity: AgentIdentity) -> None:
    """On a full disk the record cannot be written: AuditLogError, and the tool does not run."""
    log = DecisionLog("/dev/full")
    guard = Guard(policy, decision_log=log)
    ran = []
    lookup = guard.wrap(lambda customer_id: ran.append(customer_id), name="crm_lookup")
    with pytest.raises(AuditLogError, match="No space left"):
        lookup(customer_id="C-42")
    assert ran == [] and log.records == 0
    with pytest.raises(AuditLogError, match="fsync"):
        log.close()
    assert log.closed
