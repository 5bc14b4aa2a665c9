//! Rate limits through the running gateway with the Python SDK client: the per-tool
//! bucket refuses the call past its burst (HTTP 429, `Retry-After`, JSON-RPC -32058),
//! calls the policy denies cost nothing, two gateways on one Redis share the limits,
//! and a Redis that does not answer fails closed (or open, when configured so).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use common::*;
use serde_json::json;

fn tools_call(id: u64) -> String {
    format!(
        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"raw"}},"_meta":{{"io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{{}}}}}}}}"#
    )
}

#[test]
fn the_per_tool_bucket_refuses_past_its_burst_and_denied_calls_cost_nothing() {
    let keys = keys();
    let db = keys.path().join("audit.db");
    let config = policy_and_rate_limit_config(keys.path(), &db, "{rate: 0.05, burst: 2}");
    let gateway = Gateway::start(&config);
    let script = json!([
        echo_call("forbidden"),
        echo_call("forbidden"),
        echo_call("forbidden"),
        echo_call("one"),
        echo_call("two"),
        echo_call("three"),
        {"op": "list_tools"},
    ]);
    let run = py_client(&gateway.url(), "legacy", &script, &[]);
    for n in 0..3 {
        assert!(
            run.step("call_tool", n).to_string().contains("T-001"),
            "{}",
            run.step("call_tool", n)
        );
    }
    assert_eq!(text_of(run.ok("call_tool", 3)), "one");
    assert_eq!(text_of(run.ok("call_tool", 4)), "two");
    let limited = run.step("call_tool", 5);
    assert_eq!(limited["error"]["code"], -32058, "{limited}");
    assert!(
        limited["error"]["message"]
            .as_str()
            .unwrap()
            .contains("per_tool"),
        "{limited}"
    );
    // Listing is not a tool call: it is not limited by the per-tool bucket.
    run.ok("list_tools", 0);

    // Sent as JSON, the refusal is an HTTP 429 with when to come back.
    let (status, headers, body) = mcp_post(
        gateway.port,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        &tools_call(9),
    );
    assert_eq!(status, 429, "{body}");
    let header = |name: &str| header_of(&headers, name);
    let retry: u64 = header("retry-after").parse().unwrap();
    assert!((1..=20).contains(&retry), "{retry}");
    assert_eq!(header("x-ratelimit-limit"), "2");
    assert_eq!(header("x-ratelimit-remaining"), "0");
    assert!(body["error"]["data"]["retry_after_ms"].as_u64().unwrap() > 0);
    drop(gateway);

    let outcomes: Vec<String> = records(&db)
        .into_iter()
        .map(|r| r["event"].clone())
        .filter(|e| e["tool"] == "echo")
        .map(|e| e["outcome"].as_str().unwrap_or_default().to_string())
        .collect();
    assert_eq!(
        outcomes,
        [
            "denied",
            "denied",
            "denied",
            "allowed",
            "allowed",
            "rate_limited",
            "rate_limited"
        ]
    );
}

#[test]
fn two_gateways_on_one_redis_share_the_limit_and_a_dead_redis_fails_closed() {
    let prefix = format!(
        "mcpguard-it:{}-{}:",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos()
    );
    let shared = format!(
        "{upstream}rate_limits:\n  enabled: true\n  backend: redis\n  \
         per_tool: {{rate: 0.05, burst: 3}}\n  redis: {{url: 'redis://127.0.0.1:6379', key_prefix: '{prefix}'}}\n",
        upstream = echo_stdio_config(""),
    );
    let a = Gateway::start(&shared);
    let b = Gateway::start(&shared);
    let call = json!([echo_call("x")]);
    // Anonymous callers are keyed by address: both gateways see 127.0.0.1.
    for gateway in [&a, &b, &a] {
        let run = py_client(&gateway.url(), "auto", &call, &[]);
        assert_eq!(text_of(run.ok("call_tool", 0)), "x");
    }
    let run = py_client(&b.url(), "auto", &call, &[]);
    assert_eq!(run.step("call_tool", 0)["error"]["code"], -32058);
    drop((a, b));

    // Redis not answering: refused by default...
    let dead = |on_error: &str| {
        format!(
            "{upstream}rate_limits:\n  enabled: true\n  backend: redis\n  per_identity: {{rate: 100}}\n  \
             redis: {{url: 'redis://127.0.0.1:1', timeout_ms: 300, on_error: {on_error}}}\n",
            upstream = echo_stdio_config(""),
        )
    };
    let closed = Gateway::start(&dead("deny"));
    let run = py_client(&closed.url(), "auto", &call, &[]);
    let refused = run.step("call_tool", 0).to_string();
    assert!(refused.contains("rate limiter cannot decide"), "{refused}");
    drop(closed);
    // ...let through when configured so.
    let open = Gateway::start(&dead("allow"));
    let run = py_client(&open.url(), "auto", &call, &[]);
    assert_eq!(text_of(run.ok("call_tool", 0)), "x");
}

/// A stateless tool call as client `forwarded_for` behind a balancer on loopback; the
/// HTTP status.
fn call_as(port: u16, forwarded_for: &str, id: u64) -> u16 {
    mcp_post(
        port,
        &[
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
            ("x-forwarded-for", forwarded_for),
        ],
        &tools_call(id),
    )
    .0
}

#[test]
fn behind_a_trusted_balancer_anonymous_callers_are_told_apart_by_x_forwarded_for() {
    let limit = "rate_limits:\n  enabled: true\n  per_identity: {rate: 0.01, burst: 1}\n";
    // The balancer (here: the test, on loopback) is trusted: two clients, two buckets.
    let trusting = Gateway::start(&echo_stdio_config(&format!(
        "{limit}proxy:\n  trusted_proxies: [127.0.0.1/32, '::1']\n"
    )));
    assert_eq!(call_as(trusting.port, "203.0.113.1", 1), 200);
    assert_eq!(call_as(trusting.port, "203.0.113.1", 2), 429);
    assert_eq!(call_as(trusting.port, "203.0.113.2", 3), 200);
    // A hop the client wrote itself, left of the balancer's, changes nothing.
    assert_eq!(call_as(trusting.port, "198.51.100.7, 203.0.113.1", 4), 429);
    // Without trusted proxies the header is ignored: one address, one bucket.
    let plain = Gateway::start(&echo_stdio_config(limit));
    assert_eq!(call_as(plain.port, "203.0.113.1", 1), 200);
    assert_eq!(call_as(plain.port, "203.0.113.2", 2), 429);
}
