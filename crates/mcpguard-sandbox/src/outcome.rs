//! What a sandboxed run left behind: how it ended, why, its output and what it used.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The result of one sandboxed run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Outcome {
    /// How the program ended.
    pub exit: Exit,
    /// Why it stopped.
    pub stopped: Stop,
    /// Its standard output (up to the output limit).
    pub stdout: Captured,
    /// Its standard error (up to the output limit).
    pub stderr: Captured,
    /// What it used.
    pub usage: Usage,
}

impl Outcome {
    /// True when the program ran to its end on its own and exited with status 0.
    pub fn success(&self) -> bool {
        self.stopped == Stop::Exited && self.exit == Exit::Code(0)
    }
}

/// How the program ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Exit {
    /// It exited with this status.
    Code(i32),
    /// A signal ended it.
    Signal(i32),
}

impl From<std::process::ExitStatus> for Exit {
    /// A status from `wait`: its exit code, or the signal that ended it.
    fn from(status: std::process::ExitStatus) -> Exit {
        use std::os::unix::process::ExitStatusExt;
        match (status.code(), status.signal()) {
            (Some(code), _) => Exit::Code(code),
            (None, Some(signal)) => Exit::Signal(signal),
            (None, None) => Exit::Signal(libc::SIGKILL),
        }
    }
}

impl std::fmt::Display for Exit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Exit::Code(code) => write!(f, "exit status {code}"),
            Exit::Signal(signal) => write!(f, "signal {signal}"),
        }
    }
}

/// Why a run stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Stop {
    /// The program ended on its own (whatever its status).
    Exited,
    /// The wall-clock limit was reached; the sandbox was killed.
    WallTime,
    /// The CPU-time limit was reached.
    CpuTime,
    /// The memory limit was reached and the kernel killed the program.
    Memory,
    /// It wrote more than the output limit; the sandbox was killed.
    Output,
}

impl Stop {
    /// The name used in audit events and tool results.
    pub fn as_str(self) -> &'static str {
        match self {
            Stop::Exited => "exited",
            Stop::WallTime => "wall_time",
            Stop::CpuTime => "cpu_time",
            Stop::Memory => "memory",
            Stop::Output => "output",
        }
    }
}

/// One captured output stream.
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
pub struct Captured {
    /// The bytes kept (at most the output limit).
    #[serde(skip)]
    pub bytes: Vec<u8>,
    /// How many bytes the program wrote in all (as far as the sandbox read).
    pub total_bytes: u64,
    /// Bytes were dropped.
    pub truncated: bool,
}

/// The marker appended to text output that was cut.
pub const TRUNCATION_MARKER: &str = "\n[mcpguard: output truncated]\n";

impl std::fmt::Debug for Captured {
    /// The length and the first 200 bytes, not gigabytes of output.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let head = String::from_utf8_lossy(&self.bytes[..self.bytes.len().min(200)]);
        f.debug_struct("Captured")
            .field("len", &self.bytes.len())
            .field("total_bytes", &self.total_bytes)
            .field("truncated", &self.truncated)
            .field("head", &head)
            .finish()
    }
}

impl Captured {
    /// The output as text (lossy UTF-8), with [`TRUNCATION_MARKER`] when it was cut.
    pub fn text(&self) -> String {
        let mut text = String::from_utf8_lossy(&self.bytes).into_owned();
        if self.truncated {
            text.push_str(TRUNCATION_MARKER);
        }
        text
    }
}

/// What a run used. Backends fill what they can measure.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Usage {
    /// Wall-clock time from start to end.
    pub wall: Duration,
    /// CPU time (user + system) of everything in the sandbox.
    pub cpu: Option<Duration>,
    /// The most memory used at once, in bytes.
    pub memory_peak_bytes: Option<u64>,
    /// A process could not be created because of the process limit.
    pub process_limit_hit: bool,
    /// The connections it asked the egress proxy for (with `network: egress`).
    pub egress: Vec<crate::egress::EgressAttempt>,
}
