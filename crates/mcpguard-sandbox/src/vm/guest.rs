//! The guest agent: the program inside a microVM that takes jobs from the gateway over
//! vsock, runs each as an unprivileged user with rlimits, and sends back how it ended.
//!
//! Built as the `mcpguard-vm-agent` binary and placed in the guest's root filesystem;
//! the kernel starts it as `init` (boot argument `init=/sbin/mcpguard-vm-agent`), so it
//! first mounts `/proc`, `/tmp` and `/work`. The VM is the sandbox boundary: the host
//! boots a fresh VM for each job and destroys it afterwards, so nothing a job leaves
//! behind reaches the next. The agent only keeps the job from the agent itself (another
//! user, no capabilities) and enforces the wall clock and output caps.
//!
//! `--listen unix:PATH` serves on a Unix socket instead of vsock, for tests on a host.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use nix::sys::resource::{Resource, UsageWho, getrusage, setrlimit};
use tokio::net::UnixStream;

use super::protocol::{
    AGENT_PORT, FailureKind, Job, Request, Response, WireOutcome, read_frame, write_frame,
};
use crate::supervise::supervise;
use crate::{Exit, Stop};

/// Where the agent listens.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listen {
    /// A vsock port (any CID): inside a microVM.
    Vsock(u32),
    /// A Unix socket: for tests on a host.
    Unix(PathBuf),
}

/// How the agent runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentOptions {
    /// Where it listens.
    pub listen: Listen,
    /// It is the guest's init: mount `/proc`, `/tmp` and `/work` first.
    pub init: bool,
    /// The user and group jobs run as (when the agent runs as root).
    pub run_as: (u32, u32),
}

const USAGE: &str =
    "usage: mcpguard-vm-agent [--listen vsock:PORT|unix:PATH] [--init] [--run-as UID:GID]
  The guest agent of MCPGuard's microVM sandboxes. Started as the guest's init it
  defaults to --listen vsock:5252 --init --run-as 65534:65534.";

impl AgentOptions {
    /// Parses the agent's arguments (without the program name).
    pub fn parse(args: &[String]) -> Result<AgentOptions, String> {
        // As PID 1 the kernel passes its own leftovers; defaults suit a guest.
        let mut options = AgentOptions {
            listen: Listen::Vsock(AGENT_PORT),
            init: std::process::id() == 1,
            run_as: (65534, 65534),
        };
        let mut args = args.iter();
        while let Some(arg) = args.next() {
            let mut value = || {
                args.next()
                    .cloned()
                    .ok_or_else(|| format!("{arg} needs a value\n{USAGE}"))
            };
            match arg.as_str() {
                "--listen" => {
                    let value = value()?;
                    options.listen = if let Some(port) = value.strip_prefix("vsock:") {
                        Listen::Vsock(
                            port.parse()
                                .map_err(|_| format!("bad vsock port {port:?}\n{USAGE}"))?,
                        )
                    } else if let Some(path) = value.strip_prefix("unix:") {
                        Listen::Unix(PathBuf::from(path))
                    } else {
                        return Err(format!("bad --listen {value:?}\n{USAGE}"));
                    };
                }
                "--init" => options.init = true,
                "--run-as" => {
                    let value = value()?;
                    let parsed = value
                        .split_once(':')
                        .and_then(|(u, g)| Some((u.parse().ok()?, g.parse().ok()?)));
                    options.run_as =
                        parsed.ok_or_else(|| format!("bad --run-as {value:?}\n{USAGE}"))?;
                }
                "-h" | "--help" => return Err(USAGE.to_string()),
                // Kernel command-line leftovers reach init as arguments: ignore them there.
                _ if std::process::id() == 1 => {}
                other => return Err(format!("unknown argument {other:?}\n{USAGE}")),
            }
        }
        Ok(options)
    }
}

