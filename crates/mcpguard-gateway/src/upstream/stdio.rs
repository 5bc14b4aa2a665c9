//! Stdio upstreams: a child process speaking newline-delimited JSON-RPC.
//!
//! One process per upstream, shared by every agent session: the supervisor spawns it, sets
//! up the link (`server/discover` or `initialize`), restarts it with exponential backoff
//! when it dies (failing the calls it was serving with a clear error), captures its stderr
//! into the log, and on shutdown closes its stdin, then signals its process group.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bytes::Bytes;
use mcpguard_protocol::framing::{LineDecoder, encode_line};
use mcpguard_protocol::{Kind, Message, mcp};
use parking_lot::Mutex;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::{Child, Command};
use tokio::sync::{mpsc, watch};
use tokio_util::sync::CancellationToken;

use super::pending::{PendingTable, with_notification_token, with_progress_token};
use super::setup::{self, Exchange};
use super::{Connection, Relay, ServerInfo};
use crate::config::UpstreamConfig;
use crate::error::CallError;

/// Environment variables a child inherits from the gateway (besides its configured `env`).
pub const INHERITED_ENV: &[&str] = &["PATH", "HOME", "LANG", "LC_ALL", "TERM", "TMPDIR", "USER"];

const STDERR_LINE_LIMIT: usize = 4096;
const MAX_BACKOFF: Duration = Duration::from_secs(30);
const STABLE_AFTER: Duration = Duration::from_secs(30);
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);
const STOP_WAIT: Duration = Duration::from_secs(2);

/// The state of a stdio upstream, for `/readyz` and for errors.
#[derive(Debug, Clone)]
pub enum LinkStatus {
    /// Starting for the first time.
    Starting,
    /// Running and set up.
    Ready(ServerInfo),
    /// Down; the supervisor will try again.
    Restarting {
        /// Why it went down.
        reason: String,
        /// Restart attempts so far.
        attempt: u32,
    },
    /// Stopped for good (shutdown).
    Stopped,
}

/// A supervised stdio upstream.
pub struct StdioUpstream {
    name: Arc<str>,
    config: UpstreamConfig,
    max_message: usize,
    unsolicited: Arc<dyn Relay>,
    current: watch::Sender<Option<Arc<Process>>>,
    status: Mutex<LinkStatus>,
    shutdown: CancellationToken,
    stopped: CancellationToken,
    /// Where the server runs confined, when `sandbox` is set.
    sandboxes: Option<Arc<crate::sandboxing::SandboxHub>>,
    /// How many times the server was started again after it died.
    restarts: std::sync::atomic::AtomicU64,
}

/// One running child.
pub struct Process {
    name: Arc<str>,
    pid: u32,
    stdin: mpsc::Sender<Bytes>,
    pending: PendingTable,
    info: Mutex<Option<ServerInfo>>,
    garbage_lines: AtomicU64,
    unsolicited: Arc<dyn Relay>,
}

impl StdioUpstream {
    /// Starts supervising the upstream `name`. Messages the server sends outside any call
    /// go to `unsolicited`.
    pub fn start(
        name: &str,
        config: UpstreamConfig,
        max_message: usize,
        unsolicited: Arc<dyn Relay>,
        shutdown: CancellationToken,
        sandboxes: Option<Arc<crate::sandboxing::SandboxHub>>,
    ) -> Arc<StdioUpstream> {
        let (current, _) = watch::channel(None);
        let upstream = Arc::new(StdioUpstream {
            name: name.into(),
            config,
            max_message,
            unsolicited,
            current,
            status: Mutex::new(LinkStatus::Starting),
            shutdown,
            stopped: CancellationToken::new(),
            sandboxes,
            restarts: std::sync::atomic::AtomicU64::new(0),
        });
        tokio::spawn(upstream.clone().supervise());
        upstream
    }

    /// The current state.
    pub fn status(&self) -> LinkStatus {
        self.status.lock().clone()
    }

    /// Waits up to `wait` for a set-up child; returns whether there is one.
    pub async fn wait_ready(&self, wait: Duration) -> bool {
        self.ready_process(wait).await.is_ok()
    }

    /// How many times the server was started again after it died.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Resolves once the child has been stopped after shutdown.
    pub async fn stopped(&self) {
        self.stopped.cancelled().await;
    }

