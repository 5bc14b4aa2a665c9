//! Shared harness for the real-peer integration tests: start the gateway binary and real
//! MCP servers and clients (the official Python and TypeScript SDKs), on loopback, and
//! stop every process by PID when the test ends.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of the harness"
)]

use std::io::{BufRead, BufReader, Read};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

/// The repository root.
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .canonicalize()
        .expect("repository root")
}

/// The real-peer folder (`tests/peers`).
pub fn peers() -> PathBuf {
    repo().join("tests/peers")
}

fn require(path: PathBuf, what: &str) -> PathBuf {
    assert!(
        path.exists(),
        "{what} is missing at {}: run `bash scripts/setup.sh` first (it installs the real MCP peers the tests use)",
        path.display()
    );
    path
}

/// The Python of the test venv (with the official `mcp` SDK).
pub fn python() -> PathBuf {
    require(repo().join(".venv/bin/python"), "the Python venv")
}

/// A binary from `tests/peers/node_modules/.bin`.
pub fn node_bin(name: &str) -> PathBuf {
    require(peers().join("node_modules/.bin").join(name), name)
}

/// The system Node.js (20) used for the TypeScript SDK client.
pub fn node() -> PathBuf {
    PathBuf::from("node")
}

/// A child process stopped (TERM, then KILL) and reaped when dropped.
pub struct Proc {
    pub child: Child,
    pub what: String,
}

impl Proc {
    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM and waits up to `wait` for the exit status.
    pub fn terminate(&mut self, wait: Duration) -> Option<std::process::ExitStatus> {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid()),
            nix::sys::signal::Signal::SIGTERM,
        );
        let deadline = Instant::now() + wait;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        if self.terminate(Duration::from_secs(5)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

/// Waits until something accepts connections on `port`.
pub fn wait_port(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    let address: SocketAddr = ([127, 0, 0, 1], port).into();
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&address, Duration::from_millis(200)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on port {port} after {timeout:?}");
}

/// A Python SDK server from `tests/peers` serving Streamable HTTP on a free port.
pub fn py_http_server(script: &str, extra: &[&str]) -> (Proc, u16) {
    let port = free_port();
    (py_http_server_on(script, port, extra), port)
}

/// A Python SDK server from `tests/peers` serving Streamable HTTP on `port`.
pub fn py_http_server_on(script: &str, port: u16, extra: &[&str]) -> Proc {
    let child = Command::new(python())
        .arg(peers().join(script))
        .args([
            "--transport",
            "streamable-http",
            "--host",
            "127.0.0.1",
            "--port",
        ])
        .arg(port.to_string())
        .args(extra)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start python server");
    let proc = Proc {
        child,
        what: script.into(),
    };
    wait_port(port, Duration::from_secs(30));
    proc
}

/// `@modelcontextprotocol/server-everything` over Streamable HTTP on a free port.
pub fn everything_http() -> (Proc, u16) {
    let port = free_port();
    let child = Command::new(node_bin("mcp-server-everything"))
        .arg("streamableHttp")
        .env("PORT", port.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start server-everything");
    let proc = Proc {
        child,
        what: "server-everything".into(),
    };
    wait_port(port, Duration::from_secs(30));
    (proc, port)
}

/// A running `mcpguard serve`.
pub struct Gateway {
    pub proc: Proc,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl Gateway {
    /// Starts the gateway with `config` (YAML) on a free port and waits until `/readyz`
    /// says every required upstream is ready.
    pub fn start(config: &str) -> Gateway {
        let gateway = Gateway::start_unready(config, &[]);
        gateway.wait_ready(Duration::from_secs(60));
        gateway
    }

    /// Starts the gateway without waiting for upstreams.
    pub fn start_unready(config: &str, extra_args: &[&str]) -> Gateway {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config.yaml");
        std::fs::write(&path, config).expect("write config");
        let log = std::fs::File::create(dir.path().join("gateway.log")).expect("log file");
        let mut child = Command::new(env!("CARGO_BIN_EXE_mcpguard"))
            .arg("serve")
            .arg("--config")
            .arg(&path)
            .args(["--port", "0"])
            .args(extra_args)
            .current_dir(dir.path())
            .env_remove("MCPGUARD_CONFIG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start mcpguard");
        let stdout = child.stdout.take().expect("stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let proc = Proc {
            child,
            what: "mcpguard".into(),
        };
        let line = rx.recv_timeout(Duration::from_secs(20)).unwrap_or_default();
        let port = line
            .trim()
            .rsplit(':')
            .next()
            .and_then(|tail| tail.trim_end_matches("/mcp").parse().ok())
            .unwrap_or_else(|| {
                let logs =
                    std::fs::read_to_string(dir.path().join("gateway.log")).unwrap_or_default();
                panic!("the gateway did not start (stdout: {line:?}); its log:\n{logs}")
            });
        Gateway { proc, port, dir }
    }

    /// `http://127.0.0.1:PORT/mcp`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}/mcp", self.port)
    }

    /// The gateway's log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("gateway.log")).unwrap_or_default()
    }

    /// Waits until `/readyz` answers 200.
    pub fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if http_get_status(self.port, "/readyz") == Some(200) {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!(
            "the gateway was not ready after {timeout:?}; its log:\n{}",
            self.logs()
        );
    }
}

/// The status of a plain GET on loopback (no dependencies: a raw HTTP/1.1 request).
pub fn http_get_status(port: u16, path: &str) -> Option<u16> {
    let (status, _) = http_get(port, path)?;
    Some(status)
}

/// A plain GET on loopback: (status, body).
pub fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    let status = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or("").to_string();
    Some((status, body))
}

