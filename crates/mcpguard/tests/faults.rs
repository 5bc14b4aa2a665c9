//! Bad input and faults: each gets a clear error, the gateway stays up, and other sessions
//! are unharmed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use serde_json::Value;

const V2026: &[(&str, &str)] = &[
    ("mcp-protocol-version", "2026-07-28"),
    ("mcp-method", "tools/call"),
    ("mcp-name", "echo"),
];

fn envelope_call(name: &str) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"{name}","arguments":{{"message":"x"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    )
}

fn error_code(answer: &Value) -> i64 {
    answer["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("not an error: {answer}"))
}

fn error_message(answer: &Value) -> &str {
    answer["error"]["message"].as_str().unwrap_or_default()
}

#[test]
fn bad_input_at_the_edge_gets_clear_errors() {
    let gateway = Gateway::start(&format!(
        "proxy:\n  max_body_bytes: 4096\n{}",
        echo_stdio_config("")
    ));
    let port = gateway.port;

    let (status, _, answer) = mcp_post(port, V2026, r#"{"jsonrpc":"2.0","id":1,"method":"#);
    assert_eq!((status, error_code(&answer)), (400, -32700), "{answer}");

    // Two `name`s: the gateway could judge one and the upstream run the other.
    let dup = envelope_call("echo").replace(r#""name":"echo""#, r#""name":"echo","name":"crash""#);
    let (status, _, answer) = mcp_post(port, V2026, &dup);
    assert_eq!((status, error_code(&answer)), (400, -32600), "{answer}");
    assert!(
        error_message(&answer).contains("duplicate key `name`"),
        "{answer}"
    );

    // The same trick with letter case (Go's encoding/json matches keys case-insensitively).
    let folded =
        envelope_call("echo").replace(r#""name":"echo""#, r#""name":"echo","Name":"crash""#);
    let (status, _, answer) = mcp_post(port, V2026, &folded);
    assert_eq!((status, error_code(&answer)), (400, -32600), "{answer}");

    let (status, _, answer) = mcp_post(port, V2026, &format!("[{}]", envelope_call("echo")));
    assert_eq!((status, error_code(&answer)), (400, -32600));
    assert!(error_message(&answer).contains("batch"), "{answer}");

    let (status, _, _) = http_request(
        port,
        "POST",
        "/mcp",
        &[
            ("content-type", "text/plain"),
            ("accept", "application/json"),
        ],
        envelope_call("echo").as_bytes(),
    );
    assert_eq!(status, 415);
    let (status, _, _) = http_request(
        port,
        "POST",
        "/mcp",
        &[
            ("content-type", "application/json"),
            ("accept", "text/html"),
        ],
        envelope_call("echo").as_bytes(),
    );
    assert_eq!(status, 406);

    let big = envelope_call(&"x".repeat(5000));
    let (status, _, answer) = mcp_post(port, V2026, &big);
    assert_eq!(status, 413, "{answer}");
    assert!(
        error_message(&answer).contains("max_body_bytes"),
        "{answer}"
    );

    // Sessions: missing, unknown, ended.
    let list = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;
    let (status, _, _) = mcp_post(port, &[], list);
    assert_eq!(status, 400);
    let (status, _, answer) = mcp_post(port, &[("mcp-session-id", "nope")], list);
    assert_eq!(status, 404, "{answer}");
    let session = open_session(port);
    let (status, _, answer) = mcp_post(port, &[("mcp-session-id", &session)], list);
    assert_eq!(status, 200, "{answer}");
    let (status, _, _) = http_request(port, "DELETE", "/mcp", &[("mcp-session-id", &session)], b"");
    assert_eq!(status, 200);
    let (status, _, _) = mcp_post(port, &[("mcp-session-id", &session)], list);
    assert_eq!(status, 404);

    // 2026-07-28 header checks.
    let wrong_name = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "other"),
    ];
    let (status, _, answer) = mcp_post(port, &wrong_name, &envelope_call("echo"));
    assert_eq!((status, error_code(&answer)), (400, -32020), "{answer}");
    let wrong_method = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/list"),
        ("mcp-name", "echo"),
    ];
    let (status, _, answer) = mcp_post(port, &wrong_method, &envelope_call("echo"));
    assert_eq!((status, error_code(&answer)), (400, -32020), "{answer}");
    let (status, _, answer) = mcp_post(port, &[("mcp-protocol-version", "2099-01-01")], list);
    assert_eq!((status, error_code(&answer)), (400, -32022), "{answer}");
    assert_eq!(answer["error"]["data"]["requested"], "2099-01-01");

    // DNS rebinding: a foreign Origin or Host.
    let mut evil = V2026.to_vec();
    evil.push(("origin", "http://evil.example.com"));
    let (status, _, _) = mcp_post(port, &evil, &envelope_call("echo"));
    assert_eq!(status, 403);
    let mut evil_host = V2026.to_vec();
    evil_host.push(("host", "evil.example.com"));
    let (status, _, _) = mcp_post(port, &evil_host, &envelope_call("echo"));
    assert_eq!(status, 403);

    // After all that, a good call still works.
    let (status, _, answer) = mcp_post(port, V2026, &envelope_call("echo"));
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["result"]["content"][0]["text"], "x");
}

