//! `/metrics` through the running gateway: calls of every outcome, then the exposition is
//! checked by Prometheus's own `promtool check metrics` and read for the series.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use common::*;
use serde_json::json;

/// The value of the first sample whose line starts with `prefix`.
fn sample(text: &str, prefix: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no sample {prefix} in:\n{text}"))
}

#[test]
fn metrics_count_calls_by_outcome_and_pass_promtool() {
    let keys = keys();
    let db = keys.path().join("audit.db");
    let config = policy_and_rate_limit_config(keys.path(), &db, "{rate: 0.01, burst: 2}");
    let gateway = Gateway::start(&config);
    let script = json!([
        echo_call("AKIAQ3EGUZH7XK2LPM4T is my key"),
        echo_call("forbidden"),
        echo_call("two"),
        echo_call("three")
    ]);
    let run = py_client(&gateway.url(), "legacy", &script, &[]);
    run.ok("call_tool", 0);

    let (status, text) = http_get(gateway.port, "/metrics").unwrap();
    assert_eq!(status, 200);
    let promtool = repo().join(".tools/promtool");
    assert!(
        promtool.exists(),
        "{} is missing: run scripts/setup.sh",
        promtool.display()
    );
    let mut check = std::process::Command::new(&promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    check
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let checked = check.wait_with_output().unwrap();
    assert!(
        checked.status.success(),
        "promtool refused the exposition: {}{}\n{text}",
        String::from_utf8_lossy(&checked.stdout),
        String::from_utf8_lossy(&checked.stderr)
    );

    let calls = |outcome: &str, rule: &str| {
        sample(
            &text,
            &format!(
                "mcpguard_calls_total{{method=\"tools/call\",tool=\"echo\",upstream=\"{}\",outcome=\"{outcome}\",rule=\"{rule}\"}}",
                if outcome == "allowed" { "echo" } else { "" }
            ),
        )
    };
    assert_eq!(calls("allowed", ""), 2.0, "{text}");
    assert_eq!(calls("denied", "T-001"), 1.0, "{text}");
    assert_eq!(calls("rate_limited", ""), 1.0, "{text}");
    assert_eq!(
        sample(&text, "mcpguard_rate_limited_total{limit=\"per_tool\"}"),
        1.0
    );
    assert!(
        sample(
            &text,
            "mcpguard_findings_total{kind=\"secret.aws_access_key\",where=\"arguments\"}"
        ) >= 1.0
    );
    assert!(
        sample(
            &text,
            "mcpguard_phase_duration_seconds_count{phase=\"pre_execution\"}"
        ) >= 4.0
    );
    assert!(
        sample(
            &text,
            "mcpguard_upstream_duration_seconds_count{upstream=\"echo\"}"
        ) >= 2.0
    );
    assert!(
        sample(
            &text,
            "mcpguard_plugin_log_duration_seconds_count{plugin=\"audit\"}"
        ) >= 4.0
    );
    assert_eq!(
        sample(&text, "mcpguard_upstream_up{upstream=\"echo\"}"),
        1.0
    );
    assert_eq!(
        sample(&text, "mcpguard_upstream_restarts_total{upstream=\"echo\"}"),
        0.0
    );
}
