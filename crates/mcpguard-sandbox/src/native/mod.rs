//! The native Linux backend: namespaces, a minimal root of read-only bind mounts,
//! Landlock, seccomp, cgroups and rlimits, with no daemon and no image.
//!
//! The gateway side ([`NativeSandbox`]) resolves a [`Spec`] into a [`wire::HelperSpec`]
//! and starts a helper process (the gateway's own binary with [`HELPER_ARG`]); the helper
//! ([`helper_main`]) builds the sandbox and reports back on a pipe. See `docs/sandbox.md`
//! for what each layer stops.

mod cgroup;
#[allow(
    unsafe_code,
    reason = "exit, close_range and ioctl have no safe wrappers; every block states why it is sound"
)]
mod confine;
#[allow(
    unsafe_code,
    reason = "fork of the single-threaded init; every block states why it is sound"
)]
mod forwarder;
#[allow(
    unsafe_code,
    reason = "clone, signal handlers and the inherited report descriptor; every block states why it is sound"
)]
mod helper;
#[allow(
    unsafe_code,
    reason = "fork and signal handlers; every block states why it is sound"
)]
mod init;
#[allow(
    unsafe_code,
    reason = "mount_setattr has no safe wrapper; the block states why it is sound"
)]
mod rootfs;
#[allow(
    unsafe_code,
    reason = "the report pipe is placed before exec; every block states why it is sound"
)]
mod run;
mod seccomp;
pub mod wire;

use std::path::PathBuf;

use async_trait::async_trait;

pub(crate) use confine::loopback_up;
pub use helper::helper_main;

use crate::egress::{EgressPolicy, EgressProxy};
use crate::{Availability, Network, Outcome, SandboxError, Spec, WORKDIR};
use wire::{HelperLimits, HelperSpec, MountPlan};

/// The first argument that turns the `mcpguard` binary into the sandbox helper.
pub const HELPER_ARG: &str = "__sandbox-helper";

/// The system paths every native sandbox sees read-only (when they exist on the host).
pub const SYSTEM_PATHS: &[&str] = &[
    "/usr",
    "/bin",
    "/sbin",
    "/lib",
    "/lib32",
    "/lib64",
    "/libx32",
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/ssl/certs",
    "/etc/ca-certificates",
];

const NAME: &str = "native";

/// How to start the helper process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HelperCommand {
    /// The program.
    pub program: PathBuf,
    /// Its arguments.
    pub args: Vec<String>,
}

impl HelperCommand {
    /// The running binary with [`HELPER_ARG`]: how the `mcpguard` binary starts its helper.
    pub fn current_exe() -> Result<HelperCommand, SandboxError> {
        let program = std::env::current_exe().map_err(|e| SandboxError::Unavailable {
            backend: NAME,
            reason: format!("cannot find the running binary to use as the sandbox helper: {e}"),
        })?;
        Ok(HelperCommand {
            program,
            args: vec![HELPER_ARG.to_string()],
        })
    }
}

/// Options of the native backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NativeOptions {
    /// The helper process.
    pub helper: HelperCommand,
    /// The host user and group that root inside a sandbox maps to, when the gateway runs
    /// as root (otherwise it is the gateway's own user). Default: 65534 (`nobody`).
    pub host_ids: (u32, u32),
}

impl NativeOptions {
    /// Defaults with `helper`.
    pub fn new(helper: HelperCommand) -> Self {
        NativeOptions {
            helper,
            host_ids: (65534, 65534),
        }
    }
}

/// The native Linux sandbox.
#[derive(Debug)]
pub struct NativeSandbox {
    options: NativeOptions,
    cgroups: Option<cgroup::Layout>,
    availability: Availability,
    /// Egress proxies of confined servers, one per policy, as long as the sandbox lives.
    server_proxies: std::sync::Mutex<Vec<(EgressPolicy, std::sync::Arc<EgressProxy>)>>,
}

impl NativeSandbox {
    /// Checks what this machine offers (namespaces, Landlock, cgroups) and prepares.
    pub fn new(options: NativeOptions) -> NativeSandbox {
        let mut notes = Vec::new();
        let cgroups = match cgroup::Layout::detect() {
            Ok(layout) => {
                notes.push(format!("limits through {}", layout.describe()));
                Some(layout)
            }
            Err(reason) => {
                notes.push(format!(
                    "cgroups unavailable ({reason}): memory is limited per process \
                     (RLIMIT_AS) and processes per sandbox (RLIMIT_NPROC)"
                ));
                None
            }
        };
        match landlock_abi() {
            Some(abi) => notes.push(format!("Landlock ABI {abi}")),
            None => notes.push(
                "Landlock is not available in this kernel: file access rests on the mount \
                 namespace alone"
                    .into(),
            ),
        }
        let availability = match namespaces_blocked() {
            Some(reason) => Availability::Unavailable { reason },
            None if !options.helper.program.exists() => Availability::Unavailable {
                reason: format!(
                    "the helper `{}` does not exist",
                    options.helper.program.display()
                ),
            },
            None => Availability::Ready { notes },
        };
        NativeSandbox {
            options,
            cgroups,
            availability,
            server_proxies: std::sync::Mutex::default(),
        }
    }

