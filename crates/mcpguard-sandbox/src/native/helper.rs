//! The helper process: started by the gateway with a [`HelperSpec`], it creates the
//! sandbox's cgroups, clones the sandbox's init into fresh namespaces, maps its user, waits
//! for it and reports how it ended and what it used.
//!
//! Process tree: gateway → helper (host namespaces, joins the cgroups) → init (PID 1 of
//! new user, mount, PID, network, IPC, UTS and cgroup namespaces; builds the root) →
//! program. When the init ends, the kernel kills everything left in its PID namespace, so
//! nothing outlives the run; when the helper dies, the init dies with it (parent-death
//! signal).

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicI32, Ordering};

use nix::sched::CloneFlags;
use nix::sys::resource::{UsageWho, getrusage};
use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::Pid;

use super::cgroup;
use super::init;
use super::seccomp;
use super::wire::{HelperSpec, REPORT_FD, Report, SPEC_ENV};

/// Exit status of the helper when the sandbox could not be set up.
pub const SETUP_FAILED: i32 = 125;

/// Where reports go: file descriptor 3 when the gateway asked for reports.
pub(crate) struct Reporter {
    file: Option<File>,
}

impl Reporter {
    /// Writes one report line (one `write`, so lines from several processes never mix).
    /// Without a report pipe (a confined server), failures go to stderr, which the
    /// gateway logs.
    pub(crate) fn send(&self, report: &Report) {
        match self.file.as_ref() {
            Some(mut file) => {
                if let Ok(mut line) = serde_json::to_vec(report) {
                    line.push(b'\n');
                    let _ = file.write_all(&line);
                }
            }
            None => {
                if let Report::SetupError(reason) | Report::ExecError(reason) = report {
                    eprintln!("mcpguard sandbox: {reason}");
                }
            }
        }
    }
}

/// The helper's entry point: never returns. The `mcpguard` binary calls it when started
/// with [`super::HELPER_ARG`] as its first argument, before anything else (in particular
/// before any thread starts: the helper clones itself, which is only sound in a
/// single-threaded process).
pub fn helper_main() -> ! {
    let spec = std::env::var(SPEC_ENV)
        .map_err(|_| format!("{SPEC_ENV} is not set: this command is started by the gateway"))
        .and_then(|text| {
            serde_json::from_str::<HelperSpec>(&text).map_err(|e| format!("{SPEC_ENV}: {e}"))
        });
    let spec = match spec {
        Ok(spec) => spec,
        Err(reason) => {
            eprintln!("mcpguard sandbox helper: {reason}");
            std::process::exit(SETUP_FAILED);
        }
    };
    let reporter = Reporter {
        file: spec.report.then(report_file).flatten(),
    };
    let code = match run(&spec, &reporter) {
        Ok(code) => code,
        Err(reason) => {
            reporter.send(&Report::SetupError(reason.clone()));
            eprintln!("mcpguard sandbox: {reason}");
            SETUP_FAILED
        }
    };
    std::process::exit(code)
}

fn report_file() -> Option<File> {
    // Only take file descriptor 3 when it is open: the gateway put the report pipe there.
    nix::fcntl::fcntl(
        // SAFETY: REPORT_FD is only borrowed for this one fcntl call, which checks whether
        // it is open; nothing is closed or kept.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(REPORT_FD) },
        nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
    )
    .ok()?;
    // SAFETY: descriptor 3 is open (fcntl succeeded) and nothing else in this process owns
    // it: the gateway's spawn put the report pipe there for us, and this is the only place
    // that takes it, once, at start.
    Some(unsafe { File::from_raw_fd(REPORT_FD) })
}

/// The PID of the sandbox's init, for the termination handler.
static INIT_PID: AtomicI32 = AtomicI32::new(0);