#[test]
fn an_upstream_that_crashes_mid_call_is_reported_and_restarted() {
    let gateway = Gateway::start(&echo_stdio_config(""));
    let bystander = open_session(gateway.port);
    let victim = open_session(gateway.port);
    let answer = session_call(gateway.port, &victim, 1, "crash", "{}");
    assert_eq!(error_code(&answer), -32050, "{answer}");
    assert!(
        error_message(&answer).contains("upstream `echo`"),
        "{answer}"
    );
    assert_eq!(answer["error"]["data"]["mcpguard"]["blame"], "upstream");
    assert_eq!(answer["error"]["data"]["mcpguard"]["retryable"], true);
    // The supervisor restarts the child; both sessions carry on.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let answer = session_call(
            gateway.port,
            &bystander,
            2,
            "echo",
            r#"{"message":"still here"}"#,
        );
        if answer["result"]["content"][0]["text"] == "still here" {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the upstream did not come back: {answer}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let answer = session_call(gateway.port, &victim, 3, "echo", r#"{"message":"me too"}"#);
    assert_eq!(answer["result"]["content"][0]["text"], "me too", "{answer}");
    assert!(
        gateway.logs().contains("stdio upstream is down"),
        "{}",
        gateway.logs()
    );
}

#[test]
fn an_upstream_that_hangs_times_out_with_its_name() {
    let gateway = Gateway::start(&echo_stdio_config("    timeout_seconds: 1\n"));
    let session = open_session(gateway.port);
    let started = Instant::now();
    let answer = session_call(gateway.port, &session, 1, "hang", "{}");
    assert!(started.elapsed() < Duration::from_secs(10));
    assert_eq!(error_code(&answer), -32051, "{answer}");
    assert!(
        error_message(&answer).contains("upstream `echo` did not answer within 1s"),
        "{answer}"
    );
    let answer = session_call(gateway.port, &session, 2, "echo", r#"{"message":"ok"}"#);
    assert_eq!(answer["result"]["content"][0]["text"], "ok", "{answer}");
}

#[test]
fn an_upstream_that_writes_garbage_is_named_in_the_error() {
    // Over stdio, garbage cannot be tied to a call: it is counted and named at the timeout.
    let gateway = Gateway::start(&format!(
        "upstreams:\n  junk:\n    command: {}\n    args: [{}, --stdio]\n    prefix: \"\"\n    timeout_seconds: 1\n",
        yaml_str(&python().display().to_string()),
        peer_yaml("fake_garbage.py")
    ));
    let session = open_session(gateway.port);
    let answer = session_call(gateway.port, &session, 1, "broken", "{}");
    assert_eq!(error_code(&answer), -32051, "{answer}");
    assert!(error_message(&answer).contains("not json-rpc"), "{answer}");
    // Over HTTP the garbage is the answer itself.
    let port = free_port();
    let _fake = Proc {
        child: Command::new(python())
            .arg(peers().join("fake_garbage.py"))
            .args(["--port", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
        what: "fake".into(),
    };
    wait_port(port, Duration::from_secs(10));
    let gateway = Gateway::start(&format!(
        "upstreams:\n  junk:\n    transport: http\n    url: http://127.0.0.1:{port}/mcp\n    prefix: \"\"\n"
    ));
    let session = open_session(gateway.port);
    let answer = session_call(gateway.port, &session, 1, "broken", "{}");
    assert_eq!(error_code(&answer), -32052, "{answer}");
    assert!(
        error_message(&answer).contains("upstream `junk` sent an invalid answer"),
        "{answer}"
    );
}

#[test]
fn a_dead_http_upstream_keeps_the_gateway_unready_and_calls_fail_clearly() {
    let port = free_port();
    let gateway = Gateway::start_unready(
        &format!(
            "upstreams:\n  gone:\n    transport: http\n    url: http://127.0.0.1:{port}/mcp\n    prefix: \"\"\n"
        ),
        &[],
    );
    std::thread::sleep(Duration::from_millis(500));
    let (status, body) = http_get(gateway.port, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("\"gone\"") && body.contains("unreachable"),
        "{body}"
    );
    assert_eq!(http_get_status(gateway.port, "/healthz"), Some(200));
    let (_, _, answer) = mcp_post(gateway.port, V2026, &envelope_call("echo"));
    assert_eq!(error_code(&answer), -32050, "{answer}");
    assert!(
        error_message(&answer).contains("upstream `gone` is unavailable"),
        "{answer}"
    );
}

#[test]
fn concurrent_calls_from_many_sessions_never_cross() {
    // On the single-threaded runtime, so that setting is exercised too.
    let gateway = Gateway::start(&format!(
        "proxy:\n  worker_threads: 1\n{}",
        echo_stdio_config("")
    ));
    let port = gateway.port;
    let sessions: Vec<String> = (0..6).map(|_| open_session(port)).collect();
    let threads: Vec<_> = sessions
        .iter()
        .enumerate()
        .flat_map(|(s, session)| {
            (1..=5).map(move |id| {
                let session = session.clone();
                std::thread::spawn(move || {
                    // Every session uses ids 1..=5: the gateway must keep them apart.
                    let message = format!("session {s} call {id}");
                    let answer = session_call(
                        port,
                        &session,
                        id,
                        "echo",
                        &format!(r#"{{"message":"{message}"}}"#),
                    );
                    (message, id, answer)
                })
            })
        })
        .collect();
    for thread in threads {
        let (message, id, answer) = thread.join().unwrap();
        assert_eq!(answer["id"], id, "{answer}");
        assert_eq!(
            answer["result"]["content"][0]["text"],
            message.as_str(),
            "{answer}"
        );
    }
}

#[test]
fn sigterm_lets_calls_in_flight_finish() {
    let mut gateway = Gateway::start(&echo_stdio_config(""));
    let port = gateway.port;
    // The child's pid, from the gateway's log line `stdio upstream ready … pid=N`.
    let child_pid: i32 = gateway
        .logs()
        .lines()
        .find(|l| l.contains("stdio upstream ready"))
        .and_then(|l| l.split("pid=").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .map(|pid| {
            pid.trim_matches(|c: char| !c.is_ascii_digit())
                .parse()
                .unwrap()
        })
        .expect("the upstream's pid in the log");
    assert!(std::path::Path::new(&format!("/proc/{child_pid}")).exists());
    let session = open_session(port);
    let call =
        std::thread::spawn(move || session_call(port, &session, 1, "slow", r#"{"seconds":1.5}"#));
    std::thread::sleep(Duration::from_millis(400));
    let status = gateway
        .proc
        .terminate(Duration::from_secs(20))
        .expect("the gateway did not exit");
    assert!(status.success(), "exit status {status}");
    // The upstream child was stopped too, not orphaned.
    let stat = std::fs::read_to_string(format!("/proc/{child_pid}/stat")).unwrap_or_default();
    assert!(
        stat.is_empty() || stat.contains(") Z "),
        "the stdio upstream {child_pid} outlived the gateway: {stat}"
    );
    let answer = call.join().unwrap();
    assert_eq!(
        answer["result"]["content"][0]["text"], "slept 1.5s",
        "{answer}"
    );
    let logs = gateway.logs();
    assert!(
        logs.contains("shutting down") && logs.contains("stopped"),
        "{logs}"
    );
}

#[test]
fn sessions_beyond_the_limit_are_refused_until_one_ends() {
    let gateway = Gateway::start(&format!(
        "proxy:\n  max_sessions: 2\n{}",
        echo_stdio_config("")
    ));
    let first = open_session(gateway.port);
    let _second = open_session(gateway.port);
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"t","version":"1"}}}"#;
    let (status, _, answer) = mcp_post(gateway.port, &[], init);
    assert_eq!(status, 503, "{answer}");
    assert!(error_message(&answer).contains("max_sessions"), "{answer}");
    let (status, _, _) = http_request(
        gateway.port,
        "DELETE",
        "/mcp",
        &[("mcp-session-id", &first)],
        b"",
    );
    assert_eq!(status, 200);
    let (status, _, _) = mcp_post(gateway.port, &[], init);
    assert_eq!(status, 200);
}

#[test]
fn a_port_in_use_is_a_clear_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port().to_string();
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_mcpguard"))
        .args(["serve", "--port", &port])
        .current_dir(dir.path())
        .env_remove("MCPGUARD_CONFIG")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("already in use") && stderr.contains(&port),
        "{stderr}"
    );
}

#[test]
fn a_restarted_http_upstream_gets_new_sessions_without_the_agent_noticing() {
    let port = free_port();
    let start = || py_http_server_on("py_echo_server.py", port, &[]);
    let mut server = start();
    let gateway = Gateway::start(&format!(
        "upstreams:\n  echo:\n    transport: http\n    url: http://127.0.0.1:{port}/mcp\n    prefix: \"\"\n"
    ));
    let session = open_session(gateway.port);
    let answer = session_call(gateway.port, &session, 1, "echo", r#"{"message":"before"}"#);
    assert_eq!(answer["result"]["content"][0]["text"], "before", "{answer}");
    // The upstream restarts and forgets every session it had.
    server.terminate(Duration::from_secs(10));
    drop(server);
    let _server = start();
    let answer = session_call(gateway.port, &session, 2, "echo", r#"{"message":"after"}"#);
    assert_eq!(answer["result"]["content"][0]["text"], "after", "{answer}");
    assert!(
        gateway.logs().contains("ended its session"),
        "{}",
        gateway.logs()
    );
}

#[test]
fn time_the_agent_spends_answering_does_not_count_against_the_upstream() {
    // A 1-second call timeout, and an agent that takes 2 seconds to answer a question the
    // upstream asks mid-call: the call still succeeds.
    let gateway = Gateway::start(&format!(
        "upstreams:\n  ev:\n    command: {}\n    args: [stdio]\n    prefix: \"\"\n    timeout_seconds: 1\n",
        yaml_str(&node_bin("mcp-server-everything").display().to_string())
    ));
    let port = gateway.port;
    let session = open_session_with(port, r#"{"elicitation":{}}"#);
    let body = r#"{"jsonrpc":"2.0","id":5,"method":"tools/call","params":{"name":"trigger-elicitation-request","arguments":{}}}"#;
    let mut reader = SseReader::post(
        port,
        &[
            ("Mcp-Session-Id", &session),
            ("Mcp-Protocol-Version", "2025-11-25"),
        ],
        body,
    );
    let mut next_message = || reader.next_message();
    let question = next_message();
    assert_eq!(question["method"], "elicitation/create", "{question}");
    std::thread::sleep(Duration::from_secs(2));
    let answer = format!(
        r#"{{"jsonrpc":"2.0","id":{},"result":{{"action":"accept","content":{{"name":"Ann","check":true,"email":"a@b.c","integer":7}}}}}}"#,
        question["id"]
    );
    let (status, _, _) = mcp_post(
        port,
        &[
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        &answer,
    );
    assert_eq!(status, 202);
    let result = next_message();
    assert_eq!(result["id"], 5, "{result}");
    assert!(
        result["result"]["content"]
            .to_string()
            .contains("Name: Ann"),
        "{result}"
    );
}