    async fn supervise(self: Arc<Self>) {
        let mut attempt: u32 = 0;
        loop {
            if self.shutdown.is_cancelled() {
                break;
            }
            let started = Instant::now();
            let reason = match self.spawn() {
                Ok((process, child, exited)) => self.run(process, child, exited).await,
                Err(reason) => reason,
            };
            if self.shutdown.is_cancelled() {
                break;
            }
            if started.elapsed() >= STABLE_AFTER {
                attempt = 0;
            }
            attempt += 1;
            self.restarts
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let delay = backoff(attempt);
            tracing::warn!(
                upstream = %self.name,
                attempt,
                retry_in_ms = delay.as_millis() as u64,
                "stdio upstream is down: {reason}"
            );
            *self.status.lock() = LinkStatus::Restarting { reason, attempt };
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.shutdown.cancelled() => break,
            }
        }
        *self.status.lock() = LinkStatus::Stopped;
        self.stopped.cancel();
    }

    /// Runs one child until it exits or the gateway shuts down; returns why it ended.
    async fn run(
        &self,
        process: Arc<Process>,
        mut child: Child,
        exited: CancellationToken,
    ) -> String {
        let setup = tokio::select! {
            result = tokio::time::timeout(SETUP_TIMEOUT, setup::establish(&*process, &self.config.protocol)) => {
                result.unwrap_or_else(|_| Err(format!("no answer to the setup request within {}s", SETUP_TIMEOUT.as_secs())))
            }
            _ = exited.cancelled() => Err("the process closed its stdout during setup".into()),
            _ = self.shutdown.cancelled() => Err("shutting down".into()),
        };
        let reason = match setup {
            Ok(info) => {
                tracing::info!(
                    upstream = %self.name,
                    pid = process.pid,
                    protocol = %info.protocol_version,
                    "stdio upstream ready"
                );
                *process.info.lock() = Some(info.clone());
                *self.status.lock() = LinkStatus::Ready(info);
                self.current.send_replace(Some(process.clone()));
                tokio::select! {
                    status = child.wait() => match status {
                        Ok(status) => format!("the process exited ({status})"),
                        Err(e) => format!("waiting for the process failed: {e}"),
                    },
                    _ = exited.cancelled() => {
                        // Stdout closed: give the process a moment to exit on its own.
                        match tokio::time::timeout(STOP_WAIT, child.wait()).await {
                            Ok(Ok(status)) => format!("the process exited ({status})"),
                            _ => "the process closed its stdout".to_string(),
                        }
                    }
                    _ = self.shutdown.cancelled() => "shutting down".to_string(),
                }
            }
            Err(reason) => format!("setup failed: {reason}"),
        };
        self.current.send_replace(None);
        let error = if self.shutdown.is_cancelled() {
            CallError::ShuttingDown
        } else {
            CallError::Unavailable {
                upstream: self.name.to_string(),
                reason: format!("{reason} while the call was in flight"),
            }
        };
        process.pending.fail_all(&error);
        stop_child(&process, &mut child).await;
        reason
    }

    fn spawn(&self) -> Result<(Arc<Process>, Child, CancellationToken), String> {
        let program = self.config.command.clone().unwrap_or_default();
        let mut command = match self.confined_command()? {
            Some(command) => command,
            None => {
                let mut command = Command::new(&program);
                command
                    .args(&self.config.args)
                    .env_clear()
                    .envs(inherited_env())
                    .envs(&self.config.env);
                if let Some(cwd) = &self.config.cwd {
                    command.current_dir(cwd);
                }
                command
            }
        };
        command
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .process_group(0);
        let mut child = command.spawn().map_err(|e| {
            format!(
                "could not start `{program}`: {e} (check `upstreams.{}.command` and PATH)",
                self.name
            )
        })?;
        let pid = child.id().unwrap_or_default();
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("the child's standard streams are not available".into());
        };
        let (tx, rx) = mpsc::channel::<Bytes>(256);
        let process = Arc::new(Process {
            name: self.name.clone(),
            pid,
            stdin: tx,
            pending: PendingTable::new(),
            info: Mutex::new(None),
            garbage_lines: AtomicU64::new(0),
            unsolicited: self.unsolicited.clone(),
        });
        let exited = CancellationToken::new();
        tokio::spawn(write_stdin(self.name.clone(), stdin, rx));
        tokio::spawn(read_stdout(
            process.clone(),
            stdout,
            self.max_message,
            exited.clone(),
        ));
        tokio::spawn(read_stderr(self.name.clone(), stderr));
        tracing::debug!(upstream = %self.name, pid, "spawned stdio upstream");
        Ok((process, child, exited))
    }

    /// The command that starts the server inside its sandbox, when it has one.
    fn confined_command(&self) -> Result<Option<Command>, String> {
        let Some(hub) = &self.sandboxes else {
            return Ok(None);
        };
        let mut env = inherited_env();
        env.extend(self.config.env.clone());
        let Some((sandbox, spec)) = hub
            .confinement(&self.config, env)
            .map_err(|e| format!("cannot confine `{}`: {e}", self.name))?
        else {
            return Ok(None);
        };
        let command = sandbox
            .confine(&spec)
            .map_err(|e| format!("cannot confine `{}`: {e}", self.name))?;
        tracing::debug!(upstream = %self.name, backend = sandbox.name(), "starting confined");
        Ok(Some(command))
    }

    /// Waits until a set-up process is available, at most `wait`.
    async fn ready_process(&self, wait: Duration) -> Result<Arc<Process>, CallError> {
        let mut rx = self.current.subscribe();
        let ready = tokio::time::timeout(wait, async {
            loop {
                if let Some(process) = rx.borrow_and_update().clone() {
                    return Some(process);
                }
                if rx.changed().await.is_err() {
                    return None;
                }
            }
        })
        .await;
        match ready {
            Ok(Some(process)) => Ok(process),
            _ if self.shutdown.is_cancelled() => Err(CallError::ShuttingDown),
            _ => Err(CallError::Unavailable {
                upstream: self.name.to_string(),
                reason: match self.status() {
                    LinkStatus::Restarting { reason, attempt } => {
                        format!("{reason}; restart attempt {attempt} is pending")
                    }
                    LinkStatus::Starting => "it is still starting".into(),
                    LinkStatus::Stopped => "it has been stopped".into(),
                    LinkStatus::Ready(_) => "it is restarting".into(),
                },
            }),
        }
    }
}

