"""The decision log's line format and hash chain: encode one record, read and verify a file.

A record is one JSON object on one line. Its last key is ``hash``: the SHA-256 (hex) of the exact
UTF-8 bytes of the line without that key (``{...,"prev":"…"}``). ``prev`` is the ``hash`` of the
line before, or :data:`GENESIS_HASH` for the first line, so removing, editing or reordering any
line breaks the chain at that line. The hash covers the bytes as written, so verifying never
depends on re-serialising JSON the same way.

Lines are pure ASCII (``\\uXXXX`` escapes for everything else), so a hostile tool name can neither
break the encoding (a lone surrogate) nor act as a control sequence on a terminal that shows the
raw file (``tail -f``). Signed checkpoints (see :mod:`agent_guard.audit._checkpoint`) are checked when
:func:`verify_log` is given the JWKS.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from pydantic import BaseModel, ConfigDict

from agent_guard.audit._checkpoint import CheckpointChecker, parse_head
from agent_guard.exceptions import AuditLogError

if TYPE_CHECKING:
    from agent_guard.authorization._keys import KeySet

__all__ = [
    "FORMAT_VERSION",
    "GENESIS_HASH",
    "AuditLogError",
    "VerifyResult",
    "encode_record",
    "parse_line",
    "read_log",
    "verify_log",
]

FORMAT_VERSION: Final = 1
GENESIS_HASH: Final = "0" * 64
_HASH_KEY: Final = ',"hash":"'
_SUFFIX_LEN: Final = len(_HASH_KEY) + 64 + 2  # ,"hash":"<64 hex>"}


class VerifyResult(BaseModel):
    """The outcome of :func:`verify_log`.

    ``ok`` is True when every line chains to the one before and every check asked for passed.
    A broken chain or a bad checkpoint sets ``first_broken_line`` (1-based) and ``problem``; a
    failed whole-log check (no checkpoints, unsigned tail, expected head missing, too few
    records) sets ``problem`` only. ``head`` is the hash of the last good line (keep it elsewhere
    to detect a rewritten tail). With a JWKS, ``checkpoints`` counts the verified checkpoints and
    ``unsigned_records`` the records after the last one. ``warnings`` lists what an auditor should
    know even when ``ok`` (e.g. records no checkpoint covers yet).
    """

    model_config = ConfigDict(frozen=True)

    ok: bool
    records: int
    first_broken_line: int | None = None
    problem: str | None = None
    head: str = GENESIS_HASH
    checkpoints: int = 0
    unsigned_records: int = 0
    warnings: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return self.ok


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


_ENCODER: Final = json.JSONEncoder(ensure_ascii=True, separators=(",", ":"), default=_json_default)
_MAX_DEPTH: Final = 32


def _plain(value: Any, depth: int = 0) -> Any:
    """``value`` reduced to what JSON holds: string keys, no cycles, ``repr`` for anything else."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if depth >= _MAX_DEPTH:
        return repr(type(value))
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else repr(k): _plain(v, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_plain(v, depth + 1) for v in value]
    return repr(value)


def encode_record(record: dict[str, Any], prev: str) -> tuple[bytes, str]:
    """Serialise ``record`` chained after ``prev``: returns the line (with ``\\n``) and its hash.

    Never fails on hostile content: keys that are not strings, cycles and values JSON cannot hold
    are written as their ``repr``.
    """
    try:
        body = _ENCODER.encode({**record, "prev": prev})
    except (TypeError, ValueError, RecursionError):
        body = _ENCODER.encode({**_plain(record), "prev": prev})
    raw = body.encode("ascii")
    digest = hashlib.sha256(raw).hexdigest()
    return raw[:-1] + f'{_HASH_KEY}{digest}"}}\n'.encode("ascii"), digest


def parse_line(line: bytes) -> tuple[dict[str, Any], str]:
    """Parse one line (without its newline) and check its own hash; raise ``ValueError`` if bad."""
    if len(line) <= _SUFFIX_LEN or line[-_SUFFIX_LEN:-_SUFFIX_LEN + len(_HASH_KEY)] != _HASH_KEY.encode():
        raise ValueError("not a decision-log record (no trailing hash)")
    digest = line[-_SUFFIX_LEN + len(_HASH_KEY):-2].decode("ascii", "replace")
    body = line[:-_SUFFIX_LEN] + b"}"
    if hashlib.sha256(body).hexdigest() != digest:
        raise ValueError("the line's content does not match its hash (edited)")
    try:
        record = json.loads(line)
    except ValueError:
        raise ValueError("the line is not valid JSON") from None
    if not isinstance(record, dict) or record.get("hash") != digest or not isinstance(record.get("prev"), str):
        raise ValueError("not a decision-log record (bad hash or prev field)")
    return record, digest


def _lines(path: str | os.PathLike[str]) -> Iterator[tuple[int, bytes, bool]]:
    """Yield (line number, line without newline, ended with a newline) for each line of the file."""
    with open(path, "rb") as fh:
        for number, raw in enumerate(fh, start=1):
            complete = raw.endswith(b"\n")
            yield number, raw[:-1] if complete else raw, complete


