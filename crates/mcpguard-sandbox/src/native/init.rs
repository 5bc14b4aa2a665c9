//! The sandbox's init: PID 1 of the new namespaces. It waits until the helper has mapped
//! its user, builds the root, starts the program and reaps every process until the
//! program ends; then it exits, and the kernel kills whatever is left in the namespace.

use std::os::fd::RawFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{SaFlags, SigAction, SigHandler, SigSet, Signal, sigaction};
use nix::sys::wait::{WaitStatus, waitpid};
use nix::unistd::{ForkResult, Pid};

use super::confine;
use super::forwarder;
use super::helper::{Reporter, SETUP_FAILED, owned};
use super::rootfs;
use super::seccomp::Filters;
use super::wire::{HelperSpec, Report};
use crate::Network;

/// What the init gets from the helper (in its copy of the helper's memory).
pub(crate) struct Context<'a> {
    pub spec: &'a HelperSpec,
    pub filters: &'a Filters,
    pub reporter: &'a Reporter,
    /// The read end of the pipe the helper writes one byte to once the user is mapped.
    pub ready: RawFd,
}

static ALARM: AtomicBool = AtomicBool::new(false);

extern "C" fn on_alarm(_: libc::c_int) {
    ALARM.store(true, Ordering::SeqCst);
}

/// The init's body; its return value is its exit status.
pub(crate) fn main(context: &Context<'_>) -> isize {
    match setup(context) {
        Ok(program) => supervise(context, program) as isize,
        Err(reason) => {
            context.reporter.send(&Report::SetupError(reason));
            SETUP_FAILED as isize
        }
    }
}

/// Everything up to starting the program; returns its PID.
fn setup(context: &Context<'_>) -> Result<Pid, String> {
    // Die with the helper. If it is already gone, the ready pipe says so below.
    nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(|e| format!("prctl: {e}"))?;
    // The helper's termination handlers make no sense here.
    for signal in [Signal::SIGTERM, Signal::SIGINT, Signal::SIGHUP] {
        // SAFETY: restoring the default disposition installs no handler.
        unsafe {
            sigaction(
                signal,
                &SigAction::new(SigHandler::SigDfl, SaFlags::empty(), SigSet::empty()),
            )
        }
        .map_err(|e| format!("sigaction: {e}"))?;
    }
    let ready = owned(context.ready);
    let mut byte = [0u8; 1];
    match nix::unistd::read(&ready, &mut byte) {
        Ok(1) => {}
        _ => return Err("the helper went away before the sandbox was ready".into()),
    }
    drop(ready);
    // Open the mount sources while this process still has the helper's user (the owner
    // of the host's system directories): the bind mounts come from these descriptors.
    let prepared = rootfs::prepare(context.spec)?;
    // Become the namespace's root (mapped to the sandbox's host user) for everything below.
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    nix::unistd::setresgid(root_gid, root_gid, root_gid).map_err(|e| format!("setresgid: {e}"))?;
    nix::unistd::setresuid(root_uid, root_uid, root_uid).map_err(|e| format!("setresuid: {e}"))?;
    rootfs::build(context.spec, &prepared)?;
    nix::unistd::sethostname("mcpguard-sandbox").map_err(|e| format!("sethostname: {e}"))?;
    if matches!(context.spec.network, Network::Loopback | Network::Egress) {
        confine::loopback_up()?;
    }
    if context.spec.network == Network::Egress {
        forwarder::start()?;
    }
    if let Some(seconds) = context.spec.limits.backstop_seconds {
        let action = SigAction::new(
            SigHandler::Handler(on_alarm),
            SaFlags::empty(),
            SigSet::empty(),
        );
        // SAFETY: the handler only stores to an atomic, which is async-signal-safe.
        unsafe { sigaction(Signal::SIGALRM, &action) }.map_err(|e| format!("sigaction: {e}"))?;
        nix::unistd::alarm::set(u32::try_from(seconds).unwrap_or(u32::MAX));
    }
    // SAFETY: the init is single-threaded (a clone of the single-threaded helper), so the
    // child's copy of memory holds no lock or allocator state of another thread.
    match unsafe { nix::unistd::fork() } {
        Ok(ForkResult::Child) => confine::exec(context.spec, context.filters, context.reporter),
        Ok(ForkResult::Parent { child }) => Ok(child),
        Err(e) => Err(format!("fork: {e}")),
    }
}

/// Reaps every process until the program ends; reports how it ended.
fn supervise(context: &Context<'_>, program: Pid) -> i32 {
    let started = Instant::now();
    let backstop = context
        .spec
        .limits
        .backstop_seconds
        .map(Duration::from_secs);
    loop {
        match waitpid(None::<Pid>, None) {
            Ok(WaitStatus::Exited(pid, code)) if pid == program => {
                context.reporter.send(&Report::Exit {
                    code: Some(code),
                    signal: None,
                });
                return code;
            }
            Ok(WaitStatus::Signaled(pid, signal, _)) if pid == program => {
                context.reporter.send(&Report::Exit {
                    code: None,
                    signal: Some(signal as i32),
                });
                return 128 + signal as i32;
            }
            Ok(_) => {}
            Err(nix::errno::Errno::EINTR) => {
                let late = backstop.is_some_and(|limit| started.elapsed() >= limit);
                if ALARM.load(Ordering::SeqCst) || late {
                    context.reporter.send(&Report::Backstop);
                    return 128 + libc::SIGKILL;
                }
            }
            Err(_) => return SETUP_FAILED,
        }
    }
}
