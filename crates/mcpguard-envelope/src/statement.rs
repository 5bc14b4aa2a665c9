//! The in-toto Statement v1 of one executed call: subjects are the digests of the
//! canonical request and result; the predicate says what ran where, under which policy
//! decision, how long it took, and which gateway vouches for it.

use serde::{Deserialize, Serialize};

/// The in-toto statement type.
pub const STATEMENT_TYPE: &str = "https://in-toto.io/Statement/v1";
/// Our predicate type.
pub const PREDICATE_TYPE: &str = "https://mcpguard.dev/attestation/execution/v1";
/// Subject name of the request.
pub const REQUEST: &str = "mcp-request";
/// Subject name of the result.
pub const RESULT: &str = "mcp-result";

/// A subject: a name and its digests.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Subject {
    /// What it is (`mcp-request`, `mcp-result`).
    pub name: String,
    /// `{"sha256": hex}` of its RFC 8785 form.
    pub digest: std::collections::BTreeMap<String, String>,
}

/// The upstream that ran the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct UpstreamRef {
    /// The upstream's name in the gateway's configuration.
    pub name: String,
    /// The server's advertised `serverInfo.name`.
    pub server_name: Option<String>,
    /// The server's advertised `serverInfo.version`.
    pub server_version: Option<String>,
    /// The protocol revision spoken with it.
    pub protocol_version: Option<String>,
}

/// The policy decision that let the call run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct PolicyRef {
    /// `sha256:<hex>` of the policy in force (all files, in order), if any.
    pub digest: Option<String>,
    /// The action.
    pub action: String,
    /// The deciding rule.
    pub rule: Option<String>,
    /// Its OWASP ASI ids.
    pub owasp_asi: Vec<String>,
}

/// Where the call ran when not on the upstream directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SandboxRef {
    /// `none` (forwarded to the upstream), or the sandbox backend.
    pub backend: String,
    /// `sha256:<hex>` of the sandbox configuration, when sandboxed.
    pub config_digest: Option<String>,
}

/// Start, end and duration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Timings {
    /// RFC 3339 UTC.
    pub started: String,
    /// RFC 3339 UTC.
    pub finished: String,
    /// Microseconds.
    pub duration_us: u64,
}

/// The gateway that made the envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct GatewayRef {
    /// `mcpguard`.
    pub name: String,
    /// Its version.
    pub version: String,
}

/// What the statement says about the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct ExecutionPredicate {
    /// The envelope's id (also in the audit event).
    pub envelope_id: String,
    /// The audit event of the call.
    pub audit_event_id: String,
    /// The JSON-RPC method.
    pub method: String,
    /// The tool as the agent named it.
    pub tool: String,
    /// The tool as the upstream knows it.
    pub upstream_tool: Option<String>,
    /// The upstream.
    pub upstream: UpstreamRef,
    /// The decision.
    pub policy: PolicyRef,
    /// Where it ran.
    pub sandbox: SandboxRef,
    /// When.
    pub timings: Timings,
    /// Who vouches.
    pub gateway: GatewayRef,
    /// How the subjects were canonicalised: `RFC8785`.
    pub canonicalization: String,
}

/// An in-toto Statement v1 with our predicate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// [`STATEMENT_TYPE`].
    #[serde(rename = "_type")]
    pub statement_type: String,
    /// Request and result digests.
    pub subject: Vec<Subject>,
    /// [`PREDICATE_TYPE`].
    #[serde(rename = "predicateType")]
    pub predicate_type: String,
    /// The predicate.
    pub predicate: ExecutionPredicate,
}

impl Statement {
    /// A statement over the request and result digests (hex SHA-256).
    pub fn new(
        request_sha256: &str,
        result_sha256: &str,
        predicate: ExecutionPredicate,
    ) -> Statement {
        let subject = |name: &str, hex: &str| Subject {
            name: name.to_string(),
            digest: [("sha256".to_string(), hex.to_string())].into(),
        };
        Statement {
            statement_type: STATEMENT_TYPE.into(),
            subject: vec![
                subject(REQUEST, request_sha256),
                subject(RESULT, result_sha256),
            ],
            predicate_type: PREDICATE_TYPE.into(),
            predicate,
        }
    }

    /// The hex SHA-256 of subject `name`.
    pub fn digest_of(&self, name: &str) -> Option<&str> {
        self.subject
            .iter()
            .find(|s| s.name == name)
            .and_then(|s| s.digest.get("sha256"))
            .map(String::as_str)
    }
}
