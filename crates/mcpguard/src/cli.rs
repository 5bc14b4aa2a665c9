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
    /// Find secrets and personal data in text or JSON (a file, or `-` for stdin).
    ///
    /// Exit status: 0 nothing found, 1 something found, 2 error (as secret scanners do).
    /// Findings show the type, detector, location, confidence and a keyed digest — never
    /// the value.
    Detect(DetectArgs),
    /// Print the man page (roff).
    #[command(hide = true)]
    Man,
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
