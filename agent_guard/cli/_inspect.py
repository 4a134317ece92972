"""``agent-guard inspect TOKEN [--jwks FILE]``: decode, verify and explain a grant."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from agent_guard._text import printable
from agent_guard.authorization._grant import DEFAULT_AUDIENCE, DEFAULT_ISSUER, verify_grant
from agent_guard.cli._explain import explain_claims, unverified_parts
from agent_guard.exceptions import ConfigError, GrantError

__all__ = ["register"]


def register(sub: Any) -> None:
    """Add the ``inspect`` subcommand."""
    p: argparse.ArgumentParser = sub.add_parser("inspect", help="decode, verify and explain a grant")
    p.add_argument("token", help="the grant (a JWT); '-' reads it from standard input")
    p.add_argument("--jwks", type=Path, help="a JWKS file to verify the signature against")
    p.add_argument("--audience", default=DEFAULT_AUDIENCE, help=f"expected aud (default {DEFAULT_AUDIENCE})")
    p.add_argument("--issuer", default=DEFAULT_ISSUER, help=f"expected iss (default {DEFAULT_ISSUER})")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print the explanation; exit 1 when verification was asked for and failed.

    Every printed line is escaped (:func:`agent_guard._text.printable`): the token is untrusted input.
    """
    token = sys.stdin.read().strip() if args.token == "-" else args.token.strip()
    try:
        header, claims = unverified_parts(token)
    except ValueError as err:
        print(f"agent-guard: error: token: {printable(err)}", file=sys.stderr)
        return 2
    if args.jwks is None:
        print("signature  NOT VERIFIED (pass --jwks FILE to verify); the lines below are unverified")
        status = 0
    else:
        try:
            jwks = args.jwks.read_text(encoding="utf-8")
        except OSError as err:
            raise ConfigError(f"--jwks: cannot read {str(args.jwks)!r}: {err.strerror}") from None
        try:
            verify_grant(token, jwks, audience=args.audience, issuer=args.issuer)
            print("signature  VERIFIED: signature, typ, iss, aud, lifetime and required claims all check out")
            status = 0
        except GrantError as err:
            print(f"signature  REJECTED ({printable(err.reason)}): {printable(err.detail)}; "
                  "the lines below are unverified")
            status = 1
    for line in explain_claims(header, claims):
        print(line)
    return status
