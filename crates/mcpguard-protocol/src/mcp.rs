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

    /// True for the methods above (the ones the protocol defines).
    pub fn is_standard(method: &str) -> bool {
        [
            INITIALIZE,
            INITIALIZED,
            DISCOVER,
            PING,
            TOOLS_LIST,
            TOOLS_CALL,
            PROMPTS_LIST,
            PROMPTS_GET,
            RESOURCES_LIST,
            RESOURCES_TEMPLATES_LIST,
            RESOURCES_READ,
            RESOURCES_SUBSCRIBE,
            RESOURCES_UNSUBSCRIBE,
            COMPLETION_COMPLETE,
            LOGGING_SET_LEVEL,
            SUBSCRIPTIONS_LISTEN,
            CANCELLED,
            PROGRESS,
            MESSAGE,
            RESOURCES_UPDATED,
            TOOLS_LIST_CHANGED,
            PROMPTS_LIST_CHANGED,
            RESOURCES_LIST_CHANGED,
            ROOTS_LIST_CHANGED,
            SAMPLING_CREATE,
            ELICITATION_CREATE,
            ROOTS_LIST,
        ]
        .contains(&method)
    }
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

/// The `Mcp-Method` and `Mcp-Name` headers a 2026-07-28 request carries over HTTP, as
/// (lowercase name, encoded value) pairs. `Mcp-Param-*` headers depend on the tool's input
/// schema and are computed elsewhere.
pub fn stateless_headers(message: &crate::Message) -> Vec<(&'static str, String)> {
    let Some(method) = message.method() else {
        return Vec::new();
    };
    let mut headers = vec![(header::METHOD, encode_header_value(method))];
    if let Some(name) = stateless_name_param(method).and_then(|key| message.param_str(key)) {
        headers.push((header::NAME, encode_header_value(&name)));
    }
    headers
}

/// The parameter mirrored into the `Mcp-Name` header in the 2026-07-28 revision (the
/// tasks extension names its task by `taskId`).
pub fn stateless_name_param(method: &str) -> Option<&'static str> {
    match method {
        method::TOOLS_CALL | method::PROMPTS_GET => Some("name"),
        method::RESOURCES_READ => Some("uri"),
        "tasks/get" | "tasks/update" | "tasks/cancel" => Some("taskId"),
        _ => None,
    }
}

const B64_OPEN: &str = "=?base64?";
const B64_CLOSE: &str = "?=";

/// Encodes a header value as the 2026-07-28 HTTP transport does: printable ASCII without
/// edge whitespace passes as is; anything else is wrapped as `=?base64?<base64>?=`.
pub fn encode_header_value(value: &str) -> String {
    let plain = value.bytes().all(|b| (0x20..=0x7e).contains(&b))
        && value.trim() == value
        && !(value.starts_with(B64_OPEN) && value.ends_with(B64_CLOSE));
    if plain {
        return value.to_string();
    }
    format!("{B64_OPEN}{}{B64_CLOSE}", base64_encode(value.as_bytes()))
}

/// Decodes a header value written by [`encode_header_value`]; `None` when the base64 form is
/// malformed, not canonical, or not UTF-8.
pub fn decode_header_value(value: &str) -> Option<String> {
    let Some(payload) = value
        .strip_prefix(B64_OPEN)
        .and_then(|rest| rest.strip_suffix(B64_CLOSE))
    else {
        return Some(value.to_string());
    };
    let bytes = base64_decode(payload)?;
    if base64_encode(&bytes) != payload {
        return None;
    }
    String::from_utf8(bytes).ok()
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

fn base64_encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(B64[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

fn base64_decode(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(4) {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() / 4 * 3);
    for chunk in text.as_bytes().chunks(4) {
        let mut n = 0u32;
        let mut pad = 0;
        for (i, c) in chunk.iter().enumerate() {
            let v = match c {
                b'=' if i >= 2 => {
                    pad += 1;
                    0
                }
                _ if pad > 0 => return None,
                _ => B64.iter().position(|x| x == c)? as u32,
            };
            n = (n << 6) | v;
        }
        let bytes = [(n >> 16) as u8, (n >> 8) as u8, n as u8];
        out.extend_from_slice(&bytes[..3 - pad]);
    }
    Some(out)
}

/// The target name of a call message (`params.name` or `params.uri`), unescaped.
pub fn call_target(message: &crate::Message) -> Option<Cow<'_, str>> {
    message.param_str(name_param(message.method()?)?)
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
    fn header_values_roundtrip() {
        for value in [
            "echo",
            "file:///tmp/a b.txt",
            " edge",
            "héllo",
            "line\nbreak",
            "=?base64?eA==?=",
            "",
        ] {
            let encoded = encode_header_value(value);
            assert!(
                encoded.bytes().all(|b| (0x20..=0x7e).contains(&b)),
                "{encoded}"
            );
            assert_eq!(
                decode_header_value(&encoded).as_deref(),
                Some(value),
                "{encoded}"
            );
        }
        assert_eq!(encode_header_value("tools/call"), "tools/call");
        assert_eq!(encode_header_value("héllo"), "=?base64?aMOpbGxv?=");
        assert_eq!(
            decode_header_value("=?base64?aMOpbGxv?=").as_deref(),
            Some("héllo")
        );
        // Non-canonical or broken base64 never decodes.
        assert_eq!(
            decode_header_value("=?base64?aMOpbGxw?="),
            Some("héllp".into())
        );
        assert_eq!(decode_header_value("=?base64?aMOpbGx?="), None);
        assert_eq!(decode_header_value("=?base64?YQ=a?="), None);
        assert_eq!(decode_header_value("=?base64?YR==?="), None);
    }

    #[test]
    fn stateless_headers_mirror_method_and_name() {
        let msg = crate::Message::parse(
            br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"caf\u00e9"}}"#
                .to_vec(),
        )
        .unwrap();
        assert_eq!(
            stateless_headers(&msg),
            vec![
                ("mcp-method", "tools/call".to_string()),
                ("mcp-name", "=?base64?Y2Fmw6k=?=".to_string())
            ]
        );
        let msg =
            crate::Message::parse(br#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#.to_vec())
                .unwrap();
        assert_eq!(
            stateless_headers(&msg),
            vec![("mcp-method", "tools/list".to_string())]
        );
    }

    #[test]
    fn progress_token_is_read_from_meta() {
        let params = Some(r#"{"name":"x","_meta":{"progressToken":"p-1"}}"#);
        assert_eq!(progress_token(params), Some(r#""p-1""#));
        assert_eq!(progress_token(Some("{}")), None);
    }
}
