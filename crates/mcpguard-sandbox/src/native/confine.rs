//! The last steps in the program's own process, just before it becomes the program:
//! limits, no capabilities, no new privileges, Landlock, seccomp, exec.

use std::ffi::CString;
use std::path::Path;

use landlock::{
    ABI, Access, AccessFs, RestrictionStatus, Ruleset, RulesetAttr, RulesetCreatedAttr, Scope,
    path_beneath_rules,
};
use nix::sys::resource::{Resource, setrlimit};
use nix::sys::signal::{SigSet, SigmaskHow, sigprocmask};

use super::helper::Reporter;
use super::seccomp::Filters;
use super::wire::{HelperSpec, Report};
use crate::WORKDIR;

/// The `PATH` used to find the program when the spec's environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Exit status when the program was not found.
const NOT_FOUND: i32 = 127;
/// Exit status when it could not be executed, or confinement failed.
const CANNOT_EXECUTE: i32 = 126;

/// Confines the calling process and executes the program; never returns.
pub(crate) fn exec(spec: &HelperSpec, filters: &Filters, reporter: &Reporter) -> ! {
    let (code, report) = match confine_and_exec(spec, filters) {
        Err(Failure::Setup(reason)) => (CANNOT_EXECUTE, Report::SetupError(reason)),
        Err(Failure::NotFound(reason)) => (NOT_FOUND, Report::ExecError(reason)),
        Err(Failure::Exec(reason)) => (CANNOT_EXECUTE, Report::ExecError(reason)),
    };
    reporter.send(&report);
    // SAFETY: _exit(2) ends the process at once; nothing of this copy of the init's
    // memory needs to be flushed or dropped.
    unsafe { libc::_exit(code) }
}

enum Failure {
    Setup(String),
    NotFound(String),
    Exec(String),
}

fn confine_and_exec(
    spec: &HelperSpec,
    filters: &Filters,
) -> Result<std::convert::Infallible, Failure> {
    let setup = Failure::Setup;
    sigprocmask(SigmaskHow::SIG_SETMASK, Some(&SigSet::empty()), None)
        .map_err(|e| setup(format!("sigprocmask: {e}")))?;
    // No setsid(): a new session would put the program in its own scheduler autogroup,
    // which halved a confined server's throughput under load (BENCHMARKS.md). Terminal
    // injection is closed instead by the seccomp filter (ioctl TIOCSTI/TIOCLINUX) and by
    // the sandbox having no terminal device and inheriting only pipes.
    nix::unistd::chdir(WORKDIR).map_err(|e| setup(format!("chdir {WORKDIR}: {e}")))?;
    close_inherited_descriptors();
    limit(spec)?;
    let program = resolve(spec)?;
    let argv = std::iter::once(spec.program.as_str())
        .chain(spec.args.iter().map(String::as_str))
        .map(c_string)
        .collect::<Result<Vec<_>, _>>()?;
    let env = spec
        .env
        .iter()
        .map(|(k, v)| c_string(&format!("{k}={v}")))
        .collect::<Result<Vec<_>, _>>()?;
    drop_capabilities()?;
    nix::sys::prctl::set_no_new_privs().map_err(|e| setup(format!("no_new_privs: {e}")))?;
    landlock(spec).map_err(setup)?;
    filters.apply().map_err(setup)?;
    let e = nix::unistd::execve(&program, &argv, &env).unwrap_err_or_infallible();
    Err(Failure::Exec(format!(
        "could not execute `{}` in the sandbox: {e}",
        spec.program
    )))
}

/// `execve` only returns on failure.
trait UnwrapErr {
    fn unwrap_err_or_infallible(self) -> nix::errno::Errno;
}

impl UnwrapErr for nix::Result<std::convert::Infallible> {
    fn unwrap_err_or_infallible(self) -> nix::errno::Errno {
        match self {
            Ok(never) => match never {},
            Err(e) => e,
        }
    }
}

fn c_string(text: &str) -> Result<CString, Failure> {
    CString::new(text).map_err(|_| Failure::Setup(format!("`{text}` contains a NUL byte")))
}

/// Marks every descriptor above stderr close-on-exec, so the program inherits only its
/// three standard streams.
fn close_inherited_descriptors() {
    // SAFETY: close_range(2) with CLOSE_RANGE_CLOEXEC only sets a flag on descriptors of
    // this process; it touches no memory.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3u32,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
}

