#!/usr/bin/env bash
# Sets everything up and runs every check and test: formatting, clippy, unit tests,
# real-peer integration tests (official MCP SDKs, reference servers, the MCP conformance
# suite through the gateway).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/setup.sh
echo "==> cargo fmt --check" >&2
cargo fmt --all -- --check
echo "==> cargo clippy" >&2
cargo clippy --workspace --all-targets --locked -- -D warnings
echo "==> cargo nextest" >&2
cargo nextest run --workspace --locked --profile ci