#[async_trait]
impl Connection for StdioUpstream {
    async fn call(
        &self,
        request: Message,
        relay: Arc<dyn Relay>,
        options: &super::CallOptions,
    ) -> Result<Message, CallError> {
        let timeout = options.timeout;
        let deadline = Instant::now() + timeout;
        let process = self
            .ready_process(timeout.min(Duration::from_secs(10)))
            .await?;
        let remaining = deadline.saturating_duration_since(Instant::now());
        match process.exchange(request, relay, remaining).await {
            Err(CallError::Timeout {
                upstream,
                seconds: _,
                detail,
            }) => Err(CallError::Timeout {
                upstream,
                seconds: timeout.as_secs_f64(),
                detail,
            }),
            other => other,
        }
    }

    async fn notify(&self, notification: Message) -> Result<(), CallError> {
        let process = self.ready_process(Duration::from_secs(5)).await?;
        process.send(notification.bytes()).await
    }

    fn info(&self) -> Option<ServerInfo> {
        match self.status() {
            LinkStatus::Ready(info) => Some(info),
            _ => None,
        }
    }
}

impl Process {
    async fn send(&self, bytes: &[u8]) -> Result<(), CallError> {
        self.stdin
            .send(encode_line(bytes))
            .await
            .map_err(|_| CallError::Unavailable {
                upstream: self.name.to_string(),
                reason: "its stdin is closed".into(),
            })
    }

    fn garbage_detail(&self) -> String {
        match self.garbage_lines.load(Ordering::Relaxed) {
            0 => String::new(),
            n => format!("; it also wrote {n} line(s) to stdout that are not json-rpc"),
        }
    }

    /// Handles one message from the child. Notifications are relayed before the next
    /// message is read, so a call's progress always reaches the agent before its answer.
    async fn dispatch(&self, message: Message) {
        match message.kind() {
            Kind::Response | Kind::Error => {
                if !self.pending.complete(message) {
                    tracing::debug!(upstream = %self.name, "dropped a reply no call waits for");
                }
            }
            Kind::Request => self.server_request(message),
            Kind::Notification => self.server_notification(message).await,
        }
    }