/// Output of a scripted client run: one JSON value per line.
#[derive(Debug)]
pub struct ClientRun {
    pub lines: Vec<Value>,
    pub stderr: String,
    pub status: std::process::ExitStatus,
}

impl ClientRun {
    /// The result of the `n`th step with op `op` (panics when it failed).
    pub fn ok(&self, op: &str, n: usize) -> &Value {
        let step = self.step(op, n);
        assert_eq!(
            step["ok"], true,
            "step {op}#{n} failed: {step}\nstderr: {}",
            self.stderr
        );
        &step["result"]
    }

    /// The `n`th step with op `op`.
    pub fn step(&self, op: &str, n: usize) -> &Value {
        self.lines
            .iter()
            .filter(|l| l["op"] == op)
            .nth(n)
            .unwrap_or_else(|| {
                panic!(
                    "no step {op}#{n} in {:#?}\nstderr: {}",
                    self.lines, self.stderr
                )
            })
    }

    /// Notifications with `method`.
    pub fn notifications(&self, method: &str) -> Vec<&Value> {
        self.lines
            .iter()
            .filter(|l| l["notification"]["method"] == method)
            .collect()
    }

    /// Server→client requests the client answered, by method.
    pub fn server_requests(&self, method: &str) -> Vec<&Value> {
        self.lines
            .iter()
            .filter(|l| l["server_request"]["method"] == method)
            .collect()
    }

    /// The `connected` line.
    pub fn connected(&self) -> &Value {
        self.lines
            .iter()
            .find(|l| l.get("connected").is_some())
            .map(|l| &l["connected"])
            .unwrap_or_else(|| {
                panic!(
                    "no connected line: {:#?}\nstderr: {}",
                    self.lines, self.stderr
                )
            })
    }
}

fn run_client(mut command: Command) -> ClientRun {
    let output = command.stdin(Stdio::null()).output().expect("run client");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let lines = stdout
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect();
    ClientRun {
        lines,
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        status: output.status,
    }
}

