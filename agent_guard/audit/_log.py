"""The durable decision log: one hash-chained JSON line per decision and grant event.

Writing: each record is appended with a single ``os.write`` on an ``O_APPEND`` descriptor while a
lock is held, before the guarded call goes on, so no record is ever dropped (a caller waits for
the lock instead) and a crash of the process loses at most the record being written. ``fsync``
controls durability against a power or kernel failure (see :class:`DecisionLog`). With
``signing_keys`` the log also appends signed checkpoints (:mod:`agent_guard.audit._checkpoint`).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, Final, Literal

from opentelemetry import trace

from agent_guard._decision import outcome_of
from agent_guard.audit._chain import FORMAT_VERSION, encode_record
from agent_guard.audit._checkpoint import LogHead, check_signing_keys, sign_checkpoint
from agent_guard.audit._file import cut_torn_tail, first_hash, last_checkpoint, read_head
from agent_guard.exceptions import AuditLogError, ConfigError

try:  # POSIX: refuse a second writer on the same file (the chain would fork)
    import fcntl
except ImportError:  # pragma: no cover - Windows
    fcntl = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from agent_guard.audit._record import TaskRecord
    from agent_guard.authorization._keys import KeySet
    from agent_guard.authorization._models import Decision

__all__ = ["DecisionLog", "FsyncPolicy"]

FsyncPolicy = Literal["always", "batch", "never"]
"""When the log calls ``os.fsync``: every record, every ``fsync_every`` records and at task end, or on close."""

_O_FLAGS: Final = os.O_RDWR | os.O_CREAT | os.O_APPEND | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)


def _rfc3339(ts: float) -> str:
    whole = int(ts)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(whole)) + f".{int((ts - whole) * 1e6):06d}Z"


def _who(task: TaskRecord | None) -> dict[str, Any]:
    if task is None:
        return {"agent": None, "user": None}
    who: dict[str, Any] = {"agent": task.identity.agent_id, "user": task.identity.user_id}
    if task.identity.tenant is not None:
        who["tenant"] = task.identity.tenant
    return who


def _trace_id(task: TaskRecord | None) -> str | None:
    """The trace of the current span, else of the task's span (hex), else ``None``."""
    context = trace.get_current_span().get_span_context()
    if not context.is_valid and task is not None and task.span is not None:
        context = task.span.get_span_context()
    return format(context.trace_id, "032x") if context.is_valid else None


