//! Inputs for the guard benchmarks (criterion bench `guard` and the `scan-latency` bin):
//! realistic tool arguments and policies of a chosen size.

use std::collections::BTreeSet;

use mcpguard_policy::{Action, Call, Policy, PolicyError, SessionFacts};

/// Tool arguments of about `size` bytes: a path, options and a body of prose with
/// numbers, dates, paths and identifiers — and no secrets.
pub fn arguments(size: usize) -> String {
    let words = [
        "the",
        "report",
        "shows",
        "revenue",
        "for",
        "quarter",
        "3",
        "was",
        "12.5%",
        "higher",
        "see",
        "/srv/data/q3.csv",
        "and",
        "ticket",
        "OPS-4821",
        "updated",
        "2026-11-24",
        "by",
        "build",
        "a3f9c2e",
        "version",
        "1.4.2",
        "order",
        "#88231",
        "total",
        "$4,120.00",
    ];
    let mut body = String::new();
    let mut i = 0;
    while body.len() < size.saturating_sub(120) {
        body.push_str(words[i % words.len()]);
        body.push(' ');
        i += 7;
    }
    serde_json::json!({"path": "/srv/data/out.txt", "mode": "append", "content": body}).to_string()
}

/// A policy of `n` rules shaped like real ones (tool globs, label conditions, argument
/// patterns, `re:` patterns), with the one that allows `read_*` last.
pub fn policy_of(n: usize) -> Result<Policy, Vec<PolicyError>> {
    let mut yaml = String::from("default_action: deny\nrules:\n");
    for i in 0..n.saturating_sub(1) {
        let rule = match i % 4 {
            0 => format!(
                "  - {{ id: r{i}, action: deny, priority: {i}, tool_patterns: [\"tool{i}_*\", \"other{i}\"] }}\n"
            ),
            1 => format!(
                "  - {{ id: r{i}, action: deny, priority: {i}, tool_patterns: [\"http_{i}*\"], taint_labels: [secret, pii] }}\n"
            ),
            2 => format!(
                "  - {{ id: r{i}, action: deny, priority: {i}, tool_patterns: [\"fs{i}_*\"], argument_patterns: [{{ key: \"*path*\", match: \"^/etc/\" }}] }}\n"
            ),
            _ => format!(
                "  - {{ id: r{i}, action: sandbox, priority: {i}, servers: [\"srv{i}\"], tool_patterns: [\"re:^exec{i}\"] }}\n"
            ),
        };
        yaml.push_str(&rule);
    }
    yaml.push_str(&format!(
        "  - {{ id: allow, action: allow, priority: {n}, tool_patterns: [\"read_*\"] }}\n"
    ));
    mcpguard_policy::compile(&[("bench.yaml".into(), yaml)], Action::Deny)
}

/// A `tools/call` of `fs__read_file` (upstream `fs`, tool `read_file`): the call that the
/// policies of [`policy_of`] allow, after every other rule was looked at.
pub fn read_file_call<'a>(
    arguments: &'a serde_json::Value,
    labels: &'a BTreeSet<String>,
    session: &'a SessionFacts,
) -> Call<'a> {
    Call {
        method: "tools/call",
        target: Some("read_file"),
        exposed: Some("fs__read_file"),
        server: Some("fs"),
        arguments: Some(arguments),
        labels,
        identity: None,
        roles: &[],
        session,
    }
}
