//! The `auth:` section: who may call the gateway's HTTP endpoint.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::auth::api_keys::KeyRecord;
use crate::auth::jwt::JwtConfig;

/// Authentication of HTTP callers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// Callers of `/mcp` must authenticate (`Authorization: Bearer <API key>`). Enabled
    /// with no usable credential and no anonymous access is a startup error.
    pub enabled: bool,
    /// Let callers that send no credential in as the identity `anonymous` (a wrong
    /// credential is still refused). Off unless set.
    pub anonymous: bool,
    /// The keys file `mcpguard keys` writes (hashes only); reloaded when it changes.
    /// Relative to the configuration file.
    pub api_keys_file: Option<PathBuf>,
    /// Keys given here instead (the records `mcpguard keys create --print-record`
    /// prints: hashes only).
    pub api_keys: Vec<KeyRecord>,
    /// The gateway's own resource URI (e.g. `https://mcp.example.com/mcp`): the audience
    /// tokens must name (RFC 8707) and the `resource` of its protected-resource metadata
    /// (RFC 9728, served at `/.well-known/oauth-protected-resource`).
    pub resource: Option<String>,
    /// The authorization servers that issue tokens for it (listed in the metadata).
    pub authorization_servers: Vec<String>,
    /// JWT bearer tokens from an OAuth 2.1 authorization server.
    pub jwt: Option<JwtConfig>,
    /// Scopes a token must hold, by method and tool (JWT callers; API keys are governed
    /// by roles and policy).
    pub scopes: Vec<ScopeRule>,
}

/// Scopes required for some calls.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ScopeRule {
    /// Method globs (default: every method).
    #[serde(default = "every")]
    pub methods: Vec<String>,
    /// Tool (or prompt) name globs, as agents see them (default: any, or none).
    #[serde(default)]
    pub tools: Vec<String>,
    /// Scopes the token must all hold.
    pub scopes: Vec<String>,
}

fn every() -> Vec<String> {
    vec!["*".into()]
}