def _reopen_note(number: int, record: Mapping[str, Any]) -> str:
    if record.get("event") == "log_recovered":
        return f"line {number}: a torn last line ({record.get('dropped_bytes')!r} bytes) was cut off on reopening"
    return (f"line {number}: the log was reopened with {record.get('unsigned_records')!r} record(s) that no "
            "checkpoint covered (a crash before the next checkpoint, or records added while it was closed)")


def verify_log(
    path: str | os.PathLike[str],
    *,
    jwks: KeySet | Mapping[str, Any] | str | None = None,
    expect_head: str | None = None,
    min_records: int | None = None,
    require_final_checkpoint: bool = False,
) -> VerifyResult:
    """Check the decision log at ``path``; never raises on a broken or tampered log.

    Always: the hash chain, which finds a removed, edited, inserted or reordered line (the first
    broken line is reported) and a torn (unterminated) last line. With ``jwks`` (the public keys,
    e.g. ``guard.jwks()``): every checkpoint's signature and that it commits to the chain at its
    place, so a log re-chained after an edit fails; a log without checkpoints fails; records after
    the last checkpoint are a warning, or a failure with ``require_final_checkpoint``. With
    ``expect_head`` (``"SEQ:HASH"`` or ``"HASH"``, from :attr:`DecisionLog.head`) the chain must
    reach that record, so a log cut short or emptied fails; ``min_records`` likewise.
    A missing file raises :class:`AuditLogError`; a malformed ``expect_head`` raises ConfigError.
    """
    if not os.path.exists(path):
        raise AuditLogError(f"audit log {os.fspath(path)!r} does not exist")
    want_seq, want_hash = parse_head(expect_head) if expect_head is not None else (None, None)
    checker = CheckpointChecker(jwks) if jwks is not None else None
    prev, count, reached = GENESIS_HASH, 0, None
    warnings: list[str] = []

    def result(ok: bool, problem: str | None = None, line: int | None = None) -> VerifyResult:
        signed = checker.count if checker else 0
        unsigned = count - checker.last_seq if checker else 0
        return VerifyResult(ok=ok, records=count, first_broken_line=line, problem=problem, head=prev,
                            checkpoints=signed, unsigned_records=unsigned, warnings=tuple(warnings))

    for number, line, complete in _lines(path):
        if not complete:
            return result(False, "the last line is incomplete (a torn write)", number)
        try:
            record, digest = parse_line(line)
        except ValueError as err:
            return result(False, str(err), number)
        if record["prev"] != prev:
            return result(False, "the line does not chain to the line before (a line was removed, "
                                 "inserted or reordered)", number)
        if record.get("seq") != count + 1:
            return result(False, f"sequence number {record.get('seq')!r} where {count + 1} was expected", number)
        if checker is not None and (problem := checker.check(record, digest)) is not None:
            return result(False, f"bad checkpoint: {problem}", number)
        prev = digest
        count += 1
        if digest == want_hash:
            reached = count
        if record.get("event") in ("log_recovered", "log_reopened"):
            warnings.append(_reopen_note(number, record))
    if not count:
        warnings.append("the log holds no records")
    if checker is not None:
        if not checker.count:
            return result(False, "the log has no checkpoints, so its signature cannot be checked (write it "
                                 "with DecisionLog(path, signing_keys=guard.keys))")
        if count > checker.last_seq:
            tail = f"{count - checker.last_seq} record(s) after the last checkpoint (line {checker.last_seq}) are "
            if require_final_checkpoint:
                return result(False, tail + "not covered by any signature")
            warnings.append(tail + "not signed yet (a log still being written, or one cut after a checkpoint "
                                   "and appended to)")
    if want_hash is not None and (reached is None or (want_seq is not None and reached != want_seq)):
        where = f"record {want_seq} with hash {want_hash}" if want_seq else f"a record with hash {want_hash}"
        return result(False, f"the expected head ({where}) is not in the log: records were cut off, "
                             "removed or rewritten")
    if min_records is not None and count < min_records:
        return result(False, f"{count} records where at least {min_records} were expected (the log was "
                             "cut short or emptied)")
    return result(True)


def read_log(path: str | os.PathLike[str]) -> Iterator[dict[str, Any]]:
    """Yield the records of a decision log in order (each with ``line``, its 1-based line number).

    Reading does not verify the chain (use :func:`verify_log`); a line that is not a record
    raises :class:`AuditLogError` naming it.
    """
    for number, line, _ in _lines(path):
        try:
            record = json.loads(line)
        except ValueError:
            raise AuditLogError(f"{os.fspath(path)}:{number}: not a JSON record") from None
        if not isinstance(record, dict):
            raise AuditLogError(f"{os.fspath(path)}:{number}: not a JSON object")
        record["line"] = number
        yield record
