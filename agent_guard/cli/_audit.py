"""``agent-guard audit verify FILE`` and ``agent-guard audit show FILE``: read a decision log."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent_guard._text import printable
from agent_guard.audit._chain import read_log, verify_log
from agent_guard.audit._checkpoint import parse_head
from agent_guard.authorization._keys import KeySet
from agent_guard.exceptions import AuditLogError, ConfigError
from agent_guard.telemetry import format_table

__all__ = ["register"]

_COLUMNS = ["line", "time", "event", "task", "agent", "user", "tool", "outcome", "reason", "step", "call_id"]


def _keys(args: argparse.Namespace) -> KeySet | None:
    """Check the options (a ConfigError names the option at fault) and load the JWKS."""
    if args.expect_head is not None:
        parse_head(args.expect_head, "--expect-head")
    if args.min_records is not None and args.min_records < 0:
        raise ConfigError(f"--min-records: {args.min_records} must be 0 or more")
    if args.require_final_checkpoint and args.jwks is None:
        raise ConfigError("--require-final-checkpoint: needs --jwks JWKS to check the checkpoints with")
    if args.jwks is None:
        return None
    try:
        return KeySet.from_jwks(args.jwks.read_text(encoding="utf-8"))
    except OSError as err:
        raise ConfigError(f"--jwks: cannot read {str(args.jwks)!r}: {err.strerror}") from None
    except ConfigError as err:
        raise ConfigError(f"--jwks {str(args.jwks)!r}: {err}") from None


def _verify(args: argparse.Namespace) -> int:
    result = verify_log(args.file, jwks=_keys(args), expect_head=args.expect_head, min_records=args.min_records,
                        require_final_checkpoint=args.require_final_checkpoint)
    name = printable(args.file)
    for warning in result.warnings:
        print(f"{name}: warning: {printable(warning)}", file=sys.stderr)
    head = f"{result.records}:{result.head}"
    if result.ok:
        signed = f", {result.checkpoints} signed checkpoint(s) verified" if args.jwks is not None else ""
        print(f"{name}: OK, {result.records} records, chain intact{signed} (head {head})")
        return 0
    if result.first_broken_line is not None:
        print(f"{name}: BROKEN at line {result.first_broken_line}: {printable(result.problem)} "
              f"({result.records} good records before it)", file=sys.stderr)
    else:
        print(f"{name}: FAILED: {printable(result.problem)} ({result.records} records, head {head})", file=sys.stderr)
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
    print(format_table(rows, _COLUMNS))  # format_table escapes control characters in every cell
    return 0


def register(subparsers: Any) -> None:
    """Add the ``audit`` command (``verify`` and ``show``) to the CLI."""
    audit = subparsers.add_parser("audit", help="read and verify a decision log (agent_guard.audit.DecisionLog)")
    commands = audit.add_subparsers(dest="audit_command", metavar="ACTION")
    audit.set_defaults(func=lambda _args: _usage(audit))

    verify = commands.add_parser(
        "verify", help="check the log's hash chain (and signed checkpoints, head, length); exit 1 when it fails"
    )
    verify.add_argument("file", help="the decision log (JSON lines)")
    verify.add_argument("--jwks", type=Path, metavar="JWKS",
                        help="a JWKS file (e.g. from `agent-guard keys`): check every signed checkpoint")
    verify.add_argument("--require-final-checkpoint", action="store_true",
                        help="with --jwks: fail (not just warn) when records follow the last checkpoint")
    verify.add_argument("--expect-head", metavar="SEQ:HASH",
                        help="the head recorded elsewhere (DecisionLog.head): fail if the log does not reach it")
    verify.add_argument("--min-records", type=int, metavar="N", help="fail if the log holds fewer than N records")
    verify.set_defaults(func=_guarded(_verify))

    show = commands.add_parser("show", help="print the log as a table")
    show.add_argument("file", help="the decision log (JSON lines)")
    show.add_argument("--task", help="only this task id (a prefix is enough)")
    show.add_argument("--outcome", choices=["allow", "deny", "would_deny"],
                      help="only allowed, denied or (shadow mode) would-deny calls")
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
        except (AuditLogError, ConfigError) as err:
            print(f"agent-guard audit: error: {printable(err)}", file=sys.stderr)
            return 2
        except OSError as err:
            print(f"agent-guard audit: error: {printable(args.file)}: {err.strerror}", file=sys.stderr)
            return 2
        return code

    return run
