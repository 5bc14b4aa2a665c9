//! Running one program to its end: the gateway side of a native sandbox run. Feeds stdin,
//! keeps output up to the limit, kills the sandbox at the wall-clock or output limit,
//! and turns the helper's reports into an [`Outcome`].

use std::io::Read;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Stdio;
use std::time::{Duration, Instant};

use super::NAME;
use super::cgroup;
use super::wire::{HelperSpec, REPORT_FD, Report};
use crate::supervise::{DRAIN, supervise};
use crate::{Captured, Exit, Outcome, SandboxError, Spec, Stop, Usage};

fn io_error(what: &str, e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Io {
        backend: NAME,
        reason: format!("{what}: {e}"),
    }
}

pub(super) async fn run(
    mut command: tokio::process::Command,
    helper_spec: &HelperSpec,
    spec: &Spec,
    stdin: &[u8],
) -> Result<Outcome, SandboxError> {
    let (report_read, report_write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)
        .map_err(|e| io_error("creating the report pipe", e))?;
    let report_fd = report_write.as_raw_fd();
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    // SAFETY: the closure runs in the forked child before exec and only calls fcntl(2) and
    // dup2(2), which are async-signal-safe; it allocates nothing and touches no shared
    // state. It puts the report pipe at descriptor 3 without close-on-exec.
    unsafe {
        command.pre_exec(move || {
            let result = if report_fd == REPORT_FD {
                libc::fcntl(REPORT_FD, libc::F_SETFD, 0)
            } else {
                libc::dup2(report_fd, REPORT_FD)
            };
            if result < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let started = Instant::now();
    let child = command
        .spawn()
        .map_err(|e| io_error("starting the sandbox helper", e))?;
    drop(report_write);
    let reports = tokio::task::spawn_blocking(move || read_reports(report_read));
    let finished = supervise(
        child,
        stdin,
        spec.limits.wall_time,
        spec.limits.output_bytes,
        started,
    )
    .await
    .map_err(|e| io_error("waiting for the sandbox helper", e))?;
    // The helper removes its cgroups; after a kill they may hold dying processes for a
    // moment, and removal retries (sleeping), so it runs off the async workers.
    let cgroups = helper_spec.cgroups.clone();
    if !cgroups.is_empty() {
        let removed = tokio::task::spawn_blocking(move || cgroup::remove(&cgroups)).await;
        for failure in removed.unwrap_or_default() {
            tracing::warn!(%failure, "sandbox cleanup");
        }
    }
    let reports = match tokio::time::timeout(DRAIN, reports).await {
        Ok(Ok(reports)) => reports,
        _ => Vec::new(),
    };
    outcome(Parts {
        reports,
        killed: finished.killed,
        status: finished.status,
        stdout: finished.stdout,
        stderr: finished.stderr,
        wall: finished.wall,
        spec,
    })
}

fn read_reports(pipe: OwnedFd) -> Vec<Report> {
    let mut text = String::new();
    let _ = std::fs::File::from(pipe).read_to_string(&mut text);
    text.lines()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect()
}

struct Parts<'a> {
    reports: Vec<Report>,
    killed: Option<Stop>,
    status: std::process::ExitStatus,
    stdout: Captured,
    stderr: Captured,
    wall: Duration,
    spec: &'a Spec,
}

fn outcome(parts: Parts<'_>) -> Result<Outcome, SandboxError> {
    use std::os::unix::process::ExitStatusExt;
    let mut exit = None;
    let mut usage = Usage {
        wall: parts.wall,
        ..Usage::default()
    };
    let mut oom_killed = false;
    let mut backstop = false;
    for report in parts.reports {
        match report {
            Report::SetupError(reason) if parts.killed.is_none() => {
                return Err(SandboxError::Setup {
                    backend: NAME,
                    reason,
                });
            }
            Report::ExecError(reason) if parts.killed.is_none() => {
                return Err(SandboxError::Exec(reason));
            }
            Report::SetupError(_) | Report::ExecError(_) => {}
            Report::Exit { code, signal } => {
                exit = code.map(Exit::Code).or(signal.map(Exit::Signal));
            }
            Report::Backstop => backstop = true,
            Report::Usage {
                cpu_micros,
                memory_peak_bytes,
                oom_killed: oom,
                process_limit_hit,
            } => {
                usage.cpu = Some(Duration::from_micros(cpu_micros));
                usage.memory_peak_bytes = memory_peak_bytes;
                usage.process_limit_hit = process_limit_hit;
                oom_killed = oom;
            }
        }
    }
    let exit = match (exit, parts.killed) {
        (Some(exit), _) => exit,
        (None, Some(_)) => Exit::Signal(libc::SIGKILL),
        (None, None) if backstop => Exit::Signal(libc::SIGKILL),
        (None, None) => {
            let stderr = String::from_utf8_lossy(&parts.stderr.bytes);
            return Err(SandboxError::Io {
                backend: NAME,
                reason: format!(
                    "the sandbox ended without reporting how (helper {}, signal {:?}): {}",
                    parts
                        .status
                        .code()
                        .map_or("killed".to_string(), |c| format!("exit status {c}")),
                    parts.status.signal(),
                    stderr.trim()
                ),
            });
        }
    };
    let cpu_limit = parts.spec.limits.cpu_time;
    let stopped = if let Some(stop) = parts.killed {
        stop
    } else if backstop {
        Stop::WallTime
    } else if oom_killed && exit == Exit::Signal(libc::SIGKILL) {
        Stop::Memory
    } else if exit == Exit::Signal(libc::SIGXCPU)
        || (exit == Exit::Signal(libc::SIGKILL) && usage.cpu.is_some_and(|cpu| cpu >= cpu_limit))
    {
        Stop::CpuTime
    } else {
        Stop::Exited
    };
    Ok(Outcome {
        exit,
        stopped,
        stdout: parts.stdout,
        stderr: parts.stderr,
        usage,
    })
}