/// Callback answers both clients give: elicitation, sampling and roots.
pub const CALLBACKS: &[&str] = &[
    "--elicit-json",
    r#"{"value":"blue","name":"Ann","check":true,"email":"a@b.c","integer":7}"#,
    "--sample-text",
    "fixed sample",
    "--roots",
    "file:///tmp/mcpguard-root",
];

/// Runs the Python SDK client (`tests/peers/py_client.py`) against `url`.
pub fn py_client(url: &str, mode: &str, script: &Value, extra: &[&str]) -> ClientRun {
    let mut command = Command::new(python());
    command
        .arg(peers().join("py_client.py"))
        .args(["--url", url, "--mode", mode, "--timeout", "30"])
        .args(extra)
        .arg(script.to_string());
    run_client(command)
}

/// Runs the Python SDK client over stdio against `program args...`.
pub fn py_client_stdio(mode: &str, script: &Value, extra: &[&str], program: &[&str]) -> ClientRun {
    let mut command = Command::new(python());
    command
        .arg(peers().join("py_client.py"))
        .args(["--stdio", "--mode", mode, "--timeout", "30"])
        .args(extra)
        .arg(script.to_string())
        .arg("--")
        .args(program);
    run_client(command)
}

/// Runs the TypeScript SDK client (`tests/peers/ts_client.mjs`) against `url`.
pub fn ts_client(url: &str, script: &Value, extra: &[&str]) -> ClientRun {
    let mut command = Command::new(node());
    command
        .arg(peers().join("ts_client.mjs"))
        .args(["--url", url, "--timeout", "30"])
        .args(extra)
        .arg(script.to_string());
    run_client(command)
}

/// Runs the TypeScript SDK client over stdio against `program args...`.
pub fn ts_client_stdio(script: &Value, extra: &[&str], program: &[&str]) -> ClientRun {
    let mut command = Command::new(node());
    command
        .arg(peers().join("ts_client.mjs"))
        .args(["--stdio", "--timeout", "30"])
        .args(extra)
        .arg(script.to_string())
        .arg("--")
        .args(program);
    run_client(command)
}

/// The text of the first content block of a tool result.
pub fn text_of(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or_default()
}

/// A YAML string literal.
pub fn yaml_str(text: &str) -> String {
    serde_json::Value::from(text).to_string()
}

/// The path of a peer script, as a YAML string.
pub fn peer_yaml(script: &str) -> String {
    yaml_str(&peers().join(script).display().to_string())
}

/// A raw HTTP/1.1 exchange on loopback (`Connection: close`): status, lowercase headers,
/// body. Chunked bodies are decoded.
pub fn http_request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> (u16, Vec<(String, String)>, String) {
    use std::io::Write;
    let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if !headers.iter().any(|(k, _)| k.eq_ignore_ascii_case("host")) {
        head.push_str(&format!("Host: 127.0.0.1:{port}\r\n"));
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(body).unwrap();
    let mut raw = Vec::new();
    let _ = stream.read_to_end(&mut raw);
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"));
    let body = if chunked {
        dechunk(rest)
    } else {
        rest.to_string()
    };
    (status, headers, body)
}

fn dechunk(mut rest: &str) -> String {
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || tail.len() < size {
            out.push_str(&tail[..size.min(tail.len())]);
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].strip_prefix("\r\n").unwrap_or(&tail[size..]);
    }
    out
}

/// Headers of a JSON POST to `/mcp`.
pub const JSON_POST: &[(&str, &str)] = &[
    ("content-type", "application/json"),
    ("accept", "application/json, text/event-stream"),
];

/// POSTs a JSON-RPC message to the gateway's `/mcp` with `extra` headers; returns
/// (status, headers, body as JSON when it is JSON, else the SSE messages' last JSON).
pub fn mcp_post(
    port: u16,
    extra: &[(&str, &str)],
    body: &str,
) -> (u16, Vec<(String, String)>, Value) {
    let mut headers = JSON_POST.to_vec();
    headers.extend_from_slice(extra);
    let (status, headers, text) = http_request(port, "POST", "/mcp", &headers, body.as_bytes());
    let value = serde_json::from_str(&text).unwrap_or_else(|_| {
        // An SSE body: the last `data:` line holding JSON is the answer.
        text.lines()
            .rev()
            .filter_map(|l| l.strip_prefix("data:"))
            .find_map(|d| serde_json::from_str::<Value>(d.trim()).ok())
            .unwrap_or(Value::String(text.clone()))
    });
    (status, headers, value)
}

