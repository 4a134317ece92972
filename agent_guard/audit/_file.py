"""Reading an existing decision log at open: its torn tail, head, first record and last checkpoint.

Plain functions over an open file descriptor and its size (``os.pread``, so the write offset of
the ``O_APPEND`` descriptor is never disturbed).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Final

from agent_guard.audit._chain import GENESIS_HASH, parse_line
from agent_guard.exceptions import AuditLogError

__all__ = ["cut_torn_tail", "first_hash", "last_checkpoint", "read_head"]

_CHUNK: Final = 65536
_CHECKPOINT_MARK: Final = b'"event":"checkpoint"'
_START_OVER: Final = "run `agent-guard audit verify` and start a new log"


def _tail_from(fd: int, end: int) -> int:
    """Offset just after the last newline before ``end`` (0 when there is none)."""
    pos = end
    while pos > 0:
        start = max(0, pos - _CHUNK)
        cut = os.pread(fd, pos - start, start).rfind(b"\n")
        if cut >= 0:
            return start + cut + 1
        pos = start
    return 0


def cut_torn_tail(fd: int, size: int) -> int:
    """Cut an unterminated last line (a crash mid-write) off the file; returns the bytes dropped."""
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    keep = _tail_from(fd, size)
    os.ftruncate(fd, keep)
    os.fsync(fd)
    return size - keep


def read_head(fd: int, size: int, path: str) -> tuple[str, int]:
    """(hash, seq) of the last record; ``(GENESIS_HASH, 0)`` for an empty file."""
    if size == 0:
        return GENESIS_HASH, 0
    start = _tail_from(fd, size - 1)
    try:
        record, digest = parse_line(os.pread(fd, size - 1 - start, start))
    except ValueError as err:
        raise AuditLogError(f"{path}: the last line is not a valid decision-log record ({err}); {_START_OVER}") from None
    seq = record.get("seq")
    if not isinstance(seq, int):
        raise AuditLogError(f"{path}: the last record has no sequence number")
    return digest, seq


def _lines_back(fd: int, size: int) -> Iterator[bytes]:
    """The file's non-empty lines (without newlines), last first."""
    pos, rest = size, b""
    while pos > 0:
        start = max(0, pos - _CHUNK)
        lines = (os.pread(fd, pos - start, start) + rest).split(b"\n")
        pos, rest = start, lines[0]
        yield from (line for line in reversed(lines[1:]) if line)
    if rest:
        yield rest


def last_checkpoint(fd: int, size: int) -> int:
    """Sequence number of the last checkpoint record (0 when there is none); reads back to it."""
    for line in _lines_back(fd, size):
        if _CHECKPOINT_MARK in line:
            try:
                record, _ = parse_line(line)
            except ValueError:
                continue
            if record.get("event") == "checkpoint" and isinstance(record.get("seq"), int):
                return int(record["seq"])
    return 0


def first_hash(fd: int, size: int, path: str) -> str:
    """The hash of the first record: the log id its checkpoints carry."""
    pos, line = 0, b""
    while pos < size:
        chunk = os.pread(fd, min(_CHUNK, size - pos), pos)
        cut = chunk.find(b"\n")
        if cut >= 0 or not chunk:
            line += chunk[:cut] if cut >= 0 else chunk
            break
        line, pos = line + chunk, pos + len(chunk)
    try:
        return parse_line(line)[1]
    except ValueError as err:
        raise AuditLogError(f"{path}: the first line is not a valid decision-log record ({err}); {_START_OVER}") from None
