"""The ``agent-guard`` command line.

Subcommands live in private modules named ``_cli_*.py``; each exposes
``register(subparsers) -> None`` and sets ``func`` on its parser (``func(args) -> int``).
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys
from collections.abc import Sequence

import agent_guard
from agent_guard.exceptions import AgentGuardError

__all__ = ["build_parser", "main"]


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every ``_cli_*`` subcommand registered."""
    parser = argparse.ArgumentParser(
        prog="agent-guard", description="Task-scoped, expiring authorization for AI agents' tool calls."
    )
    parser.add_argument("--version", action="version", version=f"agent-guard {agent_guard.__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(agent_guard.__path__), key=lambda m: m.name):
        if info.name.startswith("_cli_"):
            importlib.import_module(f"agent_guard.{info.name}").register(sub)
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
