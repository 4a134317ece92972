"""Run ``phoenix serve`` with every listener on 127.0.0.1.

Arize Phoenix binds its HTTP port to ``PHOENIX_HOST`` but its OTLP/gRPC listener to ``[::]``
whatever the host setting; this launcher (run with the ``.venv-phoenix`` interpreter) rewrites
that address to the loopback before starting the server. Used by tests/audit/conftest.py.
"""

from __future__ import annotations

import sys

from grpc.aio import _server

_add_insecure_port = _server.Server.add_insecure_port


def _loopback_only(self: _server.Server, address: str) -> int:
    return _add_insecure_port(self, address.replace("[::]", "127.0.0.1", 1))


_server.Server.add_insecure_port = _loopback_only  # type: ignore[method-assign]

from phoenix.server.main import main  # noqa: E402

sys.argv = ["phoenix", "serve"]
sys.exit(main())
