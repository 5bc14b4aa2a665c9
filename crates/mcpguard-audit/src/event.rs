//! The audit event: one per call the gateway sees, schema version [`SCHEMA_VERSION`].
//!
//! Stored records leave out empty fields (an absent field means `null` or `[]`) to keep the
//! log small; the exports (CSV, CEF, OCSF) always carry every column. Values are never recorded: findings carry a detector, a location
//! and a keyed digest; arguments and results carry SHA-256 digests of their RFC 8785
//! canonical form.

use serde::{Deserialize, Serialize};

/// The version of the event schema; bumped on any incompatible change.
pub const SCHEMA_VERSION: u32 = 1;

/// What became of a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Forwarded (or answered) and the answer returned to the agent.
    #[default]
    Allowed,
    /// Refused by policy, or because the gateway could not judge it.
    Denied,
    /// Waiting for the user's approval (the question went back to the agent).
    ApprovalRequested,
    /// Run in a sandbox instead of the upstream.
    Sandboxed,
    /// Refused by a rate limit.
    RateLimited,
    /// Refused because the caller could not be authenticated.
    Unauthenticated,
    /// The upstream could not be reached, timed out, or broke the protocol.
    UpstreamFailure,
    /// The upstream answered with an error.
    Error,
    /// A notification: nothing to answer.
    Notified,
}

impl Outcome {
    /// The snake_case name, as written in the event.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Allowed => "allowed",
            Outcome::Denied => "denied",
            Outcome::ApprovalRequested => "approval_requested",
            Outcome::Sandboxed => "sandboxed",
            Outcome::RateLimited => "rate_limited",
            Outcome::Unauthenticated => "unauthenticated",
            Outcome::UpstreamFailure => "upstream_failure",
            Outcome::Error => "error",
            Outcome::Notified => "notified",
        }
    }

    /// Reads a name written by [`Outcome::as_str`].
    pub fn parse(s: &str) -> Option<Outcome> {
        ALL_OUTCOMES.iter().copied().find(|o| o.as_str() == s)
    }
}

/// Every outcome, for help texts and parsing.
pub const ALL_OUTCOMES: [Outcome; 9] = [
    Outcome::Allowed,
    Outcome::Denied,
    Outcome::ApprovalRequested,
    Outcome::Sandboxed,
    Outcome::RateLimited,
    Outcome::Unauthenticated,
    Outcome::UpstreamFailure,
    Outcome::Error,
    Outcome::Notified,
];

/// The policy's decision on a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct DecisionRecord {
    /// The terminal action (`allow`, `deny`, `sandbox`, `require_approval`).
    pub action: String,
    /// The deciding rule, or null for the default action.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rule: Option<String>,
    /// OWASP Agentic (ASI01..ASI10) ids of the deciding rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owasp_asi: Vec<String>,
    /// OWASP MCP Top 10 ids of the deciding rule.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub owasp_mcp: Vec<String>,
    /// Why, in words.
    pub reason: String,
    /// Modifiers that applied (`audit:<rule>`, `warn:<rule>`, `redact:<rule>`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub modifiers: Vec<String>,
}

/// One sensitive value found, without the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FindingRecord {
    /// The finding's type (`aws_access_key`, `email`, ...).
    pub kind: String,
    /// The detector that found it.
    pub detector: String,
    /// Where: a JSON pointer, with a character range when inside a string.
    pub location: String,
    /// Through which encoding it was read (`base64`, ...), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<String>,
    /// A keyed digest of the value (the gateway's key; never the value).
    pub digest: String,
}

/// A value that flowed into this call from an earlier tool's output.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct FlowRecord {
    /// The value's type.
    pub kind: String,
    /// Where it is in this call's arguments.
    pub location: String,
    /// The upstream whose output held it.
    pub source_server: String,
    /// The tool whose output held it.
    pub source_tool: String,
    /// The call (within its session) that produced it.
    pub source_call: String,
}

