"""The durable audit trail: a hash-chained decision log that never drops a record.

OpenTelemetry spans are best-effort telemetry (a batch processor drops spans when its queue is
full); the decision log is the record to read after an incident::

    from agent_guard.audit import DecisionLog, verify_log

    with DecisionLog("audit.jsonl") as log:
        guard = Guard(policy, decision_log=log)
        ...
    assert verify_log("audit.jsonl").ok

On the command line: ``agent-guard audit verify audit.jsonl`` and
``agent-guard audit show audit.jsonl --outcome deny``.
"""

from __future__ import annotations

from agent_guard.audit._chain import (
    FORMAT_VERSION,
    GENESIS_HASH,
    AuditLogError,
    VerifyResult,
    read_log,
    verify_log,
)
from agent_guard.audit._log import DecisionLog, FsyncPolicy

__all__ = [
    "FORMAT_VERSION",
    "GENESIS_HASH",
    "AuditLogError",
    "DecisionLog",
    "FsyncPolicy",
    "VerifyResult",
    "read_log",
    "verify_log",
]
