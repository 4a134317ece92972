"""Signed checkpoints and the log head: a re-chained, edited, cut or emptied log fails `audit verify`."""

from __future__ import annotations

import base64
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import jwt
import pytest

from agent_guard import AgentIdentity, ConfigError, Guard, KeySet, Plan, Policy
from agent_guard.audit import CHECKPOINT_TYP, DecisionLog, LogHead, read_log, verify_log
from agent_guard.audit._chain import GENESIS_HASH, encode_record
from agent_guard.audit._checkpoint import verify_checkpoint
from agent_guard.cli import main


class SignedLog:
    """A closed, signed log of three tasks, its JWKS file and the head recorded when it closed."""

    def __init__(self, path: Path, jwks: Path, head: LogHead, keys: KeySet) -> None:
        self.path, self.jwks, self.head, self.keys = path, jwks, head, keys

    def lines(self) -> list[bytes]:
        """The raw lines (with newlines)."""
        return self.path.read_bytes().splitlines(keepends=True)

    def copy(self, tmp_path: Path, edit: Callable[[list[bytes]], list[bytes]]) -> Path:
        """A copy whose lines went through ``edit``."""
        target = tmp_path / "copy.jsonl"
        target.write_bytes(b"".join(edit(self.lines())))
        return target

    def verify(self, path: Path, *options: str) -> int:
        """``agent-guard audit verify PATH --jwks JWKS OPTIONS...``."""
        return main(["audit", "verify", str(path), "--jwks", str(self.jwks), *options])


@pytest.fixture
def signed(tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity) -> SignedLog:
    """Three tasks (each: allowed lookup, denied refund, task exit), a checkpoint every 3 records."""
    keys = KeySet.generate()
    path = tmp_path / "audit.jsonl"
    with DecisionLog(path, signing_keys=keys, checkpoint_every=3) as log:
        guard = Guard(policy, keys=keys, decision_log=log)
        for n in range(3):
            with guard.task(plan, identity=identity):
                guard.authorize("crm_lookup", {"customer_id": "C-42"}, call_id=f"look-{n}")
                guard.authorize("refund", {"amount": 900, "order_id": "O-1"}, call_id=f"refund-{n}")
        log.close()
        head = log.head
    jwks = tmp_path / "jwks.json"
    jwks.write_text(json.dumps(keys.jwks()))  # public keys only
    return SignedLog(path, jwks, head, keys)


def records(lines: list[bytes]) -> list[dict]:
    """Parsed records."""
    return [json.loads(line) for line in lines]


def rechain(lines: list[bytes]) -> list[bytes]:
    """What someone who can write the file does after an edit: renumber and recompute every hash."""
    out, prev = [], GENESIS_HASH
    for seq, record in enumerate(records(lines), start=1):
        body = {k: v for k, v in record.items() if k not in ("prev", "hash")}
        body["seq"] = seq
        line, prev = encode_record(body, prev)
        out.append(line)
    return out


def last_denial(lines: list[bytes]) -> int:
    """Index of the last denied decision (the third task's, after two tasks' checkpoints)."""
    return max(i for i, r in enumerate(records(lines)) if r.get("outcome") == "deny")


def test_checkpoints_are_written_every_n_records_at_task_end_and_on_close(signed: SignedLog) -> None:
    """Each checkpoint follows a grant revocation or 3 records since the last one, and commits to the record before it."""
    recs = records(signed.lines())
    since = 0
    for at, record in enumerate(recs):
        if record["event"] != "checkpoint":
            since += 1
            continue
        before = recs[at - 1]
        assert before["event"] == "grant_revoked" or since >= 3, (before, since)
        claims = verify_checkpoint(record["jws"], signed.keys)
        assert claims["seq"] == claims["records"] == before["seq"] == record["seq"] - 1
        assert claims["head"] == before["hash"] == record["prev"]
        assert claims["log"] == recs[0]["hash"]
        since = 0
    assert recs[-1]["event"] == "checkpoint" and recs[-2]["event"] == "grant_revoked"
    assert signed.head == (recs[-1]["seq"], recs[-1]["hash"])


def test_an_untouched_log_passes_every_check(signed: SignedLog, capsys: pytest.CaptureFixture[str]) -> None:
    """Chain, every signature, the final checkpoint, the recorded head and the length all check out."""
    result = verify_log(signed.path, jwks=signed.jwks.read_text(), expect_head=str(signed.head),
                        min_records=signed.head.seq, require_final_checkpoint=True)
    assert result.ok and result.unsigned_records == 0 and result.warnings == ()
    assert result.checkpoints == sum(r["event"] == "checkpoint" for r in records(signed.lines())) == 6
    assert signed.verify(signed.path, "--require-final-checkpoint", "--expect-head", str(signed.head),
                         "--min-records", str(signed.head.seq)) == 0
    out = capsys.readouterr().out
    assert f"OK, {signed.head.seq} records" in out and f"{result.checkpoints} signed checkpoint(s) verified" in out
    assert f"(head {signed.head})" in out


