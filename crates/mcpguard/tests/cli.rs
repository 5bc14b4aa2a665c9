//! The command line: init, config errors with positions, layered configuration with
//! provenance, help.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

use std::process::{Command, Output};

fn mcpguard(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mcpguard"));
    command
        .args(args)
        .current_dir(dir)
        .env_remove("MCPGUARD_CONFIG");
    for (key, _) in std::env::vars() {
        if key.starts_with("MCPGUARD_") {
            command.env_remove(key);
        }
    }
    command.envs(env.iter().copied());
    command.output().unwrap()
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn init_writes_a_config_that_config_show_reads() {
    let dir = tempfile::tempdir().unwrap();
    let out = mcpguard(dir.path(), &["init"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(dir.path().join(".mcpguard/config.yaml").exists());
    assert!(dir.path().join(".mcpguard/policies").is_dir());
    let again = mcpguard(dir.path(), &["init"], &[]);
    assert_eq!(again.status.code(), Some(1));
    assert!(text(&again.stderr).contains("--force"));
    let show = mcpguard(
        dir.path(),
        &["config-show"],
        &[("MCPGUARD_PROXY__PORT", "9100")],
    );
    assert!(show.status.success(), "{}", text(&show.stderr));
    let stdout = text(&show.stdout);
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(&format!("{key} = ")))
            .unwrap_or_else(|| panic!("no {key} in\n{stdout}"))
            .to_string()
    };
    assert!(
        line("proxy.port").contains("9100")
            && line("proxy.port").contains("env MCPGUARD_PROXY__PORT"),
        "{stdout}"
    );
    assert!(
        line("proxy.host").contains(".mcpguard/config.yaml"),
        "{stdout}"
    );
    assert!(
        line("proxy.replay_buffer_events").contains("# "),
        "{stdout}"
    );
    assert!(
        line("upstreams.everything.command").contains("\"npx\""),
        "{stdout}"
    );
    let json = mcpguard(dir.path(), &["config-show", "--format", "json"], &[]);
    let value: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(value["proxy.port"]["value"], 8000);
    assert_eq!(value["upstreams.everything.required"]["source"], "default");
    assert_eq!(
        value["federation.separator"]["source"],
        ".mcpguard/config.yaml"
    );
}

#[test]
fn config_errors_name_the_file_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.yaml");
    std::fs::write(&path, "proxy:\n  port: 8000\n  hots: 0.0.0.0\n").unwrap();
    let out = mcpguard(
        dir.path(),
        &["config-show", "--config", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(stderr.contains("bad.yaml:3:"), "{stderr}");
    assert!(stderr.contains("hots"), "{stderr}");

    std::fs::write(&path, "proxy:\n  port: [1, 2]\n").unwrap();
    let out = mcpguard(
        dir.path(),
        &["serve", "--config", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bad.yaml:2:"),
        "{}",
        text(&out.stderr)
    );

    std::fs::write(&path, "upstreams:\n  web:\n    transport: http\n").unwrap();
    let out = mcpguard(
        dir.path(),
        &["serve", "--config", path.to_str().unwrap()],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("upstreams.web.url"),
        "{}",
        text(&out.stderr)
    );

    let out = mcpguard(dir.path(), &["serve", "--config", "missing.yaml"], &[]);
    assert!(
        text(&out.stderr).contains("does not exist"),
        "{}",
        text(&out.stderr)
    );

    let out = mcpguard(
        dir.path(),
        &["config-show"],
        &[("MCPGUARD_PROXY__PORT", "many")],
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("proxy.port") && stderr.contains("MCPGUARD_PROXY__PORT"),
        "{stderr}"
    );
}

#[test]
fn help_documents_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let out = mcpguard(dir.path(), &["--help"], &[]);
    let help = text(&out.stdout);
    for command in ["init", "serve", "stdio", "config-show", "completions"] {
        assert!(help.contains(command), "{help}");
    }
    let out = mcpguard(dir.path(), &["stdio", "--help"], &[]);
    assert!(
        text(&out.stdout).contains("mcpServers") || text(&out.stdout).contains("command"),
        "{}",
        text(&out.stdout)
    );
    let out = mcpguard(dir.path(), &["completions", "bash"], &[]);
    assert!(text(&out.stdout).contains("mcpguard"));
}

#[test]
fn the_config_schema_describes_every_section_and_refuses_unknown_keys() {
    let dir = tempfile::tempdir().unwrap();
    let out = mcpguard(dir.path(), &["config-schema"], &[]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let schema: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    for section in ["proxy", "upstreams", "federation", "observability"] {
        assert!(
            schema["properties"].get(section).is_some(),
            "{section} missing"
        );
    }
    assert_eq!(schema["additionalProperties"], false);
    let text = schema.to_string();
    assert!(
        text.contains("max_body_bytes") && text.contains("ca_file"),
        "{text}"
    );
}

#[test]
fn config_show_never_prints_upstream_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("c.yaml");
    std::fs::write(
        &path,
        "upstreams:\n  web:\n    transport: http\n    url: http://127.0.0.1:1/mcp\n    headers: {Authorization: Bearer sk-live-123}\n  tool:\n    command: tool\n    env: {API_TOKEN: tok-456}\n",
    )
    .unwrap();
    let out = mcpguard(
        dir.path(),
        &["config-show", "--config", path.to_str().unwrap()],
        &[],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        !stdout.contains("sk-live-123") && !stdout.contains("tok-456"),
        "{stdout}"
    );
    assert!(
        stdout.contains("upstreams.web.headers.Authorization = \"<redacted>\""),
        "{stdout}"
    );
    assert!(
        stdout.contains("upstreams.tool.env.API_TOKEN = \"<redacted>\""),
        "{stdout}"
    );
}

fn repo() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

#[test]
fn the_shipped_policies_validate_and_pass_their_tests() {
    let root = repo();
    for file in [
        "owasp_asi_2026_strict.yaml",
        "minimal.yaml",
        "custom_template.yaml",
    ] {
        let path = root.join("policies").join(file);
        let out = mcpguard(&root, &["validate-policy", path.to_str().unwrap()], &[]);
        assert!(
            out.status.success(),
            "{file}: {}{}",
            text(&out.stdout),
            text(&out.stderr)
        );
        assert!(
            text(&out.stdout).starts_with("ok: 1 file(s)"),
            "{}",
            text(&out.stdout)
        );
    }
    let out = mcpguard(
        &root,
        &["policy", "test", "policies/tests", "--verbose"],
        &[],
    );
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains(" 0 failed (3 fixture file(s))"), "{stdout}");
    // Every shipped rule id appears in a test name that makes it fire and one where it is quiet.
    let policy_text = [
        "owasp_asi_2026_strict.yaml",
        "minimal.yaml",
        "custom_template.yaml",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(root.join("policies").join(f)).unwrap())
    .collect::<String>();
    let ids: Vec<&str> = policy_text
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- id: "))
        .collect();
    assert!(ids.len() >= 21, "{ids:?}");
    let fixtures: String = ["strict.yaml", "minimal.yaml", "custom_template.yaml"]
        .iter()
        .map(|f| std::fs::read_to_string(root.join("policies/tests").join(f)).unwrap())
        .collect();
    for id in ids {
        let names: Vec<&str> = fixtures
            .lines()
            .filter(|l| l.contains("- name: ") && l.contains(id))
            .collect();
        assert!(
            names.iter().any(|n| n.contains("fires")
                || n.contains("asks")
                || n.contains("sends")
                || n.contains("stops")
                || n.contains("warns")
                || n.contains("marks")
                || n.contains("allows")),
            "{id}: no firing test"
        );
        assert!(
            names.iter().any(|n| n.contains("quiet")),
            "{id}: no quiet test"
        );
    }
    // The strict set covers every ASI id.
    for n in 1..=10 {
        assert!(
            policy_text.contains(&format!("ASI{n:02}")),
            "ASI{n:02} is not covered"
        );
    }
}

#[test]
fn validate_policy_reports_file_line_column_and_exit_status() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("bad.yaml"),
        "default_action: deny\nrules:\n  - id: a\n    action: deny\n    taint_labels: [secrets]\n    owasp_asi: ASI-02\n  - id: a\n    action: allow\n    tool_patterns: [x]\n",
    )
    .unwrap();
    let out = mcpguard(dir.path(), &["validate-policy", "bad.yaml"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains(
            "bad.yaml:5:20: unknown taint label `secrets` (hint: did you mean `secret`?)"
        ),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad.yaml:6:16: unknown OWASP ASI id `ASI-02` (hint: write `ASI02`)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("bad.yaml:7:9: duplicate rule id `a`"),
        "{stdout}"
    );
    std::fs::write(
        dir.path().join("typo.yaml"),
        "rules:\n  - id: a\n    acton: deny\n",
    )
    .unwrap();
    let out = mcpguard(dir.path(), &["validate-policy", "typo.yaml"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stdout).contains("typo.yaml:3:5: unknown field `acton`"),
        "{}",
        text(&out.stdout)
    );
    let out = mcpguard(dir.path(), &["validate-policy", "missing.yaml"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("missing.yaml"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn policy_test_reports_a_failing_expectation() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("p.yaml"),
        "default_action: allow\nrules:\n  - { id: d, action: deny, tool_patterns: [rm] }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("t.yaml"),
        "policies: [p.yaml]\ntests:\n  - { name: rm is denied, call: { tool: rm }, expect: { action: deny, rule: d } }\n  - { name: wrong on purpose, call: { tool: ls }, expect: { action: deny } }\n",
    )
    .unwrap();
    let out = mcpguard(dir.path(), &["policy", "test", "t.yaml"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("FAIL  t.yaml: wrong on purpose: expected deny, got allow by `default`"),
        "{stdout}"
    );
    assert!(stdout.contains("1 passed, 1 failed"), "{stdout}");
}

#[test]
fn detect_finds_reports_and_exits_like_a_secret_scanner() {
    let dir = tempfile::tempdir().unwrap();
    let key = ["AKIA", "Q3ZRT7WX2YUV4ABC"].concat();
    std::fs::write(
        dir.path().join("a.json"),
        format!("{{\"config\":{{\"note\":\"id {key}\",\"ssn\":\"078-05-1120\"}}}}"),
    )
    .unwrap();
    std::fs::write(dir.path().join("clean.txt"), "nothing to see\n").unwrap();
    let out = mcpguard(dir.path(), &["detect", "a.json", "--format", "json"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let findings = report["findings"].as_array().unwrap();
    let types: Vec<&str> = findings
        .iter()
        .map(|f| f["type"].as_str().unwrap())
        .collect();
    assert_eq!(types, ["secret.aws_access_key", "pii.ssn"], "{report}");
    assert_eq!(findings[0]["location"], "$.config.note");
    assert!(
        !text(&out.stdout).contains(&key),
        "the value must never be printed"
    );
    let table = mcpguard(dir.path(), &["detect", "a.json"], &[]);
    assert_eq!(table.status.code(), Some(1));
    assert!(
        text(&table.stdout).contains("secret.aws_access_key  aws_access_key  $.config.note"),
        "{}",
        text(&table.stdout)
    );
    let clean = mcpguard(dir.path(), &["detect", "clean.txt"], &[]);
    assert_eq!(clean.status.code(), Some(0));
    assert!(text(&clean.stdout).contains("no findings"));
    let missing = mcpguard(dir.path(), &["detect", "nope.txt"], &[]);
    assert_eq!(missing.status.code(), Some(2));
    assert!(
        text(&missing.stderr).contains("cannot read `nope.txt`"),
        "{}",
        text(&missing.stderr)
    );
    std::fs::write(dir.path().join("lines.txt"), format!("clean\nkey {key}\n")).unwrap();
    let lines = mcpguard(
        dir.path(),
        &["detect", "lines.txt", "--each-line", "--format", "json"],
        &[],
    );
    let rows: Vec<serde_json::Value> = text(&lines.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["findings"].as_array().unwrap().len(), 0);
    assert_eq!(rows[1]["findings"][0]["location"], "line 1, column 5");
}
