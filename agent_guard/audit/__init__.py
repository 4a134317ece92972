"""The durable audit trail: a hash-chained, signed decision log that never drops a record, and metrics.

OpenTelemetry spans are best-effort telemetry (a batch processor drops spans when its queue is
full); the decision log is the record to read after an incident::

    from agent_guard.audit import DecisionLog, verify_log

    keys = KeySet.generate()
    with DecisionLog("audit.jsonl", signing_keys=keys) as log:
        guard = Guard(policy, keys=keys, decision_log=log)
        ...
        head = log.head                       # keep str(head) somewhere the agent's host cannot write
    assert verify_log("audit.jsonl", jwks=keys.jwks(), expect_head=str(head)).ok

On the command line: ``agent-guard audit verify audit.jsonl --jwks jwks.json --expect-head SEQ:HASH``
and ``agent-guard audit show audit.jsonl --outcome deny``. :class:`DecisionMetrics` counts
decisions and grants as OpenTelemetry metrics (what alerts are built on).
"""

from __future__ import annotations

from agent_guard.audit._chain import (
    FORMAT_VERSION,
    GENESIS_HASH,
    VerifyResult,
    read_log,
    verify_log,
)
from agent_guard.audit._checkpoint import CHECKPOINT_TYP, LogHead
from agent_guard.audit._log import DecisionLog, FsyncPolicy
from agent_guard.audit._metrics import DecisionMetrics
from agent_guard.exceptions import AuditLogError

__all__ = [
    "CHECKPOINT_TYP",
    "FORMAT_VERSION",
    "GENESIS_HASH",
    "AuditLogError",
    "DecisionLog",
    "DecisionMetrics",
    "FsyncPolicy",
    "LogHead",
    "VerifyResult",
    "read_log",
    "verify_log",
]
