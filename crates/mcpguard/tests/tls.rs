//! An `https://` upstream: a Python SDK server behind TLS with a private certificate
//! authority, trusted through `ca_file`; without it the gateway refuses the upstream.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "tests"
)]

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

fn openssl(dir: &Path, args: &[&str]) {
    let status = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success(), "openssl {args:?} failed");
}

/// A private CA and a certificate for 127.0.0.1 signed by it.
fn certificates(dir: &Path) {
    openssl(
        dir,
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=mcpguard test CA",
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign",
        ],
    );
    openssl(
        dir,
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=127.0.0.1",
        ],
    );
    std::fs::write(
        dir.join("ext.cnf"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        dir,
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "ext.cnf",
        ],
    );
}

#[test]
fn an_https_upstream_with_a_private_ca() {
    let dir = tempfile::tempdir().unwrap();
    certificates(dir.path());
    let port = free_port();
    let (cert, key) = (dir.path().join("server.pem"), dir.path().join("server.key"));
    let _server = py_http_server_on(
        "py_echo_server.py",
        port,
        &[
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    );
    let upstream = |extra: &str| {
        format!(
            "upstreams:\n  secure:\n    transport: http\n    url: https://127.0.0.1:{port}/mcp\n    prefix: \"\"\n{extra}"
        )
    };
    let ca = dir.path().join("ca.pem").display().to_string();
    let gateway = Gateway::start(&upstream(&format!("    ca_file: {}\n", yaml_str(&ca))));
    let script = json!([{"op": "call_tool", "name": "echo", "arguments": {"message": "over tls"}}]);
    for mode in ["auto", "legacy"] {
        let run = py_client(&gateway.url(), mode, &script, &[]);
        assert_eq!(
            text_of(run.ok("call_tool", 0)),
            "over tls",
            "{mode}: {:#?}",
            run.lines
        );
    }
    // Without the private CA the upstream is not trusted, and says so.
    let untrusted = Gateway::start_unready(&upstream(""), &[]);
    std::thread::sleep(Duration::from_millis(800));
    let (status, body) = http_get(untrusted.port, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
    assert!(
        body.contains("secure") && body.contains("unreachable"),
        "{body}"
    );
    assert!(
        body.to_lowercase().contains("certificate"),
        "the reason should name the certificate: {body}"
    );
}