/// The agent's `main`: returns the process exit status.
pub fn agent_main(args: &[String]) -> i32 {
    let options = match AgentOptions::parse(args) {
        Ok(options) => options,
        Err(message) => {
            eprintln!("{message}");
            return 2;
        }
    };
    if options.init
        && let Err(e) = prepare_guest()
    {
        eprintln!("mcpguard-vm-agent: preparing the guest: {e}");
        return 1;
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("mcpguard-vm-agent: {e}");
            return 1;
        }
    };
    match runtime.block_on(serve(options)) {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("mcpguard-vm-agent: {e}");
            1
        }
    }
}

/// Mounts what a job needs in a fresh guest.
fn prepare_guest() -> Result<(), String> {
    use nix::mount::{MsFlags, mount};
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
    for (source, target, fstype, data) in [
        ("proc", "/proc", "proc", None),
        ("tmpfs", "/tmp", "tmpfs", Some("mode=1777")),
        ("tmpfs", "/work", "tmpfs", Some("mode=1777")),
    ] {
        std::fs::create_dir_all(target).map_err(|e| format!("creating {target}: {e}"))?;
        mount(Some(source), target, Some(fstype), flags, data)
            .map_err(|e| format!("mounting {target}: {e}"))?;
    }
    Ok(())
}

/// Accepts connections and answers each (one at a time: a VM serves one job).
pub async fn serve(options: AgentOptions) -> std::io::Result<()> {
    match &options.listen {
        Listen::Unix(path) => {
            let _ = std::fs::remove_file(path);
            let listener = tokio::net::UnixListener::bind(path)?;
            loop {
                let (stream, _) = listener.accept().await?;
                answer(stream, &options).await;
            }
        }
        Listen::Vsock(port) => {
            let listener = vsock_listener(*port)?;
            loop {
                let fd = listener.as_raw_fd();
                let accepted = tokio::task::spawn_blocking(move || nix::sys::socket::accept(fd))
                    .await
                    .map_err(std::io::Error::other)?
                    .map_err(std::io::Error::from)?;
                // SAFETY: accept(2) just returned this descriptor; nothing else owns it.
                #[allow(unsafe_code, reason = "adopting a descriptor accept(2) returned")]
                let owned = unsafe { OwnedFd::from_raw_fd(accepted) };
                // A connected SOCK_STREAM socket: tokio's UnixStream only reads, writes
                // and shuts it down, which do not depend on the address family.
                let std_stream = std::os::unix::net::UnixStream::from(owned);
                std_stream.set_nonblocking(true)?;
                answer(UnixStream::from_std(std_stream)?, &options).await;
            }
        }
    }
}

