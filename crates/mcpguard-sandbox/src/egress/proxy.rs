//! The gateway's egress proxy: an HTTP `CONNECT` proxy on a Unix socket that a sandbox
//! reaches from inside (the native backend forwards `127.0.0.1:3128` in the sandbox to
//! it). Each tunnel is checked against the sandbox's [`EgressPolicy`] and every attempt is
//! recorded (host, port, allowed or why not; never what was sent).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UnixListener, UnixStream};
use tokio::sync::Semaphore;

use super::policy::{EgressPolicy, Target};

/// The longest request head the proxy reads.
const MAX_HEAD: usize = 8 * 1024;
/// How long a client may take to send its request, and a name to resolve, and a
/// connection to open.
const STEP_TIMEOUT: Duration = Duration::from_secs(10);
/// Tunnels open at once per proxy.
const MAX_TUNNELS: usize = 64;
/// Attempts kept for the outcome (more are counted, not kept).
const MAX_RECORDED: usize = 256;

/// One connection the sandboxed program asked for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressAttempt {
    /// The host it named (a name or an address).
    pub host: String,
    /// The port.
    pub port: u16,
    /// Whether the tunnel was opened.
    pub allowed: bool,
    /// Why not, when it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

#[derive(Default)]
struct Log {
    attempts: Vec<EgressAttempt>,
    dropped: u64,
}

/// A running proxy; stopped (and its socket removed) when dropped.
pub struct EgressProxy {
    dir: PathBuf,
    socket: PathBuf,
    task: tokio::task::JoinHandle<()>,
    log: Arc<Mutex<Log>>,
}

impl std::fmt::Debug for EgressProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EgressProxy")
            .field("socket", &self.socket)
            .finish_non_exhaustive()
    }
}

impl EgressProxy {
    /// Starts a proxy for `policy` on a new socket (world-connectable, in a fresh
    /// directory under the temporary directory). Needs a tokio runtime.
    pub fn start(policy: EgressPolicy) -> std::io::Result<EgressProxy> {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("mcpguard-egress-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir(&dir)?;
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o711))?;
        let socket = dir.join("egress.sock");
        let listener = UnixListener::bind(&socket)?;
        // The sandbox's user is another host user: it must be able to connect.
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o666))?;
        let log = Arc::new(Mutex::new(Log::default()));
        let task = tokio::spawn(serve(listener, Arc::new(policy), log.clone()));
        Ok(EgressProxy {
            dir,
            socket,
            task,
            log,
        })
    }

    /// The socket to connect to.
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The attempts so far (at most 256 are kept; see [`Self::dropped`]).
    pub fn attempts(&self) -> Vec<EgressAttempt> {
        self.log
            .lock()
            .map(|log| log.attempts.clone())
            .unwrap_or_default()
    }

    /// Attempts made beyond those kept.
    pub fn dropped(&self) -> u64 {
        self.log.lock().map(|log| log.dropped).unwrap_or_default()
    }
}

impl Drop for EgressProxy {
    fn drop(&mut self) {
        self.task.abort();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn serve(listener: UnixListener, policy: Arc<EgressPolicy>, log: Arc<Mutex<Log>>) {
    let tunnels = Arc::new(Semaphore::new(MAX_TUNNELS));
    loop {
        let Ok((client, _)) = listener.accept().await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let Ok(permit) = tunnels.clone().acquire_owned().await else {
            return;
        };
        let policy = policy.clone();
        let log = log.clone();
        tokio::spawn(async move {
            tunnel(client, &policy, &log).await;
            drop(permit);
        });
    }
}

fn record(log: &Mutex<Log>, attempt: EgressAttempt) {
    if attempt.allowed {
        tracing::info!(host = %attempt.host, port = attempt.port, "sandbox egress allowed");
    } else {
        tracing::warn!(host = %attempt.host, port = attempt.port, reason = attempt.reason.as_deref().unwrap_or(""), "sandbox egress refused");
    }
    if let Ok(mut log) = log.lock() {
        if log.attempts.len() < MAX_RECORDED {
            log.attempts.push(attempt);
        } else {
            log.dropped += 1;
        }
    }
}

/// The request a client sent: `CONNECT host:port`, or why it cannot be served.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Request {
    /// A tunnel to `host:port`; `rest` is what the client sent after the head.
    Connect {
        host: String,
        port: u16,
        rest: Vec<u8>,
    },
    /// Anything else: the status line and text to answer with.
    Refuse(&'static str, String),
}

/// Parses a request head (pure).
pub(crate) fn parse_request(head: &[u8]) -> Request {
    let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Request::Refuse(
            "400 Bad Request",
            "the request head is incomplete or too long".into(),
        );
    };
    let text = String::from_utf8_lossy(&head[..end]);
    let line = text.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next())
    else {
        return Request::Refuse("400 Bad Request", "not an HTTP request".into());
    };
    if !version.starts_with("HTTP/1.") {
        return Request::Refuse("400 Bad Request", "not an HTTP/1 request".into());
    }
    if method != "CONNECT" {
        return Request::Refuse(
            "405 Method Not Allowed",
            "this proxy opens tunnels only (CONNECT, as clients do for https://); plain http:// through it is not supported".into(),
        );
    }
    let parsed = if let Some(rest) = target.strip_prefix('[') {
        rest.split_once("]:")
            .map(|(host, port)| (host.to_string(), port))
    } else {
        target
            .rsplit_once(':')
            .map(|(host, port)| (host.to_string(), port))
    };
    match parsed.and_then(|(host, port)| Some((host, port.parse::<u16>().ok()?))) {
        Some((host, port)) if port > 0 => Request::Connect {
            host,
            port,
            rest: head[end + 4..].to_vec(),
        },
        _ => Request::Refuse("400 Bad Request", format!("`{target}` is not host:port")),
    }
}

