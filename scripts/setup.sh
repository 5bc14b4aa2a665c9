#!/usr/bin/env bash
# Installs everything the demo and the tests need, inside the repository only:
#   .venv/                    Python venv with the official MCP Python SDK
#   tests/peers/node_modules  the TypeScript SDK, reference servers, conformance suite, Node 22
# Safe to run again: it skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! .venv/bin/python -c 'import mcp, sys; sys.exit(0 if mcp.__name__ else 1)' 2>/dev/null \
   || ! .venv/bin/pip freeze 2>/dev/null | grep -qx 'mcp==2.3.0'; then
  say "creating .venv with the MCP Python SDK"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/peers/requirements.txt
fi

if [ ! -x tests/peers/node_modules/.bin/mcp-server-everything ] \
   || [ tests/peers/package-lock.json -nt tests/peers/node_modules/.package-lock.json ]; then
  say "installing the npm peers (TypeScript SDK, reference servers, conformance suite)"
  (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error)
fi

if ! command -v sqlite3 >/dev/null 2>&1; then
  say "installing the sqlite3 tool (the audit tamper tests edit the log with it)"
  apt-get install -y -qq sqlite3 >/dev/null || { apt-get update -qq && apt-get install -y -qq sqlite3 >/dev/null; }
fi

if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
