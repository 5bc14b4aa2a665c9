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
