//! Connections to the MCP servers behind the gateway.
//!
//! A [`Connection`] is one logical client link to an upstream: it assigns its own request
//! ids (so concurrent calls from many agents never cross), sends the request, delivers
//! whatever the server says about the call on the way (progress, log lines, sampling or
//! elicitation requests) to the call's [`Relay`], and returns the reply carrying the
//! caller's original id.

pub mod client;
pub mod deadline;
pub mod http;
pub mod pending;
pub mod registry;
pub mod remap;
pub mod setup;
pub mod stdio;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mcpguard_protocol::Message;
use mcpguard_protocol::mcp::Era;

use crate::error::CallError;

/// Where an upstream's messages about a call (or about nothing in particular) go: towards
/// the agent.
#[async_trait]
pub trait Relay: Send + Sync {
    /// A notification (progress, log message, list change).
    async fn notify(&self, message: Message);

    /// A server→client request (sampling, elicitation, roots, ping). Returns the agent's
    /// reply, which carries the same id as `message`.
    async fn request(&self, message: Message) -> Message;

    /// How the upstream is answering the call, so the gateway can answer the agent the
    /// same way (an SSE stream with resumption, or a stream that was cut for polling).
    async fn signal(&self, _signal: StreamSignal) {}
}

/// What an upstream's answer stream is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StreamSignal {
    /// The upstream answers with an SSE stream (priming event seen, with its `retry`).
    Opened {
        /// The reconnection delay the upstream suggested, in milliseconds.
        retry_ms: Option<u64>,
    },
    /// The upstream closed the stream before the answer (it expects the client to resume).
    Interrupted,
}

/// A relay that drops notifications and refuses requests: for calls the gateway makes on
/// its own (probes, list refreshes).
pub struct NoRelay;

#[async_trait]
impl Relay for NoRelay {
    async fn notify(&self, _message: Message) {}

    async fn request(&self, message: Message) -> Message {
        let error = mcpguard_protocol::RpcError::new(
            mcpguard_protocol::codes::METHOD_NOT_FOUND,
            "no agent is attached to this request; the gateway cannot answer server requests on its own",
        );
        Message::error_response(message.id(), &error)
    }
}

/// The `notifications/cancelled` for the request sent as `link_id` (raw JSON id).
pub fn cancelled(link_id: &str, reason: &str) -> Message {
    let params = format!(
        r#"{{"requestId":{link_id},"reason":{}}}"#,
        serde_json::Value::from(reason)
    );
    Message::notification(mcpguard_protocol::mcp::method::CANCELLED, Some(&params))
}

/// What the gateway learnt about an upstream when it connected.
#[derive(Debug, Clone)]
pub struct ServerInfo {
    /// The protocol revision agreed with the upstream.
    pub protocol_version: String,
    /// The era of that revision.
    pub era: Era,
    /// Raw JSON of the server's `capabilities`.
    pub capabilities: String,
    /// Raw JSON of the server's `serverInfo` (`{}` when absent).
    pub server_info: String,
    /// The server's `instructions`, if any.
    pub instructions: Option<String>,
}

impl ServerInfo {
    /// True when the server's capabilities contain `key` (e.g. `tools`, `resources`).
    pub fn has_capability(&self, key: &str) -> bool {
        mcpguard_protocol::json::member(&self.capabilities, key).is_some()
    }
}

/// The "timeout" of a stream that lasts as long as the agent keeps it open
/// (`subscriptions/listen`, bridged resource subscriptions).
pub const OPEN_ENDED: Duration = Duration::from_secs(365 * 24 * 3600);

/// How to make one call.
#[derive(Debug, Clone)]
pub struct CallOptions {
    /// How long the upstream has to answer.
    pub timeout: Duration,
    /// Extra HTTP headers for this request (e.g. `Mcp-Param-*`); ignored on stdio.
    pub headers: Vec<(String, String)>,
}

impl CallOptions {
    /// Options with a timeout and no extra headers.
    pub fn with_timeout(timeout: Duration) -> CallOptions {
        CallOptions {
            timeout,
            headers: Vec::new(),
        }
    }
}

/// One logical client link to an upstream.
#[async_trait]
pub trait Connection: Send + Sync {
    /// Sends a request and waits for its reply. The reply carries `request`'s own id.
    /// Dropping the returned future cancels the call upstream.
    async fn call(
        &self,
        request: Message,
        relay: Arc<dyn Relay>,
        options: &CallOptions,
    ) -> Result<Message, CallError>;

    /// Sends a notification.
    async fn notify(&self, notification: Message) -> Result<(), CallError>;

    /// What the upstream said about itself when the link was set up.
    fn info(&self) -> Option<ServerInfo>;
}
