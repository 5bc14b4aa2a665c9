//! The command line, defined once: help, completions and the man page come from here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// MCPGuard: a runtime security gateway for AI-agent tool calls.
///
/// Point your agent at MCPGuard instead of its MCP servers: every call is checked by the
/// gateway's pipeline and forwarded to the right upstream.
#[derive(Debug, Parser)]
#[command(
    name = "mcpguard",
    version,
    about,
    long_about,
    propagate_version = true
)]
pub struct Cli {
    /// The configuration file (default: `.mcpguard/config.yaml` when it exists).
    #[arg(
        long,
        short = 'c',
        global = true,
        env = "MCPGUARD_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a commented `.mcpguard/config.yaml` and the policy folder.
    Init(InitArgs),
    /// Run the gateway on HTTP (`/mcp`, `/healthz`, `/readyz`).
    Serve(ServeArgs),
    /// Run the gateway on stdin/stdout, as a desktop client's MCP server.
    ///
    /// In a client's JSON config: `{"command": "mcpguard", "args": ["stdio", "--config",
    /// "/path/to/config.yaml"]}`, or wrap one server directly: `{"command": "mcpguard",
    /// "args": ["stdio", "--", "npx", "-y", "@modelcontextprotocol/server-filesystem",
    /// "/tmp"]}`. Logs go to stderr.
    Stdio(StdioArgs),
    /// Print the effective configuration, each value with where it came from.
    #[command(name = "config-show")]
    ConfigShow(ConfigShowArgs),
    /// Print the JSON Schema of the configuration file (for editors and CI checks).
    #[command(name = "config-schema")]
    ConfigSchema,
    /// Print a shell completion script.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Check policy files: schema, globs, regexes, CEL, labels, OWASP ids, duplicate ids
    /// and rules that can never decide. Exit 0 when valid, 1 when not.
    #[command(name = "validate-policy")]
    ValidatePolicy(ValidatePolicyArgs),
    /// Policy tools.
    #[command(subcommand)]
    Policy(PolicyCommand),
    /// API keys for callers of the HTTP endpoint (`auth.enabled`): the keys file keeps
    /// only their SHA-256; a key is shown once, when it is created.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Find secrets and personal data in text or JSON (a file, or `-` for stdin).
    ///
    /// Exit status: 0 nothing found, 1 something found, 2 error (as secret scanners do).
    /// Findings show the type, detector, location, confidence and a keyed digest — never
    /// the value.
    Detect(DetectArgs),
    /// Create an Ed25519 signing key for audit checkpoints (and execution envelopes):
    /// a PKCS#8 PEM private key (mode 0600) and its public key. Never overwrites.
    Keygen(KeygenArgs),
    /// Check the audit log: recompute the hash chain and the Merkle tree, check every
    /// checkpoint's signature and that the log matches them. Names the first bad record
    /// and how it is wrong (edited, deleted, reordered, truncated). Exit 0 intact, 1 not.
    #[command(name = "audit-verify")]
    AuditVerify(AuditVerifyArgs),
    /// Print a proof as JSON: that record SEQ is in the newest signed checkpoint, or with
    /// --consistency-from N that the log of N records only grew since.
    #[command(name = "audit-proof")]
    AuditProof(AuditProofArgs),
    /// Check a proof from `audit-proof` with only the public key (what an outside witness
    /// runs). With --old-checkpoint, the consistency proof must start from that
    /// checkpoint. Exit 0 valid, 1 not.
    #[command(name = "audit-check-proof")]
    AuditCheckProof(AuditCheckProofArgs),
    /// Print the newest signed checkpoint (a witness keeps it to check later proofs).
    #[command(name = "audit-checkpoint")]
    AuditCheckpoint(AuditDbArgs),
    /// Search the audit log: filters combine; newest first.
    #[command(name = "audit-query")]
    AuditQuery(AuditQueryArgs),
    /// Export the audit log for a SIEM: jsonl (the stored records, re-verifiable), csv,
    /// cef (ArcSight) or ocsf (API Activity 6003), oldest first.
    #[command(name = "audit-export")]
    AuditExport(AuditExportArgs),
    /// List execution traces (signed envelopes of executed tool calls), newest first.
    #[command(name = "trace-list")]
    TraceList(TraceListArgs),
    /// Print a trace's Sigstore bundle (JSON), for any Sigstore verifier.
    #[command(name = "trace-export")]
    TraceExport(TraceArgs),
    /// Check a trace (by envelope id) or a bundle file: the DSSE signature, the in-toto
    /// statement, the kept payloads against its digests, and its audit record. Exit 0
    /// valid, 1 not.
    #[command(name = "trace-verify")]
    TraceVerify(TraceVerifyArgs),
    /// Run a traced call again, through the gateway (its policy and audit), against the
    /// same upstream, and report drift: identical result digest, or a structural diff.
    /// Exit 0 identical, 1 drift, 2 cannot replay.
    Replay(TraceArgs),
    /// Check every sandbox backend on this machine (with a trial run where one can run)
    /// and say what each found. Exit 0 when the configured `sandbox.backend` is ready.
    #[command(name = "sandbox-check")]
    SandboxCheck,
    /// Print the man page (roff).
    #[command(hide = true)]
    Man,
}

