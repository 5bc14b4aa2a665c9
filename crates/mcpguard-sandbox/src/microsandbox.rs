//! The microsandbox backend: microVMs (libkrun) driven through microsandbox's own CLI,
//! `msb` (PyPI `microsandbox` ships it). Each run creates a sandbox
//! (`msb create IMAGE --name ... --no-net --memory ... --tmpfs ...`), runs the program in
//! it (`msb exec NAME --no-tty --rlimit ... --timeout ... -- PROGRAM ARGS`, stdin piped),
//! and removes it (`msb remove --force NAME`). `msb doctor` says at start whether this
//! machine can run microVMs.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use async_trait::async_trait;

use crate::probe::on_path;
use crate::supervise::supervise;
use crate::{Availability, Exit, Network, Outcome, Sandbox, SandboxError, Spec, Stop, Usage};

const NAME: &str = "microsandbox";

/// How the microsandbox backend runs.
#[derive(Debug, Clone, PartialEq)]
pub struct MicrosandboxOptions {
    /// The `msb` program (a name is looked up on `PATH`).
    pub msb: PathBuf,
    /// The image each sandbox starts from: an OCI reference (`python`, `alpine`) that
    /// `msb` pulls or has loaded (`msb load`), or a local root filesystem directory.
    pub image: String,
    /// microsandbox's state directory (`MSB_HOME`); `None` keeps its default.
    pub home: Option<PathBuf>,
    /// vCPUs per sandbox.
    pub cpus: u8,
    /// The guest user programs run as (`None`: the image's default).
    pub user: Option<String>,
    /// Skip `msb doctor` (it refuses machines without hardware virtualisation).
    pub skip_doctor: bool,
    /// How long creating a sandbox may take (an image pull included).
    pub create_timeout: Duration,
}

impl Default for MicrosandboxOptions {
    fn default() -> Self {
        MicrosandboxOptions {
            msb: "msb".into(),
            image: "python".into(),
            home: None,
            cpus: 1,
            user: None,
            skip_doctor: false,
            create_timeout: Duration::from_secs(120),
        }
    }
}

/// Runs code in microsandbox microVMs.
pub struct MicrosandboxSandbox {
    options: MicrosandboxOptions,
    msb: Option<PathBuf>,
    availability: Availability,
}

fn setup(reason: impl Into<String>) -> SandboxError {
    SandboxError::Setup {
        backend: NAME,
        reason: reason.into(),
    }
}

/// What `msb` said, cut to the lines that matter (errors and their hints).
fn summary(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let mut lines = Vec::new();
    let mut in_error = false;
    for line in text.lines().map(str::trim) {
        if line.starts_with("error") || line.starts_with("ERROR") {
            in_error = true;
        } else if !line.starts_with('→') {
            in_error = false;
        }
        if in_error {
            lines.push(line);
        }
    }
    if lines.is_empty() {
        text.trim()
            .lines()
            .last()
            .unwrap_or("no output")
            .to_string()
    } else {
        lines.join(" ")
    }
}

impl MicrosandboxSandbox {
    /// The backend; runs `msb doctor` (unless skipped) to find out whether it can run.
    pub fn new(options: MicrosandboxOptions) -> MicrosandboxSandbox {
        let msb = if options.msb.components().count() > 1 {
            options.msb.is_file().then(|| options.msb.clone())
        } else {
            on_path(&options.msb.to_string_lossy())
        };
        let availability = match &msb {
            None => Availability::Unavailable {
                reason: format!(
                    "no `{}` program (pip install microsandbox, or set sandbox.microsandbox.msb)",
                    options.msb.display()
                ),
            },
            Some(_) if options.skip_doctor => Availability::Ready {
                notes: vec!["`msb doctor` skipped (skip_doctor: true)".into()],
            },
            Some(path) => doctor(path, options.home.as_deref()),
        };
        MicrosandboxSandbox {
            options,
            msb,
            availability,
        }
    }

    fn command(&self) -> Result<tokio::process::Command, SandboxError> {
        let msb = self.msb.as_ref().ok_or_else(|| setup("no msb program"))?;
        let mut command = tokio::process::Command::new(msb);
        if let Some(home) = &self.options.home {
            command.env("MSB_HOME", home);
        }
        command.kill_on_drop(true);
        Ok(command)
    }

