//! The Firecracker backend: each run boots a fresh microVM (optionally under the
//! jailer), hands the job to the guest agent over vsock, and destroys the VM.
//!
//! The VM is configured through Firecracker's REST API ([`api`]); the guest's root
//! filesystem is a read-only ext4 image holding `mcpguard-vm-agent` as `init`
//! ([`crate::vm::guest`]); the job and its outcome cross one vsock stream
//! ([`crate::vm::protocol`]). A VM has no network device, so `network: none` and
//! `loopback` both leave it with only its own loopback. Host directories cannot be
//! mounted (Firecracker has no shared filesystem): data goes in on stdin.

pub mod api;
pub mod jailer;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::probe::{Kvm, on_path};
use crate::vm::protocol::{AGENT_PORT, FailureKind, Job, Request, Response};
use crate::vm::vsock;
use crate::{Availability, Captured, Exit, Outcome, Sandbox, SandboxError, Spec, Stop, Usage};
use api::{ApiClient, BootSource, Drive, MachineConfig, Vsock};
use jailer::{API_SOCKET, CgroupVersion, Jailer};

const NAME: &str = "firecracker";

/// The guest's context id (any value of 3 or more; each VM has its own vsock device).
const GUEST_CID: u32 = 3;

/// How the Firecracker backend runs.
#[derive(Debug, Clone, PartialEq)]
pub struct FirecrackerOptions {
    /// The `firecracker` binary (a name is looked up on `PATH`).
    pub firecracker: PathBuf,
    /// The `jailer` binary; `None` runs Firecracker without it (tests, development).
    pub jailer: Option<PathBuf>,
    /// The guest kernel (`vmlinux`).
    pub kernel: PathBuf,
    /// The guest's root filesystem image, with the agent at [`Self::agent_path`].
    pub rootfs: PathBuf,
    /// Where the agent is inside the guest.
    pub agent_path: String,
    /// vCPUs per VM.
    pub vcpus: u8,
    /// Guest memory beyond the job's memory limit (the guest kernel's own share), MiB.
    pub guest_overhead_mib: u64,
    /// Where per-VM directories (sockets, the jail) are made.
    pub state_dir: PathBuf,
    /// The user and group the jailed VMM runs as.
    pub uid_gid: (u32, u32),
    /// How long a VM may take from start to its agent answering.
    pub boot_timeout: Duration,
    /// The KVM device.
    pub kvm_device: PathBuf,
    /// Run even when KVM is software (PVM), where guests are very slow.
    pub allow_software_kvm: bool,
}

impl Default for FirecrackerOptions {
    fn default() -> Self {
        FirecrackerOptions {
            firecracker: "firecracker".into(),
            jailer: Some("jailer".into()),
            kernel: "/var/lib/mcpguard/firecracker/vmlinux".into(),
            rootfs: "/var/lib/mcpguard/firecracker/rootfs.ext4".into(),
            agent_path: "/sbin/mcpguard-vm-agent".into(),
            vcpus: 1,
            guest_overhead_mib: 64,
            state_dir: std::env::temp_dir().join("mcpguard-firecracker"),
            uid_gid: (65534, 65534),
            boot_timeout: Duration::from_secs(10),
            kvm_device: "/dev/kvm".into(),
            allow_software_kvm: false,
        }
    }
}

/// Runs code in Firecracker microVMs.
pub struct FirecrackerSandbox {
    options: FirecrackerOptions,
    firecracker: Option<PathBuf>,
    jailer: Option<PathBuf>,
    availability: Availability,
}

fn resolve(program: &Path) -> Option<PathBuf> {
    if program.components().count() > 1 {
        program.is_file().then(|| program.to_path_buf())
    } else {
        on_path(&program.to_string_lossy())
    }
}

fn setup(reason: impl Into<String>) -> SandboxError {
    SandboxError::Setup {
        backend: NAME,
        reason: reason.into(),
    }
}