/// `mcpguard trace-list`.
#[derive(Debug, Args)]
pub struct TraceListArgs {
    #[command(flatten)]
    pub db: AuditDbArgs,
    /// Only traces of this tool (as the agent named it).
    #[arg(long)]
    pub tool: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 20)]
    pub limit: usize,
}

/// A trace by envelope id.
#[derive(Debug, Args)]
pub struct TraceArgs {
    #[command(flatten)]
    pub db: AuditDbArgs,
    /// The envelope id (see `trace-list`).
    #[arg(value_name = "ID")]
    pub id: String,
}

/// `mcpguard trace-verify`.
#[derive(Debug, Args)]
pub struct TraceVerifyArgs {
    #[command(flatten)]
    pub db: AuditDbArgs,
    /// An envelope id, or a bundle file from `trace-export`.
    #[arg(value_name = "ID|FILE")]
    pub target: String,
    /// The public key PEM that signs envelopes (default: the configuration's
    /// `envelopes.signing_key` or `audit.signing_key`).
    #[arg(long, value_name = "PATH")]
    pub public_key: Option<PathBuf>,
}

/// `mcpguard keygen`.
#[derive(Debug, Args)]
pub struct KeygenArgs {
    /// Where to write the key files.
    #[arg(long, value_name = "DIR", default_value = ".mcpguard/keys")]
    pub dir: PathBuf,
    /// The file name stem: `<name>.key` (private) and `<name>.pub` (public).
    #[arg(long, default_value = "signing")]
    pub name: String,
    /// The algorithm. Audit checkpoints need `ed25519`; envelopes take either (set a
    /// P-256 key as `envelopes.signing_key`).
    #[arg(long, value_enum, default_value_t = KeyAlgorithm::Ed25519)]
    pub algorithm: KeyAlgorithm,
    /// Also write `payload.key`: 32 random bytes for `envelopes.payloads: encrypt`.
    #[arg(long)]
    pub payload_key: bool,
    /// Also write `digest.key`: 32 random bytes for `taint.digest_key` (stable finding
    /// digests across restarts and replicas).
    #[arg(long)]
    pub digest_key: bool,
}

/// Signature algorithms of `keygen`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyAlgorithm {
    /// Ed25519.
    Ed25519,
    /// ECDSA over P-256 with SHA-256.
    EcdsaP256,
}

/// Which audit log to read.
#[derive(Debug, Args)]
pub struct AuditDbArgs {
    /// The audit log: a SQLite file or a `postgres://` URL (default: the configuration's
    /// `audit` section).
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<PathBuf>,
    /// The PostgreSQL schema (default: `audit.postgres_schema`).
    #[arg(long, value_name = "NAME")]
    pub schema: Option<String>,
}

/// Which key checks signatures.
#[derive(Debug, Args)]
pub struct AuditKeyArgs {
    /// The public key PEM (or the private key) that signs checkpoints (default: the
    /// configuration's `audit.signing_key`).
    #[arg(long, value_name = "PATH")]
    pub public_key: Option<PathBuf>,
    /// The key name in the checkpoints' signature lines (default: `audit.origin`).
    #[arg(long, value_name = "NAME")]
    pub key_name: Option<String>,
}

