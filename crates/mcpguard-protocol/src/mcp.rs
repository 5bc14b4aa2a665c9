//! The MCP vocabulary the gateway needs: protocol revisions and their eras, method names,
//! HTTP header names, and borrowed views of the few parameters that routing reads.

use std::borrow::Cow;

use crate::json;

/// Protocol revisions the gateway speaks, oldest first.
pub const SUPPORTED_VERSIONS: &[&str] = &[
    "2024-11-05",
    "2025-03-26",
    "2025-06-18",
    "2025-11-25",
    "2026-07-28",
];

/// The newest handshake-era revision.
pub const LATEST_HANDSHAKE_VERSION: &str = "2025-11-25";
/// The newest revision (stateless era).
pub const LATEST_VERSION: &str = "2026-07-28";
/// The revision an HTTP client is assumed to speak when it sends no version header
/// (the transport specification's backwards-compatibility default).
pub const DEFAULT_HTTP_VERSION: &str = "2025-03-26";

/// The two shapes of the protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Era {
    /// 2024-11-05 to 2025-11-25: `initialize` handshake, sessions, server→client requests.
    Handshake,
    /// 2026-07-28 and later: no handshake, no session, `_meta` on every request,
    /// `input_required` results instead of server→client requests.
    Stateless,
}

impl Era {
    /// The era of a revision, `None` when the revision is unknown.
    pub fn of(version: &str) -> Option<Era> {
        match version {
            "2024-11-05" | "2025-03-26" | "2025-06-18" | "2025-11-25" => Some(Era::Handshake),
            "2026-07-28" => Some(Era::Stateless),
            _ => None,
        }
    }

    /// Lowercase name for logs and errors.
    pub fn as_str(self) -> &'static str {
        match self {
            Era::Handshake => "handshake (2025-11-25 and earlier)",
            Era::Stateless => "stateless (2026-07-28)",
        }
    }
}

/// True when the gateway speaks `version`.
pub fn is_supported(version: &str) -> bool {
    SUPPORTED_VERSIONS.contains(&version)
}

/// Method names.
pub mod method {
    #![allow(
        missing_docs,
        reason = "the constants are the protocol's own method names"
    )]
    pub const INITIALIZE: &str = "initialize";
    pub const INITIALIZED: &str = "notifications/initialized";
    pub const DISCOVER: &str = "server/discover";
    pub const PING: &str = "ping";
    pub const TOOLS_LIST: &str = "tools/list";
    pub const TOOLS_CALL: &str = "tools/call";
    pub const PROMPTS_LIST: &str = "prompts/list";
    pub const PROMPTS_GET: &str = "prompts/get";
    pub const RESOURCES_LIST: &str = "resources/list";
    pub const RESOURCES_TEMPLATES_LIST: &str = "resources/templates/list";
    pub const RESOURCES_READ: &str = "resources/read";
    pub const RESOURCES_SUBSCRIBE: &str = "resources/subscribe";
    pub const RESOURCES_UNSUBSCRIBE: &str = "resources/unsubscribe";
    pub const COMPLETION_COMPLETE: &str = "completion/complete";
    pub const LOGGING_SET_LEVEL: &str = "logging/setLevel";
    pub const SUBSCRIPTIONS_LISTEN: &str = "subscriptions/listen";
    pub const CANCELLED: &str = "notifications/cancelled";
    pub const PROGRESS: &str = "notifications/progress";
    pub const MESSAGE: &str = "notifications/message";
    pub const RESOURCES_UPDATED: &str = "notifications/resources/updated";
    pub const TOOLS_LIST_CHANGED: &str = "notifications/tools/list_changed";
    pub const PROMPTS_LIST_CHANGED: &str = "notifications/prompts/list_changed";
    pub const RESOURCES_LIST_CHANGED: &str = "notifications/resources/list_changed";
    pub const ROOTS_LIST_CHANGED: &str = "notifications/roots/list_changed";
    pub const SAMPLING_CREATE: &str = "sampling/createMessage";
    pub const ELICITATION_CREATE: &str = "elicitation/create";
    pub const ROOTS_LIST: &str = "roots/list";
}

/// HTTP header names (lowercase).
pub mod header {
    #![allow(
        missing_docs,
        reason = "the constants are the transport's own header names"
    )]
    pub const SESSION_ID: &str = "mcp-session-id";
    pub const PROTOCOL_VERSION: &str = "mcp-protocol-version";
    pub const METHOD: &str = "mcp-method";
    pub const NAME: &str = "mcp-name";
    pub const PARAM_PREFIX: &str = "mcp-param-";
    pub const LAST_EVENT_ID: &str = "last-event-id";
}

/// The parameter that names the target of a method, for routing and for the `Mcp-Name`
/// header: `name` for tools and prompts, `uri` for resources.
pub fn name_param(method: &str) -> Option<&'static str> {
    match method {
        method::TOOLS_CALL | method::PROMPTS_GET => Some("name"),
        method::RESOURCES_READ | method::RESOURCES_SUBSCRIBE | method::RESOURCES_UNSUBSCRIBE => {
            Some("uri")
        }
        _ => None,
    }
}

/// The target name of a call (`params.name` or `params.uri`), unescaped.
pub fn target_name<'a>(method: &str, params: Option<&'a str>) -> Option<Cow<'a, str>> {
    json::member_str(params?, name_param(method)?)
}

/// The raw `_meta` object of a params object.
pub fn meta(params: Option<&str>) -> Option<&str> {
    json::member(params?, "_meta")
}

/// The raw `_meta.progressToken` of a params object.
pub fn progress_token(params: Option<&str>) -> Option<&str> {
    json::member(meta(params)?, "progressToken")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn eras_of_known_versions() {
        assert_eq!(Era::of("2025-11-25"), Some(Era::Handshake));
        assert_eq!(Era::of("2024-11-05"), Some(Era::Handshake));
        assert_eq!(Era::of("2026-07-28"), Some(Era::Stateless));
        assert_eq!(Era::of("2099-01-01"), None);
        assert!(SUPPORTED_VERSIONS.iter().all(|v| Era::of(v).is_some()));
    }

    #[test]
    fn target_names_by_method() {
        let params = Some(r#"{"name":"fs__read","arguments":{"name":"no"}}"#);
        assert_eq!(
            target_name("tools/call", params).as_deref(),
            Some("fs__read")
        );
        let params = Some(r#"{"uri":"file:///x"}"#);
        assert_eq!(
            target_name("resources/read", params).as_deref(),
            Some("file:///x")
        );
        assert_eq!(target_name("tools/list", params), None);
    }

    #[test]
    fn progress_token_is_read_from_meta() {
        let params = Some(r#"{"name":"x","_meta":{"progressToken":"p-1"}}"#);
        assert_eq!(progress_token(params), Some(r#""p-1""#));
        assert_eq!(progress_token(Some("{}")), None);
    }
}
