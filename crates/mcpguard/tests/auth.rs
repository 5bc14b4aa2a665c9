//! Authentication of HTTP callers with API keys, through the running gateway with the
//! official Python and TypeScript SDK clients: keys made and revoked with `mcpguard keys`,
//! identities and roles reaching policy rules and audit events, refusals audited,
//! sessions bound to the identity that opened them.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::{Value, json};

const POLICY: &str = "version: 1\nname: roles\ndefault_action: allow\nrules:\n  \
  - id: ROLE-001\n    name: Interns do not call tools\n    action: deny\n    \
  tool_patterns: ['*']\n    roles: [intern]\n    owasp_asi: [ASI03]\n    \
  reason: interns may not call tools\n";

/// Creates a key with the real CLI; returns (key, id).
fn create_key(file: &std::path::Path, identity: &str, role: &str) -> (String, String) {
    let out = mcpguard(&[
        "keys",
        "create",
        "--identity",
        identity,
        "--role",
        role,
        "--file",
        s(file),
    ]);
    assert!(out.status.success(), "{}", text(&out));
    let key = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let id = key["mcpg_".len().."mcpg_".len() + 12].to_string();
    (key, id)
}

fn bearer(key: &str) -> String {
    format!("Authorization: Bearer {key}")
}

#[test]
fn api_keys_identify_callers_for_policy_and_audit_and_revocation_takes_effect() {
    let keys = keys();
    let db = keys.path().join("audit.db");
    let key_file = keys.path().join("api-keys.yaml");
    let (alice, alice_id) = create_key(&key_file, "alice", "dev");
    let (bob, _) = create_key(&key_file, "bob", "intern");
    // The file holds digests, never a key.
    let stored = std::fs::read_to_string(&key_file).unwrap();
    assert!(!stored.contains(&alice[18..]) && !stored.contains(&bob[18..]));

    let policy = keys.path().join("roles.yaml");
    std::fs::write(&policy, POLICY).unwrap();
    let config = format!(
        "{upstream}auth:\n  enabled: true\n  api_keys_file: {file}\npolicy:\n  policy_paths: [{policy}]\n{audit}",
        upstream = echo_stdio_config(""),
        file = yaml_str(&key_file.display().to_string()),
        policy = yaml_str(&policy.display().to_string()),
        audit = audit_yaml(keys.path(), &db, ""),
    );
    let gateway = Gateway::start(&config);
    let call = json!([{"op": "call_tool", "name": "echo", "arguments": {"message": "hi"}}]);

    // No key: the SDK cannot even connect (401, with the reason).
    let none = py_client(&gateway.url(), "legacy", &call, &[]);
    assert!(
        none.stderr.contains("authentication required"),
        "{}",
        none.stderr
    );

    // Alice (dev) through the Python SDK, both eras; Bob (intern) through TypeScript.
    for mode in ["legacy", "auto"] {
        let run = py_client(&gateway.url(), mode, &call, &["--header", &bearer(&alice)]);
        assert_eq!(text_of(run.ok("call_tool", 0)), "hi", "{mode}");
    }
    let x_api_key = format!("X-API-Key: {alice}");
    let run = py_client(&gateway.url(), "legacy", &call, &["--header", &x_api_key]);
    assert_eq!(text_of(run.ok("call_tool", 0)), "hi");
    let run = ts_client(&gateway.url(), &call, &["--header", &bearer(&bob)]);
    let denied = &run.step("call_tool", 0);
    assert!(
        denied.to_string().contains("ROLE-001"),
        "bob's call was not denied by his role: {denied}"
    );

    // A session belongs to the identity that opened it.
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
    let alice_header = format!("Bearer {alice}");
    let (status, headers, _) = mcp_post(gateway.port, &[("authorization", &alice_header)], init);
    assert_eq!(status, 200);
    let session = header_of(&headers, "mcp-session-id");
    let list = r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#;
    let bob_header = format!("Bearer {bob}");
    let with = |auth: &str| {
        mcp_post(
            gateway.port,
            &[
                ("authorization", auth),
                ("mcp-session-id", &session),
                ("mcp-protocol-version", "2025-11-25"),
            ],
            list,
        )
    };
    let (status, _, body) = with(&bob_header);
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error"]["code"], -32057);
    assert_eq!(with(&alice_header).0, 200);

    // A wrong key: 401 with an RFC 6750 challenge, and a message without the key.
    let wrong = format!("Bearer {}x", &alice[..alice.len() - 1]);
    let (status, headers, body) = mcp_post(gateway.port, &[("authorization", &wrong)], init);
    assert_eq!(status, 401);
    let challenge = header_of(&headers, "www-authenticate");
    assert_eq!(
        challenge,
        r#"Bearer realm="mcpguard", error="invalid_token""#
    );
    assert!(!body.to_string().contains(&alice[18..]), "{body}");
    // GET and DELETE need the key too.
    let (status, _, _) = http_request(
        gateway.port,
        "GET",
        "/mcp",
        &[
            ("accept", "text/event-stream"),
            ("mcp-session-id", &session),
        ],
        b"",
    );
    assert_eq!(status, 401);
    // Probes stay open.
    assert_eq!(http_get_status(gateway.port, "/healthz"), Some(200));

    // Revoked with the CLI: refused within seconds, without a restart.
    let out = mcpguard(&["keys", "revoke", &alice_id, "--file", s(&key_file)]);
    assert!(out.status.success(), "{}", text(&out));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, _, _) = mcp_post(gateway.port, &[("authorization", &alice_header)], init);
        if status == 401 {
            break;
        }
        assert!(Instant::now() < deadline, "the revoked key still works");
        std::thread::sleep(Duration::from_millis(100));
    }
    let list = mcpguard(&["keys", "list", "--file", s(&key_file)]);
    assert!(text(&list).contains("revoked"), "{}", text(&list));
    drop(gateway);

    // The audit log names who called, and records the refusals.
    let events: Vec<Value> = events(&db);
    let alice_call = events
        .iter()
        .find(|e| e["identity"] == "alice" && e["tool"] == "echo")
        .unwrap_or_else(|| panic!("no call of alice's: {events:#?}"));
    assert_eq!(alice_call["roles"], json!(["dev"]));
    assert_eq!(alice_call["outcome"], "allowed");
    let bob_call = events
        .iter()
        .find(|e| e["identity"] == "bob" && e["tool"] == "echo")
        .unwrap();
    assert_eq!(bob_call["outcome"], "denied");
    let refused = events
        .iter()
        .filter(|e| e["outcome"] == "unauthenticated")
        .count();
    // At least: the SDK without a key, the wrong key, the revoked key.
    assert!(refused >= 3, "{events:#?}");
    assert!(
        events.iter().all(|e| !e.to_string().contains(&alice[18..])),
        "a key reached the audit log"
    );
}

