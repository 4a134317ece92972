"""A small JWKS HTTP endpoint (stdlib ``http.server``): ``GET /.well-known/jwks.json``.

Only public keys are ever served: whatever the source holds goes through
:meth:`KeySet.from_jwks` / :meth:`KeySet.jwks`, which drop private members and HMAC secrets.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final

from agent_guard.authorization._keys import KeySet
from agent_guard.exceptions import ConfigError

__all__ = ["JWKS_PATH", "JWKSServer", "serve_jwks"]

JWKS_PATH: Final = "/.well-known/jwks.json"


class _Handler(BaseHTTPRequestHandler):
    server: JWKSServer
    server_version = "agent-guard-jwks"
    sys_version = ""

    def do_GET(self) -> None:
        path = self.path.split("?", 1)[0]
        with self.server._count_lock:
            self.server.requests += 1
        if path != JWKS_PATH:
            self._send(404, {"error": "not_found", "path": JWKS_PATH})
            return
        try:
            body = self.server.current_jwks()
        except Exception as err:  # a broken key file must not take the server down
            self._send(503, {"error": "jwks_unavailable", "detail": type(err).__name__})
            return
        self._send(200, body, cache=True)

    def _send(self, status: int, body: Mapping[str, Any], *, cache: bool = False) -> None:
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/jwk-set+json" if status == 200 else "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Cache-Control", f"public, max-age={self.server.max_age_s}" if cache else "no-store")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        if self.server.verbose:
            super().log_message(format, *args)


class JWKSServer(ThreadingHTTPServer):
    """An HTTP server publishing one JWKS at :data:`JWKS_PATH`.

    ``url`` is the JWKS address; ``requests`` counts the requests served (handy in tests).
    Use :meth:`start` / :meth:`close`, or ``with serve_jwks(...) as server:``.
    """

    daemon_threads = True

    def __init__(
        self,
        source: Callable[[], Mapping[str, Any]],
        host: str,
        port: int,
        *,
        max_age_s: int = 300,
        verbose: bool = False,
    ) -> None:
        super().__init__((host, port), _Handler)
        self._source = source
        self.max_age_s = max_age_s
        self.verbose = verbose
        self.requests = 0
        self._count_lock = threading.Lock()
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """``http://host:port/.well-known/jwks.json``."""
        host, port = self.server_address[:2]
        host = host.decode() if isinstance(host, bytes) else host
        shown = f"[{host}]" if ":" in host else host
        return f"http://{shown}:{port}{JWKS_PATH}"

    def current_jwks(self) -> dict[str, Any]:
        """The JWKS served now, public members only."""
        return KeySet.from_jwks(self._source()).jwks()

    def start(self) -> JWKSServer:
        """Serve in a daemon thread; returns ``self``."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.serve_forever, name="agent-guard-jwks", daemon=True)
            self._thread.start()
        return self

    def close(self) -> None:
        """Stop serving and release the port."""
        if self._thread is not None:
            self.shutdown()
            self._thread.join()
            self._thread = None
        self.server_close()

    def __enter__(self) -> JWKSServer:
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.close()


def _as_source(source: Any) -> Callable[[], Mapping[str, Any]]:
    if isinstance(source, KeySet):
        return source.jwks
    if isinstance(source, Mapping):
        KeySet.from_jwks(source)  # validate now: fail at start, not on the first request
        snapshot = dict(source)
        return lambda: snapshot
    if callable(source):
        return source  # type: ignore[no-any-return]
    raise ConfigError("source: expected a KeySet, a JWKS dict or a callable returning one")


def serve_jwks(
    source: KeySet | Mapping[str, Any] | Callable[[], Mapping[str, Any]],
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    start: bool = True,
    max_age_s: int = 300,
    verbose: bool = False,
) -> JWKSServer:
    """Publish ``source``'s public keys at ``http://host:port/.well-known/jwks.json``.

    A :class:`KeySet` is served live (a :meth:`KeySet.rotate` shows up on the next request).
    Binds 127.0.0.1 by default; ``port=0`` picks a free port (read it from ``server.url``).
    With ``start=True`` (default) the server runs in a daemon thread; call ``close()`` when done.
    """
    server = JWKSServer(_as_source(source), host, port, max_age_s=max_age_s, verbose=verbose)
    return server.start() if start else server