/// Opens a handshake-era session: initialize + initialized; returns the session id.
pub fn open_session(port: u16) -> String {
    open_session_with(port, "{}")
}

/// Opens a session declaring `capabilities` (raw JSON).
pub fn open_session_with(port: u16, capabilities: &str) -> String {
    let (status, headers, body) = mcp_post(
        port,
        &[],
        &format!(
            r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"2025-11-25","capabilities":{capabilities},"clientInfo":{{"name":"raw-test","version":"1"}}}}}}"#
        ),
    );
    assert_eq!(status, 200, "initialize failed: {body}");
    let id = headers
        .iter()
        .find(|(k, _)| k == "mcp-session-id")
        .map(|(_, v)| v.clone())
        .expect("session id");
    let (status, _, _) = mcp_post(
        port,
        &[
            ("mcp-session-id", &id),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(status, 202);
    id
}

/// Calls a tool in a session; returns the raw response body (JSON or SSE).
pub fn session_call_raw(port: u16, session: &str, id: u64, tool: &str, arguments: &str) -> String {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments}}}}}"#
    );
    let mut headers = JSON_POST.to_vec();
    headers.extend_from_slice(&[
        ("mcp-session-id", session),
        ("mcp-protocol-version", "2025-11-25"),
    ]);
    http_request(port, "POST", "/mcp", &headers, body.as_bytes()).2
}

/// Calls a tool in a session; returns the JSON-RPC answer.
pub fn session_call(port: u16, session: &str, id: u64, tool: &str, arguments: &str) -> Value {
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"{tool}","arguments":{arguments}}}}}"#
    );
    let (_, _, answer) = mcp_post(
        port,
        &[
            ("mcp-session-id", session),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        &body,
    );
    answer
}

/// The config of a gateway in front of the Python echo server over stdio.
pub fn echo_stdio_config(extra_upstream: &str) -> String {
    format!(
        "upstreams:\n  echo:\n    command: {}\n    args: [{}, --transport, stdio]\n    prefix: \"\"\n{extra_upstream}",
        yaml_str(&python().display().to_string()),
        peer_yaml("py_echo_server.py")
    )
}

/// An SSE answer read message by message as it arrives.
pub struct SseReader {
    lines: std::io::Lines<BufReader<TcpStream>>,
}

