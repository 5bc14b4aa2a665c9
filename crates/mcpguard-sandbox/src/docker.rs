//! The Docker backend: each run is a fresh container created through the Docker Engine
//! API (over its Unix socket), with no network (Docker's `none`: a private loopback only),
//! a read-only root file system, every capability dropped, `no-new-privileges`, Docker's
//! default seccomp profile, an init process, memory (with swap) and process limits, rlimits
//! for CPU time and file size, and private tmpfs `/tmp` and `/work`. The gateway kills and
//! removes it at the wall-clock or output limit; it is removed after every run.
//!
//! Long-lived stdio servers are not supported on this backend (use `native`).

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType, ResourcesUlimits};
use bollard::query_parameters::{
    AttachContainerOptionsBuilder, CreateContainerOptionsBuilder, KillContainerOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use crate::{
    Availability, Captured, Exit, Network, Outcome, SandboxError, Spec, Stop, Usage, WORKDIR,
};

const NAME: &str = "docker";

/// The `PATH` of a container when the spec's environment has none.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Options of the Docker backend.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerOptions {
    /// The engine's Unix socket.
    pub socket: PathBuf,
    /// The image every run uses (it must exist; no registry is contacted).
    pub image: String,
    /// The user the program runs as (`uid:gid`).
    pub user: String,
}

impl DockerOptions {
    /// Defaults: `/var/run/docker.sock`, image `mcpguard-sandbox:busybox`, user
    /// `65534:65534`.
    pub fn new() -> Self {
        DockerOptions {
            socket: "/var/run/docker.sock".into(),
            image: "mcpguard-sandbox:busybox".into(),
            user: "65534:65534".into(),
        }
    }
}

impl Default for DockerOptions {
    fn default() -> Self {
        DockerOptions::new()
    }
}

/// The Docker sandbox.
#[derive(Debug)]
pub struct DockerSandbox {
    docker: Option<Docker>,
    options: DockerOptions,
    availability: Availability,
}

fn io(what: &str, e: impl std::fmt::Display) -> SandboxError {
    SandboxError::Io {
        backend: NAME,
        reason: format!("{what}: {e}"),
    }
}

impl DockerSandbox {
    /// Connects to the engine and checks that the image exists; the availability says
    /// what is missing.
    pub async fn connect(options: DockerOptions) -> DockerSandbox {
        let socket = options.socket.display().to_string();
        // Waiting for a container is one long request: the client's timeout must outlast
        // any run (runs are bounded by their own wall-clock limit).
        let docker = match Docker::connect_with_unix(&socket, 86_400, bollard::API_DEFAULT_VERSION)
        {
            Ok(docker) => docker,
            Err(e) => {
                return DockerSandbox {
                    docker: None,
                    availability: Availability::Unavailable {
                        reason: format!("no Docker engine at `{socket}`: {e}"),
                    },
                    options,
                };
            }
        };
        let version = tokio::time::timeout(Duration::from_secs(10), docker.version())
            .await
            .unwrap_or_else(|_| {
                Err(bollard::errors::Error::IOError {
                    err: std::io::Error::other("no answer within 10 s"),
                })
            });
        let availability = match version {
            Err(e) => Availability::Unavailable {
                reason: format!("the Docker engine at `{socket}` does not answer: {e}"),
            },
            Ok(version) => match docker.inspect_image(&options.image).await {
                Ok(_) => Availability::Ready {
                    notes: vec![format!(
                        "Docker {} at {socket}, image {}",
                        version.version.unwrap_or_default(),
                        options.image
                    )],
                },
                Err(e) => Availability::Unavailable {
                    reason: format!(
                        "the image `{}` is not in the Docker engine ({e}); no registry is contacted: build it (for the tests: `bash scripts/docker_sandbox.sh start`)",
                        options.image
                    ),
                },
            },
        };
        DockerSandbox {
            docker: Some(docker),
            options,
            availability,
        }
    }

    fn engine(&self) -> Result<&Docker, SandboxError> {
        match (&self.availability, &self.docker) {
            (Availability::Ready { .. }, Some(docker)) => Ok(docker),
            (Availability::Unavailable { reason }, _) => Err(SandboxError::Unavailable {
                backend: NAME,
                reason: reason.clone(),
            }),
            (_, None) => Err(SandboxError::Unavailable {
                backend: NAME,
                reason: "not connected".into(),
            }),
        }
    }

