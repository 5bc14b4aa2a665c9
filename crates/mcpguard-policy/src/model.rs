//! The policy file format, as written in YAML. Every field that a later check can
//! complain about keeps its position (`Spanned`), so errors point at `file:line:col`.

use serde::Deserialize;
use serde_saphyr::Spanned;

/// What a rule does when it matches.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Let the call run.
    Allow,
    /// Refuse the call.
    Deny,
    /// Run the call in a sandbox backend.
    Sandbox,
    /// Ask the agent's user first.
    RequireApproval,
    /// Record the match in the audit log (modifier).
    Audit,
    /// Log a warning (modifier).
    Warn,
    /// Mask findings in arguments and results (modifier).
    Redact,
}

impl Action {
    /// True for actions that decide the call (allow, deny, sandbox, require_approval).
    pub fn is_terminal(self) -> bool {
        matches!(
            self,
            Action::Allow | Action::Deny | Action::Sandbox | Action::RequireApproval
        )
    }

    /// Strictness among terminal actions: deny > require_approval > sandbox > allow.
    pub fn strictness(self) -> u8 {
        match self {
            Action::Deny => 3,
            Action::RequireApproval => 2,
            Action::Sandbox => 1,
            _ => 0,
        }
    }

    /// The YAML spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Allow => "allow",
            Action::Deny => "deny",
            Action::Sandbox => "sandbox",
            Action::RequireApproval => "require_approval",
            Action::Audit => "audit",
            Action::Warn => "warn",
            Action::Redact => "redact",
        }
    }
}

/// One string or a list of them.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum OneOrMany<T> {
    /// A single value.
    One(T),
    /// A list.
    Many(Vec<T>),
}

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany::Many(Vec::new())
    }
}

impl<T> OneOrMany<T> {
    /// The values as a slice.
    pub fn as_slice(&self) -> &[T] {
        match self {
            OneOrMany::One(v) => std::slice::from_ref(v),
            OneOrMany::Many(v) => v,
        }
    }
}

/// A policy file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyFile {
    /// Format version (1).
    #[serde(default)]
    pub version: Option<u32>,
    /// A name for the set.
    #[serde(default)]
    pub name: Option<String>,
    /// What the set is for.
    #[serde(default)]
    pub description: Option<String>,
    /// The decision when no terminal rule matches.
    #[serde(default)]
    pub default_action: Option<Spanned<Action>>,
    /// Taint labels this set uses beyond the built-in ones.
    #[serde(default)]
    pub taint_labels: Vec<Spanned<String>>,
    /// The rules.
    #[serde(default)]
    pub rules: Vec<RuleSpec>,
}

/// A rule as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleSpec {
    /// Unique id, shown in decisions and the audit log.
    pub id: Spanned<String>,
    /// Short title.
    #[serde(default)]
    pub name: Option<String>,
    /// What it guards against.
    #[serde(default)]
    pub description: Option<String>,
    /// What to do on a match.
    pub action: Spanned<Action>,
    /// Lower runs first (default 100).
    #[serde(default)]
    pub priority: Option<i64>,
    /// Off when false.
    #[serde(default)]
    pub enabled: Option<bool>,
    /// MCP methods (default `tools/call`; `*` for any).
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    /// Tool (or prompt, or resource URI) globs; `re:` for a regex.
    #[serde(default)]
    pub tool_patterns: Vec<Spanned<String>>,
    /// Upstream name globs.
    #[serde(default)]
    pub servers: Vec<Spanned<String>>,
    /// Conditions on argument values.
    #[serde(default)]
    pub argument_patterns: Vec<Spanned<ArgumentPatternSpec>>,
    /// Taint labels, any of which makes the rule match (`secret`, `pii.ssn`, `flow:*`).
    #[serde(default)]
    pub taint_labels: Vec<Spanned<String>>,
    /// Caller identity globs.
    #[serde(default)]
    pub identities: Vec<Spanned<String>>,
    /// Caller roles, any of which matches.
    #[serde(default)]
    pub roles: Vec<Spanned<String>>,
    /// A CEL expression that must be true.
    #[serde(default)]
    pub condition: Option<Spanned<String>>,
    /// Free-form tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// OWASP Top 10 for Agentic Applications ids (`ASI01`..`ASI10`).
    #[serde(default, alias = "owasp_asi_id")]
    pub owasp_asi: Option<Spanned<OneOrMany<String>>>,
    /// OWASP MCP Top 10 ids (`MCP01:2025`..`MCP10:2025`).
    #[serde(default)]
    pub owasp_mcp: Option<Spanned<OneOrMany<String>>>,
    /// The reason the agent is told (default: the name or description).
    #[serde(default)]
    pub reason: Option<String>,
    /// For `redact`: `full` (default), `partial` (last four characters kept) or `hash`
    /// (keyed digest).
    #[serde(default)]
    pub redaction: Option<Spanned<mcpguard_detect::Redaction>>,
}

/// A condition on arguments: a place (JSON pointer `path`, or `key` glob at any depth) and
/// a regex the value must (`match`) or must not (`not_match`) satisfy.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArgumentPatternSpec {
    /// JSON pointer into the arguments (`/options/url`).
    #[serde(default)]
    pub path: Option<String>,
    /// Key glob matched at any depth (`*url*`).
    #[serde(default)]
    pub key: Option<String>,
    /// Regex that a value must match.
    #[serde(default, rename = "match")]
    pub matches: Option<String>,
    /// Regex that a value must not match: the pattern holds when some value at the place
    /// fails to match it (`url` `not_match: ^https://intranet/` catches any other host).
    #[serde(default)]
    pub not_match: Option<String>,
}
