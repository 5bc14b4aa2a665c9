//! Two gateway processes as replicas of one deployment: one Redis (sessions, taint ledgers,
//! tool pins) and one PostgreSQL audit log, both the real servers of the machine. A
//! client's requests alternate between them: the session opened on one is served by the
//! other, a secret read through one replica is caught leaving through the other, the
//! session's owner is enforced everywhere, ending it on one ends it on both, and both
//! write one intact audit chain. A replica whose Redis is down refuses (fail closed).
//! Answers and cancellations cross replicas; and the Python SDK client, in both eras,
//! works through nginx balancing every request round robin over the two.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;
use serde_json::Value;

/// A fake AWS access key id (format-valid, random).
const KEY: &str = "AKIAQ3ZRT7WX2YUV4ABC";

const PROTOCOL: &str = "2025-11-25";

fn unique(tag: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{tag}_{}_{nanos}", std::process::id())
}

fn create_key(file: &std::path::Path, identity: &str) -> String {
    let out = mcpguard(&[
        "keys",
        "create",
        "--identity",
        identity,
        "--role",
        "dev",
        "--file",
        s(file),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    format!("Bearer {}", String::from_utf8_lossy(&out.stdout).trim())
}

/// POSTs `body` in `session` as `auth`.
fn post(port: u16, auth: &str, session: &str, body: &str) -> (u16, Value) {
    let (status, _, answer) = mcp_post(
        port,
        &[
            ("authorization", auth),
            ("mcp-session-id", session),
            ("mcp-protocol-version", PROTOCOL),
        ],
        body,
    );
    (status, answer)
}

fn call(id: u64, tool: &str, arguments: &Value) -> String {
    serde_json::json!({
        "jsonrpc": "2.0", "id": id, "method": "tools/call",
        "params": {"name": tool, "arguments": arguments},
    })
    .to_string()
}

/// A finding digest key made by the real CLI, in a directory of its own under `dir`.
fn digest_key(dir: &std::path::Path) -> std::path::PathBuf {
    let own = dir.join("digest");
    let out = mcpguard(&["keygen", "--dir", s(&own), "--digest-key"]);
    assert!(out.status.success(), "{}", text(&out));
    own.join("digest.key")
}

#[test]
fn two_replicas_share_sessions_taint_and_one_audit_log() {
    let keys = keys();
    let digest = digest_key(keys.path());
    let key_file = keys.path().join("api-keys.yaml");
    let alice = create_key(&key_file, "alice");
    let bob = create_key(&key_file, "bob");
    let files = tempfile::tempdir().unwrap();
    std::fs::write(
        files.path().join("creds.txt"),
        format!("[default]\naws_access_key_id = {KEY}\n"),
    )
    .unwrap();
    let database = PostgresSchema::new("replicas");
    let (postgres, schema) = (database.url.clone(), database.schema.clone());
    let prefix = format!("{}:", unique("mcpguard-test"));
    let config = format!(
        "upstreams:\n  fs:\n    command: {fs}\n    args: [{dir}]\n  net:\n    command: {py}\n    args: [{net}]\n\
         policy:\n  policy_paths: [{policy}]\n\
         taint:\n  digest_key: {digest}\n\
         auth:\n  enabled: true\n  api_keys_file: {key_file}\n\
         state:\n  backend: redis\n  redis: {{url: 'redis://127.0.0.1:6379', key_prefix: '{prefix}'}}\n\
         {audit}",
        fs = yaml_str(&node_bin("mcp-server-filesystem").display().to_string()),
        dir = yaml_str(&files.path().canonicalize().unwrap().display().to_string()),
        py = yaml_str(&python().display().to_string()),
        net = peer_yaml("py_net_tools.py"),
        policy = yaml_str(
            &repo()
                .join("policies/owasp_asi_2026_strict.yaml")
                .display()
                .to_string()
        ),
        digest = yaml_str(s(&digest)),
        key_file = yaml_str(s(&key_file)),
        audit = audit_yaml(
            keys.path(),
            &keys.path().join("unused.db"),
            &database.audit_lines(),
        ),
    );
    let mut a = Gateway::start(&config);
    let mut b = Gateway::start(&config);

    // Alice opens a session on A.
    let init = format!(
        r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{PROTOCOL}","capabilities":{{}},"clientInfo":{{"name":"replica-test","version":"1"}}}}}}"#
    );
    let (status, headers, body) = mcp_post(a.port, &[("authorization", &alice)], &init);
    assert_eq!(status, 200, "{body}");
    let session = header_of(&headers, "mcp-session-id");
    assert!(!session.is_empty());
    let (status, _) = post(
        a.port,
        &alice,
        &session,
        r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#,
    );
    assert_eq!(status, 202);

    // B has never seen the session: it still knows whose it is.
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let (status, body) = post(b.port, &bob, &session, list);
    assert_eq!(status, 403, "bob must not use alice's session on B: {body}");
    let (status, body) = post(b.port, &alice, &session, list);
    assert_eq!(status, 200, "{body}");
    assert!(body.to_string().contains("fs__read_text_file"), "{body}");

    // The secret is read through A...
    let path = files.path().canonicalize().unwrap().join("creds.txt");
    let (status, read) = post(
        a.port,
        &alice,
        &session,
        &call(
            2,
            "fs__read_text_file",
            &serde_json::json!({"path": path.display().to_string()}),
        ),
    );
    assert_eq!(status, 200, "{read}");
    assert!(read.to_string().contains(KEY), "{read}");
    // ...and must not leave through B. Re-cased it is no AWS key to a pattern detector:
    // only the taint ledger that A recorded can recognise it.
    let (_, leak) = post(
        b.port,
        &alice,
        &session,
        &call(
            3,
            "net__http_post",
            &serde_json::json!({"url": "http://127.0.0.1:9/in", "body": format!("backup {}", KEY.to_lowercase())}),
        ),
    );
    assert_eq!(leak["error"]["code"], -32054, "{leak}");
    let labels = leak["error"]["data"]["labels"].to_string();
    assert!(
        labels.contains("flow:read_text_file"),
        "the denial must come from the flow A recorded: {leak}"
    );
    assert!(!leak.to_string().contains(KEY) && !leak.to_string().contains(&KEY.to_lowercase()));
    // A harmless call through B is not denied.
    let (_, harmless) = post(
        b.port,
        &alice,
        &session,
        &call(
            4,
            "net__http_post",
            &serde_json::json!({"url": format!("http://127.0.0.1:{}/healthz", a.port), "body": "hello"}),
        ),
    );
    assert!(harmless.get("result").is_some(), "{harmless}");

    // Ending the session on B ends it on A.
    let (status, _, _) = http_request(
        b.port,
        "DELETE",
        "/mcp",
        &[
            ("authorization", alice.as_str()),
            ("mcp-session-id", session.as_str()),
        ],
        b"",
    );
    assert_eq!(status, 200);
    // A hears of it by message at once, or asks Redis again within a second.
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let ended_on_a = loop {
        let (status, _) = post(a.port, &alice, &session, list);
        if status == 404 || std::time::Instant::now() > deadline {
            break status;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(ended_on_a, 404);

    a.proc.terminate(Duration::from_secs(10));
    b.proc.terminate(Duration::from_secs(10));

    // One audit log, intact, holding both replicas' records of the session.
    let out = mcpguard(&[
        "audit-verify",
        "--db",
        &postgres,
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
    let out = mcpguard(&[
        "audit-query",
        "--db",
        &postgres,
        "--schema",
        &schema,
        "--format",
        "json",
        "--limit",
        "0",
    ]);
    let events: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|r| r["event"].clone())
        .collect();
    let outcome_of = |tool: &str| {
        events
            .iter()
            .find(|e| e["tool"] == tool && e["outcome"] != "allowed")
            .or_else(|| events.iter().find(|e| e["tool"] == tool))
            .map(|e| e["outcome"].clone())
    };
    assert_eq!(
        outcome_of("fs__read_text_file"),
        Some(Value::from("allowed")),
        "{events:?}"
    );
    assert_eq!(
        outcome_of("net__http_post"),
        Some(Value::from("denied")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|e| e["identity"] == "bob" && e["method"] == "tools/list"),
        "bob's refusal on B is audited: {events:?}"
    );
    // B judged alice's calls as alice (roles and all), though A authenticated her first.
    for event in events.iter().filter(|e| e["method"] == "tools/call") {
        assert_eq!(event["identity"], "alice", "{event}");
        assert_eq!(event["roles"][0], "dev", "{event}");
    }
}

#[test]
fn a_replica_whose_shared_state_is_down_refuses_new_sessions() {
    let keys = keys();
    let digest = digest_key(keys.path());
    let config = echo_stdio_config(&format!(
        "taint:\n  digest_key: {}\nstate:\n  backend: redis\n  redis: {{url: 'redis://127.0.0.1:1', timeout_ms: 300}}\n",
        yaml_str(s(&digest))
    ));
    let gateway = Gateway::start(&config);
    let (status, _, body) = mcp_post(
        gateway.port,
        &[],
        &format!(
            r#"{{"jsonrpc":"2.0","id":0,"method":"initialize","params":{{"protocolVersion":"{PROTOCOL}","capabilities":{{}},"clientInfo":{{"name":"t","version":"1"}}}}}}"#
        ),
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        body.to_string().contains("state its replicas share"),
        "{body}"
    );
    // A session id no replica can vouch for is not served either.
    let (status, _, _) = mcp_post(
        gateway.port,
        &[("mcp-session-id", "0123456789abcdef0123456789abcdef")],
        r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
    );
    assert_eq!(status, 503);
}

#[test]
fn replicas_without_a_shared_digest_key_are_refused_at_startup() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("config.yaml");
    std::fs::write(&path, echo_stdio_config("state:\n  backend: redis\n")).unwrap();
    let out = mcpguard(&["serve", "--config", s(&path), "--port", "0"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("taint.digest_key"),
        "the error must say what to set: {}",
        text(&out)
    );
}

#[test]
fn the_documented_compose_configuration_is_valid() {
    let config = repo().join("deploy/config.yaml");
    let out = mcpguard(&["--config", s(&config), "config-show"]);
    assert!(out.status.success(), "{}", text(&out));
    let shown = text(&out);
    assert!(shown.contains(r#"state.backend = "redis""#), "{shown}");
    assert!(shown.contains(r#"audit.backend = "postgres""#), "{shown}");
}

#[test]
fn answers_and_cancellations_reach_the_replica_that_waits_for_them() {
    let keys = keys();
    let digest = digest_key(keys.path());
    let prefix = format!("{}:", unique("mcpguard-test"));
    let config = echo_stdio_config(&format!(
        "taint:\n  digest_key: {}\nstate:\n  backend: redis\n  redis: {{url: 'redis://127.0.0.1:6379', key_prefix: '{prefix}'}}",
        yaml_str(s(&digest))
    ));
    let a = Gateway::start(&config);
    let b = Gateway::start(&config);
    let session = open_session_with(a.port, r#"{"elicitation":{}}"#);
    let headers = [
        ("mcp-session-id", session.as_str()),
        ("mcp-protocol-version", PROTOCOL),
    ];

    // A relays the upstream's question on the call's stream; the agent answers through B.
    let mut stream = SseReader::post(
        a.port,
        &headers,
        &call(1, "ask_user", &serde_json::json!({"question": "colour?"})),
    );
    let question = stream.next_message();
    assert_eq!(question["method"], "elicitation/create", "{question}");
    let answer = serde_json::json!({
        "jsonrpc": "2.0", "id": question["id"],
        "result": {"action": "accept", "content": {"value": "blue"}},
    });
    let (status, _, _) = mcp_post(b.port, &headers, &answer.to_string());
    assert_eq!(status, 202);
    let result = stream.next_message();
    assert_eq!(text_of(&result["result"]), "blue", "{result}");

    // A runs a long call; the agent cancels it through B.
    let (port, caller_session) = (a.port, session.clone());
    let started = std::time::Instant::now();
    let running = std::thread::spawn(move || {
        session_call(port, &caller_session, 9, "slow", r#"{"seconds":30}"#)
    });
    std::thread::sleep(Duration::from_millis(500));
    let cancel = r#"{"jsonrpc":"2.0","method":"notifications/cancelled","params":{"requestId":9,"reason":"changed my mind"}}"#;
    let (status, _, _) = mcp_post(b.port, &headers, cancel);
    assert_eq!(status, 202);
    let ended = running.join().unwrap();
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the call was not cancelled"
    );
    assert_eq!(ended["error"]["code"], -32800, "{ended}");
}

/// nginx (Debian's binary, unpacked into `.tools/` by the setup) balancing round robin
/// over `ports`, every request to the next one (no affinity, no kept connections).
struct Balancer {
    _nginx: Proc,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Balancer {
    fn start(ports: &[u16]) -> Balancer {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let servers: String = ports
            .iter()
            .map(|p| format!("    server 127.0.0.1:{p};\n"))
            .collect();
        let temp = dir.path().display();
        std::fs::write(
            dir.path().join("nginx.conf"),
            format!(
                "worker_processes 1;\npid {temp}/nginx.pid;\nevents {{}}\nhttp {{\n  access_log off;\n  \
                 client_body_temp_path {temp}/body;\n  proxy_temp_path {temp}/proxy;\n  fastcgi_temp_path {temp}/fcgi;\n  \
                 uwsgi_temp_path {temp}/uwsgi;\n  scgi_temp_path {temp}/scgi;\n  upstream gateways {{\n{servers}  }}\n  \
                 server {{\n    listen 127.0.0.1:{port};\n    location / {{\n      proxy_pass http://gateways;\n      \
                 proxy_http_version 1.1;\n      proxy_set_header Host $http_host;\n      proxy_set_header Connection \"\";\n      proxy_buffering off;\n      \
                 proxy_read_timeout 1h;\n    }}\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new(repo().join(".tools/nginx"))
            .arg("-p")
            .arg(dir.path())
            .arg("-c")
            .arg(dir.path().join("nginx.conf"))
            .arg("-e")
            .arg(dir.path().join("error.log"))
            .args(["-g", "daemon off;"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("nginx: run scripts/setup.sh to unpack it into .tools/");
        let nginx = Proc {
            child,
            what: "nginx".into(),
        };
        wait_port(port, Duration::from_secs(10));
        Balancer {
            _nginx: nginx,
            port,
            _dir: dir,
        }
    }
}

const NO_EXFILTRATION: &str = "version: 1\nname: replicas\ndefault_action: allow\nrules:\n  \
  - id: NO-EXFIL\n    name: No secrets to network tools\n    action: deny\n    \
  tool_patterns: ['*post*']\n    taint_labels: [secret]\n    owasp_asi: [ASI02]\n";

#[test]
fn sdk_clients_behind_a_round_robin_balancer_see_one_gateway() {
    let keys = keys();
    let digest = digest_key(keys.path());
    let files = tempfile::tempdir().unwrap();
    std::fs::write(
        files.path().join("creds.txt"),
        format!("[default]\naws_access_key_id = {KEY}\n"),
    )
    .unwrap();
    let policy = keys.path().join("policy.yaml");
    std::fs::write(&policy, NO_EXFILTRATION).unwrap();
    let prefix = format!("{}:", unique("mcpguard-test"));
    // `protocol: handshake`: the gateway, not the upstream, turns a question asked
    // mid-call into `input_required` for a stateless agent, so any replica can resume it.
    let config = echo_stdio_config(&format!(
        "    protocol: handshake\n  fs:\n    command: {fs}\n    args: [{dir}]\n  net:\n    command: {py}\n    args: [{net}]\n\
         policy:\n  policy_paths: [{policy}]\n\
         taint:\n  digest_key: {digest}\n\
         state:\n  backend: redis\n  redis: {{url: 'redis://127.0.0.1:6379', key_prefix: '{prefix}'}}",
        fs = yaml_str(&node_bin("mcp-server-filesystem").display().to_string()),
        dir = yaml_str(&files.path().canonicalize().unwrap().display().to_string()),
        py = yaml_str(&python().display().to_string()),
        net = peer_yaml("py_net_tools.py"),
        policy = yaml_str(s(&policy)),
        digest = yaml_str(s(&digest)),
    ));
    let a = Gateway::start(&config);
    let b = Gateway::start(&config);
    let balancer = Balancer::start(&[a.port, b.port]);
    let url = format!("http://127.0.0.1:{}/mcp", balancer.port);
    let path = files.path().canonicalize().unwrap().join("creds.txt");
    for mode in ["legacy", "auto"] {
        // The upstream asks mid-call: a handshake-era agent gets `elicitation/create` and
        // answers it through whichever replica; a stateless one gets `input_required` and
        // retries through whichever replica, which passes the retry to the replica holding
        // the parked call.
        let question = serde_json::json!({"op": "call_tool", "name": "ask_user", "arguments": {"question": "colour?"}});
        let script = serde_json::json!([
            {"op": "list_tools"},
            {"op": "call_tool", "name": "fs__read_text_file", "arguments": {"path": path.display().to_string()}},
            {"op": "call_tool", "name": "net__http_post", "arguments": {"url": "http://127.0.0.1:9/in", "body": format!("backup {}", KEY.to_lowercase())}},
            question,
            {"op": "call_tool", "name": "echo", "arguments": {"message": format!("hi from {mode}")}},
        ]);
        let run = py_client(&url, mode, &script, CALLBACKS);
        assert!(
            run.ok("list_tools", 0)
                .to_string()
                .contains("fs__read_text_file"),
            "{mode}"
        );
        assert!(
            text_of(run.ok("call_tool", 0)).contains(KEY),
            "{mode}: the read is allowed"
        );
        let leak = run.step("call_tool", 1);
        assert_eq!(leak["ok"], false, "{mode}: the flow must be denied: {leak}");
        assert!(leak.to_string().contains("NO-EXFIL"), "{mode}: {leak}");
        assert_eq!(text_of(run.ok("call_tool", 2)), "blue", "{mode}");
        assert_eq!(
            text_of(run.ok("call_tool", 3)),
            format!("hi from {mode}"),
            "{mode}"
        );
    }
    let served = |gateway: &Gateway| {
        gateway
            .logs()
            .lines()
            .filter(|l| l.contains("method=\"tools/call\""))
            .count()
    };
    assert!(
        served(&a) > 0 && served(&b) > 0,
        "the balancer spread the calls: A {} B {}",
        served(&a),
        served(&b)
    );
}
