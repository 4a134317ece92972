"""``agent-guard serve-jwks``: publish an issuer's public keys over HTTP for remote verifiers."""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import sys
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.serialization import load_pem_private_key, load_pem_public_key

from agent_guard.authorization._jwks_server import serve_jwks
from agent_guard.authorization._keys import KeySet, SigningKey
from agent_guard.exceptions import ConfigError

__all__ = ["load_key_file", "register"]


def _thumbprint(jwk: Mapping[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (base64url SHA-256 of the required members)."""
    members = ("crv", "kty", "x") if jwk["kty"] == "OKP" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    return base64.urlsafe_b64encode(hashlib.sha256(canonical.encode()).digest()).rstrip(b"=").decode()


def _from_pem(data: bytes, kid: str | None) -> KeySet:
    try:
        key: Any = load_pem_private_key(data, password=None).public_key()
    except (ValueError, TypeError):
        try:
            key = load_pem_public_key(data)
        except ValueError:
            raise ConfigError("--keys: not a JWKS and not an unencrypted PEM key") from None
    if isinstance(key, ed25519.Ed25519PublicKey):
        alg = "EdDSA"
    elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(key.curve, ec.SECP256R1):
        alg = "ES256"
    else:
        raise ConfigError("--keys: only Ed25519 (EdDSA) and P-256 (ES256) keys can be published")
    jwk = SigningKey("tmp", alg, None, key).public_jwk()
    assert jwk is not None
    return KeySet([SigningKey(kid or _thumbprint(jwk), alg, None, key)])


def load_key_file(path: str, *, kid: str | None = None, private: bool = True) -> KeySet:
    """Keys from ``path``, of which only the public halves are ever served.

    ``private=True`` (``--keys``): a private JWKS as written by ``agent-guard keys --private-out``
    (:meth:`KeySet.to_private_jwks`) or a PEM key, whose ``kid`` is ``kid`` or its RFC 7638
    thumbprint. ``private=False`` (``--jwks``): a public JWKS.
    """
    with open(path, "rb") as fh:
        data = fh.read()
    if not data.lstrip().startswith(b"{"):
        if not private:
            raise ConfigError("--jwks: expected a JSON JWKS {\"keys\": [...]}")
        return _from_pem(data, kid)
    text = data.decode()
    return KeySet.from_private_jwks(text) if private else KeySet.from_jwks(text)


def _file_source(path: str, kid: str | None, private: bool) -> Callable[[], Mapping[str, Any]]:
    """Re-read ``path`` when it changes, so a rotated key file is served without a restart."""
    cache: dict[str, Any] = {"mtime": None, "jwks": None}

    def current() -> Mapping[str, Any]:
        mtime = os.stat(path).st_mtime_ns
        if mtime != cache["mtime"]:
            cache["jwks"] = load_key_file(path, kid=kid, private=private).jwks()
            cache["mtime"] = mtime
        jwks: Mapping[str, Any] = cache["jwks"]
        return jwks

    current()  # fail at start on a bad file
    return current


def _run(args: argparse.Namespace) -> int:
    source = _file_source(args.keys or args.jwks, args.kid, args.keys is not None)
    server = serve_jwks(source, args.host, args.port, start=False, verbose=not args.quiet)
    print(f"agent-guard: serving {len(source()['keys'])} public key(s) at {server.url}", flush=True)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print("agent-guard: warning: not bound to loopback; put TLS in front of this endpoint", file=sys.stderr)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def register(subparsers: Any) -> None:
    """Add the ``serve-jwks`` subcommand."""
    parser = subparsers.add_parser(
        "serve-jwks",
        help="serve public keys at /.well-known/jwks.json",
        description="Publish the public half of a key file as a JWKS for workers that verify grants "
        "(GET /.well-known/jwks.json). Private members are never served.",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--keys", metavar="FILE",
        help="a private key set (agent-guard keys --private-out) or a PEM key; only public halves are served",
    )
    source.add_argument("--jwks", metavar="FILE", help="a public JWKS file")
    parser.add_argument("--kid", help="kid for a PEM key (default: its RFC 7638 thumbprint)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8765, help="port (default 8765; 0 picks a free one)")
    parser.add_argument("--quiet", action="store_true", help="do not log requests")
    parser.set_defaults(func=_run)
