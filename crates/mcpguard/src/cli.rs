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
