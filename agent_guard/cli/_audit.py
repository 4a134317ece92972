"""``agent-guard audit verify FILE`` and ``agent-guard audit show FILE``: read a decision log."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent_guard.audit._chain import AuditLogError, read_log, verify_log
from agent_guard.telemetry import format_table

__all__ = ["register"]

_COLUMNS = ["line", "time", "event", "task", "agent", "user", "tool", "outcome", "reason", "step", "call_id"]


def _verify(args: argparse.Namespace) -> int:
    result = verify_log(args.file)
    if result.ok:
        print(f"{args.file}: OK, {result.records} records, chain intact (head {result.head})")
        return 0
    print(
        f"{args.file}: BROKEN at line {result.first_broken_line}: {result.problem} "
        f"({result.records} good records before it)",
        file=sys.stderr,
    )
    return 1


def _cell(record: dict[str, Any], column: str) -> Any:
    value = record.get(column)
    if value is None:
        return ""
    if column == "time" and isinstance(value, str):
        return value.replace("T", " ").rstrip("Z")[:23]
    return value


def _show(args: argparse.Namespace) -> int:
    rows = []
    for record in read_log(args.file):
        if args.task and not str(record.get("task") or "").startswith(args.task):
            continue
        if args.outcome and record.get("outcome") != args.outcome:
            continue
        if args.tool and record.get("tool") != args.tool:
            continue
        if args.decisions_only and record.get("event") != "decision":
            continue
        rows.append({c: _cell(record, c) for c in _COLUMNS})
    if args.limit is not None:
        rows = rows[-args.limit:] if args.limit > 0 else []
    print(format_table(rows, _COLUMNS))
    return 0


def register(subparsers: Any) -> None:
    """Add the ``audit`` command (``verify`` and ``show``) to the CLI."""
    audit = subparsers.add_parser("audit", help="read and verify a decision log (agent_guard.audit.DecisionLog)")
    commands = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    audit.set_defaults(func=lambda _args: _usage(audit))

    verify = commands.add_parser("verify", help="check the log's hash chain; exit 1 naming the first broken line")
    verify.add_argument("file", help="the decision log (JSON lines)")
    verify.set_defaults(func=_guarded(_verify))

    show = commands.add_parser("show", help="print the log as a table")
    show.add_argument("file", help="the decision log (JSON lines)")
    show.add_argument("--task", help="only this task id (a prefix is enough)")
    show.add_argument("--outcome", choices=["allow", "deny"], help="only allowed or denied calls")
    show.add_argument("--tool", help="only calls to this tool")
    show.add_argument("--decisions-only", action="store_true", help="hide grant issued/revoked records")
    show.add_argument("--limit", type=int, help="only the last N matching records")
    show.set_defaults(func=_guarded(_show))


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2


def _guarded(func: Any) -> Any:
    def run(args: argparse.Namespace) -> int:
        try:
            code: int = func(args)
        except AuditLogError as err:
            print(f"agent-guard audit: error: {err}", file=sys.stderr)
            return 2
        except OSError as err:
            print(f"agent-guard audit: error: {args.file}: {err.strerror}", file=sys.stderr)
            return 2
        return code

    return run
