"""``agent-guard keys``: generate a key set and print its public JWKS."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

from agent_guard.authorization._keys import ALGORITHMS, KeySet
from agent_guard.exceptions import ConfigError

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``keys`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser("keys", help="generate a signing key set and print its JWKS")
    p.add_argument("--alg", choices=[a for a in ALGORITHMS if a != "HS256"], default="EdDSA")
    p.add_argument("--kid", help="key id (default: generated)")
    p.add_argument(
        "--private-out", type=Path, help="also write the private key set (JWKS with private members, mode 0600)"
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Generate the keys, optionally write the private set, print the public JWKS."""
    keys = KeySet.generate(args.alg, kid=args.kid)
    if args.private_out is not None:
        try:
            fd = os.open(args.private_out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            raise ConfigError(f"--private-out: {str(args.private_out)!r} exists; choose a new file") from None
        except OSError as err:
            raise ConfigError(f"--private-out: cannot create {str(args.private_out)!r}: {err.strerror}") from None
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(keys.to_private_jwks(), f, indent=2)
    print(json.dumps(keys.jwks(), indent=2))
    return 0
