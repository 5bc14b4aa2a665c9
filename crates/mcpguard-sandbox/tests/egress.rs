//! `network: egress` on the native backend: the program's only way out is the gateway's
//! proxy, which opens tunnels to the allowed destinations and nothing else. The
//! destination here is a TCP server of the test's own on the host's loopback (no other
//! network is reachable from our machines).

#![allow(
    clippy::unwrap_used,
    reason = "test harness helpers: a failure is the test's failure"
)]

use std::time::Duration;

use mcpguard_sandbox::egress::EgressPolicy;
use mcpguard_sandbox::native::{HelperCommand, NativeOptions, NativeSandbox};
use mcpguard_sandbox::{Limits, Network, Sandbox, SandboxError, Spec};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

fn native() -> NativeSandbox {
    NativeSandbox::new(NativeOptions::new(HelperCommand {
        program: env!("CARGO_BIN_EXE_mcpguard-sandbox-helper").into(),
        args: Vec::new(),
    }))
}

/// A server on the host's loopback that answers each line with `pong`.
async fn pong_server() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let _ = BufReader::new(read).read_line(&mut line).await;
                let _ = write.write_all(b"pong\n").await;
            });
        }
    });
    port
}

const CLIENT: &str = r#"
import http.client, os, socket, sys
port, closed = int(sys.argv[1]), int(sys.argv[2])
print("proxy", os.environ.get("HTTPS_PROXY"))
def tunnel(host, port):
    c = http.client.HTTPConnection("127.0.0.1", 3128, timeout=5)
    c.set_tunnel(host, port)
    try:
        c.connect()
        c.sock.sendall(b"ping\n")
        return "open " + c.sock.recv(100).decode().strip()
    except OSError as e:
        return "refused " + str(e)
print("allowed", tunnel("127.0.0.1", port))
print("other-port", tunnel("127.0.0.1", closed))
print("by-name", tunnel("localhost", port))
try:
    socket.create_connection(("127.0.0.1", port), timeout=2)
    print("direct open")
except OSError as e:
    print("direct refused")
"#;

#[tokio::test]
async fn only_allowed_destinations_are_reachable_and_every_attempt_is_recorded() {
    let port = pong_server().await;
    let closed = pong_server().await;
    let sandbox = native();
    let spec = Spec {
        program: "python3".into(),
        args: vec![
            "-c".into(),
            CLIENT.into(),
            port.to_string(),
            closed.to_string(),
        ],
        env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
        network: Network::Egress,
        // The address by number (a rule naming a loopback address is honoured); the
        // name `localhost` too, but a name must lead to a public address.
        egress: EgressPolicy::parse(&[format!("127.0.0.1:{port}"), format!("localhost:{port}")])
            .unwrap(),
        limits: Limits {
            wall_time: Duration::from_secs(20),
            ..Limits::default()
        },
        ..Spec::default()
    };
    let outcome = sandbox.run(&spec, b"").await.unwrap();
    let stdout = outcome.stdout.text();
    let stderr = outcome.stderr.text();
    let line = |key: &str| {
        stdout
            .lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no {key} line in {stdout} / {stderr}"))
            .to_string()
    };
    assert_eq!(line("proxy"), "proxy http://127.0.0.1:3128");
    assert_eq!(line("allowed"), "allowed open pong");
    assert!(line("other-port").contains("403"), "{stdout}");
    assert!(line("by-name").contains("403"), "{stdout}");
    assert_eq!(line("direct"), "direct refused");

    let attempts = &outcome.usage.egress;
    assert_eq!(attempts.len(), 3, "{attempts:?}");
    assert!(attempts[0].allowed && attempts[0].port == port);
    assert!(!attempts[1].allowed);
    assert_eq!(
        attempts[1].reason.as_deref(),
        Some("no egress rule allows it")
    );
    assert!(!attempts[2].allowed && attempts[2].host == "localhost");
    assert!(
        attempts[2]
            .reason
            .as_deref()
            .unwrap()
            .contains("not a public address"),
        "{attempts:?}"
    );
}

#[tokio::test]
async fn a_confined_server_with_egress_reaches_its_destination() {
    let port = pong_server().await;
    let sandbox = native();
    let spec = Spec {
        program: "python3".into(),
        args: vec![
            "-c".into(),
            "import http.client, sys\n\
             c = http.client.HTTPConnection('127.0.0.1', 3128, timeout=5)\n\
             c.set_tunnel('127.0.0.1', int(sys.argv[1]))\n\
             c.connect(); c.sock.sendall(b'ping\\n'); print(c.sock.recv(100).decode().strip())"
                .into(),
            port.to_string(),
        ],
        env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
        network: Network::Egress,
        egress: EgressPolicy::parse(&[format!("127.0.0.1:{port}")]).unwrap(),
        ..Spec::default()
    };
    let output = sandbox
        .confine(&spec)
        .unwrap()
        .stdout(std::process::Stdio::piped())
        .output()
        .await
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "pong\n");
}

#[tokio::test]
async fn backends_without_a_way_to_the_proxy_refuse_egress() {
    let spec = Spec {
        program: "true".into(),
        network: Network::Egress,
        ..Spec::default()
    };
    let error = mcpguard_sandbox::refuse_egress("docker", &spec).unwrap_err();
    assert!(matches!(error, SandboxError::Unsupported { .. }));
    assert!(error.to_string().contains("only the native backend"));
}