/// `mcpguard audit-verify`.
#[derive(Debug, Args)]
pub struct AuditVerifyArgs {
    #[command(flatten)]
    pub db: AuditDbArgs,
    #[command(flatten)]
    pub key: AuditKeyArgs,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `mcpguard audit-proof`.
#[derive(Debug, Args)]
pub struct AuditProofArgs {
    #[command(flatten)]
    pub db: AuditDbArgs,
    /// The record to prove included.
    #[arg(value_name = "SEQ", required_unless_present = "consistency_from")]
    pub seq: Option<u64>,
    /// Prove instead that the log of this many records is a prefix of the newest
    /// checkpoint's.
    #[arg(long, value_name = "SIZE", conflicts_with = "seq")]
    pub consistency_from: Option<u64>,
}

/// `mcpguard audit-check-proof`.
#[derive(Debug, Args)]
pub struct AuditCheckProofArgs {
    /// The proof (JSON from `audit-proof`); `-` reads stdin.
    #[arg(value_name = "FILE")]
    pub proof: PathBuf,
    /// A signed checkpoint kept earlier: the consistency proof must start from it.
    #[arg(long, value_name = "FILE")]
    pub old_checkpoint: Option<PathBuf>,
    #[command(flatten)]
    pub key: AuditKeyArgs,
}

/// Filters shared by `audit-query` and `audit-export`.
#[derive(Debug, Args)]
pub struct AuditFilterArgs {
    /// From this time (RFC 3339, or a date meaning its midnight UTC).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Before this time.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// The authenticated identity.
    #[arg(long)]
    pub identity: Option<String>,
    /// The tool (or prompt, or resource URI) as the agent named it.
    #[arg(long)]
    pub tool: Option<String>,
    /// The upstream.
    #[arg(long)]
    pub server: Option<String>,
    /// The outcome (allowed, denied, approval_requested, sandboxed, rate_limited,
    /// unauthenticated, upstream_failure, error, notified) or the policy action (allow,
    /// deny, sandbox, require_approval).
    #[arg(long)]
    pub action: Option<String>,
    /// The deciding rule id.
    #[arg(long)]
    pub rule: Option<String>,
    /// An OWASP ASI id (ASI01..ASI10) of the deciding rule.
    #[arg(long, value_name = "ID")]
    pub asi: Option<String>,
    /// A label the call carried (a finding type, `flow:<tool>`, `untrusted`...).
    #[arg(long)]
    pub label: Option<String>,
    /// The session (its short id, as in the logs).
    #[arg(long)]
    pub session: Option<String>,
}

/// Output format of `audit-query`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum QueryFormat {
    /// Aligned columns.
    Table,
    /// One stored record per line (JSON).
    Json,
}

/// `mcpguard audit-query`.
#[derive(Debug, Args)]
pub struct AuditQueryArgs {
    #[command(flatten)]
    pub db: AuditDbArgs,
    #[command(flatten)]
    pub filter: AuditFilterArgs,
    /// At most this many events (0: all).
    #[arg(long, default_value_t = 50)]
    pub limit: usize,
    /// Oldest first.
    #[arg(long)]
    pub oldest_first: bool,
    /// Output format.
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
}

/// Export formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// The stored records, one per line, byte for byte.
    Jsonl,
    /// CSV with a header row.
    Csv,
    /// ArcSight Common Event Format.
    Cef,
    /// OCSF API Activity (class 6003), one JSON object per line.
    Ocsf,
}

/// `mcpguard audit-export`.
#[derive(Debug, Args)]
pub struct AuditExportArgs {
    #[command(flatten)]
    pub db: AuditDbArgs,
    #[command(flatten)]
    pub filter: AuditFilterArgs,
    /// The format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// Write here instead of stdout.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

/// `mcpguard init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create `.mcpguard/` (default: the current directory).
    #[arg(long, value_name = "DIR", default_value = ".")]
    pub dir: PathBuf,
    /// Overwrite existing files.
    #[arg(long)]
    pub force: bool,
}

