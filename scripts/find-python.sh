#!/usr/bin/env bash
# Print the path of a working python$1 (e.g. 3.12): on PATH, or installed by pyenv but not activated.
set -euo pipefail
v="$1"
if command -v "python$v" >/dev/null 2>&1 && "python$v" -c "pass" >/dev/null 2>&1; then
  command -v "python$v"
  exit 0
fi
if command -v pyenv >/dev/null 2>&1; then
  for dir in "$(pyenv root)"/versions/"$v".*; do
    if [ -x "$dir/bin/python$v" ]; then
      echo "$dir/bin/python$v"
      exit 0
    fi
  done
fi
echo "python$v is not installed" >&2
exit 1
