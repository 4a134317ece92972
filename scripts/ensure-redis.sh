#!/usr/bin/env bash
# Makes sure `redis-server` is on PATH (the Redis store tests and benchmarks start their own on
# 127.0.0.1 and stop it after). Idempotent: does nothing when redis-server is already installed.
# Installs the Debian package `redis-server` with apt-get (needs root, or sudo without a password).
set -euo pipefail
if command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then
  if command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
  else
    echo "ensure-redis: redis-server is missing and this user cannot run apt-get; install the 'redis-server' package" >&2
    exit 1
  fi
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "ensure-redis: redis-server is missing and apt-get is not available; install Redis (>= 6) by hand" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
# The Debian package may start a system service on 6379; the tests never use it. Stop it if it runs
# (best effort: there may be no service manager, e.g. in a container).
if command -v service >/dev/null 2>&1; then
  $SUDO service redis-server stop >/dev/null 2>&1 || true
fi
command -v redis-server >/dev/null 2>&1 || { echo "ensure-redis: redis-server still not on PATH" >&2; exit 1; }
