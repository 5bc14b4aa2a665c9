//! The official Python SDK client (`mcp` 2.3) through the gateway, in both protocol eras,
//! against Python SDK servers over stdio and over Streamable HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use common::*;
use serde_json::{Value, json};

/// Every kind of call the echo server offers.
fn echo_script() -> Value {
    json!([
        {"op": "list_tools"},
        {"op": "call_tool", "name": "echo", "arguments": {"message": "hi"}},
        {"op": "call_tool", "name": "slow", "arguments": {"seconds": 0.3}},
        {"op": "call_tool", "name": "log", "arguments": {"message": "hello log", "level": "warning"}},
        {"op": "call_tool", "name": "ask_user", "arguments": {"question": "Favourite colour?"}},
        {"op": "call_tool", "name": "sample", "arguments": {"prompt": "Say something"}},
        {"op": "call_tool", "name": "list_roots", "arguments": {}},
        {"op": "list_resources"},
        {"op": "list_resource_templates"},
        {"op": "read_resource", "uri": "echo://static"},
        {"op": "read_resource", "uri": "echo://item/7"},
        {"op": "list_prompts"},
        {"op": "get_prompt", "name": "greet", "arguments": {"name": "bob"}},
        {"op": "complete", "prompt": "greet", "argument": {"name": "name", "value": "al"}},
        {"op": "call_tool", "name": "nope", "arguments": {}}
    ])
}

fn assert_echo_session(run: &ClientRun, era: &str) {
    assert!(run.status.success(), "client failed: {}", run.stderr);
    assert_eq!(run.connected()["protocolVersion"], era, "{:#?}", run.lines);
    let tools = run.ok("list_tools", 0)["tools"].as_array().unwrap();
    assert!(tools.iter().any(|t| t["name"] == "echo"), "{tools:?}");
    assert_eq!(text_of(run.ok("call_tool", 0)), "hi");
    assert_eq!(text_of(run.ok("call_tool", 1)), "slept 0.3s");
    let progress = run.notifications("notifications/progress");
    assert_eq!(progress.len(), 3, "progress notifications: {progress:?}");
    assert_eq!(text_of(run.ok("call_tool", 2)), "hello log");
    assert!(
        run.notifications("notifications/message")
            .iter()
            .any(|n| n["notification"]["params"]["data"] == "hello log"),
        "log message missing: {:#?}",
        run.lines
    );
    // Elicitation, sampling and roots reach the client and their answers reach the tool.
    assert_eq!(text_of(run.ok("call_tool", 3)), "blue");
    assert_eq!(run.server_requests("elicitation/create").len(), 1);
    assert_eq!(text_of(run.ok("call_tool", 4)), "fixed sample");
    assert!(text_of(run.ok("call_tool", 5)).contains("file:///tmp/mcpguard-root"));
    assert_eq!(
        run.ok("list_resources", 0)["resources"][0]["uri"],
        "echo://static"
    );
    assert_eq!(
        run.ok("list_resource_templates", 0)["resourceTemplates"][0]["uriTemplate"],
        "echo://item/{id}"
    );
    assert_eq!(
        run.ok("read_resource", 0)["contents"][0]["text"],
        "static resource content"
    );
    assert_eq!(run.ok("read_resource", 1)["contents"][0]["text"], "item 7");
    assert_eq!(run.ok("list_prompts", 0)["prompts"][0]["name"], "greet");
    let prompt = run.ok("get_prompt", 0);
    assert!(
        prompt["messages"][0]["content"]["text"]
            .as_str()
            .unwrap()
            .contains("bob")
    );
    assert_eq!(
        run.ok("complete", 0)["completion"]["values"],
        json!(["alice", "alfred"])
    );
    let unknown = run.ok("call_tool", 6);
    assert_eq!(unknown["isError"], true);
}

/// A 2026-07-28 client gets log messages only when it asks for them per request.
fn modern_callbacks() -> Vec<&'static str> {
    let mut args = CALLBACKS.to_vec();
    args.extend(["--log-level", "debug"]);
    args
}

fn stdio_config() -> String {
    format!(
        "upstreams:\n  echo:\n    command: {}\n    args: [{}, --transport, stdio]\n    prefix: \"\"\n",
        yaml_str(&python().display().to_string()),
        peer_yaml("py_echo_server.py")
    )
}

#[test]
fn python_client_both_eras_through_gateway_to_stdio_server() {
    let gateway = Gateway::start(&stdio_config());
    let modern = py_client(&gateway.url(), "auto", &echo_script(), &modern_callbacks());
    assert_echo_session(&modern, "2026-07-28");
    // The stateless revision removed ping: the gateway says so, like a 2026 server would.
    let legacy = py_client(&gateway.url(), "legacy", &echo_script(), CALLBACKS);
    assert_echo_session(&legacy, "2025-11-25");
}

#[test]
fn python_client_both_eras_through_gateway_to_http_server() {
    let (_server, port) = py_http_server("py_echo_server.py", &[]);
    let gateway = Gateway::start(&format!(
        "upstreams:\n  echo:\n    transport: http\n    url: http://127.0.0.1:{port}/mcp\n    prefix: \"\"\n"
    ));
    let modern = py_client(&gateway.url(), "auto", &echo_script(), &modern_callbacks());
    assert_echo_session(&modern, "2026-07-28");
    let legacy = py_client(&gateway.url(), "legacy", &echo_script(), CALLBACKS);
    assert_echo_session(&legacy, "2025-11-25");
}

#[test]
fn era_specific_methods_answer_as_each_revision_says() {
    let gateway = Gateway::start(&stdio_config());
    let script = json!([{"op": "ping"}, {"op": "set_logging_level", "level": "debug"}]);
    let modern = py_client(&gateway.url(), "auto", &script, &[]);
    for op in ["ping", "set_logging_level"] {
        let step = modern.step(op, 0);
        assert_eq!(step["ok"], false, "{step}");
        assert_eq!(step["error"]["code"], -32601, "{step}");
    }
    let legacy = py_client(&gateway.url(), "legacy", &script, &[]);
    assert_eq!(legacy.ok("ping", 0), &json!({}));
    assert_eq!(legacy.ok("set_logging_level", 0), &json!({}));
}

#[test]
fn python_client_over_stdio_through_mcpguard_stdio() {
    let gateway = env!("CARGO_BIN_EXE_mcpguard");
    let python = python().display().to_string();
    let server = peers().join("py_echo_server.py").display().to_string();
    let program = [
        gateway,
        "stdio",
        "--",
        &python,
        &server,
        "--transport",
        "stdio",
    ];
    for (mode, era) in [("auto", "2026-07-28"), ("legacy", "2025-11-25")] {
        let run = py_client_stdio(mode, &echo_script(), &modern_callbacks(), &program);
        assert_echo_session(&run, era);
    }
}