async fn read_head(client: &mut UnixStream) -> Vec<u8> {
    let mut head = Vec::with_capacity(512);
    let mut buffer = [0u8; 1024];
    let read = async {
        while head.len() < MAX_HEAD && !head.windows(4).any(|w| w == b"\r\n\r\n") {
            match client.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => head.extend_from_slice(&buffer[..n]),
            }
        }
    };
    let _ = tokio::time::timeout(STEP_TIMEOUT, read).await;
    head
}

async fn refuse(client: &mut UnixStream, status: &str, message: &str) {
    let body = format!("mcpguard egress proxy: {message}\n");
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = client.write_all(response.as_bytes()).await;
    let _ = client.shutdown().await;
}

async fn tunnel(mut client: UnixStream, policy: &EgressPolicy, log: &Mutex<Log>) {
    let head = read_head(&mut client).await;
    let (host, port, rest) = match parse_request(&head) {
        Request::Connect { host, port, rest } => (host, port, rest),
        Request::Refuse(status, message) => {
            refuse(&mut client, status, &message).await;
            return;
        }
    };
    let mut attempt = EgressAttempt {
        host: host.clone(),
        port,
        allowed: false,
        reason: None,
    };
    let upstream = match open(policy, &host, port).await {
        Ok(upstream) => upstream,
        Err(reason) => {
            refuse(
                &mut client,
                "403 Forbidden",
                &format!("{host}:{port} refused: {reason}"),
            )
            .await;
            attempt.reason = Some(reason);
            record(log, attempt);
            return;
        }
    };
    attempt.allowed = true;
    record(log, attempt);
    let mut upstream = upstream;
    if client
        .write_all(b"HTTP/1.1 200 Connection Established\r\n\r\n")
        .await
        .is_err()
    {
        return;
    }
    if !rest.is_empty() && upstream.write_all(&rest).await.is_err() {
        return;
    }
    let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
}

/// Checks `host:port` against the policy, resolves it, and connects.
async fn open(policy: &EgressPolicy, host: &str, port: u16) -> Result<TcpStream, String> {
    let target = Target::parse(host).ok_or_else(|| "not a host name or address".to_string())?;
    policy.rule_for(&target, port)?;
    let addresses: Vec<SocketAddr> = match &target {
        // Named in a rule: reachable whatever kind of address it is.
        Target::Ip(ip) => vec![SocketAddr::new(*ip, port)],
        Target::Name(name) => {
            let resolved =
                tokio::time::timeout(STEP_TIMEOUT, tokio::net::lookup_host((name.as_str(), port)))
                    .await
                    .map_err(|_| "resolving the name timed out".to_string())?
                    .map_err(|e| format!("resolving the name failed: {e}"))?
                    .collect::<Vec<_>>();
            let ips: Vec<IpAddr> = resolved.iter().map(SocketAddr::ip).collect();
            EgressPolicy::check_resolved(&ips)?;
            resolved
        }
    };
    let mut last = String::from("no address");
    for address in addresses {
        match tokio::time::timeout(STEP_TIMEOUT, TcpStream::connect(address)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = format!("connecting to {address}: {e}"),
            Err(_) => last = format!("connecting to {address} timed out"),
        }
    }
    Err(last)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_parsed_or_refused_with_a_reason() {
        assert_eq!(
            parse_request(b"CONNECT api.github.com:443 HTTP/1.1\r\nHost: x\r\n\r\nHELLO"),
            Request::Connect {
                host: "api.github.com".into(),
                port: 443,
                rest: b"HELLO".to_vec()
            }
        );
        assert_eq!(
            parse_request(b"CONNECT [2001:db8::1]:22 HTTP/1.0\r\n\r\n"),
            Request::Connect {
                host: "2001:db8::1".into(),
                port: 22,
                rest: Vec::new()
            }
        );
        for (head, status) in [
            (
                &b"GET http://example.com/ HTTP/1.1\r\n\r\n"[..],
                "405 Method Not Allowed",
            ),
            (b"CONNECT example.com HTTP/1.1\r\n\r\n", "400 Bad Request"),
            (b"CONNECT example.com:0 HTTP/1.1\r\n\r\n", "400 Bad Request"),
            (b"CONNECT example.com:443 SPDY/3\r\n\r\n", "400 Bad Request"),
            (b"CONNECT example.com:443 HTTP/1.1\r\n", "400 Bad Request"),
        ] {
            assert!(
                matches!(parse_request(head), Request::Refuse(s, _) if s == status),
                "{}",
                String::from_utf8_lossy(head)
            );
        }
    }
}
