//! The official TypeScript SDK client through the gateway, against the reference server
//! `@modelcontextprotocol/server-everything` over stdio and over Streamable HTTP.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use common::*;
use serde_json::{Value, json};

fn everything_script(prefix: &str) -> Value {
    let t = |name: &str| format!("{prefix}{name}");
    json!([
        {"op": "list_tools"},
        {"op": "call_tool", "name": t("echo"), "arguments": {"message": "hi"}},
        {"op": "call_tool", "name": t("get-sum"), "arguments": {"a": 2, "b": 3}},
        {"op": "call_tool", "name": t("trigger-long-running-operation"), "arguments": {"duration": 1, "steps": 3}},
        {"op": "call_tool", "name": t("trigger-sampling-request"), "arguments": {"prompt": "hello", "maxTokens": 20}},
        {"op": "call_tool", "name": t("trigger-elicitation-request"), "arguments": {}},
        {"op": "list_resources"},
        {"op": "list_resource_templates"},
        {"op": "read_resource", "uri": "demo://resource/dynamic/text/1"},
        {"op": "list_prompts"},
        {"op": "get_prompt", "name": t("args-prompt"), "arguments": {"city": "Paris"}},
        {"op": "complete", "prompt": t("completable-prompt"), "argument": {"name": "department", "value": "E"}},
        {"op": "ping"},
        {"op": "set_logging_level", "level": "debug"}
    ])
}

fn assert_everything_session(run: &ClientRun, prefix: &str) {
    assert!(run.status.success(), "client failed: {}", run.stderr);
    let tools: Vec<&str> = run.ok("list_tools", 0)["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    for name in [
        "echo",
        "get-sum",
        "trigger-sampling-request",
        "trigger-elicitation-request",
    ] {
        let exposed = format!("{prefix}{name}");
        assert!(
            tools.contains(&exposed.as_str()),
            "{exposed} not in {tools:?}"
        );
    }
    assert_eq!(text_of(run.ok("call_tool", 0)), "Echo: hi");
    assert_eq!(text_of(run.ok("call_tool", 1)), "The sum of 2 and 3 is 5.");
    assert!(text_of(run.ok("call_tool", 2)).starts_with("Long running operation completed"));
    assert_eq!(
        run.notifications("notifications/progress").len(),
        3,
        "{:#?}",
        run.lines
    );
    assert!(text_of(run.ok("call_tool", 3)).contains("fixed sample"));
    assert_eq!(run.server_requests("sampling/createMessage").len(), 1);
    let elicited = run.ok("call_tool", 4)["content"].to_string();
    assert!(elicited.contains("Name: Ann"), "{elicited}");
    let resources = run.ok("list_resources", 0)["resources"].as_array().unwrap();
    assert!(resources.iter().any(|r| {
        r["uri"]
            .as_str()
            .unwrap()
            .starts_with("demo://resource/static/document/")
    }));
    assert!(
        run.ok("read_resource", 0)["contents"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Resource 1:")
    );
    let prompts = run.ok("list_prompts", 0)["prompts"].to_string();
    assert!(
        prompts.contains(&format!("\"{prefix}simple-prompt\"")),
        "{prompts}"
    );
    assert_eq!(
        run.ok("get_prompt", 0)["messages"][0]["content"]["text"],
        "What's weather in Paris?"
    );
    assert_eq!(
        run.ok("complete", 0)["completion"]["values"],
        json!(["Engineering"])
    );
    assert_eq!(run.ok("ping", 0), &json!({}));
    assert_eq!(run.ok("set_logging_level", 0), &json!({}));
}

#[test]
fn typescript_client_through_gateway_to_everything_over_stdio() {
    let gateway = Gateway::start(&format!(
        "upstreams:\n  ev:\n    command: {}\n    args: [stdio]\n",
        yaml_str(&node_bin("mcp-server-everything").display().to_string())
    ));
    let run = ts_client(&gateway.url(), &everything_script("ev__"), CALLBACKS);
    assert_everything_session(&run, "ev__");
}

#[test]
fn typescript_client_through_gateway_to_everything_over_http() {
    let (_server, port) = everything_http();
    let gateway = Gateway::start(&format!(
        "upstreams:\n  ev:\n    transport: http\n    url: http://127.0.0.1:{port}/mcp\n    prefix: \"\"\n"
    ));
    let run = ts_client(&gateway.url(), &everything_script(""), CALLBACKS);
    assert_everything_session(&run, "");
    // The agent's own capabilities reached the upstream: it registered the roots tool.
    let tools = run.ok("list_tools", 0)["tools"].to_string();
    assert!(tools.contains("get-roots-list"), "{tools}");
}

#[test]
fn typescript_client_over_stdio_through_mcpguard_stdio() {
    let everything = node_bin("mcp-server-everything").display().to_string();
    let program = [
        env!("CARGO_BIN_EXE_mcpguard"),
        "stdio",
        "--",
        &everything,
        "stdio",
    ];
    let run = ts_client_stdio(&everything_script(""), CALLBACKS, &program);
    assert_everything_session(&run, "");
}

#[test]
fn python_client_2026_reaches_a_handshake_only_server() {
    // server-everything speaks only 2025-11-25: the gateway bridges a 2026-07-28 agent.
    let (_server, port) = everything_http();
    let gateway = Gateway::start(&format!(
        "upstreams:\n  ev:\n    transport: http\n    url: http://127.0.0.1:{port}/mcp\n    prefix: \"\"\n"
    ));
    let script = json!([
        {"op": "list_tools"},
        {"op": "call_tool", "name": "get-sum", "arguments": {"a": 4, "b": 5}},
        {"op": "call_tool", "name": "trigger-long-running-operation", "arguments": {"duration": 1, "steps": 2}},
        {"op": "read_resource", "uri": "demo://resource/dynamic/text/2"},
        {"op": "get_prompt", "name": "simple-prompt", "arguments": {}},
        {"op": "call_tool", "name": "trigger-elicitation-request", "arguments": {}},
        {"op": "call_tool", "name": "trigger-sampling-request", "arguments": {"prompt": "hello", "maxTokens": 20}}
    ]);
    let run = py_client(&gateway.url(), "auto", &script, CALLBACKS);
    assert!(run.status.success(), "{}", run.stderr);
    assert_eq!(run.connected()["protocolVersion"], "2026-07-28");
    assert_eq!(text_of(run.ok("call_tool", 0)), "The sum of 4 and 5 is 9.");
    assert!(text_of(run.ok("call_tool", 1)).starts_with("Long running operation completed"));
    assert_eq!(run.notifications("notifications/progress").len(), 2);
    assert!(
        run.ok("read_resource", 0)["contents"][0]["text"]
            .as_str()
            .unwrap()
            .starts_with("Resource 2:")
    );
    assert!(run.ok("get_prompt", 0)["messages"].as_array().is_some());
    // The upstream asks mid-call; the 2026-07-28 agent is asked through `input_required`.
    let elicited = run.ok("call_tool", 2)["content"].to_string();
    assert!(elicited.contains("Name: Ann"), "{elicited}");
    assert!(text_of(run.ok("call_tool", 3)).contains("fixed sample"));
    assert_eq!(
        run.server_requests("elicitation/create").len(),
        1,
        "{:#?}",
        run.lines
    );
    assert_eq!(run.server_requests("sampling/createMessage").len(), 1);
}
