//! The official MCP conformance suite (`@modelcontextprotocol/conformance`), run against our
//! conformance upstream directly and through the gateway, for both protocol revisions.
//!
//! Required: every scenario that passes directly also passes through the gateway. With an
//! HTTP upstream the gateway must be check-for-check identical (nothing lost, nothing
//! degraded); with a stdio upstream, where the upstream itself cannot stream SSE, only the
//! scenario outcomes must match. The table of results is written to
//! `target/conformance/table.md` (the README quotes it).

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};

use common::*;

const REVISIONS: [&str; 2] = ["2025-11-25", "2026-07-28"];

/// Per scenario: passed (no FAILURE check), and the ids of its SUCCESS checks.
type Outcome = BTreeMap<String, (bool, BTreeSet<String>)>;

fn run_suite(url: &str, revision: &str, out: &Path) -> Outcome {
    let status = Command::new("bash")
        .arg(peers().join("run_conformance.sh"))
        .args([url, revision, "-o"])
        .arg(out)
        // The suite's own summary would read like this project's test count: keep it out.
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("run the conformance suite");
    let _ = status; // Scenario outcomes are read from the files.
    let mut outcome = Outcome::new();
    for entry in std::fs::read_dir(out).expect("results directory") {
        let dir = entry.unwrap().path();
        let name = dir.file_name().unwrap().to_string_lossy().to_string();
        let Some(scenario) = name
            .strip_prefix("server-")
            .and_then(|rest| rest.get(..rest.len().saturating_sub(25)))
        else {
            continue;
        };
        let checks: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("checks.json")).unwrap())
                .unwrap();
        let checks = checks.as_array().unwrap();
        let passed = !checks.iter().any(|c| c["status"] == "FAILURE");
        let successes = checks
            .iter()
            .filter(|c| c["status"] == "SUCCESS")
            .map(|c| c["id"].as_str().unwrap().to_string())
            .collect();
        outcome.insert(scenario.to_string(), (passed, successes));
    }
    assert!(
        !outcome.is_empty(),
        "the suite wrote no results for {url} ({revision})"
    );
    outcome
}

fn mark(passed: Option<bool>) -> &'static str {
    match passed {
        Some(true) => "pass",
        Some(false) => "FAIL",
        None => "—",
    }
}

#[test]
fn conformance_suite_passes_through_the_gateway_as_it_does_directly() {
    let (_fixture, port) = py_http_server("conformance_server.py", &[]);
    let direct_url = format!("http://127.0.0.1:{port}/mcp");
    let http_gateway = Gateway::start(&format!(
        "observability:\n  log_level: warn\nupstreams:\n  conformance:\n    transport: http\n    url: {direct_url}\n    prefix: \"\"\n"
    ));
    let stdio_gateway = Gateway::start(&format!(
        "observability:\n  log_level: warn\nupstreams:\n  conformance:\n    command: {}\n    args: [{}, --transport, stdio]\n    prefix: \"\"\n",
        yaml_str(&python().display().to_string()),
        peer_yaml("conformance_server.py")
    ));
    let results = tempfile::tempdir().unwrap();
    let mut table = String::from(
        "| revision | scenario | direct | via gateway (HTTP upstream) | via gateway (stdio upstream) |\n|---|---|---|---|---|\n",
    );
    let mut problems = Vec::new();
    for revision in REVISIONS {
        let run = |label: &str, url: &str| {
            run_suite(
                url,
                revision,
                &results.path().join(format!("{revision}-{label}")),
            )
        };
        let direct = run("direct", &direct_url);
        let via_http = run("http", &http_gateway.url());
        let via_stdio = run("stdio", &stdio_gateway.url());
        for (scenario, (passed, successes)) in &direct {
            let http = via_http.get(scenario);
            let stdio = via_stdio.get(scenario);
            table.push_str(&format!(
                "| {revision} | {scenario} | {} | {} | {} |\n",
                mark(Some(*passed)),
                mark(http.map(|o| o.0)),
                mark(stdio.map(|o| o.0))
            ));
            if !passed {
                continue;
            }
            for (label, got) in [("http", http), ("stdio", stdio)] {
                if got.is_none_or(|o| !o.0) {
                    problems.push(format!(
                        "{revision} {scenario}: passes directly, fails via the {label} upstream"
                    ));
                }
            }
            if let Some((_, got)) = http {
                let lost: Vec<&String> = successes.difference(got).collect();
                if !lost.is_empty() {
                    problems.push(format!("{revision} {scenario}: checks that succeed directly but not via the http upstream: {lost:?}"));
                }
            }
        }
    }
    let target = repo().join("target/conformance");
    std::fs::create_dir_all(&target).unwrap();
    std::fs::write(target.join("table.md"), &table).unwrap();
    assert!(
        problems.is_empty(),
        "conformance lost through the gateway:\n{}\n\n{table}\nhttp gateway log:\n{}\nstdio gateway log:\n{}",
        problems.join("\n"),
        http_gateway.logs(),
        stdio_gateway.logs()
    );
    // The suite really ran: both revisions have their core scenarios.
    for needle in [
        "| 2025-11-25 | server-initialize | pass",
        "| 2026-07-28 | server-stateless | pass",
    ] {
        assert!(table.contains(needle), "missing `{needle}` in\n{table}");
    }
}