impl FirecrackerSandbox {
    /// The backend, with what this machine offers it checked now.
    pub fn new(options: FirecrackerOptions) -> FirecrackerSandbox {
        let firecracker = resolve(&options.firecracker);
        let jailer = options.jailer.as_deref().and_then(resolve);
        let mut missing = Vec::new();
        if firecracker.is_none() {
            missing.push(format!(
                "no `{}` binary (install Firecracker and set sandbox.firecracker.binary)",
                options.firecracker.display()
            ));
        }
        if let Some(wanted) = &options.jailer
            && jailer.is_none()
        {
            missing.push(format!(
                "no `{}` binary (install Firecracker's jailer, or set sandbox.firecracker.jailer: null to run without it)",
                wanted.display()
            ));
        }
        for (what, path) in [("kernel", &options.kernel), ("rootfs", &options.rootfs)] {
            if !path.is_file() {
                missing.push(format!(
                    "no guest {what} at {} (see docs/sandbox.md, \"Firecracker\")",
                    path.display()
                ));
            }
        }
        let kvm = Kvm::detect_device(&options.kvm_device);
        let mut notes = Vec::new();
        match &kvm {
            Kvm::Hardware => {}
            Kvm::Pvm if options.allow_software_kvm => {
                notes.push(format!("{}: allowed by allow_software_kvm", kvm.describe()))
            }
            Kvm::Pvm => missing.push(format!(
                "{} (set allow_software_kvm: true to run anyway)",
                kvm.describe()
            )),
            Kvm::Absent | Kvm::Inaccessible(_) => missing.push(kvm.describe()),
        }
        if options.jailer.is_none() {
            notes.push(
                "running without the jailer (no chroot, cgroups or privilege drop around the VMM)"
                    .into(),
            );
        }
        let availability = if missing.is_empty() {
            Availability::Ready { notes }
        } else {
            Availability::Unavailable {
                reason: missing.join("; "),
            }
        };
        FirecrackerSandbox {
            options,
            firecracker,
            jailer,
            availability,
        }
    }

    /// The options it runs with.
    pub fn options(&self) -> &FirecrackerOptions {
        &self.options
    }

    fn machine(&self, spec: &Spec) -> MachineConfig {
        MachineConfig {
            vcpu_count: self.options.vcpus.max(1),
            mem_size_mib: spec.limits.memory_bytes.div_ceil(1 << 20)
                + self.options.guest_overhead_mib,
        }
    }

    /// The kernel command line: serial console off the hot path, reboot on panic (which
    /// ends the VMM), the agent as init.
    pub fn boot_args(&self) -> String {
        format!(
            "console=ttyS0 reboot=k panic=1 pci=off quiet ro init={}",
            self.options.agent_path
        )
    }
}

/// One VM's files and process, removed when dropped.
struct Vm {
    dir: PathBuf,
    jailer: Option<Jailer>,
    child: Option<tokio::process::Child>,
}

