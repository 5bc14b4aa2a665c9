//! What the gateway tells the helper process (one JSON object in an environment
//! variable) and what the helper reports back (JSON lines on file descriptor 3).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::Network;

/// The environment variable that carries the [`HelperSpec`].
pub const SPEC_ENV: &str = "MCPGUARD_SANDBOX_SPEC";

/// The file descriptor the helper writes its [`Report`] lines to, when asked to.
pub const REPORT_FD: i32 = 3;

/// Everything the helper needs, resolved by the gateway.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HelperSpec {
    /// Program (path inside, or a name looked up on `PATH`).
    pub program: String,
    /// argv[1..].
    pub args: Vec<String>,
    /// The whole environment.
    pub env: Vec<(String, String)>,
    /// Host directory shown read-write at `/work`; `None`: a private tmpfs.
    pub workdir: Option<PathBuf>,
    /// Host paths shown inside (system directories first, then the spec's).
    pub mounts: Vec<MountPlan>,
    /// Network mode.
    pub network: Network,
    /// Limits the helper applies (wall time and output are the gateway's).
    pub limits: HelperLimits,
    /// cgroup directories to create and join, with their settings.
    pub cgroups: Vec<CgroupDir>,
    /// The host user and group the sandbox's root maps to.
    pub host_ids: (u32, u32),
    /// Write [`Report`] lines to [`REPORT_FD`].
    pub report: bool,
}

/// A host path to show inside.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MountPlan {
    /// The host path.
    pub source: PathBuf,
    /// The path inside (absolute).
    pub target: PathBuf,
    /// Read-write.
    pub writable: bool,
    /// Skip it silently when the host path does not exist (system directories).
    pub optional: bool,
}

/// Limits enforced inside the sandbox.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct HelperLimits {
    /// RLIMIT_CPU in seconds (`None`: unlimited).
    pub cpu_seconds: Option<u64>,
    /// RLIMIT_AS in bytes, used only when no memory cgroup is available.
    pub address_space_bytes: Option<u64>,
    /// RLIMIT_NPROC (counted per user namespace).
    pub processes: u64,
    /// RLIMIT_FSIZE in bytes.
    pub file_size_bytes: u64,
    /// Size of the private `/tmp` and work directory.
    pub tmp_bytes: u64,
    /// The init process kills everything after this many seconds, even if the gateway
    /// has gone (`None`: never).
    pub backstop_seconds: Option<u64>,
}

/// One cgroup directory: created, given its settings, joined, and removed at the end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CgroupDir {
    /// The directory to create.
    pub path: PathBuf,
    /// `(file, value)` pairs written after creation.
    pub settings: Vec<(String, String)>,
    /// The cgroup version of this directory's hierarchy.
    pub version: u8,
}

/// One line the helper (or the sandbox's init) reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Report {
    /// Setting up failed before the program ran.
    SetupError(String),
    /// The program could not be executed (not found, not executable).
    ExecError(String),
    /// How the program ended.
    Exit {
        /// Exit status, when it exited.
        code: Option<i32>,
        /// Signal, when one ended it.
        signal: Option<i32>,
    },
    /// The init process's own wall-clock backstop fired.
    Backstop,
    /// What everything in the sandbox used.
    Usage {
        /// User + system CPU time in microseconds.
        cpu_micros: u64,
        /// Peak memory of the cgroup, or the largest resident set.
        memory_peak_bytes: Option<u64>,
        /// The kernel's OOM killer fired in the sandbox's cgroup.
        oom_killed: bool,
        /// A fork failed because of the process limit.
        process_limit_hit: bool,
    },
}