    fn ready(&self) -> Result<(), SandboxError> {
        self.availability.require(NAME)
    }

    /// The host user and group the sandbox's root maps to (the owner that a work
    /// directory must be writable by).
    pub fn host_ids(&self) -> (u32, u32) {
        if nix::unistd::geteuid().is_root() {
            self.options.host_ids
        } else {
            (
                nix::unistd::geteuid().as_raw(),
                nix::unistd::getegid().as_raw(),
            )
        }
    }

    /// Resolves `spec` for the helper.
    fn helper_spec(
        &self,
        spec: &Spec,
        cgroups: Vec<wire::CgroupDir>,
        report: bool,
        proxy: Option<&EgressProxy>,
    ) -> Result<HelperSpec, SandboxError> {
        if spec.program.is_empty() {
            return Err(SandboxError::Spec("the program is empty".into()));
        }
        let mut mounts: Vec<MountPlan> = SYSTEM_PATHS
            .iter()
            .map(|path| MountPlan {
                source: PathBuf::from(path),
                target: PathBuf::from(path),
                writable: false,
                optional: true,
            })
            .collect();
        for mount in &spec.mounts {
            let target = mount.inside();
            check_mount(&mount.source, &target)?;
            mounts.push(MountPlan {
                source: mount.source.clone(),
                target,
                writable: mount.writable,
                optional: false,
            });
        }
        let mut env: Vec<(String, String)> = spec
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        match (spec.network, proxy) {
            (Network::Egress, Some(proxy)) => {
                mounts.push(MountPlan {
                    source: proxy.socket().to_path_buf(),
                    target: PathBuf::from(forwarder::SOCKET_INSIDE),
                    writable: false,
                    optional: false,
                });
                for (key, value) in crate::egress::proxy_env() {
                    if !spec.env.contains_key(key) {
                        env.push((key.to_string(), value));
                    }
                }
            }
            (Network::Egress, None) => {
                return Err(SandboxError::Spec(
                    "egress needs the gateway's proxy".into(),
                ));
            }
            _ => {}
        }
        if let Some(workdir) = &spec.workdir
            && !workdir.is_absolute()
        {
            return Err(SandboxError::Spec(format!(
                "the work directory `{}` must be an absolute path",
                workdir.display()
            )));
        }
        let limits = &spec.limits;
        let seconds = |d: std::time::Duration| {
            (d != std::time::Duration::MAX).then(|| d.as_secs_f64().ceil().max(1.0) as u64)
        };
        Ok(HelperSpec {
            program: spec.program.clone(),
            args: spec.args.clone(),
            env,
            workdir: spec.workdir.clone(),
            mounts,
            network: spec.network,
            limits: HelperLimits {
                cpu_seconds: seconds(limits.cpu_time),
                address_space_bytes: cgroups.is_empty().then_some(limits.memory_bytes),
                processes: u64::from(limits.processes),
                file_size_bytes: limits.file_size_bytes,
                tmp_bytes: limits.tmp_bytes,
                backstop_seconds: seconds(limits.wall_time).map(|s| s + 2),
            },
            cgroups,
            host_ids: self.host_ids(),
            report,
        })
    }

    /// The proxy for confined servers with `policy`, started on first use and kept (a
    /// server restarted by its supervisor reuses it).
    fn server_proxy(
        &self,
        policy: &EgressPolicy,
    ) -> Result<std::sync::Arc<EgressProxy>, SandboxError> {
        let mut proxies = self
            .server_proxies
            .lock()
            .map_err(|_| SandboxError::Setup {
                backend: NAME,
                reason: "the egress proxy registry is poisoned".into(),
            })?;
        if let Some((_, proxy)) = proxies.iter().find(|(p, _)| p == policy) {
            return Ok(proxy.clone());
        }
        let proxy = std::sync::Arc::new(EgressProxy::start(policy.clone()).map_err(|e| {
            SandboxError::Setup {
                backend: NAME,
                reason: format!("starting the egress proxy: {e}"),
            }
        })?);
        proxies.push((policy.clone(), proxy.clone()));
        Ok(proxy)
    }