/// `mcpguard serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to bind (overrides `proxy.host`).
    #[arg(long)]
    pub host: Option<String>,
    /// Port to bind (overrides `proxy.port`; 0 picks a free one).
    #[arg(long, short = 'p')]
    pub port: Option<u16>,
    /// Log level (overrides `observability.log_level`), e.g. `debug` or `mcpguard=debug`.
    #[arg(long)]
    pub log_level: Option<String>,
}

/// `mcpguard stdio`.
#[derive(Debug, Args)]
pub struct StdioArgs {
    /// Log level (overrides `observability.log_level`).
    #[arg(long)]
    pub log_level: Option<String>,
    /// A server command to wrap, after `--`: it becomes the single upstream `server`
    /// (unprefixed), added to any configured upstreams.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// `mcpguard config-show`.
#[derive(Debug, Args)]
pub struct ConfigShowArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = ShowFormat::Text)]
    pub format: ShowFormat,
}

/// Output format of `config-show`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ShowFormat {
    /// `key = value  # source`, one per line.
    Text,
    /// A JSON object: `{"key": {"value": ..., "source": ...}}`.
    Json,
}

/// `mcpguard validate-policy`.
#[derive(Debug, Args)]
pub struct ValidatePolicyArgs {
    /// Policy files or directories (their `*.yaml`), checked together as one policy.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// `mcpguard policy ...`.
#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Run policy unit tests: YAML fixtures naming a call, its labels or session history,
    /// and the expected decision (like `opa test`). Exit 0 when all pass.
    Test(PolicyTestArgs),
}

/// `mcpguard keys ...`.
#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Create a key for an identity and print it (once).
    Create(KeysCreateArgs),
    /// List the keys: id, identity, roles, dates, state (never the keys).
    List(KeysFileArgs),
    /// Revoke a key by id; a running gateway refuses it within a second.
    Revoke(KeysRevokeArgs),
}

/// `mcpguard keys create`.
#[derive(Debug, Args)]
pub struct KeysCreateArgs {
    /// The identity the key authenticates (what policy rules' `identities` match).
    #[arg(long, value_name = "NAME")]
    pub identity: String,
    /// A role of the identity (repeatable; what policy rules' `roles` match).
    #[arg(long, value_name = "ROLE")]
    pub role: Vec<String>,
    /// A note for people (who holds it, what for).
    #[arg(long)]
    pub description: Option<String>,
    /// The key stops working after this many days.
    #[arg(long, value_name = "DAYS")]
    pub expires_in_days: Option<u32>,
    /// The keys file (default: `auth.api_keys_file`).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
    /// Print the stored record (for `auth.api_keys`) instead of writing a keys file.
    #[arg(long)]
    pub print_record: bool,
}

/// `mcpguard keys list`.
#[derive(Debug, Args)]
pub struct KeysFileArgs {
    /// The keys file (default: `auth.api_keys_file`).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

/// `mcpguard keys revoke`.
#[derive(Debug, Args)]
pub struct KeysRevokeArgs {
    /// The key's id (`mcpguard keys list`).
    pub id: String,
    /// The keys file (default: `auth.api_keys_file`).
    #[arg(long, value_name = "PATH")]
    pub file: Option<PathBuf>,
}

/// `mcpguard policy test`.
#[derive(Debug, Args)]
pub struct PolicyTestArgs {
    /// Fixture files, or directories searched recursively for `*.yaml` fixtures (files
    /// with a top-level `tests:` list).
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Print every test, not only failures.
    #[arg(long, short)]
    pub verbose: bool,
}

/// Output format of `mcpguard detect`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DetectFormat {
    /// Aligned columns for people.
    Table,
    /// JSON for programs.
    Json,
}

/// `mcpguard detect`.
#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The input file; `-` or nothing reads stdin.
    #[arg(value_name = "FILE")]
    pub input: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: DetectFormat,
    /// Treat each line as its own document (JSON when it parses, else text) and print one
    /// result per line (with `--format json`: one JSON object per line).
    #[arg(long)]
    pub each_line: bool,
    /// Read the input as plain text even when it is JSON.
    #[arg(long)]
    pub text: bool,
    /// List every detector (id and finding type) and exit.
    #[arg(long)]
    pub list: bool,
}