#[test]
fn auth_without_credentials_is_a_startup_error_and_anonymous_must_be_explicit() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, auth: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, format!("{}auth:\n{auth}", echo_stdio_config(""))).unwrap();
        path
    };
    let bare = write("bare.yaml", "  enabled: true\n");
    let out = mcpguard(&["--config", s(&bare), "serve", "--port", "0"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("auth") && text(&out).contains("mcpguard keys create"),
        "{}",
        text(&out)
    );
    // A keys file with no usable key: refused at start too.
    let empty_keys = dir.path().join("keys.yaml");
    std::fs::write(&empty_keys, "version: 1\nkeys: []\n").unwrap();
    let empty = write(
        "empty.yaml",
        &format!(
            "  enabled: true\n  api_keys_file: {}\n",
            yaml_str(&empty_keys.display().to_string())
        ),
    );
    let out = mcpguard(&["--config", s(&empty), "serve", "--port", "0"]);
    assert!(!out.status.success());
    assert!(
        text(&out).contains("no credential can be used"),
        "{}",
        text(&out)
    );

    // Anonymous access, when asked for: callers without a key get in as `anonymous`.
    let gateway = Gateway::start(&format!(
        "{}auth:\n  enabled: true\n  anonymous: true\n",
        echo_stdio_config("")
    ));
    let call = json!([{"op": "call_tool", "name": "echo", "arguments": {"message": "anon"}}]);
    let run = py_client(&gateway.url(), "legacy", &call, &[]);
    assert_eq!(text_of(run.ok("call_tool", 0)), "anon");
    // ...but a wrong key is still refused.
    let run = py_client(
        &gateway.url(),
        "legacy",
        &call,
        &["--header", "Authorization: Bearer mcpg_000000000000_nope"],
    );
    assert!(
        run.stderr.contains("not an MCPGuard API key"),
        "{}",
        run.stderr
    );
}