extern "C" fn kill_init(_: libc::c_int) {
    let pid = INIT_PID.load(Ordering::SeqCst);
    if pid > 0 {
        // SAFETY: kill(2) is async-signal-safe and takes plain integers.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

fn run(spec: &HelperSpec, reporter: &Reporter) -> Result<i32, String> {
    if nix::unistd::geteuid().is_root() {
        // The sandbox keeps no supplementary group of the gateway's (root's groups would
        // stay in force on host files, unmapped but effective).
        nix::unistd::setgroups(&[]).map_err(|e| format!("setgroups: {e}"))?;
    }
    let filters = seccomp::build()?;
    cgroup::enter(&spec.cgroups).inspect_err(|_| {
        cgroup::remove(&spec.cgroups);
    })?;
    let result = clone_and_wait(spec, &filters, reporter);
    let stats = cgroup::stats(&spec.cgroups);
    for failure in cgroup::remove(&spec.cgroups) {
        eprintln!("mcpguard sandbox: {failure}");
    }
    let code = result?;
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).map_err(|e| format!("getrusage: {e}"))?;
    let micros = |t: nix::sys::time::TimeVal| (t.tv_sec() as u64) * 1_000_000 + t.tv_usec() as u64;
    let rss = (usage.max_rss() as u64) * 1024;
    reporter.send(&Report::Usage {
        cpu_micros: micros(usage.user_time()) + micros(usage.system_time()),
        memory_peak_bytes: Some(stats.memory_peak.unwrap_or(rss)),
        oom_killed: stats.oom_killed,
        process_limit_hit: stats.process_limit_hit,
    });
    Ok(code)
}

fn clone_and_wait(
    spec: &HelperSpec,
    filters: &seccomp::Filters,
    reporter: &Reporter,
) -> Result<i32, String> {
    let (ready_read, ready_write) =
        nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| format!("pipe: {e}"))?;
    let flags = CloneFlags::CLONE_NEWUSER
        | CloneFlags::CLONE_NEWNS
        | CloneFlags::CLONE_NEWPID
        | CloneFlags::CLONE_NEWNET
        | CloneFlags::CLONE_NEWIPC
        | CloneFlags::CLONE_NEWUTS
        | CloneFlags::CLONE_NEWCGROUP;
    let mut stack = vec![0u8; 1 << 20];
    let context = init::Context {
        spec,
        filters,
        reporter,
        ready: ready_read.as_raw_fd(),
    };
    let callback = Box::new(|| init::main(&context));
    // SAFETY: without CLONE_VM the child runs on a copy of this process's memory, like
    // fork(2): the helper is single-threaded (it is started fresh by the gateway and
    // starts no threads), so no lock or allocator state is held by another thread in the
    // copy. The stack is a live, writable allocation of this process that the child uses
    // only in its own copy of the memory.
    let child = unsafe { nix::sched::clone(callback, &mut stack, flags, Some(libc::SIGCHLD)) }
        .map_err(|e| match e {
            nix::errno::Errno::EPERM | nix::errno::Errno::ENOSPC | nix::errno::Errno::EINVAL => {
                format!(
                    "cannot create namespaces ({e}): user namespaces may be disabled \
                     (check `sysctl user.max_user_namespaces` and \
                     `kernel.unprivileged_userns_clone`)"
                )
            }
            e => format!("clone: {e}"),
        })?;
    drop(ready_read);
    INIT_PID.store(child.as_raw(), Ordering::SeqCst);
    forward_termination()?;
    if let Err(reason) = map_ids(child, spec.host_ids) {
        let _ = nix::sys::signal::kill(child, Signal::SIGKILL);
        let _ = waitpid(child, None);
        return Err(reason);
    }
    let _ = nix::unistd::write(&ready_write, b"1");
    drop(ready_write);
    loop {
        match waitpid(child, None) {
            Ok(WaitStatus::Exited(_, code)) => return Ok(code),
            Ok(WaitStatus::Signaled(_, signal, _)) => return Ok(128 + signal as i32),
            Ok(_) | Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => return Err(format!("waiting for the sandbox: {e}")),
        }
    }
}

/// SIGTERM, SIGINT and SIGHUP to the helper kill the whole sandbox (its init first; the
/// helper then cleans up and exits).
fn forward_termination() -> Result<(), String> {
    let action = SigAction::new(
        SigHandler::Handler(kill_init),
        SaFlags::SA_RESTART,
        SigSet::empty(),
    );
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: the handler only reads an atomic and calls kill(2), both
        // async-signal-safe.
        unsafe { sigaction(signal, &action) }.map_err(|e| format!("sigaction: {e}"))?;
    }
    Ok(())
}

/// Maps root inside the sandbox to `host_ids` outside.
fn map_ids(child: Pid, (uid, gid): (u32, u32)) -> Result<(), String> {
    let proc = format!("/proc/{child}");
    let write = |file: &str, text: String| {
        std::fs::write(format!("{proc}/{file}"), text)
            .map_err(|e| format!("cannot write {proc}/{file}: {e}"))
    };
    write("uid_map", format!("0 {uid} 1\n"))?;
    write("setgroups", "deny\n".to_string())?;
    write("gid_map", format!("0 {gid} 1\n"))?;
    Ok(())
}

/// Returns an owned descriptor for `fd`, for the init's copy of the ready pipe.
pub(crate) fn owned(fd: i32) -> OwnedFd {
    // SAFETY: only called in the init process with the read end of the ready pipe, which
    // the init's copy of the descriptor table holds open and nothing else in the init
    // owns.
    unsafe { OwnedFd::from_raw_fd(fd) }
}
