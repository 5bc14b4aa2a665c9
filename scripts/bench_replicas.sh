#!/usr/bin/env bash
# Replica benchmark: the guard on (minimal policy, detection and taint tracking on every
# call), handshake-era sessions, `tools/call echo` against the Rust echo server, through
#   - one embedded gateway (memory state), and
#   - two replicas sharing state in the machine's Redis, each client's requests taking
#     the two in turn (so every call crosses replicas: session lookup + taint sync).
# Also the direct baseline. Prints a markdown table of medians.
#
#   bash scripts/bench_replicas.sh [SECONDS_PER_RUN] [REPEATS]   (defaults 3 and 3)
#
# Needs Redis on 127.0.0.1:6379. Everything listens on loopback and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-3}
repeats=${2:-3}

redis-cli -h 127.0.0.1 ping >/dev/null || { echo "Redis does not answer on 127.0.0.1:6379" >&2; exit 1; }
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
"$bin/mcpguard" keygen --dir "$work/keys" --digest-key >/dev/null
prefix="mcpguard-bench:$$:"

config() { # $1 = state backend
  cat <<YAML
proxy:
  port: 0
observability:
  log_level: warn
upstreams:
  echo:
    transport: http
    url: $direct
    prefix: ""
policy:
  policy_paths: [$(realpath policies/minimal.yaml)]
taint:
  digest_key: $work/keys/digest.key
state:
  backend: $1
  redis: {url: "redis://127.0.0.1:6379", key_prefix: "$prefix"}
YAML
}

start() { # $1 = name, $2 = backend; prints the URL
  config "$2" >"$work/$1.yaml"
  "$bin/mcpguard" serve --config "$work/$1.yaml" >"$work/$1.out" 2>"$work/$1.log" &
  pids+=($!)
  until grep -q listening "$work/$1.out" 2>/dev/null; do sleep 0.01; done
  local url; url=$(sed -n 's/^listening on //p' "$work/$1.out")
  local port=${url##*:}; port=${port%/mcp}
  until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do sleep 0.01; done
  echo "$url"
}

embedded=$(start embedded memory)
replica_a=$(start a redis)
replica_b=$(start b redis)

results=$work/results.jsonl
for clients in 1 32; do
  for _ in $(seq "$repeats"); do
    for path in direct embedded replicas; do
      case $path in
        direct) url=$direct ;;
        embedded) url=$embedded ;;
        replicas) url="$replica_a,$replica_b" ;;
      esac
      printf '{"clients":%s,"path":"%s","run":%s}\n' "$clients" "$path" "$("$bin/loadgen" "$url" "$clients" "$seconds" handshake)" >>"$results"
    done
  done
done
redis-cli -h 127.0.0.1 --scan --pattern "$prefix*" | xargs -r redis-cli -h 127.0.0.1 del >/dev/null

python3 - "$seconds" "$repeats" "$results" <<'PY'
import json, statistics, sys
seconds, repeats, path = sys.argv[1:4]
rows = [json.loads(line) for line in open(path)]
def med(clients, which, key):
    return statistics.median(r["run"][key] for r in rows if r["clients"] == clients and r["path"] == which)
print(f"medians of {repeats} runs of {seconds}s each (1s warm-up), handshake era, guard on (policies/minimal.yaml); loadgen, echo server, gateways and Redis share the machine\n")
print("| clients | path | p50 µs | p99 µs | calls/s | vs embedded |")
print("|---|---|---|---|---|---|")
for clients in [1, 32]:
    embedded = med(clients, "embedded", "calls_per_second")
    for which in ["direct", "embedded", "replicas"]:
        rate = med(clients, which, "calls_per_second")
        print(f"| {clients} | {which} | {med(clients, which, 'p50_us'):.0f} | {med(clients, which, 'p99_us'):.0f} | {rate:.0f} | {rate / max(embedded, 1):.0%} |")
print(f"\nerrors in all runs: {sum(r['run']['errors'] for r in rows)}")
PY
