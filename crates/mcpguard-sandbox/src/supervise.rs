//! Supervising one sandboxed process from the outside: feed its stdin, keep its output up
//! to the limit, and kill it at the wall-clock or output limit. Shared by the backends
//! that run a local process (native, microsandbox) and by the microVM guest agent.

use std::process::ExitStatus;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::process::Child;
use tokio::sync::Notify;

use crate::{Captured, Stop};

/// How long to wait for output after the process has gone (its descendants may hold the
/// pipes a little longer).
pub(crate) const DRAIN: Duration = Duration::from_secs(5);

/// How a supervised process ended, seen from outside.
pub(crate) struct Finished {
    /// Its exit status (after a kill: the kill's).
    pub status: ExitStatus,
    /// Set when the supervisor killed it, and why.
    pub killed: Option<Stop>,
    /// What it wrote to stdout, up to the limit.
    pub stdout: Captured,
    /// What it wrote to stderr, up to the limit.
    pub stderr: Captured,
    /// From `started` to its end.
    pub wall: Duration,
}

/// Runs `child` (spawned with piped stdin, stdout and stderr, `kill_on_drop`, and as the
/// leader of its own process group) to its end, killing its process group after
/// `wall_time` or once a stream passes `output_bytes`.
pub(crate) async fn supervise(
    mut child: Child,
    stdin: &[u8],
    wall_time: Duration,
    output_bytes: u64,
    started: Instant,
) -> std::io::Result<Finished> {
    let exceeded = Arc::new(Notify::new());
    let (Some(mut input), Some(stdout), Some(stderr)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        return Err(std::io::Error::other("the child's streams are not piped"));
    };
    let stdout = capture(stdout, output_bytes, exceeded.clone());
    let stderr = capture(stderr, output_bytes, exceeded.clone());
    let stdin = stdin.to_vec();
    tokio::spawn(async move {
        // A program that does not read its input is not an error.
        let _ = input.write_all(&stdin).await;
        let _ = input.shutdown().await;
    });
    let remaining = wall_time.saturating_sub(started.elapsed());
    let deadline = tokio::time::sleep(remaining.min(Duration::from_secs(86400 * 365)));
    let mut killed = None;
    let status = tokio::select! {
        status = child.wait() => status,
        () = deadline => {
            killed = Some(Stop::WallTime);
            kill_group(&mut child);
            child.wait().await
        }
        () = exceeded.notified() => {
            killed = Some(Stop::Output);
            kill_group(&mut child);
            child.wait().await
        }
    }?;
    let wall = started.elapsed();
    Ok(Finished {
        status,
        killed,
        stdout: join(stdout).await,
        stderr: join(stderr).await,
        wall,
    })
}

/// Kills the child's whole process group (it is not reaped yet, so the group id is still
/// its own), then the child itself in case it left the group.
fn kill_group(child: &mut Child) {
    if let Some(pid) = child.id().and_then(|pid| i32::try_from(pid).ok()) {
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let _ = child.start_kill();
}

/// What a stream's reader has kept so far.
type Shared = Arc<std::sync::Mutex<Captured>>;

/// Waits for a stream's reader; if something still holds the stream open after
/// [`DRAIN`], keeps what was read by then.
async fn join((task, captured): (tokio::task::JoinHandle<()>, Shared)) -> Captured {
    if tokio::time::timeout(DRAIN, task).await.is_err() {
        tracing::debug!("an output stream stayed open after the process ended");
    }
    captured.lock().map(|c| c.clone()).unwrap_or_default()
}

/// Starts reading one stream, keeping at most `limit` bytes; past it, notifies
/// `exceeded` once and keeps draining (so the writer never blocks) until the stream
/// ends.
fn capture(
    mut stream: impl AsyncRead + Unpin + Send + 'static,
    limit: u64,
    exceeded: Arc<Notify>,
) -> (tokio::task::JoinHandle<()>, Shared) {
    let shared: Shared = Arc::default();
    let captured = shared.clone();
    let task = tokio::spawn(async move {
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = match stream.read(&mut buffer).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let Ok(mut captured) = captured.lock() else {
                break;
            };
            let room = limit.saturating_sub(captured.bytes.len() as u64) as usize;
            captured.bytes.extend_from_slice(&buffer[..n.min(room)]);
            captured.total_bytes += n as u64;
            if n > room && !captured.truncated {
                captured.truncated = true;
                exceeded.notify_one();
            }
        }
    });
    (task, shared)
}