    /// `msb create` arguments for `spec`.
    pub fn create_args(&self, name: &str, spec: &Spec) -> Vec<String> {
        let limits = &spec.limits;
        let mib = |bytes: u64| bytes.div_ceil(1 << 20).max(1);
        let mut args = vec![
            "create".to_string(),
            self.options.image.clone(),
            "--name".into(),
            name.into(),
            "--quiet".into(),
            "--cpus".into(),
            self.options.cpus.max(1).to_string(),
            "--memory".into(),
            format!("{}M", mib(limits.memory_bytes)),
            // The VM goes away even if the gateway dies mid-run.
            "--max-duration".into(),
            format!("{}s", limits.wall_time.as_secs() + 60),
            "--tmpfs".into(),
            format!("/tmp:{}M", mib(limits.tmp_bytes)),
            "--tmpfs".into(),
            format!("{}:{}M", crate::WORKDIR, mib(limits.tmp_bytes)),
            "--security".into(),
            "restricted".into(),
        ];
        // The guest keeps its own loopback either way; nothing leaves the VM.
        match spec.network {
            Network::None | Network::Loopback | Network::Egress => args.push("--no-net".into()),
        }
        for mount in &spec.mounts {
            let mut value = format!("{}:{}", mount.source.display(), mount.inside().display());
            if !mount.writable {
                value.push_str(":ro");
            }
            args.push("--mount-dir".into());
            args.push(value);
        }
        args
    }

    /// `msb exec` arguments for `spec`.
    pub fn exec_args(&self, name: &str, spec: &Spec) -> Vec<String> {
        let limits = &spec.limits;
        let cpu = limits.cpu_time.as_secs().max(1);
        let mut args = vec![
            "exec".to_string(),
            name.into(),
            "--no-tty".into(),
            "--quiet".into(),
            "--workdir".into(),
            spec.workdir
                .as_ref()
                .map_or(crate::WORKDIR.to_string(), |w| w.display().to_string()),
            "--timeout".into(),
            format!("{}s", limits.wall_time.as_secs().max(1)),
            "--rlimit".into(),
            format!("nproc={}", limits.processes),
            "--rlimit".into(),
            format!("fsize={}", limits.file_size_bytes),
            "--rlimit".into(),
            format!("cpu={cpu}"),
            "--rlimit".into(),
            "core=0".into(),
        ];
        if let Some(user) = &self.options.user {
            args.push("--user".into());
            args.push(user.clone());
        }
        for (key, value) in &spec.env {
            args.push("--env".into());
            args.push(format!("{key}={value}"));
        }
        args.push("--".into());
        args.push(spec.program.clone());
        args.extend(spec.args.iter().cloned());
        args
    }

    async fn create(&self, name: &str, spec: &Spec) -> Result<(), SandboxError> {
        let mut command = self.command()?;
        command
            .args(self.create_args(name, spec))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let output = tokio::time::timeout(self.options.create_timeout, command.output())
            .await
            .map_err(|_| {
                setup(format!(
                    "`msb create` did not finish within {:?}",
                    self.options.create_timeout
                ))
            })?
            .map_err(|e| setup(format!("starting msb: {e}")))?;
        if output.status.success() {
            return Ok(());
        }
        let mut reason = format!(
            "`msb create` failed ({}): {}",
            output.status,
            summary(&[output.stdout, output.stderr].concat())
        );
        // The VM's own log says why it did not start (e.g. KVM_EXIT_INTERNAL_ERROR).
        if let Ok(mut logs) = self.command() {
            logs.args(["logs", "--source", "system", name])
                .stdin(Stdio::null());
            if let Ok(Ok(logs)) = tokio::time::timeout(Duration::from_secs(10), logs.output()).await
            {
                let text = summary(&logs.stdout);
                if !text.is_empty() && text != "no output" {
                    reason.push_str("; VM log: ");
                    reason.push_str(&text);
                }
            }
        }
        Err(setup(reason))
    }

    async fn remove(&self, name: &str) {
        if let Ok(mut command) = self.command() {
            command
                .args(["remove", "--force", "--quiet", name])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            let _ = tokio::time::timeout(Duration::from_secs(30), command.status()).await;
        }
    }
}

