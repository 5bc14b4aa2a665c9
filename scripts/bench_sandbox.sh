#!/usr/bin/env bash
# Sandbox benchmarks:
#   1. cold start and run of a trivial program in the native sandbox vs spawned directly;
#   2. per-call cost of a confined stdio upstream: tools/call of an echo tool through the
#      gateway to the Rust echo server over stdio, unconfined vs inside the native sandbox.
#
#   bash scripts/bench_sandbox.sh [SECONDS_PER_RUN] [REPEATS]     (defaults 5 and 3)
#
# Prints markdown tables; BENCHMARKS.md records the output. Everything listens on loopback
# and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
repeats=${2:-3}

cargo build --release --locked --quiet -p mcpguard -p mcpguard-bench
bin=$(pwd)/target/release
work=$(mktemp -d)
pids=()
cleanup() {
  # Gateways start in command substitutions (subshells): their PIDs are in files.
  for pid in "${pids[@]}" $(cat "$work"/*.pid 2>/dev/null); do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
  stop_docker 2>/dev/null || true
}
trap cleanup EXIT

# The private Docker engine of the tests, for the docker row (stopped at the end).
docker_sock=$(bash scripts/docker_sandbox.sh start)
stop_docker() { bash scripts/docker_sandbox.sh stop; }

echo "## Cold start and run of a trivial program"
echo
"$bin/sandbox-bench" "$bin/mcpguard" 200 "$(pwd)/.venv/lib/python3.11/site-packages/qjs-wasi-reactor/qjs-wasi-reactor.wasm" "$docker_sock"
echo

start() { # name, extra upstream yaml
  cat >"$work/$1.yaml" <<YAML
proxy:
  port: 0
observability:
  log_level: warn
upstreams:
  echo:
    command: $bin/bench-echo
    args: [--stdio]
    prefix: ""
$2
sandbox:
  profiles:
    bench:
      mounts: [{source: $bin}]
      processes: ${MCPGUARD_BENCH_PROCESSES:-64}
YAML
  "$bin/mcpguard" serve --config "$work/$1.yaml" >"$work/$1.out" 2>"$work/$1.log" &
  echo $! >"$work/$1.pid"
  until grep -q listening "$work/$1.out" 2>/dev/null; do sleep 0.01; done
  local url port
  url=$(sed -n 's/^listening on //p' "$work/$1.out")
  port=${url##*:}; port=${port%/mcp}
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.01; done
  echo "$url"
}
plain=$(start plain "")
confined=$(start confined "    sandbox: {profile: bench}")

results=$work/results.jsonl
for clients in 1 8; do
  for _ in $(seq "$repeats"); do
    for which in plain confined; do
      url=$plain; [ "$which" = confined ] && url=$confined
      printf '{"clients":%s,"which":"%s","run":%s}\n' "$clients" "$which" "$("$bin/loadgen" "$url" "$clients" "$seconds" stateless)" >>"$results"
    done
  done
done

echo "## A confined stdio upstream, per call"
echo
python3 - "$seconds" "$repeats" "$results" <<'PY'
import json, statistics, sys
seconds, repeats, path = sys.argv[1:4]
rows = [json.loads(line) for line in open(path)]
def med(clients, which, key):
    return statistics.median(r["run"][key] for r in rows if r["clients"] == clients and r["which"] == which)
print(f"tools/call through the gateway to the Rust echo server over stdio; medians of {repeats} runs of {seconds}s (1s warm-up), alternating\n")
print("| clients | upstream | p50 µs | p99 µs | calls/s |")
print("|---|---|---|---|---|")
for clients in [1, 8]:
    for which, name in [("plain", "unconfined"), ("confined", "native sandbox")]:
        print(f"| {clients} | {name} | {med(clients, which, 'p50_us'):.0f} | {med(clients, which, 'p99_us'):.0f} | {med(clients, which, 'calls_per_second'):.0f} |")
errors = sum(r["run"]["errors"] for r in rows)
print(f"\nerrors: {errors}")
PY