const ISSUER: &str = "https://as.example.test";
const RESOURCE: &str = "https://mcp.example.test/mcp";

/// Keys and tokens from `tests/peers/jwt_issuer.py` (PyJWT).
struct Issuer {
    dir: tempfile::TempDir,
}

impl Issuer {
    fn new() -> Issuer {
        let issuer = Issuer {
            dir: tempfile::tempdir().unwrap(),
        };
        issuer.keys(&[
            "rsa-1:RS256",
            "ec-1:ES256",
            "ed-1:EdDSA",
            "--unlisted",
            "evil:RS256",
        ]);
        issuer
    }

    fn run(&self, args: &[&str]) -> String {
        let out = std::process::Command::new(python())
            .arg(peers().join("jwt_issuer.py"))
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn keys(&self, specs: &[&str]) {
        let mut args = vec!["keys", s(self.dir.path())];
        args.extend_from_slice(specs);
        self.run(&args);
    }

    fn token(&self, kid: &str, sub: &str, extra: &[&str]) -> String {
        let mut args = vec![
            "token",
            s(self.dir.path()),
            kid,
            "--sub",
            sub,
            "--iss",
            ISSUER,
            "--aud",
            RESOURCE,
        ];
        args.extend_from_slice(extra);
        self.run(&args)
    }
}

/// `python -m http.server` serving the JWKS on loopback; stopped when dropped.
struct JwksServer {
    proc: Proc,
    port: u16,
}

impl JwksServer {
    fn start(dir: &std::path::Path) -> JwksServer {
        let port = free_port();
        let child = std::process::Command::new(python())
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .arg("--directory")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        wait_port(port, Duration::from_secs(10));
        JwksServer {
            proc: Proc {
                child,
                what: "jwks server".into(),
            },
            port,
        }
    }
}

impl Drop for JwksServer {
    fn drop(&mut self) {
        let _ = self.proc.child.kill();
        let _ = self.proc.child.wait();
    }
}

#[test]
fn jwt_bearer_tokens_are_verified_against_the_issuers_jwks_with_scopes_per_tool() {
    let issuer = Issuer::new();
    let jwks = JwksServer::start(issuer.dir.path());
    let keys = keys();
    let db = keys.path().join("audit.db");
    let config = format!(
        "{upstream}auth:\n  enabled: true\n  resource: {RESOURCE}\n  authorization_servers: [{ISSUER}]\n  \
         jwt:\n    jwks_url: http://127.0.0.1:{port}/jwks.json\n    issuer: {ISSUER}\n  \
         scopes:\n    - {{methods: [tools/call], tools: [echo], scopes: ['tools:echo']}}\n{audit}",
        upstream = echo_stdio_config(""),
        port = jwks.port,
        audit = audit_yaml(keys.path(), &db, ""),
    );
    let gateway = Gateway::start(&config);
    let call = json!([
        {"op": "list_tools"},
        {"op": "call_tool", "name": "echo", "arguments": {"message": "signed"}}
    ]);
    let header = |token: &str| format!("Authorization: Bearer {token}");

    // The three algorithms, through both SDK clients, with the scope.
    let rsa = issuer.token(
        "rsa-1",
        "alice",
        &["--roles", "dev", "--scope", "tools:echo"],
    );
    let run = py_client(
        &gateway.url(),
        "legacy",
        &call,
        &["--header", &header(&rsa)],
    );
    assert_eq!(text_of(run.ok("call_tool", 0)), "signed");
    let ec = issuer.token("ec-1", "carol", &["--scope", "read tools:echo"]);
    let run = py_client(&gateway.url(), "auto", &call, &["--header", &header(&ec)]);
    assert_eq!(text_of(run.ok("call_tool", 0)), "signed");
    let ed = issuer.token("ed-1", "dave", &["--scope", "tools:echo"]);
    let run = ts_client(&gateway.url(), &call, &["--header", &header(&ed)]);
    assert_eq!(text_of(run.ok("call_tool", 0)), "signed");

    // Without the scope: listing works, calling echo is refused (403 insufficient_scope).
    let narrow = issuer.token("rsa-1", "bob", &["--scope", "read"]);
    let run = py_client(
        &gateway.url(),
        "legacy",
        &call,
        &["--header", &header(&narrow)],
    );
    run.ok("list_tools", 0);
    let refused = run.step("call_tool", 0).to_string();
    assert!(refused.contains("tools:echo"), "{refused}");
    let body = r#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"message":"x"}}}"#;
    let bearer = format!("Bearer {narrow}");
    let (status, headers, _) = mcp_post(
        gateway.port,
        &[
            ("authorization", &bearer),
            ("mcp-protocol-version", "2026-07-28"),
            ("mcp-method", "tools/call"),
            ("mcp-name", "echo"),
        ],
        body,
    );
    assert_eq!(status, 403);
    let challenge = header_of(&headers, "www-authenticate");
    assert!(
        challenge.contains(r#"error="insufficient_scope""#)
            && challenge.contains(r#"scope="tools:echo""#),
        "{challenge}"
    );

    // Refused tokens, each with its reason.
    let init = r#"{"jsonrpc":"2.0","id":0,"method":"initialize","params":{"protocolVersion":"2025-11-25","capabilities":{},"clientInfo":{"name":"raw","version":"1"}}}"#;
    let refusal = |token: &str| {
        let bearer = format!("Bearer {token}");
        let (status, headers, body) = mcp_post(gateway.port, &[("authorization", &bearer)], init);
        assert_eq!(status, 401, "{body}");
        let challenge = header_of(&headers, "www-authenticate");
        assert!(
            challenge.contains(
                r#"resource_metadata="https://mcp.example.test/.well-known/oauth-protected-resource/mcp""#
            ),
            "{challenge}"
        );
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    };
    for (token, reason) in [
        (issuer.token("rsa-1", "x", &["--exp-in", "-120"]), "expired"),
        (
            issuer.token("rsa-1", "x", &["--nbf-in", "600"]),
            "not valid yet",
        ),
        (issuer.token("evil", "x", &[]), "does not list"),
        (
            issuer.token("rsa-1", "x", &["--hs256-secret", "guessable"]),
            "algorithm",
        ),
    ] {
        let message = refusal(&token);
        assert!(message.contains(reason), "{reason}: {message}");
    }
    let other_audience = issuer.run(&[
        "token",
        s(issuer.dir.path()),
        "rsa-1",
        "--sub",
        "x",
        "--iss",
        ISSUER,
        "--aud",
        "https://elsewhere.test",
    ]);
    assert!(refusal(&other_audience).contains("another resource"));
    let other_issuer = issuer.run(&[
        "token",
        s(issuer.dir.path()),
        "rsa-1",
        "--sub",
        "x",
        "--iss",
        "https://evil.test",
        "--aud",
        RESOURCE,
    ]);
    assert!(refusal(&other_issuer).contains("another authorization server"));

    // The protected-resource metadata (RFC 9728).
    let (status, metadata) =
        http_get(gateway.port, "/.well-known/oauth-protected-resource/mcp").unwrap();
    assert_eq!(status, 200);
    let metadata: Value = serde_json::from_str(&metadata).unwrap();
    assert_eq!(metadata["resource"], RESOURCE);
    assert_eq!(metadata["authorization_servers"], json!([ISSUER]));
    assert_eq!(metadata["scopes_supported"], json!(["tools:echo"]));
    assert_eq!(metadata["bearer_methods_supported"], json!(["header"]));

    // A rotated key: a token with a new kid is accepted once the JWKS is fetched again
    // (an unknown kid triggers a fetch, at most every 10 seconds).
    issuer.keys(&["rsa-2:RS256"]);
    let rotated = issuer.token("rsa-2", "erin", &["--scope", "tools:echo"]);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let run = py_client(
            &gateway.url(),
            "legacy",
            &call,
            &["--header", &header(&rotated)],
        );
        if run
            .lines
            .iter()
            .any(|l| l["op"] == "call_tool" && l["ok"] == true)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the rotated key was never picked up: {}",
            run.stderr
        );
        std::thread::sleep(Duration::from_secs(1));
    }
    drop(gateway);

    let events: Vec<Value> = events(&db);
    let alice = events
        .iter()
        .find(|e| e["identity"] == "alice" && e["tool"] == "echo")
        .unwrap();
    assert_eq!(alice["roles"], json!(["dev"]));
    assert!(
        events
            .iter()
            .any(|e| e["identity"] == "bob" && e["outcome"] == "unauthenticated"),
        "the insufficient-scope refusal is not audited"
    );
    assert!(events.iter().all(|e| !e.to_string().contains(&rsa)));
}
