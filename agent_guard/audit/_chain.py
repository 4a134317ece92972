"""The decision log's line format and hash chain: encode one record, read and verify a file.

A record is one JSON object on one line. Its last key is ``hash``: the SHA-256 (hex) of the exact
UTF-8 bytes of the line without that key (``{...,"prev":"…"}``). ``prev`` is the ``hash`` of the
line before, or :data:`GENESIS_HASH` for the first line, so removing, editing or reordering any
line breaks the chain at that line. The hash covers the bytes as written, so verifying never
depends on re-serialising JSON the same way.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from typing import Any, Final

from pydantic import BaseModel, ConfigDict

from agent_guard.exceptions import AgentGuardError

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


class AuditLogError(AgentGuardError, OSError):
    """The decision log cannot be written or read (closed, locked, torn or not a decision log)."""


class VerifyResult(BaseModel):
    """The outcome of :func:`verify_log`.

    ``ok`` is True when every line chains to the one before; otherwise ``first_broken_line`` is the
    1-based number of the first line that does not, and ``problem`` says why. ``head`` is the hash
    of the last good line (keep it elsewhere to detect a rewritten tail).
    """

    model_config = ConfigDict(frozen=True)

    ok: bool
    records: int
    first_broken_line: int | None = None
    problem: str | None = None
    head: str = GENESIS_HASH

    def __bool__(self) -> bool:
        return self.ok


def _json_default(value: Any) -> Any:
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return repr(value)


_ENCODER: Final = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_json_default)


def encode_record(record: dict[str, Any], prev: str) -> tuple[bytes, str]:
    """Serialise ``record`` chained after ``prev``: returns the line (with ``\\n``) and its hash."""
    body = _ENCODER.encode({**record, "prev": prev})
    digest = hashlib.sha256(body.encode("utf-8")).hexdigest()
    line = f'{body[:-1]}{_HASH_KEY}{digest}"}}\n'
    return line.encode("utf-8"), digest


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


def verify_log(path: str | os.PathLike[str]) -> VerifyResult:
    """Check the hash chain of the decision log at ``path``; never raises on a broken log.

    Detects a removed, edited, inserted or reordered line (the first broken line is reported),
    and a torn (unterminated) last line. A missing file raises :class:`AuditLogError`.
    """
    if not os.path.exists(path):
        raise AuditLogError(f"audit log {os.fspath(path)!r} does not exist")
    prev = GENESIS_HASH
    count = 0

    def broken(number: int, problem: str) -> VerifyResult:
        return VerifyResult(ok=False, records=count, first_broken_line=number, problem=problem, head=prev)

    for number, line, complete in _lines(path):
        if not complete:
            return broken(number, "the last line is incomplete (a torn write)")
        try:
            record, digest = parse_line(line)
        except ValueError as err:
            return broken(number, str(err))
        if record["prev"] != prev:
            return broken(number, "the line does not chain to the line before (a line was removed, "
                                  "inserted or reordered)")
        if record.get("seq") != count + 1:
            return broken(number, f"sequence number {record.get('seq')!r} where {count + 1} was expected")
        prev = digest
        count += 1
    return VerifyResult(ok=True, records=count, head=prev)


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
