//! Sandboxes for MCPGuard: run a program (an MCP server for its whole life, or one piece
//! of code an agent asked to run) where it cannot read the host's secrets, write outside
//! its work directory, reach the network unless allowed, or exhaust the machine.
//!
//! One [`Sandbox`] trait, several backends:
//! - [`native`]: Linux namespaces (user, mount, PID, network, IPC, UTS, cgroup), a minimal
//!   root of read-only bind mounts, Landlock, a seccomp filter, cgroup (v1 or v2) limits
//!   and rlimits. It needs a helper process: the `mcpguard` binary re-executed with
//!   [`native::HELPER_ARG`] (or the `mcpguard-sandbox-helper` binary of this crate), which
//!   calls [`native::helper_main`].
//!
//! Every backend passes the same containment suite (`tests/containment.rs`).

pub mod docker;
pub mod egress;
pub mod firecracker;
pub mod microsandbox;
pub mod native;
mod outcome;
pub mod probe;
mod spec;
mod supervise;
pub mod vm;
#[cfg(feature = "wasm")]
pub mod wasm;

pub use outcome::{Captured, Exit, Outcome, Stop, TRUNCATION_MARKER, Usage};
pub use spec::{Limits, Mount, Network, Spec, WORKDIR};

use async_trait::async_trait;

/// Why a sandbox could not run something. A program that ran and failed is not an error:
/// that is an [`Outcome`].
#[derive(Debug, thiserror::Error)]
pub enum SandboxError {
    /// The backend cannot run on this machine (the reason says why and what would fix it).
    #[error("the {backend} sandbox is unavailable: {reason}")]
    Unavailable {
        /// The backend's name.
        backend: &'static str,
        /// Why, and how to fix it.
        reason: String,
    },
    /// The request asks for something this backend cannot do.
    #[error("the {backend} sandbox cannot do this: {what}")]
    Unsupported {
        /// The backend's name.
        backend: &'static str,
        /// What was asked.
        what: String,
    },
    /// The spec is wrong (a missing mount source, a relative target...).
    #[error("bad sandbox spec: {0}")]
    Spec(String),
    /// Setting the sandbox up failed before the program started.
    #[error("setting up the {backend} sandbox failed: {reason}")]
    Setup {
        /// The backend's name.
        backend: &'static str,
        /// What failed.
        reason: String,
    },
    /// The program could not be started inside the sandbox (not found, not executable).
    #[error("{0}")]
    Exec(String),
    /// Talking to the sandbox (its process, socket or engine) failed.
    #[error("the {backend} sandbox failed: {reason}")]
    Io {
        /// The backend's name.
        backend: &'static str,
        /// What failed.
        reason: String,
    },
}

/// Whether a backend can run here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    /// It can run; the notes say what is weaker than the full design on this machine
    /// (e.g. "cgroups unavailable: memory limited per process by RLIMIT_AS").
    Ready {
        /// What is degraded, if anything.
        notes: Vec<String>,
    },
    /// It cannot run; why, and what would fix it.
    Unavailable {
        /// The reason.
        reason: String,
    },
}

impl Availability {
    /// `Ok` when the backend can run; otherwise the reason, as the error a run returns.
    pub fn require(&self, backend: &'static str) -> Result<(), SandboxError> {
        match self {
            Availability::Ready { .. } => Ok(()),
            Availability::Unavailable { reason } => Err(SandboxError::Unavailable {
                backend,
                reason: reason.clone(),
            }),
        }
    }
}

/// Refuses [`Network::Egress`] for backends that have no way to reach the gateway's
/// egress proxy.
pub fn refuse_egress(backend: &'static str, spec: &Spec) -> Result<(), SandboxError> {
    if spec.network == Network::Egress {
        return Err(SandboxError::Unsupported {
            backend,
            what: "network egress through the gateway (only the native backend has it; use `network: none` or `loopback` here)".into(),
        });
    }
    Ok(())
}

/// A sandbox backend.
#[async_trait]
pub trait Sandbox: Send + Sync {
    /// The backend's name (`native`, `wasm`, `docker`, `firecracker`, `microsandbox`).
    fn name(&self) -> &'static str;

    /// Whether it can run here, found when it was created.
    fn availability(&self) -> &Availability;

    /// Runs `spec` to its end (or its limits), with `stdin` as its standard input.
    async fn run(&self, spec: &Spec, stdin: &[u8]) -> Result<Outcome, SandboxError>;

    /// A command that starts `spec` confined, with its standard streams left for the
    /// caller to pipe: for long-lived stdio servers. Limits apply except wall time, CPU
    /// time and output size.
    fn confine(&self, spec: &Spec) -> Result<tokio::process::Command, SandboxError> {
        let _ = spec;
        Err(SandboxError::Unsupported {
            backend: self.name(),
            what: "running a long-lived stdio server".into(),
        })
    }
}
