//! The audit log through the running gateway with real peers: a session with the Python
//! SDK against the reference filesystem server and a Python SDK server produces events
//! (allowed, denied, with findings and flows but never the values); `audit-verify`,
//! proofs, query and every export format work on it; tampering with the sqlite3 tool is
//! named by sequence number; `kill -9` loses no acknowledged event; a full disk and a
//! corrupt file fail closed.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use serde_json::{Value, json};

/// A fake AWS access key id (format-valid, random).
const KEY: &str = "AKIAQ3ZRT7WX2YUV4ABC";

fn verify(db: &Path, keys: &Path) -> Output {
    mcpguard(&[
        "audit-verify",
        "--db",
        s(db),
        "--public-key",
        s(&keys.join("signing.pub")),
        "--key-name",
        "mcpguard.test/audit",
    ])
}

#[test]
fn a_session_is_recorded_verified_proved_and_exported_without_secret_values() {
    let keys = keys();
    let db = keys.path().join("audit.db");
    let files = tempfile::tempdir().unwrap();
    std::fs::write(
        files.path().join("creds.txt"),
        format!("[default]\naws_access_key_id = {KEY}\n"),
    )
    .unwrap();
    let dir = files.path().canonicalize().unwrap().display().to_string();
    let config = format!(
        "upstreams:\n  fs:\n    command: {fs}\n    args: [{d}]\n  net:\n    command: {py}\n    args: [{net}]\npolicy:\n  policy_paths: [{policy}]\n{audit}",
        fs = yaml_str(&node_bin("mcp-server-filesystem").display().to_string()),
        d = yaml_str(&dir),
        py = yaml_str(&python().display().to_string()),
        net = peer_yaml("py_net_tools.py"),
        policy = yaml_str(
            &repo()
                .join("policies/owasp_asi_2026_strict.yaml")
                .display()
                .to_string()
        ),
        audit = audit_yaml(keys.path(), &db, ""),
    );
    let mut gateway = Gateway::start(&config);
    let script = json!([
        {"op": "call_tool", "name": "fs__read_text_file", "arguments": {"path": format!("{dir}/creds.txt")}},
        {"op": "call_tool", "name": "net__http_post", "arguments": {"url": "http://127.0.0.1:9/in", "body": format!("backup {KEY}")}},
        {"op": "call_tool", "name": "fs__list_directory", "arguments": {"path": dir}},
    ]);
    let run = py_client(&gateway.url(), "legacy", &script, &[]);
    run.ok("call_tool", 0);
    assert_eq!(run.step("call_tool", 1)["ok"], false);
    // A first checkpoint is signed while the gateway runs.
    std::thread::sleep(Duration::from_millis(600));
    let old_checkpoint = mcpguard(&["audit-checkpoint", "--db", s(&db)]);
    assert!(old_checkpoint.status.success(), "{}", text(&old_checkpoint));
    let old_note = String::from_utf8(old_checkpoint.stdout).unwrap();
    let old_size: u64 = old_note.lines().nth(1).unwrap().parse().unwrap();
    // A second session after it; then a clean stop signs the final checkpoint.
    py_client(&gateway.url(), "auto", &json!([{"op": "list_tools"}]), &[]);
    gateway.proc.terminate(Duration::from_secs(10));
    let logs = gateway.logs();
    assert!(
        logs.contains("audit log closed with a signed checkpoint"),
        "{logs}"
    );

    let events = records(&db);
    let seqs: Vec<u64> = events.iter().map(|r| r["seq"].as_u64().unwrap()).collect();
    assert_eq!(seqs, (1..=events.len() as u64).collect::<Vec<_>>());
    let methods: Vec<&str> = events
        .iter()
        .map(|r| r["event"]["method"].as_str().unwrap())
        .collect();
    assert!(
        methods.contains(&"initialize") || methods.contains(&"tools/list"),
        "{methods:?}"
    );
    let call = |tool: &str| -> &Value {
        &events
            .iter()
            .find(|r| r["event"]["tool"] == tool)
            .unwrap_or_else(|| panic!("no event for {tool}: {events:#?}"))["event"]
    };
    let read = call("fs__read_text_file");
    assert_eq!(read["outcome"], "allowed");
    assert_eq!(read["upstream"], "fs");
    assert_eq!(
        read["result_findings"][0]["kind"], "secret.aws_access_key",
        "{read}"
    );
    assert!(
        read["arguments_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        read["result_digest"]
            .as_str()
            .unwrap()
            .starts_with("sha256:")
    );
    assert!(
        read["client"].as_str().unwrap_or_default().contains('/'),
        "{read}"
    );
    let post = call("net__http_post");
    assert_eq!(post["outcome"], "denied", "{post}");
    assert_eq!(post["decision"]["action"], "deny");
    assert!(
        post["decision"]["rule"]
            .as_str()
            .unwrap()
            .starts_with("ASI"),
        "{post}"
    );
    assert!(!post["decision"]["owasp_asi"].as_array().unwrap().is_empty());
    assert_eq!(post["flows"][0]["source_tool"], "read_text_file", "{post}");
    assert!(
        post["labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l.as_str().unwrap().starts_with("flow:"))
    );
    assert_eq!(post["error_code"], -32054);
    assert_eq!(post["answered_by"], "guard");
    // The value itself is nowhere in the store.
    for file in ["audit.db", "audit.db-wal"] {
        if let Ok(bytes) = std::fs::read(keys.path().join(file)) {
            assert!(
                !bytes.windows(KEY.len()).any(|w| w == KEY.as_bytes()),
                "{file} holds the secret"
            );
        }
    }

    let out = verify(&db, keys.path());
    let report = text(&out);
    assert!(out.status.success(), "{report}");
    assert!(
        report.starts_with(&format!("ok: {} records", events.len())),
        "{report}"
    );

    // An inclusion proof, and a consistency proof from the checkpoint kept earlier, both
    // checked with only the public key.
    let work = tempfile::tempdir().unwrap();
    let proof = |args: &[&str], name: &str| -> PathBuf {
        let out = mcpguard(&[&["audit-proof", "--db", s(&db)], args].concat());
        assert!(out.status.success(), "{}", text(&out));
        let path = work.path().join(name);
        std::fs::write(&path, &out.stdout).unwrap();
        path
    };
    let check = |extra: &[&str]| -> Output {
        mcpguard(
            &[
                extra,
                &[
                    "--public-key",
                    s(&keys.path().join("signing.pub")),
                    "--key-name",
                    "mcpguard.test/audit",
                ],
            ]
            .concat(),
        )
    };
    let inclusion = proof(&["2"], "inclusion.json");
    let out = check(&["audit-check-proof", s(&inclusion)]);
    assert!(
        out.status.success() && text(&out).starts_with("ok: record 2"),
        "{}",
        text(&out)
    );
    let consistency = proof(
        &["--consistency-from", &old_size.to_string()],
        "consistency.json",
    );
    let kept = work.path().join("old.note");
    std::fs::write(&kept, &old_note).unwrap();
    let out = check(&[
        "audit-check-proof",
        s(&consistency),
        "--old-checkpoint",
        s(&kept),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    // A forged old checkpoint (another size) is refused.
    let forged = work.path().join("forged.note");
    std::fs::write(
        &forged,
        old_note.replacen(&format!("\n{old_size}\n"), "\n1\n", 1),
    )
    .unwrap();
    let out = check(&[
        "audit-check-proof",
        s(&consistency),
        "--old-checkpoint",
        s(&forged),
    ]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    // A proof of an edited record fails.
    let edited = std::fs::read_to_string(&inclusion)
        .unwrap()
        .replace("\\\"seq\\\":2", "\\\"seq\\\":3");
    std::fs::write(&inclusion, edited).unwrap();
    let out = check(&["audit-check-proof", s(&inclusion)]);
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));

    // Query filters.
    let out = mcpguard(&["audit-query", "--db", s(&db), "--action", "denied"]);
    let table = text(&out);
    assert!(
        table.contains("net__http_post") && !table.contains("fs__read_text_file"),
        "{table}"
    );
    let out = mcpguard(&["audit-query", "--db", s(&db), "--action", "nonsense"]);
    assert!(
        !out.status.success() && text(&out).contains("neither an outcome"),
        "{}",
        text(&out)
    );

    // Exports.
    let export = |format: &str| -> String {
        let out = mcpguard(&["audit-export", "--db", s(&db), "--format", format]);
        assert!(out.status.success(), "{}", text(&out));
        String::from_utf8(out.stdout).unwrap()
    };
    let jsonl = export("jsonl");
    assert_eq!(jsonl.lines().count(), events.len());
    let cef = export("cef");
    let denied_line = cef.lines().find(|l| l.contains("mcpguard:denied")).unwrap();
    assert!(
        denied_line.starts_with("CEF:0|MCPGuard|MCPGuard|"),
        "{denied_line}"
    );
    assert!(denied_line.contains("cs5=net__http_post"), "{denied_line}");
    for line in export("ocsf").lines() {
        let v: Value = serde_json::from_str(line).unwrap();
        assert_eq!(v["class_uid"], 6003);
    }
    let csv = export("csv");
    assert!(csv.starts_with("seq,event_id,time,"), "{csv}");
    for out in [jsonl, cef, csv] {
        assert!(!out.contains(KEY));
    }
}

/// `mcpguard serve` over the echo server and the log `db`, run to completion (for logs
/// that must stop the start).
fn serve_on_log(keys: &Path, db: &Path) -> Output {
    let config_dir = tempfile::tempdir().unwrap();
    let config = config_dir.path().join("config.yaml");
    std::fs::write(
        &config,
        format!("{}{}", echo_stdio_config(""), audit_yaml(keys, db, "")),
    )
    .unwrap();
    mcpguard(&["serve", "--config", s(&config), "--port", "0"])
}

/// A gateway over the Python echo server with the audit log on.
fn audited_echo(keys: &Path, db: &Path, extra: &str) -> Gateway {
    Gateway::start(&format!(
        "{}{}",
        echo_stdio_config(""),
        audit_yaml(keys, db, extra)
    ))
}

fn echo_calls(port: u16, n: u64) {
    let session = open_session(port);
    for id in 1..=n {
        let answer = session_call(port, &session, id, "echo", r#"{"message":"hello"}"#);
        assert!(answer["result"].is_object(), "{answer}");
    }
}

fn sqlite3(db: &Path, sql: &str) -> Output {
    Command::new("sqlite3")
        .arg(db)
        .arg(sql)
        .output()
        .expect("the sqlite3 tool")
}

#[test]
fn tampering_with_the_sqlite3_tool_is_named_by_sequence_number() {
    let keys = keys();
    let db = keys.path().join("audit.db");
    let mut gateway = audited_echo(keys.path(), &db, "");
    echo_calls(gateway.port, 12);
    gateway.proc.terminate(Duration::from_secs(10));
    let total = records(&db).len() as u64;
    assert!(total >= 14, "initialize + initialized + 12 calls: {total}");
    assert!(verify(&db, keys.path()).status.success());

    // The store itself refuses edits.
    let out = sqlite3(&db, "UPDATE audit_events SET data = 'x' WHERE seq = 3;");
    assert!(text(&out).contains("append-only"), "{}", text(&out));
    let out = sqlite3(&db, "DELETE FROM audit_events WHERE seq = 3;");
    assert!(text(&out).contains("append-only"), "{}", text(&out));

    let unlock = "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete;";
    let cases: Vec<(String, &str, u64)> = vec![
        (
            "UPDATE audit_events SET data = replace(data, '\"outcome\":\"allowed\"', '\"outcome\":\"denied\"') WHERE seq = 7;".into(),
            "record 7 was edited",
            7,
        ),
        ("DELETE FROM audit_events WHERE seq = 5;".into(), "record 5 was deleted", 5),
        (
            "UPDATE audit_events SET seq = -1 WHERE seq = 9; UPDATE audit_events SET seq = 9 WHERE seq = 10; UPDATE audit_events SET seq = 10 WHERE seq = -1;".into(),
            "record 9 holds the record written as 10",
            9,
        ),
        (
            format!("DELETE FROM audit_events WHERE seq > {};", total - 2),
            "truncated",
            total - 1,
        ),
    ];
    for (sql, says, seq) in cases {
        let copy = keys.path().join("copy.db");
        std::fs::copy(&db, &copy).unwrap();
        let out = sqlite3(&copy, &format!("{unlock} {sql}"));
        assert!(out.status.success(), "{}", text(&out));
        let out = mcpguard(&[
            "audit-verify",
            "--db",
            s(&copy),
            "--public-key",
            s(&keys.path().join("signing.pub")),
            "--key-name",
            "mcpguard.test/audit",
            "--json",
        ]);
        assert_eq!(out.status.code(), Some(1), "{sql}: {}", text(&out));
        let report: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(report["problems"][0]["seq"], seq, "{sql}: {report}");
        assert!(
            report["problems"][0]["message"]
                .as_str()
                .unwrap()
                .contains(says),
            "{report}"
        );
        std::fs::remove_file(&copy).unwrap();
    }

    // Another key: every checkpoint fails.
    let other = self::keys();
    let out = mcpguard(&[
        "audit-verify",
        "--db",
        s(&db),
        "--public-key",
        s(&other.path().join("signing.pub")),
        "--key-name",
        "mcpguard.test/audit",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out).contains("is not valid"), "{}", text(&out));

    // A gateway refuses to append to a tampered log.
    let out = sqlite3(
        &db,
        &format!("{unlock} DELETE FROM audit_events WHERE seq = {total};"),
    );
    assert!(out.status.success());
    let out = serve_on_log(keys.path(), &db);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("truncated") && text(&out).contains("audit-verify"),
        "{}",
        text(&out)
    );
}

#[test]
fn no_acknowledged_event_is_lost_to_kill_9() {
    let keys = keys();
    let db = keys.path().join("audit.db");
    let gateway = audited_echo(keys.path(), &db, "");
    let port = gateway.port;
    let answered = Arc::new(Mutex::new(Vec::<u64>::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..4u64)
        .map(|t| {
            let answered = answered.clone();
            let stop = stop.clone();
            std::thread::spawn(move || {
                let session = open_session(port);
                for i in 0.. {
                    if stop.load(Ordering::Relaxed) {
                        return;
                    }
                    let id = 1_000_000 * (t + 1) + i;
                    let body = format!(
                        r#"{{"jsonrpc":"2.0","id":{id},"method":"tools/call","params":{{"name":"echo","arguments":{{"message":"m"}}}}}}"#
                    );
                    let (_, _, answer) = std::panic::catch_unwind(|| {
                        mcp_post(port, &[("mcp-session-id", &session), ("mcp-protocol-version", "2025-11-25")], &body)
                    })
                    .unwrap_or((0, Vec::new(), Value::Null));
                    if answer["result"].is_object() {
                        answered.lock().unwrap().push(id);
                    }
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(1500));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(gateway.proc.pid()),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for c in clients {
        c.join().unwrap();
    }
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() > 20, "the load ran: {}", answered.len());
    let recorded: std::collections::HashSet<u64> = records(&db)
        .iter()
        .filter_map(|r| r["event"]["request_id"].as_str()?.parse().ok())
        .collect();
    let lost: Vec<&u64> = answered
        .iter()
        .filter(|id| !recorded.contains(id))
        .collect();
    assert!(lost.is_empty(), "answered but not recorded: {lost:?}");
    let out = verify(&db, keys.path());
    assert!(out.status.success(), "{}", text(&out));
    drop(gateway);

    // The gateway reopens the log and goes on with the same chain.
    let mut gateway = audited_echo(keys.path(), &db, "");
    echo_calls(gateway.port, 1);
    gateway.proc.terminate(Duration::from_secs(10));
    let out = verify(&db, keys.path());
    assert!(
        out.status.success() && text(&out).contains("verified"),
        "{}",
        text(&out)
    );
}

/// A tmpfs, unmounted (lazily) when dropped.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mounting a tmpfs needs root: {}",
            text(&out)
        );
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.0.path()).output();
    }
}

#[test]
fn a_full_disk_fails_closed_and_a_corrupt_file_stops_the_start() {
    let keys = keys();
    let disk = Tmpfs::mount("160k");
    let db = disk.0.path().join("audit.db");
    let gateway = audited_echo(keys.path(), &db, "");
    let port = gateway.port;
    let session = open_session(port);
    let big = "x".repeat(3000);
    let mut refused = None;
    for id in 1..=400u64 {
        let answer = session_call(
            port,
            &session,
            id,
            "echo",
            &format!(r#"{{"message":"{big}"}}"#),
        );
        if answer["error"].is_object() {
            refused = Some((id, answer));
            break;
        }
    }
    let (id, answer) = refused.expect("the disk filled up");
    assert_eq!(answer["error"]["code"], -32054, "{answer}");
    let message = answer["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("audit log") && message.contains("fail closed"),
        "{message}"
    );
    // The agent is told the call is refused; the store's details (the path, the disk
    // being full) go to the operator's log only.
    assert!(!message.contains(s(disk.0.path())), "{message}");
    let logs = gateway.logs();
    assert!(logs.contains("the disk is full"), "{logs}");
    // The next call is refused before it runs, and the gateway stays up.
    let answer = session_call(port, &session, id + 1, "echo", r#"{"message":"small"}"#);
    assert_eq!(answer["error"]["code"], -32054, "{answer}");
    assert_eq!(http_get_status(port, "/healthz"), Some(200));
    drop(gateway);

    // A file that is not a database: the gateway refuses to start and says what to do.
    let bad = keys.path().join("corrupt.db");
    std::fs::write(&bad, vec![0x42u8; 16384]).unwrap();
    let out = serve_on_log(keys.path(), &bad);
    assert!(!out.status.success());
    let said = text(&out);
    assert!(
        said.contains("not a database") && said.contains("move it aside"),
        "{said}"
    );
}

/// A real rsyslogd (Debian's) listening on loopback UDP and TCP, writing what it parsed
/// (input, PRI, APP-NAME, MSGID, STRUCTURED-DATA, MSG) one line per message.
struct Rsyslog {
    _proc: Proc,
    udp: u16,
    tcp: u16,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl Rsyslog {
    fn start() -> Rsyslog {
        let dir = tempfile::tempdir().unwrap();
        let (udp, tcp) = (free_port(), free_port());
        let out = dir.path().join("received.log");
        let conf = dir.path().join("rsyslog.conf");
        std::fs::write(
            &conf,
            format!(
                r#"global(workDirectory="{work}")
module(load="imudp")
module(load="imtcp")
template(name="fields" type="string" string="%inputname%|%pri%|%app-name%|%msgid%|%structured-data%|%msg%\n")
ruleset(name="audit") {{ action(type="omfile" file="{out}" template="fields") }}
input(type="imudp" address="127.0.0.1" port="{udp}" ruleset="audit")
input(type="imtcp" address="127.0.0.1" port="{tcp}" ruleset="audit")
"#,
                work = dir.path().display(),
                out = out.display(),
            ),
        )
        .unwrap();
        let program = if Path::new("/usr/sbin/rsyslogd").exists() {
            "/usr/sbin/rsyslogd"
        } else {
            "rsyslogd"
        };
        let child = Command::new(program)
            .args(["-n", "-f"])
            .arg(&conf)
            .arg("-i")
            .arg(dir.path().join("rsyslogd.pid"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("rsyslogd (apt-get install rsyslog)");
        let proc = Proc {
            child,
            what: "rsyslogd".into(),
        };
        wait_port(tcp, Duration::from_secs(10));
        Rsyslog {
            _proc: proc,
            udp,
            tcp,
            out,
            _dir: dir,
        }
    }

    fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

#[test]
fn every_record_reaches_a_real_rsyslog_over_udp_as_json_and_tcp_as_cef() {
    let syslog = Rsyslog::start();
    let keys = keys();
    let db = keys.path().join("audit.db");
    let sinks = format!(
        "  syslog:\n    - {{address: \"127.0.0.1:{}\", transport: udp, format: json, facility: local3}}\n    - {{address: \"127.0.0.1:{}\", transport: tcp, format: cef}}\n",
        syslog.udp, syslog.tcp
    );
    let mut gateway = audited_echo(keys.path(), &db, &sinks);
    echo_calls(gateway.port, 3);
    gateway.proc.terminate(Duration::from_secs(10));
    let stored = records(&db);
    let expected = stored.len() * 2;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while syslog.lines().len() < expected && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let lines = syslog.lines();
    assert_eq!(lines.len(), expected, "{lines:#?}");
    for record in &stored {
        let seq = record["seq"].as_u64().unwrap();
        let sd = format!("[mcpguard@32473 seq=\"{seq}\"]");
        let outcome = record["event"]["outcome"].as_str().unwrap();
        let udp = lines
            .iter()
            .find(|l| l.starts_with("imudp|") && l.contains(&sd))
            .unwrap_or_else(|| panic!("seq {seq} over udp: {lines:#?}"));
        let fields: Vec<&str> = udp.splitn(6, '|').collect();
        // local3 (19) * 8 + severity: 4 denied, 6 otherwise.
        let severity = if outcome == "denied" { 4 } else { 6 };
        assert_eq!(fields[1], (19 * 8 + severity).to_string(), "{udp}");
        assert_eq!(fields[2], "mcpguard");
        assert_eq!(fields[3], outcome);
        let body: Value =
            serde_json::from_str(fields[5].trim_start()).unwrap_or_else(|e| panic!("{e}: {udp}"));
        assert_eq!(&body, record, "the JSON payload is the stored record");
        let tcp = lines
            .iter()
            .find(|l| l.starts_with("imtcp|") && l.contains(&sd))
            .unwrap_or_else(|| panic!("seq {seq} over tcp: {lines:#?}"));
        let fields: Vec<&str> = tcp.splitn(6, '|').collect();
        assert_eq!(fields[1], (16 * 8 + severity).to_string(), "{tcp}");
        assert!(
            fields[5]
                .trim_start()
                .starts_with("CEF:0|MCPGuard|MCPGuard|"),
            "{tcp}"
        );
        assert!(fields[5].contains(&format!("cn1={seq}")), "{tcp}");
    }
}

#[test]
fn two_gateways_share_one_postgres_log_as_one_chain() {
    let keys = keys();
    let postgres = PostgresSchema::new("audit_e2e");
    let (url, schema) = (postgres.url.clone(), postgres.schema.clone());
    let extra = postgres.audit_lines();
    let unused = keys.path().join("unused.db");
    let mut a = audited_echo(keys.path(), &unused, &extra);
    let mut b = audited_echo(keys.path(), &unused, &extra);
    let (pa, pb) = (a.port, b.port);
    let ta = std::thread::spawn(move || echo_calls(pa, 25));
    let tb = std::thread::spawn(move || echo_calls(pb, 25));
    ta.join().unwrap();
    tb.join().unwrap();
    a.proc.terminate(Duration::from_secs(10));
    b.proc.terminate(Duration::from_secs(10));
    assert!(!unused.exists(), "the SQLite file is not used");
    let out = mcpguard(&[
        "audit-verify",
        "--db",
        &url,
        "--schema",
        &schema,
        "--public-key",
        s(&keys.path().join("signing.pub")),
        "--key-name",
        "mcpguard.test/audit",
        "--json",
    ]);
    let report: Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|_| panic!("{}", text(&out)));
    assert_eq!(report["intact"], true, "{report}");
    // Each gateway: initialize, initialized, 25 calls.
    assert_eq!(report["records"], 54, "{report}");
    assert_eq!(report["newest_checkpoint"], 54, "{report}");
    let out = mcpguard(&[
        "audit-query",
        "--db",
        &url,
        "--schema",
        &schema,
        "--format",
        "json",
        "--limit",
        "0",
    ]);
    let sessions: std::collections::HashSet<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<Value>(l).ok()?["event"]["session"]
                .as_str()
                .map(str::to_string)
        })
        .collect();
    assert_eq!(
        sessions.len(),
        2,
        "both gateways' sessions are in the one log"
    );
}

fn sigstore_verify(bundle: &Path, key: &Path) -> Output {
    Command::new(node())
        .arg(peers().join("sigstore_verify.mjs"))
        .arg(bundle)
        .arg(key)
        .current_dir(peers())
        .output()
        .expect("node")
}

#[test]
fn envelopes_pass_the_sigstore_verifier_and_replay_reports_drift() {
    let keys = keys();
    let k = keys.path();
    let out = mcpguard(&[
        "keygen",
        "--dir",
        s(k),
        "--name",
        "p256",
        "--algorithm",
        "ecdsa-p256",
        "--payload-key",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let db = k.join("audit.db");
    let files = tempfile::tempdir().unwrap();
    let dir = files.path().canonicalize().unwrap();
    std::fs::write(dir.join("notes.txt"), "the first version\n").unwrap();
    let run = |envelope_key: &str| -> (Gateway, String) {
        let config = format!(
            "upstreams:\n  fs:\n    command: {fs}\n    args: [{d}]\npolicy:\n  policy_paths: [{policy}]\n{audit}envelopes:\n  signing_key: {key}\n  payloads: encrypt\n  payload_key: {pk}\n",
            fs = yaml_str(&node_bin("mcp-server-filesystem").display().to_string()),
            d = yaml_str(s(&dir)),
            policy = yaml_str(
                &repo()
                    .join("policies/owasp_asi_2026_strict.yaml")
                    .display()
                    .to_string()
            ),
            audit = audit_yaml(k, &db, ""),
            key = yaml_str(s(&k.join(envelope_key))),
            pk = yaml_str(s(&k.join("payload.key"))),
        );
        let mut gateway = Gateway::start(&config);
        let script = json!([{"op": "call_tool", "name": "fs__read_text_file", "arguments": {"path": s(&dir.join("notes.txt"))}}]);
        py_client(&gateway.url(), "legacy", &script, &[]).ok("call_tool", 0);
        gateway.proc.terminate(Duration::from_secs(10));
        let list = mcpguard(&["trace-list", "--db", s(&db), "--limit", "1"]);
        let listed = text(&list);
        assert!(
            listed.contains("fs__read_text_file") && listed.contains("sealed"),
            "{listed}"
        );
        let id = listed
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_string();
        (gateway, id)
    };

    for (key, public) in [("signing.key", "signing.pub"), ("p256.key", "p256.pub")] {
        let (gateway, id) = run(key);
        let config = gateway.dir.path().join("config.yaml");
        // The official Sigstore verifier accepts the bundle with the public key...
        let export = mcpguard(&["trace-export", "--db", s(&db), &id]);
        assert!(export.status.success(), "{}", text(&export));
        let bundle_path = k.join(format!("{id}.json"));
        std::fs::write(&bundle_path, &export.stdout).unwrap();
        let bundle: Value = serde_json::from_slice(&export.stdout).unwrap();
        assert_eq!(
            bundle["mediaType"],
            "application/vnd.dev.sigstore.bundle.v0.3+json"
        );
        let out = sigstore_verify(&bundle_path, &k.join(public));
        assert_eq!(text(&out).trim(), "verified", "{key}");
        // ...and rejects it with another key, or with the statement changed.
        let other = if public == "signing.pub" {
            "p256.pub"
        } else {
            "signing.pub"
        };
        let out = sigstore_verify(&bundle_path, &k.join(other));
        assert!(text(&out).starts_with("rejected"), "{}", text(&out));
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut statement: Value = serde_json::from_slice(
            &b64.decode(bundle["dsseEnvelope"]["payload"].as_str().unwrap())
                .unwrap(),
        )
        .unwrap();
        assert_eq!(statement["_type"], "https://in-toto.io/Statement/v1");
        assert_eq!(
            statement["predicate"]["upstream"]["server_name"], "secure-filesystem-server",
            "{statement}"
        );
        assert!(
            statement["predicate"]["policy"]["digest"]
                .as_str()
                .unwrap()
                .starts_with("sha256:")
        );
        assert_eq!(statement["predicate"]["policy"]["rule"], "ALLOW-001");
        statement["predicate"]["tool"] = json!("fs__write_file");
        let mut tampered = bundle.clone();
        tampered["dsseEnvelope"]["payload"] = json!(b64.encode(statement.to_string()));
        let tampered_path = k.join("tampered.json");
        std::fs::write(&tampered_path, tampered.to_string()).unwrap();
        let out = sigstore_verify(&tampered_path, &k.join(public));
        assert!(text(&out).starts_with("rejected"), "{}", text(&out));
        let out = mcpguard(&[
            "trace-verify",
            s(&tampered_path),
            "--public-key",
            s(&k.join(public)),
        ]);
        assert_eq!(out.status.code(), Some(1), "{}", text(&out));

        // trace-verify checks the signature, the sealed payloads and the audit link.
        let out = mcpguard(&["--config", s(&config), "trace-verify", &id]);
        let said = text(&out);
        assert!(out.status.success(), "{said}");
        assert!(
            said.contains("match the signed digests") && said.contains("linked to audit record"),
            "{said}"
        );
    }

    // Replay through the gateway: identical while the file is unchanged, drift after.
    let (gateway, id) = run("signing.key");
    let config = gateway.dir.path().join("config.yaml");
    let out = mcpguard(&["--config", s(&config), "replay", &id]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out));
    assert!(text(&out).contains("identical"), "{}", text(&out));
    std::fs::write(dir.join("notes.txt"), "the second version\n").unwrap();
    let out = mcpguard(&["--config", s(&config), "replay", &id]);
    let said = text(&out);
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("drift") && said.contains("~ /content/0/text"),
        "{said}"
    );
    assert!(said.contains("second version"), "{said}");
    // The replays were audited like any call, and the log is still intact.
    let out = verify(&db, k);
    assert!(out.status.success(), "{}", text(&out));

    // A trace without payloads cannot be replayed, and says so.
    let config_text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("payloads: encrypt", "payloads: drop");
    let dropped = Gateway::start(&config_text);
    let script = json!([{"op": "call_tool", "name": "fs__read_text_file", "arguments": {"path": s(&dir.join("notes.txt"))}}]);
    py_client(&dropped.url(), "legacy", &script, &[]).ok("call_tool", 0);
    drop(dropped);
    let list = mcpguard(&["trace-list", "--db", s(&db), "--limit", "1"]);
    let listed = text(&list);
    assert!(listed.contains("dropped"), "{listed}");
    let id = listed
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_string();
    let out = mcpguard(&["--config", s(&config), "replay", &id]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out));
    assert!(text(&out).contains("cannot replay"), "{}", text(&out));
}

#[test]
fn a_call_the_agent_cancels_is_recorded_with_the_error_it_got() {
    let keys = keys();
    let db = keys.path().join("audit.db");
    let mut gateway = audited_echo(keys.path(), &db, "");
    let port = gateway.port;
    let session = open_session(port);
    let caller_session = session.clone();
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
        r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":41}}"#,
    );
    assert_eq!(status, 202);
    assert_eq!(call.join().unwrap()["error"]["code"], -32800);
    gateway.proc.terminate(Duration::from_secs(10));
    let events = records(&db);
    let cancelled = events
        .iter()
        .find(|r| r["event"]["request_id"] == "41")
        .unwrap_or_else(|| panic!("the cancelled call is not recorded: {events:#?}"));
    assert_eq!(cancelled["event"]["error_code"], -32800, "{cancelled}");
    let records_of_41 = events
        .iter()
        .filter(|r| r["event"]["request_id"] == "41")
        .count();
    assert_eq!(records_of_41, 1, "recorded once: {events:#?}");
    assert_eq!(cancelled["event"]["tool"], "slow");
    assert!(
        events
            .iter()
            .any(|r| r["event"]["method"] == "notifications/cancelled"),
        "the cancellation itself is recorded too"
    );
    assert!(verify(&db, keys.path()).status.success());
}

#[test]
fn with_a_digest_key_one_secret_has_one_digest_across_restarts() {
    let keys = keys();
    let k = keys.path();
    let out = mcpguard(&["keygen", "--dir", s(k), "--name", "other", "--digest-key"]);
    assert!(out.status.success(), "{}", text(&out));
    let db = k.join("audit.db");
    let policy = yaml_str(&repo().join("policies/minimal.yaml").display().to_string());
    let digest_of_one_run = |digest_key: Option<&Path>| -> String {
        let taint = digest_key
            .map(|p| format!("taint:\n  digest_key: {}\n", yaml_str(s(p))))
            .unwrap_or_default();
        let mut gateway = audited_echo(
            k,
            &db,
            &format!("policy:\n  policy_paths: [{policy}]\n{taint}"),
        );
        let session = open_session(gateway.port);
        session_call(
            gateway.port,
            &session,
            1,
            "echo",
            &format!(r#"{{"message":"key {KEY}"}}"#),
        );
        gateway.proc.terminate(Duration::from_secs(10));
        let events = records(&db);
        let last = events
            .iter()
            .rev()
            .find(|r| r["event"]["findings"].is_array())
            .unwrap_or_else(|| panic!("no finding recorded: {events:#?}"));
        last["event"]["findings"][0]["digest"]
            .as_str()
            .unwrap()
            .to_string()
    };
    let key = k.join("digest.key");
    let first = digest_of_one_run(Some(&key));
    let second = digest_of_one_run(Some(&key));
    assert_eq!(
        first, second,
        "the same key gives the same digest after a restart"
    );
    assert!(first.starts_with("hmac-sha256:") && !first.contains(KEY));
    let unkeyed = digest_of_one_run(None);
    assert_ne!(
        first, unkeyed,
        "without the key, digests are random per start"
    );
}
