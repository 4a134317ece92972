"""Verification by JWKS across processes: publish an issuer's public keys, fetch them elsewhere.

- :func:`serve_jwks` publishes a key set at ``http://127.0.0.1:PORT/.well-known/jwks.json``
  (the ``agent-guard serve-jwks`` command runs the same server);
- :class:`RemoteKeySet` is the worker side: a verify-only key set loaded from that URL, cached,
  and refreshed (rate-limited) when a grant names an unknown ``kid``.
"""

from __future__ import annotations

from agent_guard.authorization._jwks_server import JWKS_PATH, JWKSServer, serve_jwks
from agent_guard.authorization._remote_keys import RemoteKeySet

__all__ = ["JWKS_PATH", "JWKSServer", "RemoteKeySet", "serve_jwks"]