    fn server_request(&self, message: Message) {
        if message.method() == Some(mcp::method::PING) {
            let reply = Message::response(message.id().unwrap_or("null"), "{}");
            let _ = self.stdin.try_send(encode_line(reply.bytes()));
            return;
        }
        let relay = match (self.pending.sole_relay(), self.pending.is_empty()) {
            (Some(relay), _) => relay,
            // Outside any call: the gateway decides (it refuses unless one agent owns it).
            (None, true) => self.unsolicited.clone(),
            (None, false) => {
                let method = message.method().unwrap_or_default().to_string();
                tracing::warn!(
                    upstream = %self.name,
                    method = %method,
                    "refused a server request: several agents have calls in flight on this shared upstream"
                );
                let error = mcpguard_protocol::RpcError::new(
                    mcpguard_protocol::codes::METHOD_NOT_FOUND,
                    format!(
                        "`{method}` cannot be relayed: several agents share this server through the gateway and it cannot tell which one asks"
                    ),
                );
                let reply = Message::error_response(message.id(), &error);
                let _ = self.stdin.try_send(encode_line(reply.bytes()));
                return;
            }
        };
        let stdin = self.stdin.clone();
        tokio::spawn(async move {
            let reply = relay.request(message).await;
            let _ = stdin.send(encode_line(reply.bytes())).await;
        });
    }

    async fn server_notification(&self, message: Message) {
        let method = message.method().unwrap_or_default();
        let (relay, message) = if method == mcp::method::PROGRESS {
            let token = message
                .params()
                .and_then(|p| mcpguard_protocol::json::member(p, "progressToken"));
            match token.and_then(|t| self.pending.progress_target(t)) {
                Some((relay, original)) => {
                    let restored = with_notification_token(&message, &original);
                    (relay, restored)
                }
                None => return,
            }
        } else if let Some(relay) = super::remap::quoted_request_id(&message)
            .and_then(|id| id.parse::<u64>().ok())
            .and_then(|id| self.pending.relay_of(id))
        {
            // A frame of a call still running (a `subscriptions/listen` stream).
            (relay, message)
        } else if method.ends_with("/list_changed") || method == mcp::method::RESOURCES_UPDATED {
            (self.unsolicited.clone(), message)
        } else {
            match (self.pending.sole_relay(), self.pending.is_empty()) {
                (Some(relay), _) => (relay, message),
                (None, true) => (self.unsolicited.clone(), message),
                // A log line of one of several calls: whose, nobody can say. Dropped rather
                // than shown to the wrong agent.
                (None, false) => {
                    tracing::debug!(upstream = %self.name, method, "dropped an unattributable notification");
                    return;
                }
            }
        };
        relay.notify(message).await;
    }
}

#[async_trait]
impl Exchange for Process {
    async fn exchange(
        &self,
        request: Message,
        relay: Arc<dyn Relay>,
        timeout: Duration,
    ) -> Result<Message, CallError> {
        let deadline = super::deadline::Deadline::new(timeout);
        let relay = deadline.pausing(relay);
        let progress = mcp::progress_token(request.params());
        let registration = self
            .pending
            .register(request.id().unwrap_or("null"), relay, progress);
        let mut outgoing = request.with_id(&registration.link_id.to_string());
        if let Some(token) = &registration.progress_token {
            outgoing = with_progress_token(&outgoing, token);
        }
        let mut guard = CancelOnDrop {
            process: self,
            link_id: registration.link_id,
            reason: "the agent cancelled the call",
            armed: true,
        };
        // Writing counts against the deadline too: a child that stops reading its stdin
        // must not hold the call forever.
        let work = async {
            self.send(outgoing.bytes()).await?;
            registration
                .reply
                .await
                .map_err(|_| CallError::Unavailable {
                    upstream: self.name.to_string(),
                    reason: "the link closed during the call".into(),
                })?
        };
        tokio::select! {
            result = work => {
                guard.armed = false;
                result
            }
            () = deadline.expired() => {
                guard.reason = "timed out at the gateway";
                Err(CallError::Timeout {
                    upstream: self.name.to_string(),
                    seconds: timeout.as_secs_f64(),
                    detail: self.garbage_detail(),
                })
            }
        }
    }