fn limit(spec: &HelperSpec) -> Result<(), Failure> {
    let limits = &spec.limits;
    let set = |resource: Resource, soft: u64, hard: u64| {
        setrlimit(resource, soft, hard)
            .map_err(|e| Failure::Setup(format!("setrlimit {resource:?}: {e}")))
    };
    set(Resource::RLIMIT_CORE, 0, 0)?;
    set(Resource::RLIMIT_NPROC, limits.processes, limits.processes)?;
    set(
        Resource::RLIMIT_FSIZE,
        limits.file_size_bytes,
        limits.file_size_bytes,
    )?;
    if let Some(seconds) = limits.cpu_seconds {
        // SIGXCPU at the limit, SIGKILL a second later if it is ignored.
        set(Resource::RLIMIT_CPU, seconds, seconds + 1)?;
    }
    if let Some(bytes) = limits.address_space_bytes {
        set(Resource::RLIMIT_AS, bytes, bytes)?;
    }
    Ok(())
}

/// Finds the program on the sandbox's `PATH` (as the shell would).
fn resolve(spec: &HelperSpec) -> Result<CString, Failure> {
    if spec.program.contains('/') {
        return c_string(&spec.program);
    }
    let path = spec
        .env
        .iter()
        .find(|(k, _)| k == "PATH")
        .map(|(_, v)| v.as_str())
        .unwrap_or(DEFAULT_PATH);
    path.split(':')
        .filter(|dir| !dir.is_empty())
        .map(|dir| Path::new(dir).join(&spec.program))
        .find(|candidate| {
            nix::unistd::access(candidate.as_path(), nix::unistd::AccessFlags::X_OK).is_ok()
                && candidate.is_file()
        })
        .ok_or_else(|| {
            Failure::NotFound(format!(
                "`{}` was not found on the sandbox's PATH ({path}); the sandbox shows only \
                 the system directories and its mounts: mount the program's directory \
                 read-only or give its full path",
                spec.program
            ))
        })
        .and_then(|found| c_string(&found.to_string_lossy()))
}

/// Clears the bounding, inheritable and ambient sets: root inside the sandbox executes
/// the program with no capabilities at all.
fn drop_capabilities() -> Result<(), Failure> {
    for set in [
        caps::CapSet::Ambient,
        caps::CapSet::Bounding,
        caps::CapSet::Inheritable,
    ] {
        caps::clear(None, set)
            .map_err(|e| Failure::Setup(format!("dropping capabilities: {e}")))?;
    }
    Ok(())
}

/// Landlock: read and execute everywhere visible, write only in the work directory,
/// `/tmp`, `/dev/shm`, the devices and writable mounts; no abstract Unix sockets or
/// signals outside the sandbox.
fn landlock(spec: &HelperSpec) -> Result<RestrictionStatus, String> {
    let abi = ABI::V6;
    let mut writable = vec![WORKDIR.to_string(), "/tmp".into(), "/dev/shm".into()];
    writable.extend(["null", "zero", "full", "random", "urandom"].map(|d| format!("/dev/{d}")));
    writable.extend(
        spec.mounts
            .iter()
            .filter(|m| m.writable)
            .map(|m| m.target.to_string_lossy().into_owned()),
    );
    let error = |e: landlock::RulesetError| format!("landlock: {e}");
    Ruleset::default()
        .handle_access(AccessFs::from_all(abi))
        .map_err(error)?
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .map_err(error)?
        .create()
        .map_err(error)?
        .add_rules(path_beneath_rules(["/"], AccessFs::from_read(abi)))
        .map_err(error)?
        .add_rules(path_beneath_rules(&writable, AccessFs::from_all(abi)))
        .map_err(error)?
        .restrict_self()
        .map_err(error)
}

/// Brings the loopback interface of the sandbox's network namespace up.
pub(crate) fn loopback_up() -> Result<(), String> {
    // SAFETY: a plain socket(2) call; the descriptor is closed below.
    let socket = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if socket < 0 {
        return Err(format!("socket: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: `ifreq` is plain old data (integers and byte arrays), valid when zeroed.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (slot, byte) in request.ifr_name.iter_mut().zip(b"lo\0") {
        *slot = *byte as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS and SIOCSIFFLAGS read and write `request`, a live, properly
    // sized ifreq that outlives both calls; the union member written is ifru_flags.
    let result = unsafe {
        if libc::ioctl(socket, libc::SIOCGIFFLAGS, &mut request) < 0 {
            -1
        } else {
            request.ifr_ifru.ifru_flags |= (libc::IFF_UP | libc::IFF_RUNNING) as libc::c_short;
            libc::ioctl(socket, libc::SIOCSIFFLAGS, &request)
        }
    };
    let error = std::io::Error::last_os_error();
    // SAFETY: `socket` is a descriptor this function opened and nothing else uses.
    unsafe { libc::close(socket) };
    if result < 0 {
        return Err(format!("bringing up the loopback interface: {error}"));
    }
    Ok(())
}