/// One call, as the audit log records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AuditEvent {
    /// A unique id (UUID v7, time-ordered).
    pub event_id: String,
    /// When the gateway received the call, RFC 3339 UTC with microseconds.
    pub time: String,
    /// The same instant, microseconds since the Unix epoch.
    pub time_unix_us: i64,
    /// The agent session (handshake era), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session: Option<String>,
    /// The authenticated identity, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The identity's roles.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roles: Vec<String>,
    /// The agent's `clientInfo` name and version, if it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
    /// The agent's network address, if it came over the network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_address: Option<String>,
    /// The protocol era of the call (`handshake` or `2026-07-28`).
    pub era: String,
    /// The upstream that served (or would have served) the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub upstream: Option<String>,
    /// The JSON-RPC method.
    pub method: String,
    /// The tool or prompt name, or the resource URI, as the agent wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tool: Option<String>,
    /// The JSON-RPC id as the agent sent it (JSON text), if a request.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
    /// What became of the call.
    pub outcome: Outcome,
    /// The policy's decision, when the call was judged.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decision: Option<DecisionRecord>,
    /// Labels the call carried (finding types, `flow:<tool>`, `untrusted`, ...).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub labels: Vec<String>,
    /// Sensitive values in the arguments.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub findings: Vec<FindingRecord>,
    /// Values that flowed in from earlier outputs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub flows: Vec<FlowRecord>,
    /// Sensitive values in the result.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub result_findings: Vec<FindingRecord>,
    /// `sha256:<hex>` of the RFC 8785 canonical arguments (or params).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arguments_digest: Option<String>,
    /// `sha256:<hex>` of the RFC 8785 canonical result or error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result_digest: Option<String>,
    /// The JSON-RPC error code of the answer, if it was an error.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_code: Option<i64>,
    /// Microseconds from receiving the call to recording it.
    pub latency_us: u64,
    /// The pipeline plugin that answered instead of the upstream, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answered_by: Option<String>,
    /// The signed execution envelope of the call, when one was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub envelope_id: Option<String>,
    /// The sandboxed run that answered the call, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox: Option<SandboxRecord>,
}

/// How a sandboxed run went (never its output: that is in the result digest).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SandboxRecord {
    /// The backend (`native`, ...).
    pub backend: String,
    /// The profile.
    pub profile: String,
    /// The language of the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub language: Option<String>,
    /// Why it stopped: `exited`, `wall_time`, `cpu_time`, `memory`, `output`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped: Option<String>,
    /// Its exit status, when it exited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    /// The signal that ended it, when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    /// Wall-clock time in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub wall_us: Option<u64>,
    /// CPU time in microseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu_us: Option<u64>,
    /// Peak memory in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_peak_bytes: Option<u64>,
    /// A process could not start because of the process limit.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub process_limit_hit: bool,
    /// Why it could not run, when it did not.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The connections it asked the egress proxy for (`network: egress`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub egress: Vec<EgressRecord>,
}

/// One connection a sandboxed run asked for: where, and whether the proxy opened it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct EgressRecord {
    /// The host it named.
    pub host: String,
    /// The port.
    pub port: u16,
    /// Whether the tunnel was opened.
    pub allowed: bool,
    /// Why not, when it was refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl AuditEvent {
    /// The decision's action, or `allow` for calls that policy does not judge.
    pub fn action(&self) -> &str {
        self.decision
            .as_ref()
            .map(|d| d.action.as_str())
            .unwrap_or("")
    }

    /// The deciding rule, if any.
    pub fn rule(&self) -> Option<&str> {
        self.decision.as_ref().and_then(|d| d.rule.as_deref())
    }
}

/// Formats microseconds since the epoch as RFC 3339 UTC with microseconds.
pub fn format_time(unix_us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(unix_us)
        .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
        .unwrap_or_default()
}

/// Reads an RFC 3339 time (or a date, meaning its midnight UTC) into microseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_micros());
    }
    let d = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?;
    Some(d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_micros())
}
