"""20,000 decisions from 8 threads at once: every one logged, the chain intact; tampering is found."""

from __future__ import annotations

import json
import shutil
import threading
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest

from agent_guard import AgentIdentity, Guard, Plan, Policy, Step
from agent_guard.audit import DecisionLog, read_log, verify_log
from agent_guard.cli import main

THREADS = 8
CALLS_PER_THREAD = 2500


@pytest.fixture(scope="module")
def burst_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A log written by 8 threads deciding 2,500 calls each (half allowed, half denied), all at once."""
    path = tmp_path_factory.mktemp("burst") / "audit.jsonl"
    policy = Policy.model_validate({
        "agent_id": "load-bot",
        "capabilities": [{"tool": "crm_lookup", "args": {"customer_id": {"regex": r"C-\d+"}}},
                         {"tool": "send_email", "args": {"to": {"glob": "*@example.com"}}}],
    })
    barrier = threading.Barrier(THREADS)
    errors: list[BaseException] = []
    with DecisionLog(path) as log:
        guard = Guard(policy, decision_log=log)

        def worker(n: int) -> None:
            try:
                plan = Plan(goal="load", steps=[
                    Step("crm_lookup", args={"customer_id": {"regex": r"C-\d+"}}, max_calls=CALLS_PER_THREAD)
                ])
                with guard.task(plan, identity=AgentIdentity(agent_id="load-bot", user_id=f"u-{n}")):
                    barrier.wait()
                    for i in range(CALLS_PER_THREAD):
                        if i % 2:
                            guard.authorize("send_email", {"to": "x@example.com"}, call_id=f"t{n}-{i}")
                        else:
                            guard.authorize("crm_lookup", {"customer_id": f"C-{i}"}, call_id=f"t{n}-{i}")
            except BaseException as err:  # surface failures from the threads
                errors.append(err)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(THREADS)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    assert errors == []
    return path


def test_every_decision_of_the_burst_is_logged_once(burst_log: Path) -> None:
    """20,000 decision records (plus one issued and one revoked per task), each call id exactly once."""
    records = list(read_log(burst_log))
    decisions = [r for r in records if r["event"] == "decision"]
    assert len(decisions) == THREADS * CALLS_PER_THREAD == 20_000
    ids = Counter(r["call_id"] for r in decisions)
    assert len(ids) == 20_000 and set(ids.values()) == {1}
    assert Counter(r["outcome"] for r in decisions) == {"allow": 10_000, "deny": 10_000}
    assert Counter(r["event"] for r in records) == {"decision": 20_000, "grant_issued": 8, "grant_revoked": 8}
    assert [r["seq"] for r in records] == list(range(1, len(records) + 1))


def test_the_burst_log_verifies(burst_log: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """verify_log and ``agent-guard audit verify`` both accept the intact chain."""
    result = verify_log(burst_log)
    assert result.ok and result.records == 20_016 and result.first_broken_line is None
    assert main(["audit", "verify", str(burst_log)]) == 0
    assert "OK, 20016 records" in capsys.readouterr().out


def tampered(source: Path, tmp_path: Path, edit: Callable[[list[bytes]], list[bytes]]) -> Path:
    """A copy of ``source`` whose lines went through ``edit(lines) -> lines``."""
    target = tmp_path / "tampered.jsonl"
    shutil.copy(source, target)
    lines = target.read_bytes().splitlines(keepends=True)
    target.write_bytes(b"".join(edit(lines)))
    return target


def assert_broken_at(path: Path, line: int, capsys: pytest.CaptureFixture[str]) -> None:
    """Both the API and the CLI report ``line`` as the first broken line."""
    result = verify_log(path)
    assert not result.ok and result.first_broken_line == line, result
    assert result.records == line - 1
    capsys.readouterr()
    assert main(["audit", "verify", str(path)]) == 1
    assert f"BROKEN at line {line}:" in capsys.readouterr().err


def edit_outcome(line: bytes) -> bytes:
    """Flip a decision's outcome without touching its hash."""
    record = json.loads(line)
    assert record["event"] == "decision"
    return line.replace(f'"outcome":"{record["outcome"]}"'.encode(),
                        b'"outcome":"allow"' if record["outcome"] == "deny" else b'"outcome":"deny"')


def test_a_removed_line_is_found(burst_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Deleting line 12,345 breaks the chain at line 12,345 (the line that followed it)."""
    path = tampered(burst_log, tmp_path, lambda lines: lines[:12344] + lines[12345:])
    assert_broken_at(path, 12_345, capsys)


def test_an_edited_line_is_found(burst_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Flipping one decision's outcome is found at that line."""
    path = tampered(burst_log, tmp_path, lambda lines: [*lines[:6999], edit_outcome(lines[6999]), *lines[7000:]])
    assert "edited" in (verify_log(path).problem or "")
    assert_broken_at(path, 7_000, capsys)


def test_an_edited_line_with_a_recomputed_hash_is_found(
    burst_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Re-hashing the edited line does not help: the next line's prev no longer matches."""
    import hashlib

    def rehash(line: bytes) -> bytes:
        edited = edit_outcome(line)
        body = edited[: edited.rindex(b',"hash":')] + b"}"
        return body[:-1] + b',"hash":"' + hashlib.sha256(body).hexdigest().encode() + b'"}\n'

    path = tampered(burst_log, tmp_path, lambda lines: [*lines[:6999], rehash(lines[6999]), *lines[7000:]])
    assert_broken_at(path, 7_001, capsys)


def test_a_reordered_pair_is_found(burst_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Swapping lines 500 and 501 is found at line 500."""
    path = tampered(burst_log, tmp_path, lambda lines: [*lines[:499], lines[500], lines[499], *lines[501:]])
    assert_broken_at(path, 500, capsys)


def test_an_edited_last_line_is_found(burst_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The last line has no successor, but its own hash still gives the edit away."""
    path = tampered(burst_log, tmp_path, lambda lines: [*lines[:-1], lines[-1].replace(b"task_exit", b"manual!!!")])
    assert_broken_at(path, 20_016, capsys)


def test_an_inserted_line_is_found(burst_log: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A copy of line 10 inserted after line 20 is found at line 21."""
    path = tampered(burst_log, tmp_path, lambda lines: [*lines[:20], lines[9], *lines[20:]])
    assert_broken_at(path, 21, capsys)


def test_a_cut_tail_changes_the_head(burst_log: Path, tmp_path: Path) -> None:
    """Dropping the last lines leaves a valid shorter chain; the head hash (kept elsewhere) shows it."""
    path = tampered(burst_log, tmp_path, lambda lines: lines[:-3])
    result, full = verify_log(path), verify_log(burst_log)
    assert result.ok and result.records == full.records - 3 and result.head != full.head