fn vsock_listener(port: u32) -> std::io::Result<OwnedFd> {
    use nix::sys::socket::{
        AddressFamily, Backlog, SockFlag, SockType, VsockAddr, bind, listen, socket,
    };
    let socket = socket(
        AddressFamily::Vsock,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    bind(
        socket.as_raw_fd(),
        &VsockAddr::new(libc::VMADDR_CID_ANY, port),
    )?;
    listen(&socket, Backlog::new(16)?)?;
    Ok(socket)
}

async fn answer(mut stream: UnixStream, options: &AgentOptions) {
    let response = match read_frame::<Request>(&mut stream).await {
        Ok(Request::Ping) => Response::Pong {
            version: env!("CARGO_PKG_VERSION").to_string(),
        },
        Ok(Request::Run(job)) => run_job(job, options).await,
        Err(e) => Response::Failed {
            kind: FailureKind::Protocol,
            message: e.to_string(),
        },
    };
    let _ = write_frame(&mut stream, &response).await;
}

/// Runs one job to its end or its limits.
pub async fn run_job(job: Job, options: &AgentOptions) -> Response {
    if job.loopback
        && options.init
        && let Err(message) = crate::native::loopback_up()
    {
        return Response::Failed {
            kind: FailureKind::Setup,
            message,
        };
    }
    let is_root = nix::unistd::geteuid().is_root();
    let mut command = tokio::process::Command::new(&job.program);
    command
        .args(&job.args)
        .env_clear()
        .envs(job.env.iter().map(|(k, v)| (k, v)))
        .current_dir(Path::new(&job.workdir))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .kill_on_drop(true);
    if is_root {
        // std also clears the supplementary groups when root drops to another uid.
        command.uid(options.run_as.0).gid(options.run_as.1);
    }
    let limits = [
        (Resource::RLIMIT_CORE, 0, 0),
        (Resource::RLIMIT_NPROC, job.processes, job.processes),
        (
            Resource::RLIMIT_FSIZE,
            job.file_size_bytes,
            job.file_size_bytes,
        ),
        // SIGXCPU at the limit, SIGKILL a second later if it is ignored.
        (Resource::RLIMIT_CPU, job.cpu_seconds, job.cpu_seconds + 1),
    ];
    // SAFETY: the closure runs in the forked child before exec and only calls
    // setrlimit(2), which is async-signal-safe; it allocates nothing (the limits are
    // copied in) and touches no shared state.
    #[allow(unsafe_code, reason = "rlimits between fork and exec")]
    unsafe {
        command.pre_exec(move || {
            for (resource, soft, hard) in limits {
                setrlimit(resource, soft, hard).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
    let cpu_before = children_cpu();
    let started = Instant::now();
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            return Response::Failed {
                kind: FailureKind::Exec,
                message: format!("starting {:?}: {e}", job.program),
            };
        }
    };
    let group = child.id();
    let finished = supervise(
        child,
        &job.stdin,
        job.wall_time(),
        job.output_bytes,
        started,
    )
    .await;
    if let Some(group) = group.and_then(|pid| i32::try_from(pid).ok()) {
        // Whatever the job left running goes with it.
        let _ = nix::sys::signal::killpg(
            nix::unistd::Pid::from_raw(group),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    let finished = match finished {
        Ok(finished) => finished,
        Err(e) => {
            return Response::Failed {
                kind: FailureKind::Setup,
                message: format!("waiting for the job: {e}"),
            };
        }
    };
    let cpu = children_cpu().saturating_sub(cpu_before);
    let exit = Exit::from(finished.status);
    let cpu_limit = Duration::from_secs(job.cpu_seconds);
    let stopped = match finished.killed {
        Some(stop) => stop,
        None if exit == Exit::Signal(libc::SIGXCPU)
            || (exit == Exit::Signal(libc::SIGKILL) && cpu >= cpu_limit) =>
        {
            Stop::CpuTime
        }
        None => Stop::Exited,
    };
    Response::Finished(WireOutcome {
        exit,
        stopped,
        stdout: finished.stdout.into(),
        stderr: finished.stderr.into(),
        wall_micros: u64::try_from(finished.wall.as_micros()).unwrap_or(u64::MAX),
        cpu_micros: Some(u64::try_from(cpu.as_micros()).unwrap_or(u64::MAX)),
    })
}

/// CPU time (user + system) of the agent's reaped children so far.
fn children_cpu() -> Duration {
    getrusage(UsageWho::RUSAGE_CHILDREN).map_or(Duration::ZERO, |usage| {
        let to = |t: nix::sys::time::TimeVal| {
            Duration::from_secs(t.tv_sec().max(0) as u64)
                + Duration::from_micros(t.tv_usec().max(0) as u64)
        };
        to(usage.user_time()) + to(usage.system_time())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn arguments_are_parsed_and_mistakes_named() {
        let options =
            AgentOptions::parse(&args(&["--listen", "unix:/tmp/a.sock", "--run-as", "7:8"]))
                .unwrap();
        assert_eq!(options.listen, Listen::Unix("/tmp/a.sock".into()));
        assert_eq!(options.run_as, (7, 8));
        assert!(!options.init);
        let vsock = AgentOptions::parse(&args(&["--listen", "vsock:99", "--init"])).unwrap();
        assert_eq!(vsock.listen, Listen::Vsock(99));
        assert!(vsock.init);
        for bad in [
            &["--listen", "tcp:1"][..],
            &["--listen", "vsock:x"],
            &["--run-as", "7"],
            &["--listen"],
            &["--bogus"],
        ] {
            let error = AgentOptions::parse(&args(bad)).unwrap_err();
            assert!(error.contains("usage:"), "{bad:?}: {error}");
        }
    }
}
