#!/usr/bin/env bash
# Installs Arize Phoenix into its own virtual environment (.venv-phoenix) for the end-to-end audit
# test (tests/audit/test_phoenix_e2e.py) and the screenshot script. Phoenix is a test-only tool
# (about 850 MB installed), never a dependency of agent_guard.
# Idempotent: a stamp file records the pinned version; a second run with the same pin does nothing.
set -euo pipefail
cd "$(dirname "$0")/.."

PHOENIX_VERSION="${PHOENIX_VERSION:-20.26.1}"
VENV="${PHOENIX_VENV:-.venv-phoenix}"
STAMP="$VENV/.installed-arize-phoenix-$PHOENIX_VERSION"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [[ -f "$STAMP" && -x "$VENV/bin/python" ]]; then
  exit 0
fi

# One installer at a time (make and the test fixture may both ask).
exec 9>"${TMPDIR:-/tmp}/agent-guard-ensure-phoenix.lock"
flock 9
if [[ -f "$STAMP" && -x "$VENV/bin/python" ]]; then
  exit 0
fi

echo "ensure-phoenix: installing arize-phoenix==$PHOENIX_VERSION into $VENV (takes about 2 minutes)" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check "arize-phoenix==$PHOENIX_VERSION"
"$VENV/bin/python" -c "import phoenix; print('ensure-phoenix: arize-phoenix', phoenix.__version__)" >&2
touch "$STAMP"
