//! Several upstreams behind one endpoint: a Python SDK server and the reference filesystem
//! server over stdio, the reference "everything" server over HTTP. Names are prefixed and
//! routed back; resources route by URI; both SDK clients see one server.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

struct Federation {
    gateway: Gateway,
    files: tempfile::TempDir,
    _everything: Proc,
}

fn federation() -> Federation {
    let (everything, port) = everything_http();
    let files = tempfile::tempdir().unwrap();
    std::fs::write(files.path().join("report.txt"), "quarterly numbers: 42").unwrap();
    let config = format!(
        "upstreams:\n  echo:\n    command: {py}\n    args: [{echo}, --transport, stdio]\n  fs:\n    command: {fs}\n    args: [{dir}]\n  ev:\n    transport: http\n    url: http://127.0.0.1:{port}/mcp\n",
        py = yaml_str(&python().display().to_string()),
        echo = peer_yaml("py_echo_server.py"),
        fs = yaml_str(&node_bin("mcp-server-filesystem").display().to_string()),
        dir = yaml_str(&files.path().display().to_string()),
    );
    Federation {
        gateway: Gateway::start(&config),
        files,
        _everything: everything,
    }
}

fn script(dir: &str) -> Value {
    json!([
        {"op": "list_tools"},
        {"op": "call_tool", "name": "fs__read_text_file", "arguments": {"path": format!("{dir}/report.txt")}},
        {"op": "call_tool", "name": "fs__write_file", "arguments": {"path": format!("{dir}/note.txt"), "content": "via the gateway"}},
        {"op": "call_tool", "name": "ev__get-sum", "arguments": {"a": 2, "b": 3}},
        {"op": "call_tool", "name": "echo__echo", "arguments": {"message": "hi"}},
        {"op": "call_tool", "name": "nope__missing", "arguments": {}},
        {"op": "list_prompts"},
        {"op": "get_prompt", "name": "ev__simple-prompt", "arguments": {}},
        {"op": "get_prompt", "name": "echo__greet", "arguments": {"name": "ann"}},
        {"op": "list_resources"},
        {"op": "read_resource", "uri": "echo://static"},
        {"op": "read_resource", "uri": "echo://item/5"},
        {"op": "read_resource", "uri": "demo://resource/dynamic/text/3"},
        {"op": "complete", "prompt": "echo__greet", "argument": {"name": "name", "value": "al"}}
    ])
}