impl Vm {
    fn kill(&mut self) {
        if let Some(child) = &mut self.child {
            if let Some(pid) = child.id().and_then(|p| i32::try_from(p).ok()) {
                let _ = nix::sys::signal::killpg(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
            let _ = child.start_kill();
        }
        if let Some(jailer) = &self.jailer
            && let Ok(text) = std::fs::read_to_string(jailer.pid_file())
            && let Ok(pid) = text.trim().parse::<i32>()
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
        if let Some(jailer) = &self.jailer {
            let _ = std::fs::remove_dir_all(jailer.jail_dir());
            for cgroup in jailer.cgroup_dirs(Path::new("/sys/fs/cgroup")) {
                let _ = std::fs::remove_dir(cgroup);
            }
        }
    }
}

fn log_tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().rev().take(5).collect();
    lines.into_iter().rev().collect::<Vec<_>>().join(" | ")
}

impl FirecrackerSandbox {
    /// Starts the VMM (jailed or not) and returns the VM and its API and vsock sockets
    /// as the host sees them, with the API paths the VMM must be given.
    fn start_vmm(&self, id: &str, spec: &Spec) -> Result<(Vm, Paths), SandboxError> {
        let dir = self.options.state_dir.join(id);
        std::fs::create_dir_all(&dir)
            .map_err(|e| setup(format!("creating {}: {e}", dir.display())))?;
        let log = dir.join("vmm.log");
        let log_file =
            std::fs::File::create(&log).map_err(|e| setup(format!("creating the VMM log: {e}")))?;
        let err_file = log_file
            .try_clone()
            .map_err(|e| setup(format!("the VMM log: {e}")))?;
        let firecracker = self
            .firecracker
            .clone()
            .ok_or_else(|| setup("no firecracker binary"))?;
        let (mut command, jailer, paths) = match &self.jailer {
            Some(program) => {
                let jailer = Jailer {
                    program: program.clone(),
                    id: id.to_string(),
                    exec_file: firecracker,
                    uid: self.options.uid_gid.0,
                    gid: self.options.uid_gid.1,
                    chroot_base_dir: dir.join("jail"),
                    cgroup_version: if Path::new("/sys/fs/cgroup/memory").is_dir() {
                        CgroupVersion::V1
                    } else {
                        CgroupVersion::V2
                    },
                    memory_limit_bytes: (self.machine(spec).mem_size_mib + 64) << 20,
                    pids_limit: 64,
                    netns: None,
                };
                let mut command = tokio::process::Command::new(&jailer.program);
                command.args(jailer.args());
                let paths = Paths {
                    api_socket: jailer.host_path(API_SOCKET),
                    vsock_host: jailer.host_path("/vsock.sock"),
                    vsock_api: "/vsock.sock".into(),
                    kernel_api: "/vmlinux".into(),
                    rootfs_api: "/rootfs.ext4".into(),
                    log,
                };
                (command, Some(jailer), paths)
            }
            None => {
                let api_socket = dir.join("api.sock");
                let vsock_host = dir.join("vsock.sock");
                let mut command = tokio::process::Command::new(&firecracker);
                command
                    .arg("--api-sock")
                    .arg(&api_socket)
                    .arg("--id")
                    .arg(id);
                let paths = Paths {
                    vsock_api: vsock_host.display().to_string(),
                    api_socket,
                    vsock_host,
                    kernel_api: self.options.kernel.display().to_string(),
                    rootfs_api: self.options.rootfs.display().to_string(),
                    log,
                };
                (command, None, paths)
            }
        };
        command
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(err_file)
            .env_clear()
            .process_group(0)
            .kill_on_drop(true);
        let child = command.spawn().map_err(|e| {
            setup(format!(
                "starting {}: {e}",
                command.as_std().get_program().to_string_lossy()
            ))
        })?;
        Ok((
            Vm {
                dir,
                jailer,
                child: Some(child),
            },
            paths,
        ))
    }

