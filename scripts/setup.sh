#!/usr/bin/env bash
# Installs everything the demo and the tests need, inside the repository only:
#   .venv/                    Python venv with the official MCP Python SDK (and QuickJS-NG's
#                             WASI module, for the wasm sandbox backend)
#   tests/peers/node_modules  the TypeScript SDK, reference servers, conformance suite, Node 22
#   .tools/promtool           Prometheus's metrics checker
# Safe to run again: it skips what is already in place.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '\033[1m==> %s\033[0m\n' "$*" >&2; }

if ! .venv/bin/python -c 'import mcp, sys; sys.exit(0 if mcp.__name__ else 1)' 2>/dev/null \
   || ! .venv/bin/pip freeze 2>/dev/null | grep -qx 'mcp==2.3.0' \
   || [ ! -f .venv/lib/python3.11/site-packages/qjs-wasi-reactor/qjs-wasi-reactor.wasm ] \
   || [ ! -x .venv/bin/msb ]; then
  say "creating .venv with the MCP Python SDK, QuickJS-NG for the wasm sandbox and microsandbox's msb"
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r tests/peers/requirements.txt
fi

if [ ! -x tests/peers/node_modules/.bin/mcp-server-everything ] \
   || [ tests/peers/package-lock.json -nt tests/peers/node_modules/.package-lock.json ]; then
  say "installing the npm peers (TypeScript SDK, reference servers, conformance suite)"
  (cd tests/peers && npm ci --no-audit --no-fund --loglevel=error)
fi

# Debian tools the audit tests use: sqlite3 (tampering with the log) and rsyslog (a real
# syslog collector for the live feed).
missing=()
command -v sqlite3 >/dev/null 2>&1 || missing+=(sqlite3)
command -v rsyslogd >/dev/null 2>&1 || [ -x /usr/sbin/rsyslogd ] || missing+=(rsyslog)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]} (apt)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -qq "${missing[@]}" >/dev/null 2>&1 \
    || { apt-get update -qq >/dev/null && apt-get install -y -qq "${missing[@]}" >/dev/null; }
fi

# Tools taken from Debian packages by unpacking them into .tools/ rather than installing
# them, so that no service is set up or started:
#   promtool (package prometheus): the tests check /metrics with it;
#   nginx: the replica tests put a round-robin balancer in front of two gateways.
unpack_tool() { # package, path of the binary inside it
  local package=$1 inside=$2 name
  name=$(basename "$inside")
  [ -x ".tools/$name" ] && return 0
  say "fetching $name (Debian package $package, unpacked into .tools/)"
  local tmp
  tmp=$(mktemp -d)
  (cd "$tmp" && { apt-get download "$package" >/dev/null 2>&1 \
     || { apt-get update -qq >/dev/null && apt-get download "$package" >/dev/null; }; })
  dpkg-deb -x "$tmp/${package}"_*.deb "$tmp/unpacked"
  mkdir -p .tools
  cp "$tmp/unpacked$inside" ".tools/$name"
  rm -rf "$tmp"
}
unpack_tool prometheus /usr/bin/promtool
unpack_tool nginx /usr/sbin/nginx

if ! command -v cargo-nextest >/dev/null 2>&1 && ! cargo nextest --version >/dev/null 2>&1; then
  say "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi
