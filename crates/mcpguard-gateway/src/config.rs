//! The gateway's configuration: what `.mcpguard/config.yaml` may hold.
//!
//! Every struct refuses unknown keys, so a misspelt option is an error with its position,
//! never a silently ignored setting. Defaults are safe for one machine: loopback only,
//! bounded bodies and timeouts.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

mod auth;
mod sandbox;
mod state;
pub use auth::AuthConfig;
pub use sandbox::*;
pub use state::{StateBackend, StateConfig, StateRedisConfig};

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The agent-facing HTTP endpoint.
    pub proxy: ProxyConfig,
    /// The MCP servers behind the gateway, by name.
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    /// How several upstreams are merged behind one endpoint.
    pub federation: FederationConfig,
    /// Logs.
    pub observability: ObservabilityConfig,
    /// The policy engine.
    pub policy: PolicyConfig,
    /// Secret/PII detection and taint tracking.
    pub taint: TaintConfig,
    /// The tamper-evident audit log.
    pub audit: AuditConfig,
    /// Signed execution envelopes of executed tool calls (stored with the audit log).
    pub envelopes: EnvelopeConfig,
    /// Sandboxed execution: backends, profiles, `mcpguard.run_code`, code tools.
    pub sandbox: SandboxConfig,
    /// Authentication of HTTP callers.
    pub auth: AuthConfig,
    /// Rate limits per caller, per caller and tool, and global.
    pub rate_limits: crate::ratelimit::RateLimitConfig,
    /// Where state that replicas share lives (sessions, taint ledgers, tool pins).
    pub state: StateConfig,
}

/// Signed, replayable execution envelopes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct EnvelopeConfig {
    /// Sign an envelope (an in-toto statement in a DSSE envelope, as a Sigstore bundle)
    /// for every executed `tools/call`. Needs the audit log, which stores them.
    pub enabled: bool,
    /// The Ed25519 or ECDSA P-256 private key (PKCS#8 PEM) that signs envelopes
    /// (default: `audit.signing_key`). Relative to the configuration file.
    pub signing_key: Option<PathBuf>,
    /// What is kept for replay: `drop` (nothing: replay is impossible), `encrypt`
    /// (ChaCha20-Poly1305 with `payload_key`), or `plain` (as is; results may hold
    /// secrets).
    pub payloads: PayloadMode,
    /// The payload key file (32 bytes, base64), for `payloads: encrypt`; `mcpguard
    /// keygen --payload-key` makes one. Relative to the configuration file.
    pub payload_key: Option<PathBuf>,
}

impl Default for EnvelopeConfig {
    fn default() -> Self {
        EnvelopeConfig {
            enabled: true,
            signing_key: None,
            payloads: PayloadMode::Drop,
            payload_key: None,
        }
    }
}

/// What execution traces keep of a call.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum PayloadMode {
    /// Only digests: the envelope proves what ran, but it cannot be replayed.
    #[default]
    Drop,
    /// Request and result encrypted at rest.
    Encrypt,
    /// Request and result as they are.
    Plain,
}

/// The tamper-evident audit log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuditConfig {
    /// Record every call. Off: nothing is recorded (the gateway says so at start).
    pub enabled: bool,
    /// Where the log lives: `sqlite` (one gateway) or `postgres` (several replicas
    /// sharing one log).
    pub backend: AuditBackend,
    /// The SQLite file (relative paths are relative to the configuration file).
    pub path: PathBuf,
    /// The PostgreSQL server (`postgres://user:password@host:port/db`), for
    /// `backend: postgres`. Prefer the environment (`MCPGUARD_AUDIT__POSTGRES_URL`) for
    /// the password.
    pub postgres_url: Option<String>,
    /// The PostgreSQL schema holding the log's tables (created when missing).
    pub postgres_schema: String,
    /// `process` (default): an answered call's event survives the gateway being killed
    /// (`kill -9`), not a power cut. `full`: it survives a power cut too (fsync per group
    /// commit, ~0.2 ms on a typical disk).
    pub durability: AuditDurability,
    /// Answer calls even when their event cannot be recorded (logged loudly). Off: such
    /// calls are refused (fail closed).
    pub fail_open: bool,
    /// The Ed25519 private key (PKCS#8 PEM) that signs checkpoints; `mcpguard keygen`
    /// makes one. Relative to the configuration file.
    pub signing_key: Option<PathBuf>,
    /// The log's name in signed checkpoints; make it unique per deployment.
    pub origin: String,
    /// Seconds between signed checkpoints (one is also written at shutdown).
    pub checkpoint_interval_seconds: f64,
    /// The most events one commit holds.
    pub max_batch: usize,
    /// Live copies of every record to syslog collectors (RFC 5424 over UDP or TCP).
    pub syslog: Vec<SyslogSinkConfig>,
}

/// One syslog collector that gets every audit record as it is committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SyslogSinkConfig {
    /// `host:port` of the collector.
    pub address: String,
    /// `udp` or `tcp` (octet-counted framing, RFC 6587).
    pub transport: SyslogTransport,
    /// `cef` (ArcSight) or `json` (the stored record).
    pub format: SyslogFormat,
    /// The syslog facility: `local0`..`local7`, `user`, `daemon`, `auth`, `authpriv`.
    pub facility: SyslogFacility,
    /// APP-NAME in the syslog header.
    pub app_name: String,
    /// Records queued for a slow collector before new ones are dropped from the feed
    /// (the audit log keeps them all; backfill with `audit-export`).
    pub queue: usize,
}

impl Default for SyslogSinkConfig {
    fn default() -> Self {
        SyslogSinkConfig {
            address: "127.0.0.1:514".into(),
            transport: SyslogTransport::Tcp,
            format: SyslogFormat::Cef,
            facility: SyslogFacility::Local0,
            app_name: "mcpguard".into(),
            queue: 10_000,
        }
    }
}

/// How syslog messages travel.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum SyslogTransport {
    /// One datagram per record.
    Udp,
    /// A TCP stream, reconnected with backoff.
    #[default]
    Tcp,
}

/// What a syslog message carries.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFormat {
    /// ArcSight Common Event Format.
    #[default]
    Cef,
    /// The stored record as JSON.
    Json,
}

/// Syslog facilities a gateway would use.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
#[allow(missing_docs, reason = "the names are the syslog facilities")]
pub enum SyslogFacility {
    User,
    Daemon,
    Auth,
    Authpriv,
    #[default]
    Local0,
    Local1,
    Local2,
    Local3,
    Local4,
    Local5,
    Local6,
    Local7,
}

impl SyslogFacility {
    /// The facility number of RFC 5424.
    pub fn code(self) -> u8 {
        match self {
            SyslogFacility::User => 1,
            SyslogFacility::Daemon => 3,
            SyslogFacility::Auth => 4,
            SyslogFacility::Authpriv => 10,
            SyslogFacility::Local0 => 16,
            SyslogFacility::Local1 => 17,
            SyslogFacility::Local2 => 18,
            SyslogFacility::Local3 => 19,
            SyslogFacility::Local4 => 20,
            SyslogFacility::Local5 => 21,
            SyslogFacility::Local6 => 22,
            SyslogFacility::Local7 => 23,
        }
    }
}

impl Default for AuditConfig {
    fn default() -> Self {
        AuditConfig {
            enabled: false,
            backend: AuditBackend::Sqlite,
            path: PathBuf::from("audit.db"),
            postgres_url: None,
            postgres_schema: "mcpguard_audit".into(),
            durability: AuditDurability::Process,
            fail_open: false,
            signing_key: None,
            origin: "mcpguard/audit".into(),
            checkpoint_interval_seconds: 10.0,
            max_batch: 1024,
            syslog: Vec::new(),
        }
    }
}

/// Where the audit log lives.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum AuditBackend {
    /// An embedded SQLite file (WAL).
    #[default]
    Sqlite,
    /// A PostgreSQL server shared by several replicas.
    Postgres,
}

/// How hard an audit commit waits for the disk.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum AuditDurability {
    /// fsync at every group commit: an answered call's event survives a power cut.
    Full,
    /// Hand the commit to the operating system without fsync: an answered call's event
    /// survives the gateway being killed, not a power cut.
    #[default]
    Process,
}

/// The policy engine.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct PolicyConfig {
    /// Policy files, evaluated together (relative paths are relative to the directory the
    /// gateway runs in). Empty: no policy engine, every call is forwarded.
    pub policy_paths: Vec<PathBuf>,
    /// The decision when no rule decides and no policy file sets one: `deny` or `allow`.
    pub default_action: DefaultAction,
    /// How a denied `tools/call` is answered: a JSON-RPC `error`, or a `tool_result` with
    /// `isError: true` (which some agents show to the model instead of failing).
    pub denial: DenialStyle,
    /// Re-read the policy files when they change (a broken file is rejected and the old
    /// policy stays in force).
    pub reload: bool,
    /// Seconds between checks for changed policy files.
    pub reload_interval_seconds: f64,
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            policy_paths: Vec::new(),
            default_action: DefaultAction::Deny,
            denial: DenialStyle::Error,
            reload: true,
            reload_interval_seconds: 1.0,
        }
    }
}

/// The decision when nothing else decides.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum DefaultAction {
    /// Refuse (production).
    #[default]
    Deny,
    /// Let it through (development).
    Allow,
}

/// How a denial reaches the agent.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "snake_case")]
pub enum DenialStyle {
    /// A JSON-RPC error (code -32054) naming the rule and OWASP id.
    #[default]
    Error,
    /// A tool result with `isError: true` and the same text.
    ToolResult,
}

/// Secret/PII detection and taint tracking.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TaintConfig {
    /// Scan arguments and results. Off: policies see no taint labels.
    pub enabled: bool,
    /// Tools (globs over `server__tool` or the bare name) whose output is untrusted
    /// external content: after one runs, the session carries the `untrusted` label.
    pub untrusted_tools: Vec<String>,
    /// Sensitive values remembered per session, oldest dropped first.
    pub ledger_capacity: usize,
    /// Largest argument or result scanned; larger ones are denied (fail closed).
    pub max_scan_bytes: usize,
    /// Deepest JSON nesting scanned; deeper is denied.
    pub max_depth: usize,
    /// The key of finding digests (a file of 32 bytes, base64; `mcpguard keygen
    /// --digest-key`). With it, one value has one digest across restarts and replicas, in
    /// logs and the audit log; without it, a random key per start. Relative to the
    /// configuration file.
    pub digest_key: Option<PathBuf>,
}

impl Default for TaintConfig {
    fn default() -> Self {
        TaintConfig {
            enabled: true,
            untrusted_tools: Vec::new(),
            ledger_capacity: 4096,
            max_scan_bytes: 16 << 20,
            max_depth: 64,
            digest_key: None,
        }
    }
}

/// The agent-facing HTTP endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ProxyConfig {
    /// Address to bind. Loopback by default; binding elsewhere exposes the gateway.
    pub host: String,
    /// Port to bind (0 picks a free port and prints it).
    pub port: u16,
    /// Largest accepted request body in bytes (MCP carries images: the default is 16 MiB).
    pub max_body_bytes: usize,
    /// Largest accepted message from an upstream, in bytes.
    pub max_upstream_message_bytes: usize,
    /// Origins allowed besides loopback ones (`http://localhost:*`, `http://127.0.0.1:*`,
    /// `http://[::1]:*`). Requests with any other `Origin` get 403 (DNS-rebinding defence).
    pub allowed_origins: Vec<String>,
    /// Host names accepted in the `Host` header besides loopback ones. When the gateway
    /// binds a loopback address, any other `Host` gets 403 (DNS-rebinding defence).
    pub allowed_hosts: Vec<String>,
    /// Balancers (addresses or CIDR ranges) whose `X-Forwarded-For` is believed: a request
    /// from one is attributed to the right-most address in that header that is not itself
    /// a trusted proxy (for taint state and rate limits of unauthenticated callers, and the
    /// audit log). Empty: the TCP peer is the client.
    pub trusted_proxies: Vec<String>,
    /// Default time an upstream has to answer one call, in seconds.
    pub call_timeout_seconds: f64,
    /// How long in-flight calls may run after SIGTERM/SIGINT before they are cut off.
    pub shutdown_grace_seconds: f64,
    /// A session with no traffic for this long is ended.
    pub session_idle_timeout_seconds: f64,
    /// How many SSE events each stream keeps for `Last-Event-ID` resumption.
    pub replay_buffer_events: usize,
    /// Threads of the async runtime; 0 means one per CPU core. 1 runs everything on one
    /// thread, which gives the lowest latency per call (no hand-offs between threads) at
    /// the cost of using one core.
    pub worker_threads: usize,
    /// Most handshake-era sessions alive at once; `initialize` beyond it gets HTTP 503.
    pub max_sessions: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            host: "127.0.0.1".into(),
            port: 8000,
            max_body_bytes: 16 * 1024 * 1024,
            max_upstream_message_bytes: 64 * 1024 * 1024,
            allowed_origins: Vec::new(),
            allowed_hosts: Vec::new(),
            trusted_proxies: Vec::new(),
            call_timeout_seconds: 60.0,
            shutdown_grace_seconds: 10.0,
            session_idle_timeout_seconds: 3600.0,
            replay_buffer_events: 256,
            worker_threads: 0,
            max_sessions: 10_000,
        }
    }
}

/// How the gateway talks to one upstream.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Transport {
    /// A child process speaking newline-delimited JSON-RPC on stdin/stdout.
    #[default]
    Stdio,
    /// A Streamable HTTP endpoint.
    Http,
}

/// Which protocol revision to speak to an upstream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(rename_all = "lowercase")]
pub enum UpstreamProtocol {
    /// Probe with `server/discover` (2026-07-28); fall back to the `initialize` handshake.
    #[default]
    Auto,
    /// Always use the `initialize` handshake (2025-11-25 and earlier).
    Handshake,
    /// Always use the stateless 2026-07-28 revision.
    Stateless,
}

/// One MCP server behind the gateway.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamConfig {
    /// `stdio` (spawn `command`) or `http` (connect to `url`).
    pub transport: Transport,
    /// Program to run (stdio).
    pub command: Option<String>,
    /// Its arguments (stdio).
    pub args: Vec<String>,
    /// Extra environment variables for the child (stdio). The child inherits only `PATH`,
    /// `HOME`, `LANG`, `TERM`, `TMPDIR`, `USER` and these, so the gateway's own secrets
    /// do not leak into tools.
    pub env: BTreeMap<String, String>,
    /// Working directory of the child (stdio).
    pub cwd: Option<PathBuf>,
    /// Endpoint URL (http), e.g. `http://127.0.0.1:3001/mcp`.
    pub url: Option<String>,
    /// Extra HTTP headers sent to the upstream (http), e.g. an `Authorization` header.
    pub headers: BTreeMap<String, String>,
    /// A PEM file of extra certificate authorities to trust for an `https://` upstream
    /// (a private CA), besides the system's.
    pub ca_file: Option<PathBuf>,
    /// Prefix for this upstream's tool and prompt names (`<prefix><separator><name>`).
    /// Absent: the upstream's name. Empty: no prefix (names must not collide).
    pub prefix: Option<String>,
    /// Protocol revision to speak.
    pub protocol: UpstreamProtocol,
    /// Per-call timeout in seconds (overrides `proxy.call_timeout_seconds`).
    pub timeout_seconds: Option<f64>,
    /// `/readyz` fails while a required upstream is unreachable.
    pub required: bool,
    /// Disabled upstreams are neither started nor routed to.
    pub enabled: bool,
    /// Run this stdio server inside a sandbox for its whole life. With a sandbox, `cwd`
    /// is shown read-write at `/work` inside and is the server's working directory.
    pub sandbox: Option<UpstreamSandbox>,
    /// `shared` (one process for every agent: the default) or `session` (a stdio server of
    /// its own for each handshake-era session, started on the session's first use of it
    /// and stopped when the session ends, so agents never share the server's state;
    /// stateless agents, which have no session, use the shared one).
    pub isolation: Isolation,
}

/// Who shares a stdio server.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum Isolation {
    /// One process for every agent.
    #[default]
    Shared,
    /// One process per handshake-era session.
    Session,
}

impl Default for UpstreamConfig {
    fn default() -> Self {
        UpstreamConfig {
            transport: Transport::Stdio,
            command: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            cwd: None,
            url: None,
            headers: BTreeMap::new(),
            ca_file: None,
            prefix: None,
            protocol: UpstreamProtocol::Auto,
            timeout_seconds: None,
            required: true,
            enabled: true,
            sandbox: None,
            isolation: Isolation::Shared,
        }
    }
}

/// How upstreams share one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FederationConfig {
    /// Between prefix and name: `fs__read_file`.
    pub separator: String,
    /// Where requests for methods the gateway cannot route by name go when there are
    /// several upstreams. Absent: such requests get "method not found".
    pub default_upstream: Option<String>,
}

impl Default for FederationConfig {
    fn default() -> Self {
        FederationConfig {
            separator: "__".into(),
            default_upstream: None,
        }
    }
}

/// Logging.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct ObservabilityConfig {
    /// `error`, `warn`, `info`, `debug` or `trace`, or a `tracing` filter directive.
    pub log_level: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
    /// OpenTelemetry traces over OTLP.
    pub traces: TracesConfig,
}

impl Default for ObservabilityConfig {
    fn default() -> Self {
        ObservabilityConfig {
            log_level: "info".into(),
            log_format: LogFormat::Text,
            traces: TracesConfig::default(),
        }
    }
}

/// OpenTelemetry traces: a span per call with a child span per pipeline phase, sent over
/// OTLP/HTTP (protobuf); W3C trace context is taken from agents and passed to HTTP
/// upstreams.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct TracesConfig {
    /// Send spans.
    pub enabled: bool,
    /// The collector's OTLP/HTTP traces endpoint, used as is (include `/v1/traces`).
    pub endpoint: String,
    /// `service.name` of the spans.
    pub service_name: String,
    /// Share of traces recorded (0–1), decided by the gateway from the trace id; an
    /// agent's `traceparent` sets the trace a call joins, not whether it is recorded.
    pub sample_ratio: f64,
    /// Headers sent to the collector (e.g. its `authorization`).
    pub headers: BTreeMap<String, String>,
    /// How long one export may take, in milliseconds.
    pub timeout_ms: u64,
}

impl Default for TracesConfig {
    fn default() -> Self {
        TracesConfig {
            enabled: false,
            endpoint: "http://127.0.0.1:4318/v1/traces".into(),
            service_name: "mcpguard".into(),
            sample_ratio: 1.0,
            headers: BTreeMap::new(),
            timeout_ms: 10_000,
        }
    }
}

/// Log line format.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema, Default,
)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A problem found by [`Config::check`]: the dotted key and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// Dotted path of the offending key, e.g. `upstreams.fs.command`.
    pub key: String,
    /// What is wrong and how to fix it.
    pub message: String,
}

impl Config {
    /// Semantic checks that types alone cannot express.
    pub fn check(&self) -> Vec<ConfigProblem> {
        let mut problems = Vec::new();
        let mut push = |key: String, message: String| problems.push(ConfigProblem { key, message });
        if self.auth.enabled
            && !self.auth.anonymous
            && self.auth.api_keys.is_empty()
            && self.auth.api_keys_file.is_none()
            && self.auth.jwt.is_none()
        {
            push(
                "auth".into(),
                "auth is enabled but no credential is configured: set `auth.api_keys_file` and create a key with `mcpguard keys create --identity NAME`, or allow unauthenticated callers with `auth.anonymous: true`".into(),
            );
        }
        if self.audit.enabled && self.audit.signing_key.is_none() {
            push(
                "audit.signing_key".into(),
                "the audit log needs a key to sign checkpoints: run `mcpguard keygen` and set `audit.signing_key` to the private key it wrote".into(),
            );
        }
        if !self.audit.checkpoint_interval_seconds.is_finite()
            || self.audit.checkpoint_interval_seconds <= 0.0
        {
            push(
                "audit.checkpoint_interval_seconds".into(),
                "must be more than 0".into(),
            );
        }
        if self.audit.enabled
            && self.audit.backend == AuditBackend::Postgres
            && self.audit.postgres_url.as_deref().is_none_or(str::is_empty)
        {
            push(
                "audit.postgres_url".into(),
                "`backend: postgres` needs `postgres_url` (or MCPGUARD_AUDIT__POSTGRES_URL)".into(),
            );
        }
        if self.audit.enabled
            && self.envelopes.enabled
            && self.envelopes.payloads == PayloadMode::Encrypt
            && self.envelopes.payload_key.is_none()
        {
            push(
                "envelopes.payload_key".into(),
                "`payloads: encrypt` needs a key: run `mcpguard keygen --payload-key` and set `envelopes.payload_key`".into(),
            );
        }
        if self.audit.max_batch == 0 {
            push("audit.max_batch".into(), "must be at least 1".into());
        }
        if self.federation.separator.is_empty() {
            push(
                "federation.separator".into(),
                "the separator must not be empty; the default is `__`".into(),
            );
        }
        if let Err(e) = crate::forwarded::TrustedProxies::parse(&self.proxy.trusted_proxies) {
            push("proxy.trusted_proxies".into(), e);
        }
        let traces = &self.observability.traces;
        if traces.enabled {
            if !(traces.endpoint.starts_with("http://") || traces.endpoint.starts_with("https://"))
                || traces.endpoint.parse::<http::Uri>().is_err()
            {
                push(
                    "observability.traces.endpoint".into(),
                    format!(
                        "`{}` is not an http(s) URL; the OTLP/HTTP default is `http://127.0.0.1:4318/v1/traces`",
                        traces.endpoint
                    ),
                );
            }
            if !(0.0..=1.0).contains(&traces.sample_ratio) {
                push(
                    "observability.traces.sample_ratio".into(),
                    "must be between 0 and 1".into(),
                );
            }
        }
        if self.state.backend == StateBackend::Redis {
            if self.taint.digest_key.is_none() {
                push(
                    "taint.digest_key".into(),
                    "replicas sharing state (`state.backend: redis`) must share the key of taint fingerprints, or one replica cannot recognise what another recorded: run `mcpguard keygen --digest-key`, give every replica the file and set `taint.digest_key`".into(),
                );
            }
            if self.state.redis.timeout_ms == 0 {
                push("state.redis.timeout_ms".into(), "must be at least 1".into());
            }
        }
        for (key, message) in self.rate_limits.problems() {
            push(key, message);
        }
        for (key, message) in self.sandbox.problems() {
            push(key, message);
        }
        for (name, upstream) in &self.upstreams {
            let key = |field: &str| format!("upstreams.{name}.{field}");
            if upstream.isolation == Isolation::Session && upstream.transport != Transport::Stdio {
                push(
                    key("isolation"),
                    "only stdio upstreams can be started per session (an http server runs elsewhere)".into(),
                );
            }
            if let Some(sandbox) = &upstream.sandbox {
                if upstream.transport != Transport::Stdio {
                    push(
                        key("sandbox"),
                        "only stdio upstreams can run in a sandbox (an http upstream runs elsewhere)".into(),
                    );
                }
                for message in self
                    .sandbox
                    .reference_problems(sandbox.backend, &sandbox.profile)
                {
                    push(key("sandbox"), message);
                }
                let backend = sandbox.backend.unwrap_or(self.sandbox.backend);
                if matches!(
                    backend,
                    SandboxBackend::Docker
                        | SandboxBackend::Firecracker
                        | SandboxBackend::Microsandbox
                ) {
                    push(
                        key("sandbox"),
                        format!(
                            "the {} backend runs code, not long-lived stdio servers: confine servers with `backend: native`",
                            backend.as_str()
                        ),
                    );
                }
            }
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
            {
                push(
                    format!("upstreams.{name}"),
                    "an upstream name may hold only letters, digits, `-` and `_`".into(),
                );
            }
            match upstream.transport {
                Transport::Stdio => {
                    if upstream.command.as_deref().is_none_or(str::is_empty) {
                        push(key("command"), "a stdio upstream needs `command`".into());
                    }
                    if upstream.url.is_some() {
                        push(
                            key("url"),
                            "`url` applies to http upstreams; remove it or set `transport: http`"
                                .into(),
                        );
                    }
                }
                Transport::Http => {
                    match upstream.url.as_deref() {
                        None | Some("") => push(key("url"), "an http upstream needs `url`".into()),
                        Some(url) => {
                            if reqwest::Url::parse(url)
                                .map(|u| !matches!(u.scheme(), "http" | "https"))
                                .unwrap_or(true)
                            {
                                push(key("url"), format!("`{url}` is not an http(s) url"));
                            }
                        }
                    }
                    if upstream.command.is_some() {
                        push(key("command"), "`command` applies to stdio upstreams; remove it or set `transport: stdio`".into());
                    }
                    if upstream.ca_file.is_some()
                        && upstream
                            .url
                            .as_deref()
                            .is_some_and(|u| u.starts_with("http://"))
                    {
                        push(
                            key("ca_file"),
                            "`ca_file` applies to https:// upstreams".into(),
                        );
                    }
                }
            }
            if let Some(t) = upstream.timeout_seconds
                && !(t > 0.0 && t.is_finite())
            {
                push(
                    key("timeout_seconds"),
                    "must be a positive number of seconds".into(),
                );
            }
        }
        if let Some(default) = &self.federation.default_upstream
            && !self.upstreams.contains_key(default)
        {
            push(
                "federation.default_upstream".into(),
                format!("no upstream is named `{default}`"),
            );
        }
        for (key, value) in [
            (
                "proxy.call_timeout_seconds",
                self.proxy.call_timeout_seconds,
            ),
            (
                "proxy.shutdown_grace_seconds",
                self.proxy.shutdown_grace_seconds,
            ),
            (
                "proxy.session_idle_timeout_seconds",
                self.proxy.session_idle_timeout_seconds,
            ),
        ] {
            if !(value > 0.0 && value.is_finite()) {
                push(key.into(), "must be a positive number of seconds".into());
            }
        }
        if self.proxy.max_body_bytes < 1024 {
            push(
                "proxy.max_body_bytes".into(),
                "must be at least 1024 bytes".into(),
            );
        }
        problems
    }
}

impl UpstreamConfig {
    /// The effective tool/prompt prefix for an upstream called `name`.
    pub fn effective_prefix<'a>(&'a self, name: &'a str) -> &'a str {
        self.prefix.as_deref().unwrap_or(name)
    }
}
