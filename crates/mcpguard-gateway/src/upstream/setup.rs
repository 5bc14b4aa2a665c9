//! Setting up a link: the `initialize` handshake (2025-11-25 and earlier) or the
//! `server/discover` probe (2026-07-28), and reading what the server says about itself.

use mcpguard_protocol::Message;
use mcpguard_protocol::json;
use mcpguard_protocol::mcp::{self, Era};

use super::ServerInfo;

/// The gateway's own `clientInfo`, used on links it sets up itself.
pub fn gateway_client_info() -> String {
    serde_json::json!({"name": "mcpguard", "version": env!("CARGO_PKG_VERSION")}).to_string()
}

/// Capabilities the gateway announces on shared links: everything it can relay to agents.
/// When the agent behind a call lacks one, the gateway answers the server's request with
/// an error instead.
pub const RELAYED_CLIENT_CAPABILITIES: &str =
    r#"{"roots":{"listChanged":true},"sampling":{},"elicitation":{"form":{},"url":{}}}"#;

/// Params of an `initialize` request.
pub fn initialize_params(version: &str, capabilities: &str, client_info: &str) -> String {
    let mut out = String::with_capacity(128 + capabilities.len() + client_info.len());
    out.push_str(r#"{"protocolVersion":"#);
    out.push_str(&serde_json::Value::from(version).to_string());
    out.push_str(r#","capabilities":"#);
    out.push_str(capabilities);
    out.push_str(r#","clientInfo":"#);
    out.push_str(client_info);
    out.push('}');
    out
}

/// The `initialize` request the gateway sends on a link it owns.
pub fn initialize_request(id: &str) -> Message {
    Message::request(
        id,
        mcp::method::INITIALIZE,
        Some(&initialize_params(
            mcp::LATEST_HANDSHAKE_VERSION,
            RELAYED_CLIENT_CAPABILITIES,
            &gateway_client_info(),
        )),
    )
}

/// Reads an `initialize` result.
pub fn read_initialize_result(result: &str) -> Result<ServerInfo, String> {
    let version = json::member_str(result, "protocolVersion")
        .ok_or("the initialize result has no `protocolVersion`")?;
    let era = Era::of(&version).ok_or_else(|| {
        format!("the server chose protocol revision `{version}`, which the gateway does not speak")
    })?;
    Ok(ServerInfo {
        protocol_version: version.into_owned(),
        era,
        capabilities: json::member(result, "capabilities")
            .unwrap_or("{}")
            .to_string(),
        server_info: json::member(result, "serverInfo")
            .unwrap_or("{}")
            .to_string(),
        instructions: json::member_str(result, "instructions").map(|s| s.into_owned()),
    })
}

/// Reads the reply to a request: the raw result, or the error's message.
pub fn result_of(reply: &Message) -> Result<&str, String> {
    match reply.result() {
        Some(result) => Ok(result),
        None => {
            let error = reply.error().unwrap_or("{}");
            let message = json::member_str(error, "message").unwrap_or_default();
            let code = json::member(error, "code").unwrap_or("?");
            Err(format!("error {code}: {message}"))
        }
    }
}

/// A link that can carry one request/reply exchange and notifications: what setting up a
/// link needs, whatever the transport.
#[async_trait::async_trait]
pub trait Exchange: Send + Sync {
    /// Sends `request` and waits for its reply (which carries `request`'s id).
    async fn exchange(
        &self,
        request: Message,
        relay: std::sync::Arc<dyn super::Relay>,
        timeout: std::time::Duration,
    ) -> Result<Message, crate::error::CallError>;

    /// Sends a notification on the link.
    async fn notify_link(&self, notification: Message) -> Result<(), crate::error::CallError>;
}

const SETUP_CALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

/// Sets up a link: probes with `server/discover` or runs the `initialize` handshake, as
/// `protocol` says.
pub async fn establish(
    link: &dyn Exchange,
    protocol: &crate::config::UpstreamProtocol,
) -> Result<ServerInfo, String> {
    use crate::config::UpstreamProtocol;
    match protocol {
        UpstreamProtocol::Stateless => discover(link).await,
        UpstreamProtocol::Handshake => initialize(link).await,
        UpstreamProtocol::Auto => match discover(link).await {
            Ok(info) => Ok(info),
            Err(reason) => {
                tracing::debug!(
                    "server/discover failed ({reason}); trying the initialize handshake"
                );
                initialize(link).await
            }
        },
    }
}

/// The `initialize` handshake, then `notifications/initialized`.
pub async fn initialize(link: &dyn Exchange) -> Result<ServerInfo, String> {
    let reply = link
        .exchange(
            initialize_request("0"),
            std::sync::Arc::new(super::NoRelay),
            SETUP_CALL_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())?;
    let info = read_initialize_result(result_of(&reply)?)?;
    if info.era != Era::Handshake {
        return Err(format!(
            "the server answered initialize with revision `{}`, which has no handshake",
            info.protocol_version
        ));
    }
    link.notify_link(Message::notification(mcp::method::INITIALIZED, None))
        .await
        .map_err(|e| e.to_string())?;
    Ok(info)
}

/// The `server/discover` probe.
pub async fn discover(link: &dyn Exchange) -> Result<ServerInfo, String> {
    let reply = link
        .exchange(
            discover_request("0"),
            std::sync::Arc::new(super::NoRelay),
            SETUP_CALL_TIMEOUT,
        )
        .await
        .map_err(|e| e.to_string())?;
    read_discover_result(result_of(&reply)?)
}

/// `_meta` keys of the 2026-07-28 revision.
pub mod meta_key {
    /// The revision a request is written in.
    pub const PROTOCOL_VERSION: &str = "io.modelcontextprotocol/protocolVersion";
    /// The client's `Implementation` object.
    pub const CLIENT_INFO: &str = "io.modelcontextprotocol/clientInfo";
    /// The client's capabilities.
    pub const CLIENT_CAPABILITIES: &str = "io.modelcontextprotocol/clientCapabilities";
    /// The server's `Implementation` object, on results.
    pub const SERVER_INFO: &str = "io.modelcontextprotocol/serverInfo";
    /// The lowest log level the client wants notifications for, on a request.
    pub const LOG_LEVEL: &str = "io.modelcontextprotocol/logLevel";
}

/// The `_meta` object a 2026-07-28 request carries.
pub fn stateless_meta(client_info: &str, capabilities: &str) -> String {
    let mut out = String::with_capacity(160 + client_info.len() + capabilities.len());
    out.push('{');
    for (i, (key, value)) in [
        (meta_key::PROTOCOL_VERSION, "\"2026-07-28\""),
        (meta_key::CLIENT_INFO, client_info),
        (meta_key::CLIENT_CAPABILITIES, capabilities),
    ]
    .into_iter()
    .enumerate()
    {
        if i > 0 {
            out.push(',');
        }
        out.push('"');
        out.push_str(key);
        out.push_str("\":");
        out.push_str(value);
    }
    out.push('}');
    out
}

/// The `server/discover` request the gateway sends on a link it owns.
pub fn discover_request(id: &str) -> Message {
    let meta = stateless_meta(&gateway_client_info(), RELAYED_CLIENT_CAPABILITIES);
    Message::request(
        id,
        mcp::method::DISCOVER,
        Some(&format!("{{\"_meta\":{meta}}}")),
    )
}

/// Reads a `server/discover` result.
pub fn read_discover_result(result: &str) -> Result<ServerInfo, String> {
    let versions = json::member(result, "supportedVersions")
        .ok_or("the discover result has no `supportedVersions`")?;
    let versions: Vec<String> = serde_json::from_str(versions)
        .map_err(|_| "`supportedVersions` is not a list of strings")?;
    if !versions.iter().any(|v| v == mcp::LATEST_VERSION) {
        return Err(format!(
            "the server supports {versions:?}, none of which is the stateless revision {}",
            mcp::LATEST_VERSION
        ));
    }
    let server_info = json::member(result, "_meta")
        .and_then(|meta| json::member(meta, meta_key::SERVER_INFO))
        .or_else(|| json::member(result, "serverInfo"))
        .unwrap_or("{}");
    Ok(ServerInfo {
        protocol_version: mcp::LATEST_VERSION.to_string(),
        era: Era::Stateless,
        capabilities: json::member(result, "capabilities")
            .unwrap_or("{}")
            .to_string(),
        server_info: server_info.to_string(),
        instructions: json::member_str(result, "instructions").map(|s| s.into_owned()),
    })
}