def test_checkpoints_verify_with_the_public_jwks_alone(signed: SignedLog) -> None:
    """The JWKS holds no private key, yet every checkpoint verifies; a JWS is an agent-audit-checkpoint+jwt."""
    public = KeySet.from_jwks(signed.jwks.read_text())
    assert not public.can_sign and all("d" not in k for k in json.loads(signed.jwks.read_text())["keys"])
    checkpoint = next(r for r in read_log(signed.path) if r["event"] == "checkpoint")
    header = jwt.get_unverified_header(checkpoint["jws"])
    assert header["typ"] == CHECKPOINT_TYP and header["kid"] == checkpoint["kid"] == signed.keys.current.kid
    assert verify_checkpoint(checkpoint["jws"], public)["seq"] == checkpoint["seq"] - 1
    assert verify_log(signed.path, jwks=public).ok


def test_a_rechained_log_without_a_denial_fails(
    signed: SignedLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Deleting a denial and recomputing the chain fools the hash chain, not the signed checkpoints."""
    lines = signed.lines()
    gone = last_denial(lines)
    path = signed.copy(tmp_path, lambda ls: rechain(ls[:gone] + ls[gone + 1:]))
    assert verify_log(path).ok  # the chain alone is satisfied
    result = verify_log(path, jwks=signed.jwks.read_text())
    later = next(i for i, r in enumerate(records(lines)) if i > gone and r["event"] == "checkpoint")
    assert not result.ok and result.first_broken_line == later  # the next checkpoint (one line earlier now)
    assert "bad checkpoint: the checkpoint is signed for" in (result.problem or "")
    capsys.readouterr()
    assert signed.verify(path) == 1
    assert f"BROKEN at line {later}: bad checkpoint" in capsys.readouterr().err


def test_dropping_the_later_checkpoints_too_leaves_an_unsigned_tail(
    signed: SignedLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Removing every checkpoint after the edit leaves records no signature covers: a warning, a failure
    with --require-final-checkpoint, and the recorded head is gone."""
    lines = signed.lines()
    gone = last_denial(lines)
    kept = [line for i, line in enumerate(lines) if i < gone or (i > gone and b'"event":"checkpoint"' not in line)]
    path = signed.copy(tmp_path, lambda _: rechain(kept))
    result = verify_log(path, jwks=signed.jwks.read_text())
    assert result.ok and result.unsigned_records > 0 and "not signed yet" in result.warnings[-1]
    assert not verify_log(path, jwks=signed.jwks.read_text(), require_final_checkpoint=True).ok
    capsys.readouterr()
    assert signed.verify(path) == 0 and "warning:" in capsys.readouterr().err
    assert signed.verify(path, "--require-final-checkpoint") == 1
    assert "not covered by any signature" in capsys.readouterr().err
    assert signed.verify(path, "--expect-head", str(signed.head)) == 1


@pytest.mark.parametrize("how", ["claims", "signature", "other_key", "typ"])
def test_an_edited_checkpoint_fails(signed: SignedLog, tmp_path: Path, how: str) -> None:
    """A checkpoint whose claims, signature, key or type was changed (and the chain recomputed) fails."""
    lines = signed.lines()
    at = next(i for i, r in enumerate(records(lines)) if r["event"] == "checkpoint")
    record = json.loads(lines[at])
    head_b64, payload_b64, signature = record["jws"].split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload_b64 + "=="))
    if how == "claims":
        claims["seq"] -= 1
        payload_b64 = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
        record["jws"] = f"{head_b64}.{payload_b64}.{signature}"
    elif how == "signature":  # a genuine signature, of another checkpoint
        other = next(r for r in records(lines[at + 1:]) if r["event"] == "checkpoint")
        record["jws"] = f"{head_b64}.{payload_b64}.{other['jws'].rsplit('.', 1)[1]}"
    else:
        forger = KeySet.generate(kid=signed.keys.current.kid if how == "typ" else None)
        typ = "JWT" if how == "typ" else CHECKPOINT_TYP
        key = forger.current
        record["jws"] = jwt.encode(claims, key.private, algorithm=key.alg, headers={"kid": key.kid, "typ": typ})
    edited = [*lines[:at], json.dumps(record).encode() + b"\n", *lines[at + 1:]]
    path = signed.copy(tmp_path, lambda _: rechain(edited))
    result = verify_log(path, jwks=signed.jwks.read_text())
    assert not result.ok and result.first_broken_line == at + 1, result
    expected = {"claims": "signature does not verify", "signature": "signature does not verify",
                "other_key": "not in the JWKS", "typ": "typ"}[how]
    assert expected in (result.problem or "")