    fn cgroup_plan(&self, spec: &Spec) -> Vec<wire::CgroupDir> {
        let id = uuid::Uuid::new_v4().simple().to_string();
        self.cgroups
            .as_ref()
            .map(|layout| layout.plan(&id, spec.limits.memory_bytes, spec.limits.processes))
            .unwrap_or_default()
    }

    fn helper_command(
        &self,
        helper_spec: &HelperSpec,
    ) -> Result<tokio::process::Command, SandboxError> {
        let json =
            serde_json::to_string(helper_spec).map_err(|e| SandboxError::Spec(e.to_string()))?;
        let mut command = tokio::process::Command::new(&self.options.helper.program);
        command
            .args(&self.options.helper.args)
            .env_clear()
            .env(wire::SPEC_ENV, json);
        Ok(command)
    }
}

/// A mount must name absolute paths and may not cover what the sandbox builds itself.
fn check_mount(source: &std::path::Path, target: &std::path::Path) -> Result<(), SandboxError> {
    if !source.is_absolute() || !target.is_absolute() {
        return Err(SandboxError::Spec(format!(
            "mount `{}` → `{}`: both paths must be absolute",
            source.display(),
            target.display()
        )));
    }
    let reserved = ["/", "/proc", "/dev", "/tmp", "/etc", WORKDIR];
    if target
        .components()
        .any(|c| c == std::path::Component::ParentDir)
        || reserved.iter().any(|r| target == std::path::Path::new(r))
        || target.starts_with("/proc")
        || target.starts_with("/dev")
    {
        return Err(SandboxError::Spec(format!(
            "mount target `{}` is reserved (the sandbox builds /, /proc, /dev, /tmp, /etc \
             and {WORKDIR} itself; use `workdir` for {WORKDIR})",
            target.display()
        )));
    }
    Ok(())
}

/// Why namespaces cannot be created here, if a sysctl says so.
fn namespaces_blocked() -> Option<String> {
    let read = |path: &str| {
        std::fs::read_to_string(path)
            .ok()
            .map(|s| s.trim().to_string())
    };
    if read("/proc/sys/user/max_user_namespaces").as_deref() == Some("0") {
        return Some("user namespaces are disabled (user.max_user_namespaces = 0)".into());
    }
    if !nix::unistd::geteuid().is_root()
        && read("/proc/sys/kernel/unprivileged_userns_clone").as_deref() == Some("0")
    {
        return Some(
            "unprivileged user namespaces are disabled \
             (kernel.unprivileged_userns_clone = 0): run as root or enable them"
                .into(),
        );
    }
    None
}

/// The kernel's Landlock ABI version, if Landlock is enabled.
#[allow(
    unsafe_code,
    reason = "landlock_create_ruleset has no safe wrapper for the version query"
)]
fn landlock_abi() -> Option<i64> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a null attribute pointer, size 0 and the VERSION flag, the call only
    // returns a number; it reads and writes no memory.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<u8>(),
            0usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    (abi > 0).then_some(abi)
}

#[async_trait]
impl crate::Sandbox for NativeSandbox {
    fn name(&self) -> &'static str {
        NAME
    }

    fn availability(&self) -> &Availability {
        &self.availability
    }

    async fn run(&self, spec: &Spec, stdin: &[u8]) -> Result<Outcome, SandboxError> {
        self.ready()?;
        let proxy =
            match spec.network {
                Network::Egress => Some(EgressProxy::start(spec.egress.clone()).map_err(|e| {
                    SandboxError::Setup {
                        backend: NAME,
                        reason: format!("starting the egress proxy: {e}"),
                    }
                })?),
                _ => None,
            };
        let cgroups = self.cgroup_plan(spec);
        let helper_spec = self.helper_spec(spec, cgroups, true, proxy.as_ref())?;
        let command = self.helper_command(&helper_spec)?;
        let mut outcome = run::run(command, &helper_spec, spec, stdin).await?;
        if let Some(proxy) = proxy {
            outcome.usage.egress = proxy.attempts();
        }
        Ok(outcome)
    }

    fn confine(&self, spec: &Spec) -> Result<tokio::process::Command, SandboxError> {
        self.ready()?;
        let server = Spec {
            limits: spec.limits.for_server(),
            ..spec.clone()
        };
        let proxy = match server.network {
            Network::Egress => Some(self.server_proxy(&server.egress)?),
            _ => None,
        };
        let cgroups = self.cgroup_plan(&server);
        let helper_spec = self.helper_spec(&server, cgroups, false, proxy.as_deref())?;
        self.helper_command(&helper_spec)
    }
}
