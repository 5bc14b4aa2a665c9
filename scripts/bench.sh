#!/usr/bin/env bash
# Load benchmark: tools/call of an echo tool over Streamable HTTP, directly against a fast
# Rust echo server and through MCPGuard, at 1 and 32 concurrent clients, in both protocol
# eras. Also measures the gateway's start-up time and idle memory.
#
#   bash scripts/bench.sh [SECONDS_PER_RUN] [REPEATS]     (defaults 5 and 3)
#
# With MCPGUARD_BENCH_POLICY=path/to/policy.yaml the gateway runs the guard (detection,
# taint tracking and that policy) on every call, so its cost shows against the same
# direct baseline.
#
# With MCPGUARD_BENCH_AUDIT=full (or process) every call is also recorded in the audit log
# with that durability before it is answered.
#
# Each configuration runs REPEATS times, direct and gateway alternating so that passing
# load on the machine hits both alike; the table shows medians.
#
# Prints a markdown table (p50/p99 latency, calls/s, gateway/direct ratios); BENCHMARKS.md
# records its output. Everything listens on loopback and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-5}
repeats=${2:-3}

cargo build --release --locked --quiet -p mcpguard -p mcpguard-bench
bin=target/release
work=$(mktemp -d)
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT

"$bin/bench-echo" >"$work/echo.url" &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/echo.url" ] && break; sleep 0.05; done
direct=$(cat "$work/echo.url")

cat >"$work/config.yaml" <<YAML
proxy:
  port: 0
observability:
  log_level: ${MCPGUARD_BENCH_LOG_LEVEL:-warn}
upstreams:
  echo:
    transport: http
    url: $direct
    prefix: ""
YAML
if [ -n "${MCPGUARD_BENCH_POLICY:-}" ]; then
  printf 'policy:\n  policy_paths: [%s]\n' "$(realpath "$MCPGUARD_BENCH_POLICY")" >>"$work/config.yaml"
fi

if [ -n "${MCPGUARD_BENCH_AUDIT:-}" ]; then
  "$bin/mcpguard" keygen --dir "$work/keys" >/dev/null
  printf 'audit:\n  enabled: true\n  path: %s/audit.db\n  signing_key: %s/keys/signing.key\n  durability: %s\n' "$work" "$work" "$MCPGUARD_BENCH_AUDIT" >>"$work/config.yaml"
fi

# Extra YAML for the gateway's configuration (e.g. to turn a part off while measuring).
if [ -n "${MCPGUARD_BENCH_EXTRA:-}" ]; then
  printf '%s\n' "$MCPGUARD_BENCH_EXTRA" >>"$work/config.yaml"
fi

start_ns=$(date +%s%N)
"$bin/mcpguard" serve --config "$work/config.yaml" >"$work/gw.out" 2>"$work/gw.log" &
gw=$!
pids+=($gw)
until grep -q listening "$work/gw.out" 2>/dev/null; do sleep 0.001; done
listening_ns=$(date +%s%N)
gateway=$(sed -n 's/^listening on //p' "$work/gw.out")
port=${gateway##*:}; port=${port%/mcp}
until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.001; done
ready_ns=$(date +%s%N)
sleep 1
rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$gw/status")

run() { "$bin/loadgen" "$1" "$2" "$seconds" "$3"; }

results=$work/results.jsonl
for era in stateless handshake; do
  for clients in 1 32; do
    for _ in $(seq "$repeats"); do
      for path in direct gateway; do
        url=$direct; [ "$path" = gateway ] && url=$gateway
        printf '{"era":"%s","clients":%s,"path":"%s","run":%s}\n' "$era" "$clients" "$path" "$(run "$url" "$clients" "$era")" >>"$results"
      done
    done
  done
done

python3 - "$seconds" "$repeats" "$(( (listening_ns - start_ns) / 1000000 ))" "$(( (ready_ns - start_ns) / 1000000 ))" "$rss_kb" "$results" <<'PY'
import json, statistics, sys
seconds, repeats, listen_ms, ready_ms, rss_kb, path = sys.argv[1:7]
rows = [json.loads(line) for line in open(path)]
names = {"stateless": "2026-07-28", "handshake": "2025-11-25"}
def med(era, clients, which, key):
    return statistics.median(r["run"][key] for r in rows if r["era"] == era and r["clients"] == clients and r["path"] == which)
import os
if os.environ.get("MCPGUARD_BENCH_POLICY"):
    print(f"gateway with the guard on: policy {os.environ['MCPGUARD_BENCH_POLICY']}, detection and taint tracking on every call\n")
if os.environ.get("MCPGUARD_BENCH_AUDIT"):
    print(f"gateway with the audit log on (SQLite, durability {os.environ['MCPGUARD_BENCH_AUDIT']}): every call recorded before it is answered\n")
print(f"medians of {repeats} runs of {seconds}s each (1s warm-up), direct and gateway alternating; loadgen, echo server and gateway share the machine\n")
print("| era | clients | path | p50 µs | p99 µs | calls/s |")
print("|---|---|---|---|---|---|")
summary = []
for era in ["stateless", "handshake"]:
    for clients in [1, 32]:
        values = {}
        for which in ["direct", "gateway"]:
            values[which] = {k: med(era, clients, which, k) for k in ["p50_us", "p99_us", "calls_per_second"]}
            v = values[which]
            print(f"| {names[era]} | {clients} | {which} | {v['p50_us']:.0f} | {v['p99_us']:.0f} | {v['calls_per_second']:.0f} |")
        d, g = values["direct"], values["gateway"]
        summary.append((names[era], clients, g["p50_us"] - d["p50_us"], g["p99_us"] - d["p99_us"], g["calls_per_second"] / max(d["calls_per_second"], 1)))
errors = sum(r["run"]["errors"] for r in rows)
print()
print("| era | clients | added p50 µs | added p99 µs | throughput gateway/direct |")
print("|---|---|---|---|---|")
for era, clients, p50, p99, ratio in summary:
    print(f"| {era} | {clients} | {p50:.0f} | {p99:.0f} | {ratio:.0%} |")
print()
print(f"errors in all runs: {errors}")
print(f"`serve` start to listening: {listen_ms} ms; to /readyz 200 (upstream probed): {ready_ms} ms; idle RSS: {int(rss_kb) / 1024:.1f} MiB")
PY
