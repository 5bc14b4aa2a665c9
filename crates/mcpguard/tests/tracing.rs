//! OpenTelemetry traces through the running gateway, received by a real collector: the
//! gateway exports over OTLP/HTTP to rotel (PyPI `rotel`, a Rust OpenTelemetry
//! collector), which forwards to a sink that decodes the spans with the official OTLP
//! protobuf definitions (`tests/peers/otlp_sink.py`). An agent's W3C `traceparent`
//! becomes the parent of the call's span; the call has a child span per phase; the
//! HTTP upstream (a Python SDK server that reports the headers it got) receives the
//! trace context of the execution phase — and never the agent's credential, only the
//! upstream's own from config.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

/// rotel in front of the decoding sink.
struct Collector {
    _sink: Proc,
    _rotel: Proc,
    out: PathBuf,
    /// rotel's OTLP/HTTP port.
    port: u16,
    _dir: tempfile::TempDir,
}

fn rotel_agent() -> PathBuf {
    let out = Command::new(python())
        .args([
            "-c",
            "import os, rotel; print(os.path.join(os.path.dirname(rotel.__file__), 'rotel-agent'))",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rotel is not installed: run scripts/setup.sh"
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}

impl Collector {
    fn start() -> Collector {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("spans.jsonl");
        let sink_port = free_port();
        let sink = Command::new(python())
            .arg(peers().join("otlp_sink.py"))
            .arg(sink_port.to_string())
            .arg(&out)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        let sink = Proc {
            child: sink,
            what: "otlp sink".into(),
        };
        wait_port(sink_port, Duration::from_secs(20));
        let (port, grpc) = (free_port(), free_port());
        let log = std::fs::File::create(dir.path().join("rotel.log")).unwrap();
        let rotel = Command::new(rotel_agent())
            .args([
                "start",
                "--exporter",
                "otlp",
                "--otlp-exporter-protocol",
                "http",
            ])
            .arg("--otlp-exporter-endpoint")
            .arg(format!("http://127.0.0.1:{sink_port}"))
            .arg("--otlp-http-endpoint")
            .arg(format!("127.0.0.1:{port}"))
            .arg("--otlp-grpc-endpoint")
            .arg(format!("127.0.0.1:{grpc}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        let rotel = Proc {
            child: rotel,
            what: "rotel".into(),
        };
        wait_port(port, Duration::from_secs(20));
        Collector {
            _sink: sink,
            _rotel: rotel,
            out,
            port,
            _dir: dir,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}/v1/traces", self.port)
    }

    /// The spans received so far, waiting until `enough` says so (or 30 s).
    fn spans(&self, enough: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let spans: Vec<Value> = std::fs::read_to_string(&self.out)
                .unwrap_or_default()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect();
            if enough(&spans) || Instant::now() > deadline {
                return spans;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

const AGENT_TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
const AGENT_SPAN: &str = "00f067aa0ba902b7";

fn children<'a>(spans: &'a [Value], parent: &Value) -> Vec<&'a Value> {
    spans
        .iter()
        .filter(|s| s["parent_span_id"] == parent["span_id"])
        .collect()
}

fn names(spans: &[&Value]) -> Vec<String> {
    let mut names: Vec<String> = spans
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

#[test]
fn call_spans_reach_a_real_collector_and_trace_context_reaches_the_upstream() {
    let collector = Collector::start();
    let header_port = free_port();
    let _upstream = py_http_server_on("py_header_server.py", header_port, &[]);
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("p.yaml");
    std::fs::write(&policy, DENY_FORBIDDEN_POLICY).unwrap();
    let keys = dir.path().join("keys.yaml");
    let out = mcpguard(&["keys", "create", "--identity", "alice", "--file", s(&keys)]);
    assert!(out.status.success(), "{}", text(&out));
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let agent_auth = format!("Bearer {key}");
    let config = echo_stdio_config(&format!(
        "  hdr:\n    transport: http\n    url: http://127.0.0.1:{header_port}/mcp\n    \
         headers: {{authorization: 'Bearer upstream-own-credential'}}\n\
         policy:\n  policy_paths: [{policy}]\n\
         auth:\n  enabled: true\n  api_keys_file: {keys}\n\
         observability:\n  traces:\n    enabled: true\n    endpoint: {endpoint}\n    service_name: mcpguard-test\n",
        policy = yaml_str(s(&policy)),
        keys = yaml_str(s(&keys)),
        endpoint = collector.endpoint(),
    ));
    let mut gateway = Gateway::start(&config);

    let traceparent = format!("00-{AGENT_TRACE}-{AGENT_SPAN}-01");
    let post = |session: Option<&str>, body: &Value| {
        let mut headers = vec![
            ("authorization", agent_auth.as_str()),
            ("traceparent", traceparent.as_str()),
            ("mcp-protocol-version", "2025-11-25"),
        ];
        if let Some(session) = session {
            headers.push(("mcp-session-id", session));
        }
        mcp_post(gateway.port, &headers, &body.to_string())
    };
    let (status, headers, _) = post(
        None,
        &json!({"jsonrpc": "2.0", "id": 0, "method": "initialize", "params": {
            "protocolVersion": "2025-11-25", "capabilities": {},
            "clientInfo": {"name": "traced-agent", "version": "1"}}}),
    );
    assert_eq!(status, 200);
    let session = header_of(&headers, "mcp-session-id");
    let call = |id: u64, tool: &str, arguments: Value| {
        post(
            Some(&session),
            &json!({"jsonrpc": "2.0", "id": id, "method": "tools/call",
                    "params": {"name": tool, "arguments": arguments}}),
        )
        .2
    };
    let seen_parent = call(1, "hdr__request_header", json!({"name": "traceparent"}));
    let upstream_parent = text_of(&seen_parent["result"]).to_string();
    let seen_auth = call(2, "hdr__request_header", json!({"name": "authorization"}));
    assert_eq!(
        text_of(&seen_auth["result"]),
        "Bearer upstream-own-credential",
        "the upstream gets its own credential from config, never the agent's"
    );
    assert!(!seen_auth.to_string().contains(&key));
    let denied = call(3, "echo", json!({"message": "forbidden words"}));
    assert_eq!(denied["error"]["code"], -32054, "{denied}");

    // The upstream saw the gateway's span in the agent's trace.
    let parts: Vec<&str> = upstream_parent.split('-').collect();
    assert_eq!(parts.len(), 4, "{seen_parent}");
    assert_eq!(parts[1], AGENT_TRACE, "{seen_parent}");
    assert_ne!(parts[2], AGENT_SPAN);

    // Stopping the gateway flushes its spans.
    gateway.proc.terminate(Duration::from_secs(15));
    let spans = collector.spans(|spans| {
        spans
            .iter()
            .filter(|s| s["attributes"]["rpc.method"] == "tools/call")
            .count()
            >= 3
    });
    assert!(
        !gateway.logs().contains("mcp.call"),
        "spans stay out of the log"
    );
    let call_span = |tool: &str, id: &str| {
        spans
            .iter()
            .find(|s| {
                s["name"] == format!("tools/call {tool}")
                    && s["attributes"]["rpc.jsonrpc.request_id"] == id
            })
            .unwrap_or_else(|| panic!("no span for {tool} #{id} in {spans:#?}"))
            .clone()
    };
    let forwarded = call_span("hdr__request_header", "1");
    assert_eq!(forwarded["service"], "mcpguard-test");
    assert_eq!(forwarded["trace_id"], AGENT_TRACE);
    assert_eq!(forwarded["parent_span_id"], AGENT_SPAN);
    assert_eq!(forwarded["kind"], 2, "SPAN_KIND_SERVER");
    assert_eq!(forwarded["attributes"]["mcp.tool"], "hdr__request_header");
    assert_eq!(forwarded["attributes"]["mcpguard.upstream"], "hdr");
    assert_eq!(forwarded["attributes"]["enduser.id"], "alice");
    assert_eq!(forwarded["attributes"]["mcpguard.decision"], "allow");
    let phases = children(&spans, &forwarded);
    assert_eq!(
        names(&phases),
        [
            "access",
            "execution",
            "log",
            "post_execution",
            "pre_execution"
        ]
    );
    let execution = phases.iter().find(|s| s["name"] == "execution").unwrap();
    assert_eq!(
        parts[2], execution["span_id"],
        "the upstream's parent is the execution phase"
    );
    for phase in &phases {
        let (start, end) = (
            phase["start_ns"].as_u64().unwrap(),
            phase["end_ns"].as_u64().unwrap(),
        );
        assert!(
            start >= forwarded["start_ns"].as_u64().unwrap()
                && end <= forwarded["end_ns"].as_u64().unwrap()
        );
    }

    let refused = call_span("echo", "3");
    assert_eq!(refused["attributes"]["mcpguard.decision"], "deny");
    assert_eq!(refused["attributes"]["mcpguard.rule"], "T-001");
    assert_eq!(refused["attributes"]["mcpguard.answered_by"], "guard");
    assert_eq!(refused["attributes"]["rpc.jsonrpc.error_code"], -32054);
    assert_eq!(refused["status_code"], 2, "STATUS_CODE_ERROR");
    assert_eq!(
        names(&children(&spans, &refused)),
        ["access", "log", "pre_execution"],
        "a denied call never reaches execution"
    );
    let all = serde_json::to_string(&spans).unwrap();
    assert!(
        !all.contains("forbidden words"),
        "argument values never reach spans"
    );
    assert!(!all.contains(&key), "credentials never reach spans");
}

#[test]
fn without_traces_configured_nothing_is_propagated_upstream() {
    let header_port = free_port();
    let _upstream = py_http_server_on("py_header_server.py", header_port, &[]);
    let gateway = Gateway::start(&format!(
        "upstreams:\n  hdr:\n    transport: http\n    url: http://127.0.0.1:{header_port}/mcp\n"
    ));
    let session = open_session(gateway.port);
    let answer = session_call(
        gateway.port,
        &session,
        1,
        "hdr__request_header",
        r#"{"name":"traceparent"}"#,
    );
    assert_eq!(text_of(&answer["result"]), "", "{answer}");
}

#[test]
fn a_bad_traces_endpoint_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "observability:\n  traces:\n    enabled: true\n    endpoint: 127.0.0.1:4318\n    sample_ratio: 2\n",
    )
    .unwrap();
    let out = mcpguard(&["--config", s(&path), "config-show"]);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(said.contains("observability.traces.endpoint"), "{said}");
    assert!(said.contains("observability.traces.sample_ratio"), "{said}");
}
