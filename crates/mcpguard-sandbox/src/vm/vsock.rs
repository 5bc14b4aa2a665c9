//! The host's end of a hybrid vsock (Firecracker's design): the VMM exposes the guest's
//! vsock ports on one Unix socket. The host connects, writes `CONNECT <port>\n`, and the
//! VMM answers `OK <host port>\n` once a guest program listens on that port; until then
//! it closes the connection, so the host retries until the guest has booted.

use std::path::Path;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::protocol::{FrameError, Request, Response, read_frame, write_frame};

/// Why the guest could not be reached.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The guest did not accept a connection before the deadline.
    #[error(
        "the guest agent did not answer on vsock port {port} within {waited:?} (last error: {last})"
    )]
    Timeout {
        /// The port.
        port: u32,
        /// How long we tried.
        waited: Duration,
        /// The last failure seen.
        last: String,
    },
}

/// How often to retry while the guest boots.
const RETRY: Duration = Duration::from_millis(20);

/// Connects to guest port `port` through the VMM's socket `uds`, retrying until
/// `deadline`.
pub async fn connect(uds: &Path, port: u32, deadline: Instant) -> Result<UnixStream, ConnectError> {
    let started = Instant::now();
    loop {
        let last = match try_connect(uds, port).await {
            Ok(stream) => return Ok(stream),
            Err(e) => e,
        };
        if Instant::now() + RETRY > deadline {
            return Err(ConnectError::Timeout {
                port,
                waited: started.elapsed(),
                last,
            });
        }
        tokio::time::sleep(RETRY).await;
    }
}

async fn try_connect(uds: &Path, port: u32) -> Result<UnixStream, String> {
    let mut stream = UnixStream::connect(uds)
        .await
        .map_err(|e| format!("connecting to {}: {e}", uds.display()))?;
    stream
        .write_all(format!("CONNECT {port}\n").as_bytes())
        .await
        .map_err(|e| format!("writing CONNECT: {e}"))?;
    // The answer is one short line; read it byte by byte so nothing after it is consumed.
    let mut line = Vec::with_capacity(32);
    loop {
        let mut byte = [0u8; 1];
        match stream.read(&mut byte).await {
            Ok(0) => return Err("the VMM closed the connection (no listener yet)".into()),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() < 64 => line.push(byte[0]),
            Ok(_) => return Err("the VMM's answer is not a line".into()),
            Err(e) => return Err(format!("reading the VMM's answer: {e}")),
        }
    }
    let line = String::from_utf8_lossy(&line);
    let ok = line
        .strip_prefix("OK ")
        .is_some_and(|port| port.trim().parse::<u32>().is_ok());
    if ok {
        Ok(stream)
    } else {
        Err(format!("the VMM answered {line:?}, not OK <port>"))
    }
}

/// Sends `request` and reads the one response, within `timeout`.
pub async fn call(
    stream: &mut UnixStream,
    request: &Request,
    timeout: Duration,
) -> Result<Response, CallError> {
    write_frame(stream, request).await?;
    match tokio::time::timeout(timeout, read_frame(stream)).await {
        Ok(response) => Ok(response?),
        Err(_) => Err(CallError::Timeout(timeout)),
    }
}

/// Why a call to the agent failed.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The frame could not be sent or read.
    #[error(transparent)]
    Frame(#[from] FrameError),
    /// No answer in time.
    #[error("no answer from the guest agent within {0:?}")]
    Timeout(Duration),
}