    /// The container's configuration for `spec`.
    fn container(&self, spec: &Spec) -> ContainerCreateBody {
        let limits = &spec.limits;
        let mut env: Vec<String> = spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect();
        if !spec.env.contains_key("PATH") {
            env.push(format!("PATH={DEFAULT_PATH}"));
        }
        let tmpfs_options =
            |mode: &str| format!("rw,nosuid,nodev,size={},mode={mode}", limits.tmp_bytes);
        let mut tmpfs = HashMap::from([("/tmp".to_string(), tmpfs_options("1777"))]);
        let mut mounts: Vec<Mount> = spec
            .mounts
            .iter()
            .map(|m| Mount {
                source: Some(m.source.display().to_string()),
                target: Some(m.inside().display().to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(!m.writable),
                ..Mount::default()
            })
            .collect();
        match &spec.workdir {
            Some(workdir) => mounts.push(Mount {
                source: Some(workdir.display().to_string()),
                target: Some(WORKDIR.to_string()),
                typ: Some(MountType::BIND),
                read_only: Some(false),
                ..Mount::default()
            }),
            None => {
                tmpfs.insert(WORKDIR.to_string(), tmpfs_options("1777"));
            }
        }
        let memory = i64::try_from(limits.memory_bytes).unwrap_or(i64::MAX);
        let rlimit = |name: &str, value: u64| {
            let value = i64::try_from(value).unwrap_or(i64::MAX);
            ResourcesUlimits {
                name: Some(name.into()),
                soft: Some(value),
                hard: Some(value),
            }
        };
        let mut ulimits = vec![rlimit("core", 0), rlimit("fsize", limits.file_size_bytes)];
        if limits.cpu_time != Duration::MAX {
            let seconds = limits.cpu_time.as_secs_f64().ceil().max(1.0) as u64;
            ulimits.push(ResourcesUlimits {
                name: Some("cpu".into()),
                soft: Some(seconds as i64),
                hard: Some(seconds as i64 + 1),
            });
        }
        let mut command = vec![spec.program.clone()];
        command.extend(spec.args.iter().cloned());
        ContainerCreateBody {
            image: Some(self.options.image.clone()),
            cmd: Some(command),
            env: Some(env),
            user: Some(self.options.user.clone()),
            working_dir: Some(WORKDIR.into()),
            hostname: Some("mcpguard-sandbox".into()),
            open_stdin: Some(true),
            stdin_once: Some(true),
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            host_config: Some(HostConfig {
                // Docker's `none` keeps a private loopback, so both modes map to it.
                network_mode: Some(match spec.network {
                    Network::None | Network::Loopback | Network::Egress => "none".into(),
                }),
                readonly_rootfs: Some(true),
                cap_drop: Some(vec!["ALL".into()]),
                security_opt: Some(vec!["no-new-privileges".into()]),
                memory: Some(memory),
                memory_swap: Some(memory),
                pids_limit: Some(i64::from(limits.processes)),
                ulimits: Some(ulimits),
                init: Some(true),
                tmpfs: Some(tmpfs),
                mounts: Some(mounts),
                auto_remove: Some(false),
                ..HostConfig::default()
            }),
            ..ContainerCreateBody::default()
        }
    }

    async fn remove(&self, docker: &Docker, id: &str) {
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        if let Err(e) = docker.remove_container(id, Some(options)).await {
            tracing::warn!(container = id, "removing a sandbox container failed: {e}");
        }
    }
}

/// Reads the container's multiplexed output, keeping at most `limit` bytes per stream;
/// returns when the stream ends or one stream passes the limit (`true`).
async fn capture(
    output: &mut (
             impl futures::Stream<Item = Result<bollard::container::LogOutput, bollard::errors::Error>>
             + Unpin
         ),
    limit: u64,
    stdout: &mut Captured,
    stderr: &mut Captured,
) -> bool {
    use bollard::container::LogOutput;
    while let Some(item) = output.next().await {
        let (captured, bytes) = match item {
            Ok(LogOutput::StdOut { message }) | Ok(LogOutput::Console { message }) => {
                (&mut *stdout, message)
            }
            Ok(LogOutput::StdErr { message }) => (&mut *stderr, message),
            Ok(LogOutput::StdIn { .. }) => continue,
            Err(_) => break,
        };
        let room = limit.saturating_sub(captured.bytes.len() as u64) as usize;
        captured
            .bytes
            .extend_from_slice(&bytes[..bytes.len().min(room)]);
        captured.total_bytes += bytes.len() as u64;
        if bytes.len() > room {
            captured.truncated = true;
            return true;
        }
    }
    false
}

#[async_trait]
impl crate::Sandbox for DockerSandbox {
    fn name(&self) -> &'static str {
        NAME
    }

    fn availability(&self) -> &Availability {
        &self.availability
    }

