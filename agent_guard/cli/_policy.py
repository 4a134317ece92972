"""``agent-guard policy check POLICY [--plans DIR] [--strict]`` and ``agent-guard policy replay LOG --policy NEW``.

Policies tested like code: ``check`` lints a policy and its sample plans (exit 1 on errors, and on
warnings with ``--strict``); ``replay`` re-decides a decision log under a candidate policy and
prints the decisions that flip (exit 1 with ``--fail-on`` when such flips exist, 2 when the log
cannot be replayed). Every name that came from a model or a log is escaped before printing.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path
from typing import Any

from agent_guard._text import printable
from agent_guard.authorization._models import Policy
from agent_guard.cli._policy_check import check_policy
from agent_guard.cli._policy_replay import ReplayReport, replay_log
from agent_guard.exceptions import AuditLogError, ConfigError, MissingDependencyError
from agent_guard.telemetry import format_table

__all__ = ["register"]

_KINDS = ("allow-to-deny", "deny-to-allow")
_MAX_LISTED = 50


def _check(args: argparse.Namespace) -> int:
    try:
        findings = check_policy(args.policy, args.plans)
    except (ConfigError, MissingDependencyError) as err:
        print(f"agent-guard policy check: error: {printable(err)}", file=sys.stderr)
        return 1
    errors = [f for f in findings if f.level == "error"]
    warnings = [f for f in findings if f.level == "warning"]
    for finding in findings:
        print(f"{printable(finding.where)}: {finding.level}: {printable(finding.message)}")
    name = printable(args.policy)
    summary = f"{len(errors)} error(s), {len(warnings)} warning(s)"
    if errors or (warnings and args.strict):
        strict = " (--strict: warnings fail)" if not errors else ""
        print(f"{name}: FAILED, {summary}{strict}")
        return 1
    print(f"{name}: OK, {summary}")
    return 0


def _counts(report: ReplayReport, kind: str) -> list[dict[str, Any]]:
    counted = Counter((f.tool, f.reason or "") for f in report.flips if f.kind == kind)
    return [{"tool": tool, "reason": reason, "count": n} for (tool, reason), n in sorted(counted.items())]


def _print_report(report: ReplayReport, log: Path, policy: Policy) -> None:
    by_kind = {kind: [f for f in report.flips if f.kind == kind] for kind in _KINDS}
    print(f"replayed {report.decided} decision(s) of {report.tasks} task(s) from {printable(log)} "
          f"under policy {printable(policy.agent_id)} ({policy.policy_hash})")
    print(f"  allow -> deny: {len(by_kind['allow-to-deny'])}, deny -> allow: {len(by_kind['deny-to-allow'])}, "
          f"unchanged: {report.decided - len(report.flips)}, skipped: {sum(report.skipped.values())}")
    for why, n in sorted(report.skipped.items()):
        print(f"  skipped {n}: {printable(why)}")
    for kind, label in (("allow-to-deny", "the reason it is denied now"),
                        ("deny-to-allow", "the reason it was denied")):
        rows = _counts(report, kind)
        if not rows:
            continue
        print()
        print(f"{kind.replace('-to-', ' -> ')} by tool and reason ({label}):")
        for line in format_table(rows, ["tool", "reason", "count"]).splitlines():
            print(f"  {line}")
    if report.flips:
        print()
        print("flipped decisions:")
        rows = [{"line": f.line, "tool": f.tool, "flip": f.kind, "reason": f.reason or "", "task": f.task or "",
                 "call_id": f.call_id or ""} for f in report.flips[:_MAX_LISTED]]
        for line in format_table(rows, ["line", "tool", "flip", "reason", "task", "call_id"]).splitlines():
            print(f"  {line}")
        if len(report.flips) > _MAX_LISTED:
            print(f"  ... and {len(report.flips) - _MAX_LISTED} more")


def _replay(args: argparse.Namespace) -> int:
    try:
        policy = Policy.from_file(args.policy)
        report = replay_log(args.log, policy)
    except (ConfigError, AuditLogError, MissingDependencyError) as err:
        print(f"agent-guard policy replay: error: {printable(err)}", file=sys.stderr)
        return 2
    except OSError as err:
        print(f"agent-guard policy replay: error: {printable(args.log)}: {err.strerror}", file=sys.stderr)
        return 2
    _print_report(report, args.log, policy)
    failing = [kind for kind in (args.fail_on or []) if any(f.kind == kind for f in report.flips)]
    if failing:
        print(f"FAILED: decisions flip {', '.join(k.replace('-to-', ' -> ') for k in failing)} (--fail-on)")
        return 1
    return 0


def register(subparsers: Any) -> None:
    """Add the ``policy`` command (``check`` and ``replay``) to the CLI."""
    policy = subparsers.add_parser("policy", help="test a policy like code: lint it, replay a decision log under it")
    commands = policy.add_subparsers(dest="policy_command", metavar="ACTION")
    policy.set_defaults(func=lambda _args: _usage(policy))

    check = commands.add_parser(
        "check", help="lint a policy and sample plans; exit 1 on errors (and on warnings with --strict)"
    )
    check.add_argument("policy", type=Path, help="the policy (.yaml, .yml or .json)")
    check.add_argument("--plans", type=Path, metavar="DIR",
                       help="a directory of sample plans (.json/.yaml): each must fit the policy's ceiling")
    check.add_argument("--strict", action="store_true", help="fail (exit 1) on warnings too")
    check.set_defaults(func=_check)

    replay = commands.add_parser(
        "replay", help="re-decide a decision log (written with record_arguments=True) under a candidate policy"
    )
    replay.add_argument("log", type=Path, help="the decision log (JSON lines)")
    replay.add_argument("--policy", type=Path, required=True, metavar="NEW",
                        help="the candidate policy (.yaml, .yml or .json)")
    replay.add_argument("--fail-on", action="append", choices=_KINDS, metavar="{allow-to-deny,deny-to-allow}",
                        help="exit 1 when a decision flips this way (repeatable; for CI)")
    replay.set_defaults(func=_replay)


def _usage(parser: argparse.ArgumentParser) -> int:
    parser.print_help()
    return 2