    /// Waits for the API socket, places the kernel and rootfs in the jail, and boots.
    async fn boot(
        &self,
        vm: &mut Vm,
        paths: &Paths,
        spec: &Spec,
        deadline: Instant,
    ) -> Result<(), SandboxError> {
        let api = ApiClient::new(&paths.api_socket);
        loop {
            if paths.api_socket.exists() && api.describe().await.is_ok() {
                break;
            }
            if let Some(child) = &mut vm.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(setup(format!(
                    "the VMM exited ({status}) before serving its API: {}",
                    log_tail(&paths.log)
                )));
            }
            if Instant::now() > deadline {
                return Err(setup(format!(
                    "the VMM did not serve its API at {} within {:?}: {}",
                    paths.api_socket.display(),
                    self.options.boot_timeout,
                    log_tail(&paths.log)
                )));
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        if let Some(jailer) = &vm.jailer {
            for (source, inside) in [
                (&self.options.kernel, &paths.kernel_api),
                (&self.options.rootfs, &paths.rootfs_api),
            ] {
                place(source, &jailer.host_path(inside), self.options.uid_gid)?;
            }
        }
        api.boot(
            &self.machine(spec),
            &BootSource {
                kernel_image_path: paths.kernel_api.clone(),
                boot_args: self.boot_args(),
            },
            &Drive {
                drive_id: "rootfs".into(),
                path_on_host: paths.rootfs_api.clone(),
                is_root_device: true,
                is_read_only: true,
            },
            &Vsock {
                guest_cid: GUEST_CID,
                uds_path: paths.vsock_api.clone(),
            },
        )
        .await
        .map_err(|e| setup(e.to_string()))
    }
}

/// Where one VM's sockets and files are, seen from the host and from the VMM's API.
struct Paths {
    api_socket: PathBuf,
    vsock_host: PathBuf,
    vsock_api: String,
    kernel_api: String,
    rootfs_api: String,
    log: PathBuf,
}

/// Puts `source` into the jail at `target` (a hard link, or a copy across filesystems)
/// readable by the jailed VMM.
fn place(source: &Path, target: &Path, (uid, gid): (u32, u32)) -> Result<(), SandboxError> {
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|e| setup(format!("creating {}: {e}", parent.display())))?;
    }
    if std::fs::hard_link(source, target).is_err() {
        std::fs::copy(source, target)
            .map_err(|e| setup(format!("copying {} into the jail: {e}", source.display())))?;
        let _ = std::os::unix::fs::chown(target, Some(uid), Some(gid));
    }
    Ok(())
}

#[async_trait]
impl Sandbox for FirecrackerSandbox {
    fn name(&self) -> &'static str {
        NAME
    }

    fn availability(&self) -> &Availability {
        &self.availability
    }

    async fn run(&self, spec: &Spec, stdin: &[u8]) -> Result<Outcome, SandboxError> {
        self.availability.require(NAME)?;
        crate::refuse_egress(NAME, spec)?;
        if !spec.mounts.is_empty() {
            return Err(SandboxError::Unsupported {
                backend: NAME,
                what: "mounting host directories (Firecracker has no shared filesystem; pass data on stdin)".into(),
            });
        }
        let started = Instant::now();
        let id = uuid::Uuid::new_v4().to_string();
        let (mut vm, paths) = self.start_vmm(&id, spec)?;
        let deadline = started + self.options.boot_timeout;
        self.boot(&mut vm, &paths, spec, deadline).await?;
        let mut stream = vsock::connect(&paths.vsock_host, AGENT_PORT, deadline)
            .await
            .map_err(|e| setup(format!("{e}; VMM log: {}", log_tail(&paths.log))))?;
        let job = Job::from_spec(spec, stdin);
        // The agent enforces the wall clock; this one catches a guest that hangs.
        let grace = Duration::from_secs(2);
        let answer = vsock::call(
            &mut stream,
            &Request::Run(job),
            spec.limits.wall_time + grace,
        )
        .await;
        vm.kill();
        let wall = started.elapsed();
        match answer {
            Ok(Response::Finished(outcome)) => Ok(outcome.into_outcome(wall)),
            Ok(Response::Failed {
                kind: FailureKind::Exec,
                message,
            }) => Err(SandboxError::Exec(message)),
            Ok(Response::Failed { message, .. }) => Err(setup(message)),
            Ok(Response::Pong { .. }) => Err(SandboxError::Io {
                backend: NAME,
                reason: "the guest agent answered a job with a pong".into(),
            }),
            Err(vsock::CallError::Timeout(_)) => Ok(Outcome {
                exit: Exit::Signal(libc::SIGKILL),
                stopped: Stop::WallTime,
                stdout: Captured::default(),
                stderr: Captured::default(),
                usage: Usage {
                    wall,
                    ..Usage::default()
                },
            }),
            Err(e) => Err(SandboxError::Io {
                backend: NAME,
                reason: format!("{e}; VMM log: {}", log_tail(&paths.log)),
            }),
        }
    }
}
