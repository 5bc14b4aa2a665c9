#!/usr/bin/env bash
# Sets everything up and runs every check and test: formatting, clippy, unit tests,
# real-peer integration tests (official MCP SDKs, reference servers, the MCP conformance
# suite through the gateway, the sandbox containment suite on the native backend and on a
# private Docker engine).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
# A private Docker engine (and its busybox image) for the docker sandbox backend's tests;
# stopped again when the tests end.
bash scripts/docker_sandbox.sh start >/dev/null
trap 'bash scripts/docker_sandbox.sh stop' EXIT
echo "==> cargo fmt --check" >&2
cargo fmt --all -- --check
echo "==> cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo nextest" >&2
cargo nextest run --workspace --locked --profile ci