    async fn notify_link(&self, notification: Message) -> Result<(), CallError> {
        self.send(notification.bytes()).await
    }
}

/// Tells the upstream to stop working on a call nobody waits for any more.
struct CancelOnDrop<'a> {
    process: &'a Process,
    link_id: u64,
    reason: &'static str,
    armed: bool,
}

impl Drop for CancelOnDrop<'_> {
    fn drop(&mut self) {
        if self.armed && self.process.pending.remove(self.link_id) {
            let note = super::cancelled(&self.link_id.to_string(), self.reason);
            let _ = self.process.stdin.try_send(encode_line(note.bytes()));
        }
    }
}

async fn write_stdin(
    name: Arc<str>,
    mut stdin: tokio::process::ChildStdin,
    mut rx: mpsc::Receiver<Bytes>,
) {
    while let Some(line) = rx.recv().await {
        if let Err(e) = stdin.write_all(&line).await {
            tracing::debug!(upstream = %name, "writing to the upstream's stdin failed: {e}");
            break;
        }
        if rx.is_empty() {
            let _ = stdin.flush().await;
        }
    }
    // Dropping stdin closes it: the polite way to ask a stdio server to exit.
}

async fn read_stdout(
    process: Arc<Process>,
    mut stdout: tokio::process::ChildStdout,
    max_message: usize,
    exited: CancellationToken,
) {
    let mut decoder = LineDecoder::new(max_message);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match stdout.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for line in decoder.push(&buf[..n]) {
            match line
                .map_err(|e| e.to_string())
                .and_then(|line| Message::parse(line).map_err(|e| e.to_string()))
            {
                Ok(message) => process.dispatch(message).await,
                Err(reason) => {
                    process.garbage_lines.fetch_add(1, Ordering::Relaxed);
                    // The line itself may hold anything, secrets included: never log it.
                    tracing::warn!(
                        upstream = %process.name,
                        "ignored a line on stdout that is not a json-rpc message: {reason}"
                    );
                }
            }
        }
    }
    exited.cancel();
}

async fn read_stderr(name: Arc<str>, mut stderr: tokio::process::ChildStderr) {
    let mut decoder = LineDecoder::new(STDERR_LINE_LIMIT);
    let mut buf = vec![0u8; 8192];
    loop {
        let n = match stderr.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        for line in decoder.push(&buf[..n]) {
            match line {
                Ok(line) => {
                    tracing::info!(target: "mcpguard::upstream::stderr", upstream = %name, "{}", String::from_utf8_lossy(&line))
                }
                Err(_) => {
                    tracing::info!(target: "mcpguard::upstream::stderr", upstream = %name, "(a stderr line over {STDERR_LINE_LIMIT} bytes was dropped)")
                }
            }
        }
    }
}

async fn stop_child(process: &Process, child: &mut Child) {
    // Closing stdin is the request to exit; the writer task closes it when every sender is
    // gone, but in-flight relays may still hold one, so signal after a grace period.
    if let Ok(Ok(_)) = tokio::time::timeout(STOP_WAIT, child.wait()).await {
        return;
    }
    signal_group(process.pid, nix::sys::signal::Signal::SIGTERM);
    if let Ok(Ok(_)) = tokio::time::timeout(STOP_WAIT, child.wait()).await {
        return;
    }
    signal_group(process.pid, nix::sys::signal::Signal::SIGKILL);
    let _ = child.kill().await;
}

fn signal_group(pid: u32, signal: nix::sys::signal::Signal) {
    if let Ok(pid) = i32::try_from(pid)
        && pid > 0
    {
        let _ = nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pid), signal);
    }
}

fn inherited_env() -> BTreeMap<String, String> {
    INHERITED_ENV
        .iter()
        .filter_map(|key| std::env::var(key).ok().map(|v| (key.to_string(), v)))
        .collect()
}

fn backoff(attempt: u32) -> Duration {
    let millis = 250u64.saturating_mul(1u64 << attempt.saturating_sub(1).min(16));
    Duration::from_millis(millis).min(MAX_BACKOFF)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        assert_eq!(backoff(1), Duration::from_millis(250));
        assert_eq!(backoff(2), Duration::from_millis(500));
        assert_eq!(backoff(5), Duration::from_secs(4));
        assert_eq!(backoff(30), MAX_BACKOFF);
    }
}