class DecisionLog:
    """An append-only, hash-chained JSON-lines file of every decision and grant issued/revoked.

    Pass it as ``Guard(policy, decision_log=DecisionLog("audit.jsonl"))``. Each line holds the time,
    task id, grant id, agent, user, tool, outcome (``allow``, ``deny``, or ``would_deny`` in shadow
    mode), reason, plan step, call id and trace id, plus the argument values (and each task's plan,
    on its ``grant_issued`` record) only when the guard has ``record_arguments=True``; never a token. Each line
    carries the hash of the line before (:func:`agent_guard.audit.verify_log` checks the chain).

    Durability (``fsync``): every record is written to the kernel before the call proceeds, so a
    process crash loses at most the record being written. Against power loss: ``"always"`` fsyncs
    every record (group commit: concurrent writers share one fsync); ``"batch"`` (default) fsyncs
    every ``fsync_every`` records, at every grant revocation (task end) and on close, so at most
    the records since then can be lost; ``"never"`` leaves it to the OS until :meth:`close`.

    Signed checkpoints (``signing_keys``, e.g. ``signing_keys=guard.keys``; EdDSA or ES256): after
    every ``checkpoint_every`` records, at every grant revocation (task end) and on close, a
    ``checkpoint`` record signed with the key set's current key commits to the sequence number
    and hash of the record before it, so ``agent-guard audit verify FILE --jwks JWKS`` detects a
    log that was edited and re-chained. Opening a log with keys reads back to its last checkpoint;
    records found after it are noted in a ``log_reopened`` record. :attr:`head` is where the log
    ends now: keep it elsewhere (``--expect-head``) to detect a log cut short or emptied.

    ``clock`` (default ``time.time``) stamps each record's ``time`` (UTC, microseconds).
    Thread-safe; one writer per file (a second open of the same file raises :class:`AuditLogError`).
    Opening an existing log continues its chain; a torn last line (a crash mid-write) is cut off
    and a ``log_recovered`` record notes how many bytes were dropped. Write errors raise
    :class:`AuditLogError`, so a call that cannot be audited does not run (fail closed).
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        fsync: FsyncPolicy = "batch",
        fsync_every: int = 256,
        clock: Callable[[], float] | None = None,
        signing_keys: KeySet | None = None,
        checkpoint_every: int = 100,
    ) -> None:
        if fsync not in ("always", "batch", "never"):
            raise ConfigError(f"fsync: {fsync!r} is not one of 'always', 'batch', 'never'")
        if fsync_every < 1:
            raise ConfigError(f"fsync_every: {fsync_every} must be at least 1")
        if type(checkpoint_every) is not int or checkpoint_every < 1:
            raise ConfigError(f"checkpoint_every: {checkpoint_every!r} must be a whole number of records, at least 1")
        if signing_keys is not None:
            check_signing_keys(signing_keys)
        self.signing_keys = signing_keys
        self.checkpoint_every = checkpoint_every
        self.path = os.fspath(path)
        self.fsync: FsyncPolicy = fsync
        self.fsync_every = fsync_every
        self.clock: Callable[[], float] = clock or time.time
        self._lock = threading.Lock()
        self._sync_lock = threading.Lock()
        try:
            self._fd = os.open(self.path, _O_FLAGS, 0o600)
        except OSError as err:
            raise AuditLogError(f"cannot open audit log {self.path!r}: {err.strerror}") from err
        try:
            if fcntl is not None:
                try:
                    fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except OSError:
                    raise AuditLogError(f"audit log {self.path!r} is already open for writing elsewhere") from None
            size = os.fstat(self._fd).st_size
            dropped = cut_torn_tail(self._fd, size)
            self._size = size - dropped
            self._prev, self._seq = read_head(self._fd, self._size, self.path)
            self._head = LogHead(self._seq, self._prev)
            self._synced = self._seq
            self._log_id = first_hash(self._fd, self._size, self.path) if signing_keys is not None and self._seq else None
            self._checkpointed = last_checkpoint(self._fd, self._size) if signing_keys is not None else self._seq
            unsigned = self._seq - self._checkpointed
            if dropped:
                self._append({"event": "log_recovered", "dropped_bytes": dropped}, sync=True)
            if unsigned:
                self._append({"event": "log_reopened", "unsigned_records": unsigned}, sync=True)
        except BaseException:
            os.close(self._fd)
            self._fd = -1
            raise

    # -- writing ------------------------------------------------------------------------------
    def _append(self, fields: dict[str, Any], *, sync: bool = False, checkpoint: bool = False) -> None:
        with self._lock:
            if self._fd < 0:
                raise AuditLogError(f"audit log {self.path!r} is closed")
            self._write(fields)
            if self.signing_keys is not None and (checkpoint or self._seq - self._checkpointed >= self.checkpoint_every):
                self._write_checkpoint()
            seq = self._seq
            pending = seq - self._synced
        if sync or self.fsync == "always" or (self.fsync == "batch" and pending >= self.fsync_every):
            self._sync_to(seq)

    def _write(self, fields: dict[str, Any]) -> None:
        """Append one record (the lock is held and the file open)."""
        seq = self._seq + 1
        record = {"v": FORMAT_VERSION, "seq": seq, "time": _rfc3339(self.clock()), **fields}
        line, digest = encode_record(record, self._prev)
        try:
            written = os.write(self._fd, line)
            while written < len(line):  # a short write on a regular file: append the rest
                written += os.write(self._fd, line[written:])
        except OSError as err:
            with contextlib.suppress(OSError):  # do not leave a torn line behind the chain
                os.ftruncate(self._fd, self._size)
            raise AuditLogError(f"cannot write audit log {self.path!r}: {err.strerror}") from err
        self._size += len(line)
        self._prev = digest
        self._seq = seq
        self._head = LogHead(seq, digest)
        if seq == 1:
            self._log_id = digest

    def _write_checkpoint(self) -> None:
        """Append a checkpoint signed over the current head (the lock is held, keys are set)."""
        assert self.signing_keys is not None and self._log_id is not None
        try:
            token, kid = sign_checkpoint(self.signing_keys, log=self._log_id, seq=self._seq, head=self._prev,
                                         issued_at=self.clock())
        except Exception as err:  # a key rotated to HS256, a crypto failure: the record stays unsigned
            raise AuditLogError(f"cannot sign a checkpoint of audit log {self.path!r}: {err}") from err
        self._write({"event": "checkpoint", "kid": kid, "jws": token})
        self._checkpointed = self._seq

    def _sync_to(self, seq: int) -> None:
        with self._sync_lock:
            if self._synced >= seq or self._fd < 0:
                return  # another writer's fsync already covered this record
            target = self._seq
            try:
                os.fsync(self._fd)
            except OSError as err:
                raise AuditLogError(f"cannot fsync audit log {self.path!r}: {err.strerror}") from err
            self._synced = target

    def decision(
        self, decision: Decision, *, task: TaskRecord | None, call_id: str | None, arguments: Mapping[str, Any] | None
    ) -> None:
        """Append one decision (the :class:`agent_guard.AuditSink` method the guard calls)."""
        fields: dict[str, Any] = {
            "event": "decision",
            "task": decision.task_id,
            "grant": decision.grant_id,
            **_who(task),
            "tool": decision.tool,
            "outcome": outcome_of(decision),
            "reason": decision.reason,
            "step": decision.step,
            "call_id": call_id,
        }
        if decision.argument is not None:
            fields["argument"] = decision.argument  # the argument's name, never its value
        if decision.limit is not None:
            fields["limit"] = decision.limit  # the limit's name (tool, kind, scope, window), never a total
        trace_id = _trace_id(task)
        if trace_id is not None:
            fields["trace_id"] = trace_id
        if arguments is not None:  # only when the guard has record_arguments=True
            fields["arguments"] = dict(arguments)
        self._append(fields)

    def _grant_fields(self, event: str, task: TaskRecord) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "event": event,
            "task": task.id,
            "grant": task.grant_id,
            **_who(task),
            "tools": list(task.tools),
            "expires_at": _rfc3339(task.expires_at),
        }
        trace_id = _trace_id(task)
        if trace_id is not None:
            fields["trace_id"] = trace_id
        return fields

    def grant_issued(self, task: TaskRecord, *, context: Mapping[str, Any] | None = None) -> None:
        """Append a ``grant_issued`` record (never the token itself).

        ``context`` is passed by a guard with ``record_arguments=True``: the task's ``plan`` (JSON)
        and, for a delegated or replanned grant, ``delegated_from`` / ``replaces`` (the grant id it
        comes from). With the identity the record always holds (agent, user, tenant), it lets
        ``agent-guard policy replay`` open the same tasks again under another policy.
        """
        fields = self._grant_fields("grant_issued", task)
        if context is not None:
            for key in ("plan", "delegated_from", "replaces"):
                if context.get(key) is not None:
                    fields[key] = context[key]
        self._append(fields)

    def grant_revoked(self, task: TaskRecord, reason: str) -> None:
        """Append a ``grant_revoked`` record with the reason, then a checkpoint (with ``signing_keys``).

        With ``fsync="batch"`` also fsyncs: a task's records are durable and signed when it ends.
        """
        self._append({**self._grant_fields("grant_revoked", task), "reason": reason}, sync=self.fsync == "batch",
                     checkpoint=True)

    # -- state and lifetime -------------------------------------------------------------------
    @property
    def records(self) -> int:
        """How many records the log holds (its last sequence number)."""
        return self._seq

    @property
    def head(self) -> LogHead:
        """Where the log ends now: ``(seq, hash)`` of its last record (``(0, GENESIS_HASH)`` when empty).

        ``str(log.head)`` is ``"SEQ:HASH"``; keep it outside the agent's host (the guard records
        it on the task span as ``agent_guard.audit.head``) and check a copy of the log with
        ``agent-guard audit verify FILE --expect-head SEQ:HASH``.
        """
        return self._head

    def checkpoint(self) -> None:
        """Write a signed checkpoint now (nothing when the log has no ``signing_keys`` or no new record)."""
        with self._lock:
            if self._fd < 0:
                raise AuditLogError(f"audit log {self.path!r} is closed")
            if self.signing_keys is not None and self._seq > self._checkpointed:
                self._write_checkpoint()

    @property
    def closed(self) -> bool:
        """True after :meth:`close`."""
        return self._fd < 0

    def flush(self) -> None:
        """Force every record written so far to stable storage (``os.fsync``)."""
        self._sync_to(self._seq)

    def close(self) -> None:
        """Write a final checkpoint (with ``signing_keys``), fsync and close; later records raise. Idempotent."""
        with self._sync_lock, self._lock:
            if self._fd < 0:
                return
            try:
                if self.signing_keys is not None and self._seq > self._checkpointed:
                    self._write_checkpoint()
                os.fsync(self._fd)
            except OSError as err:
                raise AuditLogError(f"cannot fsync audit log {self.path!r}: {err.strerror}") from err
            finally:
                os.close(self._fd)  # also releases the writer lock
                self._fd = -1

    def __enter__(self) -> DecisionLog:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"fsync={self.fsync!r}"
        return f"<DecisionLog {self.path!r} records={self._seq} {state}>"
