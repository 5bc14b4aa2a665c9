//! What a sandbox runs and how it is confined: the program, its environment, what it may
//! see of the host, its network and its limits.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One program to run confined.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Spec {
    /// The program: a path inside the sandbox (`/usr/bin/python3`) or a name looked up on
    /// the sandbox's `PATH`.
    pub program: String,
    /// Its arguments (without the program name).
    pub args: Vec<String>,
    /// Its whole environment: nothing of the host's is inherited.
    pub env: BTreeMap<String, String>,
    /// A host directory mounted read-write at [`WORKDIR`] inside, the program's working
    /// directory. Absent: an empty private directory that disappears with the run.
    pub workdir: Option<PathBuf>,
    /// More host paths to show inside, beside the system directories every sandbox sees.
    pub mounts: Vec<Mount>,
    /// What the program may reach over the network.
    pub network: Network,
    /// With [`Network::Egress`]: the destinations the gateway's proxy may open.
    #[serde(default)]
    pub egress: crate::egress::EgressPolicy,
    /// How much it may use.
    pub limits: Limits,
}

/// Where the work directory appears inside every sandbox.
pub const WORKDIR: &str = "/work";

/// A host path shown inside the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Mount {
    /// The host path (a directory or a file).
    pub source: PathBuf,
    /// Where it appears inside; absent: at the same path as on the host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target: Option<PathBuf>,
    /// Read-write instead of read-only.
    #[serde(default)]
    pub writable: bool,
}

impl Mount {
    /// A read-only mount of `source` at the same path inside.
    pub fn read_only(source: impl Into<PathBuf>) -> Self {
        Mount {
            source: source.into(),
            target: None,
            writable: false,
        }
    }

    /// The path inside the sandbox.
    pub fn inside(&self) -> PathBuf {
        self.target.clone().unwrap_or_else(|| self.source.clone())
    }
}

/// Network access.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Network {
    /// No network at all, not even loopback.
    #[default]
    None,
    /// A private loopback interface: processes inside may talk to each other; nothing of
    /// the host's network (its loopback included) is reachable.
    Loopback,
    /// A private loopback interface and, on it, a proxy (`127.0.0.1:3128`, in the
    /// `HTTPS_PROXY` family of variables) to the gateway, which opens tunnels only to the
    /// destinations of [`Spec::egress`].
    Egress,
}

impl Network {
    /// The name used in config and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            Network::None => "none",
            Network::Loopback => "loopback",
            Network::Egress => "egress",
        }
    }
}

/// Resource limits. `None` means the backend's default ([`Limits::default`] holds the
/// defaults every backend applies); there is no "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Limits {
    /// Wall-clock time before the whole sandbox is killed.
    pub wall_time: Duration,
    /// CPU time (user + system) of the program.
    pub cpu_time: Duration,
    /// Memory of everything in the sandbox together, in bytes.
    pub memory_bytes: u64,
    /// Processes (and threads) alive at once.
    pub processes: u32,
    /// Bytes kept of stdout and of stderr each; more stops the run.
    pub output_bytes: u64,
    /// The largest file the program may write, in bytes.
    pub file_size_bytes: u64,
    /// Size of the private `/tmp` (and of the private work directory), in bytes.
    pub tmp_bytes: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            wall_time: Duration::from_secs(30),
            cpu_time: Duration::from_secs(30),
            memory_bytes: 512 << 20,
            processes: 64,
            output_bytes: 1 << 20,
            file_size_bytes: 64 << 20,
            tmp_bytes: 64 << 20,
        }
    }
}

impl Limits {
    /// Limits for a long-lived confined server: no wall-clock or CPU-time limit (the
    /// server lives as long as the gateway) and no output cap (its stdout is the MCP
    /// stream), the rest as given.
    pub fn for_server(self) -> Self {
        Limits {
            wall_time: Duration::MAX,
            cpu_time: Duration::MAX,
            output_bytes: u64::MAX,
            ..self
        }
    }
}