fn assert_federated(run: &ClientRun, files: &std::path::Path) {
    assert!(run.status.success(), "{}", run.stderr);
    let tools: Vec<String> = run.ok("list_tools", 0)["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect();
    for name in ["echo__echo", "fs__read_text_file", "ev__get-sum"] {
        assert!(
            tools.iter().any(|t| t == name),
            "{name} missing from {tools:?}"
        );
    }
    assert!(
        tools
            .iter()
            .all(|t| t.starts_with("echo__") || t.starts_with("fs__") || t.starts_with("ev__")),
        "an unprefixed name leaked: {tools:?}"
    );
    assert_eq!(text_of(run.ok("call_tool", 0)), "quarterly numbers: 42");
    assert!(text_of(run.ok("call_tool", 1)).contains("Successfully wrote"));
    assert_eq!(
        std::fs::read_to_string(files.join("note.txt")).unwrap(),
        "via the gateway"
    );
    assert_eq!(text_of(run.ok("call_tool", 2)), "The sum of 2 and 3 is 5.");
    assert_eq!(text_of(run.ok("call_tool", 3)), "hi");
    let unknown = run.step("call_tool", 4);
    assert_eq!(unknown["ok"], false, "{unknown}");
    assert!(
        unknown["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown tool `nope__missing`"),
        "{unknown}"
    );
    let prompts = run.ok("list_prompts", 0)["prompts"].to_string();
    assert!(
        prompts.contains("\"ev__simple-prompt\"") && prompts.contains("\"echo__greet\""),
        "{prompts}"
    );
    assert!(run.ok("get_prompt", 0)["messages"].as_array().is_some());
    assert!(
        run.ok("get_prompt", 1)["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("ann")
    );
    let resources = run.ok("list_resources", 0)["resources"].to_string();
    assert!(
        resources.contains("echo://static")
            && resources.contains("demo://resource/static/document/"),
        "{resources}"
    );
    assert_eq!(
        run.ok("read_resource", 0)["contents"][0]["text"],
        "static resource content"
    );
    assert_eq!(run.ok("read_resource", 1)["contents"][0]["text"], "item 5");
    assert!(
        run.ok("read_resource", 2)["contents"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Resource 3:")
    );
    assert_eq!(
        run.ok("complete", 0)["completion"]["values"],
        json!(["alice", "alfred"])
    );
}

#[test]
fn both_sdk_clients_see_three_upstreams_as_one_server() {
    let federation = federation();
    let dir = federation.files.path().display().to_string();
    let ts = ts_client(&federation.gateway.url(), &script(&dir), &[]);
    assert_federated(&ts, federation.files.path());
    assert_eq!(ts.connected()["serverInfo"]["name"], "mcpguard");
    std::fs::remove_file(federation.files.path().join("note.txt")).unwrap();
    let py = py_client(&federation.gateway.url(), "auto", &script(&dir), &[]);
    assert_eq!(py.connected()["protocolVersion"], "2026-07-28");
    assert_federated(&py, federation.files.path());
}

#[test]
fn a_request_id_still_in_flight_is_refused_not_crossed() {
    let gateway = Gateway::start(&echo_stdio_config(""));
    let port = gateway.port;
    let session = open_session(port);
    let caller_session = session.clone();
    let slow = std::thread::spawn(move || {
        session_call(port, &caller_session, 7, "slow", r#"{"seconds":1.5}"#)
    });
    std::thread::sleep(Duration::from_millis(400));
    let reused = session_call(port, &session, 7, "echo", r#"{"message":"second"}"#);
    assert_eq!(reused["error"]["code"], -32600, "{reused}");
    assert!(
        reused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("already used"),
        "{reused}"
    );
    // The first call with that id is unharmed and gets its own answer.
    let first = slow.join().unwrap();
    assert!(first["result"].is_object(), "{first}");
    // Once it has answered, the id is free again.
    let again = session_call(port, &session, 7, "echo", r#"{"message":"third"}"#);
    assert_eq!(again["result"]["content"][0]["text"], "third", "{again}");
}

#[test]
fn a_cancelled_call_stops_at_once() {
    let gateway = Gateway::start(&echo_stdio_config(""));
    let port = gateway.port;
    let session = open_session(port);
    let caller_session = session.clone();
    let started = Instant::now();
    let call = std::thread::spawn(move || {
        session_call(port, &caller_session, 41, "slow", r#"{"seconds":10}"#)
    });
    std::thread::sleep(Duration::from_millis(500));
    let (status, _, _) = mcp_post(
        port,
        &[
            ("mcp-session-id", &session),
            ("mcp-protocol-version", "2025-11-25"),
        ],
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":41,"reason":"user pressed stop"}}"#,
    );
    assert_eq!(status, 202);
    let answer = call.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "the call was not cancelled"
    );
    assert_eq!(answer["error"]["code"], -32800, "{answer}");
    // The upstream is free for the next call.
    let answer = session_call(port, &session, 42, "echo", r#"{"message":"next"}"#);
    assert_eq!(answer["result"]["content"][0]["text"], "next", "{answer}");
}

#[test]
fn a_stateless_agent_listens_to_every_upstream_at_once() {
    let gateway = Gateway::start(&format!(
        "upstreams:\n  conf:\n    command: {py}\n    args: [{conf}, --transport, stdio]\n  echo:\n    command: {py}\n    args: [{echo}, --transport, stdio]\n",
        py = yaml_str(&python().display().to_string()),
        conf = peer_yaml("conformance_server.py"),
        echo = peer_yaml("py_echo_server.py"),
    ));
    let meta = r#""_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}"#;
    let body = format!(
        r#"{{"jsonrpc":"2.0","id":"sub-7","method":"subscriptions/listen","params":{{"notifications":{{"toolsListChanged":true}},{meta}}}}}"#
    );
    let mut reader = SseReader::post(
        gateway.port,
        &[
            ("Mcp-Protocol-Version", "2026-07-28"),
            ("Mcp-Method", "subscriptions/listen"),
        ],
        &body,
    );
    let mut next_message = || reader.next_message();
    // One acknowledgement, from the gateway, naming the agent's request.
    let ack = next_message();
    assert_eq!(
        ack["method"], "notifications/subscriptions/acknowledged",
        "{ack}"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-7"
    );
    // A change in one upstream reaches the stream, tagged with the agent's id.
    let call = format!(
        r#"{{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{{"name":"conf__test_trigger_tool_change","arguments":{{}},{meta}}}}}"#
    );
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "conf__test_trigger_tool_change"),
    ];
    let (status, _, answer) = mcp_post(gateway.port, &headers, &call);
    assert_eq!(status, 200, "{answer}");
    let change = next_message();
    assert_eq!(
        change["method"], "notifications/tools/list_changed",
        "{change}"
    );
    assert_eq!(
        change["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "sub-7"
    );
}

#[test]
fn a_question_from_a_shared_upstream_never_reaches_the_wrong_agent() {
    // One stdio child serves every agent. With two calls in flight, a question the server
    // asks cannot be attributed: it is refused, never shown to the other agent.
    let gateway = Gateway::start(&format!(
        "upstreams:\n  ev:\n    command: {}\n    args: [stdio]\n    prefix: \"\"\n",
        yaml_str(&node_bin("mcp-server-everything").display().to_string())
    ));
    let port = gateway.port;
    let capable = r#"{"elicitation":{}}"#;
    let alice = open_session_with(port, capable);
    let bob = open_session_with(port, capable);
    let alice_call = std::thread::spawn(move || {
        session_call_raw(
            port,
            &alice,
            1,
            "trigger-long-running-operation",
            r#"{"duration":3,"steps":3}"#,
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    let bob_body = session_call_raw(port, &bob, 1, "trigger-elicitation-request", "{}");
    let alice_body = alice_call.join().unwrap();
    assert!(
        !alice_body.contains("elicitation/create"),
        "bob's question reached alice: {alice_body}"
    );
    assert!(
        alice_body.contains("Long running operation completed"),
        "{alice_body}"
    );
    // Bob's tool got a clear refusal instead of an answer from the wrong person.
    assert!(
        bob_body.contains("cannot tell which one asks"),
        "{bob_body}"
    );
}

#[test]
fn an_unlisted_tool_with_header_params_is_called_with_its_headers() {
    // A stateless agent may call a tool it never listed. The upstream requires the tool's
    // `Mcp-Param-*` headers, which the gateway can only compute from the tool's schema.
    let (_fixture, port) = py_http_server("conformance_server.py", &[]);
    let gateway = Gateway::start(&format!(
        "upstreams:\n  conf:\n    transport: http\n    url: http://127.0.0.1:{port}/mcp\n"
    ));
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"conf__test_header_param","arguments":{"region":"eu-west"},"_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{}}}}"#;
    let headers = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "conf__test_header_param"),
        ("mcp-param-region", "eu-west"),
    ];
    let (status, _, answer) = mcp_post(gateway.port, &headers, body);
    assert_eq!(status, 200, "{answer}");
    assert_eq!(
        answer["result"]["content"][0]["text"], "region=eu-west",
        "{answer}"
    );
    // Now the tool is known, a header that disagrees with the argument is refused here.
    let lying = [
        ("mcp-protocol-version", "2026-07-28"),
        ("mcp-method", "tools/call"),
        ("mcp-name", "conf__test_header_param"),
        ("mcp-param-region", "us-east"),
    ];
    let (status, _, answer) = mcp_post(gateway.port, &lying, body);
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["code"], -32020);
}

#[test]
fn one_agents_log_level_neither_silences_nor_floods_another_on_a_shared_upstream() {
    // A handshake-era stdio upstream: one connection, one log threshold, for every agent.
    let gateway = Gateway::start(&echo_stdio_config("    protocol: handshake\n"));
    let port = gateway.port;
    let quiet = open_session(port);
    let chatty = open_session(port);
    let set_level = |session: &str, level: &str| {
        let (status, _, answer) = mcp_post(
            port,
            &[
                ("mcp-session-id", session),
                ("mcp-protocol-version", "2025-11-25"),
            ],
            &format!(
                r#"{{"jsonrpc":"2.0","id":90,"method":"logging/setLevel","params":{{"level":"{level}"}}}}"#
            ),
        );
        assert_eq!(status, 200, "{answer}");
    };
    set_level(&chatty, "debug");
    // The quiet agent asks for errors only, after the chatty one asked for everything:
    // the shared upstream must not be turned down for both.
    set_level(&quiet, "error");
    let chatty_log = session_call_raw(
        port,
        &chatty,
        1,
        "log",
        r#"{"message":"for-chatty","level":"info"}"#,
    );
    assert!(
        chatty_log.contains("notifications/message"),
        "the chatty agent gets its info line: {chatty_log}"
    );
    let quiet_log = session_call_raw(
        port,
        &quiet,
        2,
        "log",
        r#"{"message":"for-quiet","level":"info"}"#,
    );
    assert!(
        !quiet_log.contains("notifications/message"),
        "the quiet agent gets no info line: {quiet_log}"
    );
    assert!(
        quiet_log.contains("for-quiet"),
        "the call itself answers: {quiet_log}"
    );
    let quiet_error = session_call_raw(
        port,
        &quiet,
        3,
        "log",
        r#"{"message":"bad","level":"error"}"#,
    );
    assert!(
        quiet_error.contains("notifications/message"),
        "an error line reaches the quiet agent: {quiet_error}"
    );
}

/// How many processes run with `marker` in their command line.
fn processes_with(marker: &str) -> usize {
    let out = std::process::Command::new("pgrep")
        .args(["-f", "-c", marker])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[test]
fn with_session_isolation_each_session_has_a_server_of_its_own() {
    // A marker in the server's arguments, to count its processes.
    let marker = format!("/isolated-{}", std::process::id());
    let gateway = Gateway::start(&format!(
        "upstreams:\n  echo:\n    command: {py}\n    args: [{echo}, --transport, stdio, --path, '{marker}']\n    prefix: \"\"\n    isolation: session\n",
        py = yaml_str(&python().display().to_string()),
        echo = peer_yaml("py_echo_server.py"),
    ));
    let port = gateway.port;
    assert_eq!(processes_with(&marker), 1, "the shared server (listings)");
    let first = open_session(port);
    let second = open_session(port);
    let hello =
        |session: &str, id: u64| session_call(port, session, id, "echo", r#"{"message":"hello"}"#);
    assert_eq!(hello(&first, 1)["result"]["content"][0]["text"], "hello");
    assert_eq!(hello(&second, 2)["result"]["content"][0]["text"], "hello");
    assert_eq!(processes_with(&marker), 3, "one more per session");
    // One agent brings its server down; the other's is untouched.
    let _ = session_call(port, &first, 3, "crash", r#"{"code":3}"#);
    assert_eq!(hello(&second, 4)["result"]["content"][0]["text"], "hello");
    // Ending a session stops its server.
    for session in [&first, &second] {
        let (status, _, _) = http_request(
            port,
            "DELETE",
            "/mcp",
            &[("mcp-session-id", session.as_str())],
            b"",
        );
        assert_eq!(status, 200);
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while processes_with(&marker) > 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(processes_with(&marker), 1, "only the shared server is left");
}

#[test]
fn session_isolation_of_an_http_upstream_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(
        &path,
        "upstreams:\n  web:\n    transport: http\n    url: http://127.0.0.1:9/mcp\n    isolation: session\n",
    )
    .unwrap();
    let out = mcpguard(&["--config", s(&path), "config-show"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("upstreams.web.isolation"),
        "{}",
        text(&out)
    );
}
