#!/usr/bin/env bash
# Installs Arize Phoenix into its own virtual environment (.venv-phoenix) for the end-to-end audit test.
# Idempotent: a stamp file records the installed version; a second run with the same pin does nothing.
# Phoenix is a test-only dependency of agent_guard (heavy: ~850 MB), never a runtime one.
set -euo pipefail
cd "$(dirname "$0")/.."

PHOENIX_VERSION="${PHOENIX_VERSION:-20.26.1}"
VENV="${PHOENIX_VENV:-.venv-phoenix}"
STAMP="$VENV/.installed-arize-phoenix-$PHOENIX_VERSION"
PYTHON="${PYTHON:-$(command -v python3.11 || command -v python3)}"

if [[ -f "$STAMP" && -x "$VENV/bin/phoenix" ]]; then
  exit 0
fi

echo "ensure-phoenix: installing arize-phoenix==$PHOENIX_VERSION into $VENV (takes about 2 minutes)" >&2
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet "arize-phoenix==$PHOENIX_VERSION"
"$VENV/bin/python" -c "import phoenix; print('ensure-phoenix: phoenix', phoenix.__version__)" >&2
touch "$STAMP"