def test_a_truncated_tail_fails_against_the_recorded_head(
    signed: SignedLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Cutting the last task off (back to a checkpoint) leaves a valid, signed log; --expect-head finds it."""
    lines = signed.lines()
    cut = max(i for i, r in enumerate(records(lines[:-3])) if r["event"] == "checkpoint") + 1
    path = signed.copy(tmp_path, lambda ls: ls[:cut])
    assert verify_log(path, jwks=signed.jwks.read_text(), require_final_checkpoint=True).ok
    result = verify_log(path, jwks=signed.jwks.read_text(), expect_head=str(signed.head))
    assert not result.ok and result.first_broken_line is None and "expected head" in (result.problem or "")
    assert not verify_log(path, expect_head=signed.head.hash).ok  # the hash alone is enough
    capsys.readouterr()
    assert signed.verify(path, "--expect-head", str(signed.head)) == 1
    assert "FAILED: the expected head" in capsys.readouterr().err
    assert signed.verify(path, "--min-records", str(signed.head.seq)) == 1
    assert f"{cut} records where at least {signed.head.seq}" in capsys.readouterr().err


def test_a_log_that_grew_past_the_recorded_head_still_passes(signed: SignedLog, tmp_path: Path) -> None:
    """--expect-head means 'the log reaches this record', so a head recorded at an earlier task end is fine."""
    earlier = next(r for r in records(signed.lines()) if r["event"] == "checkpoint")
    assert verify_log(signed.path, expect_head=f"{earlier['seq']}:{earlier['hash']}").ok
    assert not verify_log(signed.path, expect_head=f"{earlier['seq'] + 1}:{earlier['hash']}").ok


def test_an_emptied_log_fails_every_anchor(signed: SignedLog, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty file is a valid chain of 0 records; the recorded head, a minimum length and the JWKS all reject it."""
    path = signed.copy(tmp_path, lambda _: [])
    plain = verify_log(path)
    assert plain.ok and plain.records == 0 and plain.warnings == ("the log holds no records",)
    capsys.readouterr()
    assert main(["audit", "verify", str(path), "--expect-head", str(signed.head)]) == 1
    assert "expected head" in capsys.readouterr().err
    assert main(["audit", "verify", str(path), "--min-records", "1"]) == 1
    assert "0 records where at least 1" in capsys.readouterr().err
    assert signed.verify(path) == 1
    assert "has no checkpoints" in capsys.readouterr().err


def test_a_log_written_without_keys_has_no_checkpoints(
    tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity, signed: SignedLog
) -> None:
    """Without signing_keys nothing is signed, and checking it against a JWKS says so."""
    path = tmp_path / "plain.jsonl"
    with DecisionLog(path) as log, Guard(policy, decision_log=log).task(plan, identity=identity):
        pass
    assert [r["event"] for r in read_log(path)] == ["grant_issued", "grant_revoked"]
    result = verify_log(path, jwks=signed.jwks.read_text())
    assert not result.ok and "no checkpoints" in (result.problem or "")


def test_reopening_after_a_crash_notes_the_unsigned_records(
    tmp_path: Path, policy: Policy, plan: Plan, identity: AgentIdentity
) -> None:
    """Records written after the last checkpoint by a process that died are named in a log_reopened record."""
    keys = KeySet.generate()
    live, crashed = tmp_path / "live.jsonl", tmp_path / "crashed.jsonl"
    log = DecisionLog(live, signing_keys=keys)
    guard = Guard(policy, keys=keys, decision_log=log)
    with guard.task(plan, identity=identity):
        guard.authorize("crm_lookup", {"customer_id": "C-42"})
    with guard.task(plan, identity=identity):
        guard.authorize("refund", {"amount": 1})
        shutil.copy(live, crashed)  # the file as a crash would leave it: 2 records after the checkpoint
    log.close()
    with DecisionLog(crashed, signing_keys=keys) as reopened:
        assert reopened.records == 7  # the 6 records found, then the log_reopened note
    recs = list(read_log(crashed))
    assert recs[6]["event"] == "log_reopened" and recs[6]["unsigned_records"] == 2
    result = verify_log(crashed, jwks=keys.jwks(), require_final_checkpoint=True)
    assert result.ok and any("reopened with 2 record(s)" in w for w in result.warnings)


def test_bad_settings_name_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str], signed: SignedLog) -> None:
    """checkpoint_every, an HMAC or verify-only key set, a malformed head: each error names its field."""
    with pytest.raises(ConfigError, match="checkpoint_every"):
        DecisionLog(tmp_path / "a.jsonl", checkpoint_every=0)
    with pytest.raises(ConfigError, match="signing_keys: the current key is HS256"):
        DecisionLog(tmp_path / "a.jsonl", signing_keys=KeySet.generate("HS256"))
    with pytest.raises(ConfigError, match="signing_keys: this key set holds only public keys"):
        DecisionLog(tmp_path / "a.jsonl", signing_keys=KeySet.from_jwks(signed.keys.jwks()))
    with pytest.raises(ConfigError, match="expect_head"):
        verify_log(signed.path, expect_head="not-a-head")
    assert main(["audit", "verify", str(signed.path), "--expect-head", "12:xyz"]) == 2
    assert "--expect-head" in capsys.readouterr().err
    assert main(["audit", "verify", str(signed.path), "--require-final-checkpoint"]) == 2
    assert "needs --jwks" in capsys.readouterr().err
    assert main(["audit", "verify", str(signed.path), "--jwks", str(tmp_path / "missing.json")]) == 2
    assert "--jwks: cannot read" in capsys.readouterr().err