/// Runs `msb doctor`: ready when it passes, otherwise its reasons.
fn doctor(msb: &Path, home: Option<&Path>) -> Availability {
    let mut command = std::process::Command::new(msb);
    command.arg("doctor").stdin(Stdio::null());
    if let Some(home) = home {
        command.env("MSB_HOME", home);
    }
    match command.output() {
        Ok(output) if output.status.success() => Availability::Ready { notes: Vec::new() },
        Ok(output) => Availability::Unavailable {
            reason: format!(
                "`msb doctor` failed: {}",
                summary(&[output.stdout, output.stderr].concat())
            ),
        },
        Err(e) => Availability::Unavailable {
            reason: format!("running `{} doctor`: {e}", msb.display()),
        },
    }
}

#[async_trait]
impl Sandbox for MicrosandboxSandbox {
    fn name(&self) -> &'static str {
        NAME
    }

    fn availability(&self) -> &Availability {
        &self.availability
    }

    async fn run(&self, spec: &Spec, stdin: &[u8]) -> Result<Outcome, SandboxError> {
        self.availability.require(NAME)?;
        crate::refuse_egress(NAME, spec)?;
        let name = format!("mcpguard-{}", uuid::Uuid::new_v4().simple());
        let started = Instant::now();
        let created = self.create(&name, spec).await;
        if let Err(e) = created {
            self.remove(&name).await;
            return Err(e);
        }
        let mut command = self.command()?;
        command
            .args(self.exec_args(&name, spec))
            .process_group(0)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                self.remove(&name).await;
                return Err(setup(format!("starting msb exec: {e}")));
            }
        };
        // The wall clock counts from the program's start, not the VM's boot.
        let finished = supervise(
            child,
            stdin,
            spec.limits.wall_time,
            spec.limits.output_bytes,
            Instant::now(),
        )
        .await;
        self.remove(&name).await;
        let finished = finished.map_err(|e| SandboxError::Io {
            backend: NAME,
            reason: format!("waiting for msb exec: {e}"),
        })?;
        let exit = Exit::from(finished.status);
        Ok(Outcome {
            exit,
            stopped: finished.killed.unwrap_or(Stop::Exited),
            stdout: finished.stdout,
            stderr: finished.stderr,
            usage: Usage {
                wall: started.elapsed(),
                ..Usage::default()
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Limits, Mount};

    #[test]
    fn the_command_lines_carry_the_limits() {
        let sandbox = MicrosandboxSandbox::new(MicrosandboxOptions {
            msb: "/nonexistent/msb".into(),
            image: "./rootfs".into(),
            user: Some("nobody".into()),
            ..MicrosandboxOptions::default()
        });
        assert!(matches!(
            sandbox.availability(),
            Availability::Unavailable { reason } if reason.contains("pip install microsandbox")
        ));
        let spec = Spec {
            program: "python3".into(),
            args: vec!["-c".into(), "print(1)".into()],
            env: [("LANG".to_string(), "C.UTF-8".to_string())].into(),
            mounts: vec![Mount::read_only("/srv/data")],
            limits: Limits {
                memory_bytes: 200 << 20,
                wall_time: Duration::from_secs(30),
                ..Limits::default()
            },
            ..Spec::default()
        };
        let create = sandbox.create_args("mcpguard-x", &spec).join(" ");
        assert!(
            create.starts_with("create ./rootfs --name mcpguard-x --quiet --cpus 1 --memory 200M --max-duration 90s"),
            "{create}"
        );
        assert!(create.contains("--no-net"), "{create}");
        assert!(
            create.contains("--mount-dir /srv/data:/srv/data:ro"),
            "{create}"
        );
        let exec = sandbox.exec_args("mcpguard-x", &spec).join(" ");
        assert!(
            exec.starts_with("exec mcpguard-x --no-tty --quiet --workdir /work --timeout 30s"),
            "{exec}"
        );
        assert!(
            exec.contains("--user nobody --env LANG=C.UTF-8 -- python3 -c print(1)"),
            "{exec}"
        );
    }

    #[test]
    fn msb_output_is_cut_to_its_reasons() {
        let text = "  • Platform  Linux\n  ! clone  slow\n  → use a reflink-capable filesystem\n  ✗ CPU virt  not found\nerror: CPU virtualization is not available\n  → no vmx (Intel) or svm (AMD) flag in /proc/cpuinfo\n";
        assert_eq!(
            summary(text.as_bytes()),
            "error: CPU virtualization is not available → no vmx (Intel) or svm (AMD) flag in /proc/cpuinfo"
        );
    }
}