impl SseReader {
    /// POSTs `body` to `/mcp` with `headers` and keeps the connection open for reading.
    pub fn post(port: u16, headers: &[(&str, &str)], body: &str) -> SseReader {
        use std::io::Write;
        let mut stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut head = format!(
            "POST /mcp HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nAccept: application/json, text/event-stream\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).unwrap();
        stream.write_all(body.as_bytes()).unwrap();
        SseReader {
            lines: BufReader::new(stream).lines(),
        }
    }

    /// The next JSON message on the stream.
    pub fn next_message(&mut self) -> Value {
        loop {
            let line = self.lines.next().expect("stream ended").expect("read");
            if let Some(data) = line.strip_prefix("data:")
                && let Ok(value) = serde_json::from_str::<Value>(data.trim())
            {
                return value;
            }
        }
    }
}

/// Runs the `mcpguard` binary with `args`.
pub fn mcpguard(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_mcpguard"))
        .args(args)
        .env_remove("MCPGUARD_CONFIG")
        .output()
        .expect("run mcpguard")
}

/// A command's stdout and stderr together.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A directory with a fresh signing key (`signing.key`, `signing.pub`).
pub fn keys() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let out = mcpguard(&["keygen", "--dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    dir
}

/// The `audit:` section for a log at `db` signed with the key in `keys`.
pub fn audit_yaml(keys: &Path, db: &Path, extra: &str) -> String {
    format!(
        "audit:\n  enabled: true\n  path: {}\n  signing_key: {}\n  origin: mcpguard.test/audit\n  checkpoint_interval_seconds: 0.3\n{extra}",
        yaml_str(&db.display().to_string()),
        yaml_str(&keys.join("signing.key").display().to_string()),
    )
}

/// A path as `&str`.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// Every record of the log, oldest first, as JSON.
pub fn records(db: &Path) -> Vec<Value> {
    let out = mcpguard(&[
        "audit-query",
        "--db",
        s(db),
        "--format",
        "json",
        "--limit",
        "0",
        "--oldest-first",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// The events of the audit log at `db` (without their chain fields).
pub fn events(db: &Path) -> Vec<Value> {
    records(db)
        .into_iter()
        .map(|r| r["event"].clone())
        .collect()
}

/// A policy that allows everything but an `echo` whose `message` says `forbidden`
/// (rule `T-001`).
pub const DENY_FORBIDDEN_POLICY: &str = "version: 1\nname: t\ndefault_action: allow\nrules:\n  \
  - id: T-001\n    name: No forbidden words\n    action: deny\n    tool_patterns: [echo]\n    \
  argument_patterns:\n      - {key: message, match: forbidden}\n    owasp_asi: [ASI02]\n";

/// A client script step calling the echo server's `echo` with `message`.
pub fn echo_call(message: &str) -> Value {
    serde_json::json!({"op": "call_tool", "name": "echo", "arguments": {"message": message}})
}

/// The value of response header `name` (lowercase), or empty.
pub fn header_of(headers: &[(String, String)], name: &str) -> String {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
        .unwrap_or_default()
}

/// A gateway config: the echo server, [`DENY_FORBIDDEN_POLICY`] (written into `dir`),
/// a per-tool rate limit of `per_tool` (YAML flow map) and the audit log at `db`.
pub fn policy_and_rate_limit_config(dir: &Path, db: &Path, per_tool: &str) -> String {
    let policy = dir.join("p.yaml");
    std::fs::write(&policy, DENY_FORBIDDEN_POLICY).unwrap();
    format!(
        "{upstream}policy:\n  policy_paths: [{policy}]\nrate_limits:\n  enabled: true\n  \
         per_tool: {per_tool}\n{audit}",
        upstream = echo_stdio_config(""),
        policy = yaml_str(&policy.display().to_string()),
        audit = audit_yaml(dir, db, ""),
    )
}

/// A PostgreSQL schema of its own for one test, on the machine's server
/// (`MCPGUARD_TEST_POSTGRES`, else trust auth on 127.0.0.1, database `test`); dropped with
/// everything in it when this goes out of scope.
pub struct PostgresSchema {
    /// The server's URL.
    pub url: String,
    /// The schema's name.
    pub schema: String,
}

impl PostgresSchema {
    /// A new, unique schema name starting with `tag`.
    pub fn new(tag: &str) -> PostgresSchema {
        let url = std::env::var("MCPGUARD_TEST_POSTGRES")
            .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos();
        let schema = format!("{tag}_{}_{nanos}", std::process::id());
        PostgresSchema { url, schema }
    }

    /// The `audit:` lines that put the log in this schema.
    pub fn audit_lines(&self) -> String {
        format!(
            "  backend: postgres\n  postgres_url: {}\n  postgres_schema: {}\n",
            self.url, self.schema
        )
    }
}

impl Drop for PostgresSchema {
    fn drop(&mut self) {
        let _ = Command::new("psql")
            .args([
                self.url.as_str(),
                "-qc",
                &format!("DROP SCHEMA IF EXISTS {} CASCADE", self.schema),
            ])
            .output();
    }
}