    async fn run(&self, spec: &Spec, stdin: &[u8]) -> Result<Outcome, SandboxError> {
        let docker = self.engine()?;
        crate::refuse_egress(NAME, spec)?;
        if spec.program.is_empty() {
            return Err(SandboxError::Spec("the program is empty".into()));
        }
        let name = format!("mcpguard-sandbox-{}", uuid::Uuid::new_v4().simple());
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = docker
            .create_container(Some(options), self.container(spec))
            .await
            .map_err(|e| io("creating the container", e))?;
        let id = created.id;
        let result = self.run_created(docker, &id, spec, stdin).await;
        self.remove(docker, &id).await;
        result
    }
}

impl DockerSandbox {
    async fn run_created(
        &self,
        docker: &Docker,
        id: &str,
        spec: &Spec,
        stdin: &[u8],
    ) -> Result<Outcome, SandboxError> {
        let attach = AttachContainerOptionsBuilder::default()
            .stdin(true)
            .stdout(true)
            .stderr(true)
            .stream(true)
            .build();
        let mut attached = docker
            .attach_container(id, Some(attach))
            .await
            .map_err(|e| io("attaching to the container", e))?;
        let started = Instant::now();
        if let Err(e) = docker.start_container(id, None).await {
            let message = e.to_string();
            if message.contains("executable file not found") || message.contains("no such file") {
                return Err(SandboxError::Exec(format!(
                    "`{}` was not found in the image `{}` (its PATH: {}): {message}",
                    spec.program,
                    self.options.image,
                    spec.env.get("PATH").map_or(DEFAULT_PATH, String::as_str)
                )));
            }
            return Err(io("starting the container", message));
        }
        let input = stdin.to_vec();
        let mut writer = attached.input;
        tokio::spawn(async move {
            let _ = writer.write_all(&input).await;
            let _ = writer.shutdown().await;
        });
        let (mut stdout, mut stderr) = (Captured::default(), Captured::default());
        let wall = spec.limits.wall_time.min(Duration::from_secs(86400 * 365));
        let killed = match tokio::time::timeout(
            wall,
            capture(
                &mut attached.output,
                spec.limits.output_bytes,
                &mut stdout,
                &mut stderr,
            ),
        )
        .await
        {
            Ok(false) => None,
            Ok(true) => Some(Stop::Output),
            Err(_) => Some(Stop::WallTime),
        };
        // Keep draining the output (discarded): the engine finishes a container only once
        // its streams are read to the end.
        let mut output = attached.output;
        tokio::spawn(async move { while output.next().await.is_some() {} });
        if killed.is_some() {
            let options = KillContainerOptionsBuilder::default()
                .signal("SIGKILL")
                .build();
            let _ = docker.kill_container(id, Some(options)).await;
        }
        let mut wait = docker.wait_container(id, None);
        let code = match wait.next().await {
            Some(Ok(response)) => response.status_code,
            // A non-zero exit arrives as an error that carries the code.
            Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => code,
            Some(Err(e)) => return Err(io("waiting for the container", e)),
            None => return Err(io("waiting for the container", "no answer")),
        };
        let wall = started.elapsed();
        let state = docker
            .inspect_container(id, None)
            .await
            .map_err(|e| io("inspecting the container", e))?
            .state;
        let oom_killed = state.as_ref().and_then(|s| s.oom_killed).unwrap_or(false);
        let code = i32::try_from(code).unwrap_or(i32::MAX);
        // The init reports a program killed by signal N as 128 + N.
        let exit = if killed.is_some() || oom_killed {
            Exit::Signal(libc::SIGKILL)
        } else if (129..=128 + 64).contains(&code) {
            Exit::Signal(code - 128)
        } else {
            Exit::Code(code)
        };
        let stopped = match killed {
            Some(stop) => stop,
            None if oom_killed => Stop::Memory,
            None if exit == Exit::Signal(libc::SIGXCPU) => Stop::CpuTime,
            None => Stop::Exited,
        };
        // The image's init could not start the program: say so as the native backend does.
        let text = String::from_utf8_lossy(&stderr.bytes);
        if exit == Exit::Code(127) && text.starts_with("[FATAL tini") && text.contains("exec ") {
            return Err(SandboxError::Exec(format!(
                "`{}` was not found in the image `{}` (PATH: {}): {}",
                spec.program,
                self.options.image,
                spec.env.get("PATH").map_or(DEFAULT_PATH, String::as_str),
                text.trim()
            )));
        }
        Ok(Outcome {
            exit,
            stopped,
            stdout,
            stderr,
            usage: Usage {
                wall,
                ..Usage::default()
            },
        })
    }
}
