"""The ``agent-guard`` command line.

Each subcommand lives in a private module of this package that exposes
``register(subparsers) -> None`` and sets ``func`` on its parser (``func(args) -> int``); the
list below is the whole command set (static, so nothing is discovered at run time).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from agent_guard._version import __version__
from agent_guard.cli import _audit, _demo, _inspect, _keys, _policy, _serve_jwks
from agent_guard.exceptions import AgentGuardError

__all__ = ["build_parser", "main"]

_SUBCOMMANDS = (_audit, _demo, _inspect, _keys, _policy, _serve_jwks)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="agent-guard", description="Task-scoped, expiring authorization for AI agents' tool calls."
    )
    parser.add_argument("--version", action="version", version=f"agent-guard {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for command in _SUBCOMMANDS:
        command.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return 2
    try:
        code: int = func(args)
    except AgentGuardError as err:
        print(f"agent-guard: error: {err}", file=sys.stderr)
        return 1
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
