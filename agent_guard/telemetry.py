"""Reading agent_guard's spans back: rows and a plain-text audit table.

These helpers take finished spans from the OpenTelemetry SDK (e.g. from an in-memory exporter,
see :mod:`agent_guard.testing`) and turn the ``execute_tool`` decisions into rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Protocol

from agent_guard import semconv as sc

__all__ = ["FinishedSpan", "decision_rows", "format_table"]


class FinishedSpan(Protocol):
    """The part of an SDK ``ReadableSpan`` these helpers read."""

    @property
    def name(self) -> str: ...
    @property
    def attributes(self) -> Any: ...
    @property
    def start_time(self) -> int | None: ...


def decision_rows(spans: Iterable[FinishedSpan]) -> list[dict[str, Any]]:
    """One row per ``execute_tool`` decision span, in start order.

    Keys: ``tool``, ``outcome``, ``reason``, ``step``, ``call_id``, ``task``, ``grant``, ``agent``, ``user``.
    """
    rows = []
    for span in sorted(spans, key=lambda s: s.start_time or 0):
        attrs = dict(span.attributes or {})
        if attrs.get(sc.OPERATION_NAME) != "execute_tool":
            continue
        rows.append(
            {
                "tool": attrs.get(sc.TOOL_NAME, ""),
                "outcome": attrs.get(sc.DECISION_OUTCOME, ""),
                "reason": attrs.get(sc.DECISION_REASON, ""),
                "step": attrs.get(sc.PLAN_STEP, ""),
                "call_id": attrs.get(sc.TOOL_CALL_ID, ""),
                "task": attrs.get(sc.TASK_ID, ""),
                "grant": attrs.get(sc.GRANT_ID, ""),
                "agent": attrs.get(sc.AGENT_ID, ""),
                "user": attrs.get(sc.ENDUSER_ID, ""),
            }
        )
    return rows


def format_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] | None = None) -> str:
    """Render rows as an aligned plain-text table (``columns`` picks and orders the keys)."""
    if not rows:
        return "(no decisions)"
    cols = list(columns or rows[0].keys())
    cells = [[str(row.get(c, "")) for c in cols] for row in rows]
    widths = [max(len(c), *(len(r[i]) for r in cells)) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=False))
    rule = "  ".join("-" * w for w in widths)
    body = ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=False)) for r in cells]
    return "\n".join([line, rule, *body])
