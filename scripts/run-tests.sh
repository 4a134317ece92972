#!/usr/bin/env bash
# Runs the whole pytest suite. Services the tests need (redis-server, Phoenix) are installed and
# started by the test fixtures themselves (tests/stores/conftest.py, tests/audit/conftest.py), on 127.0.0.1
# only, and stopped after.
set -euo pipefail
cd "$(dirname "$0")/.."
exec .venv/bin/python -m pytest -q "$@"
