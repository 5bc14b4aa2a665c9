//! Who is calling, and how they speak.

use std::net::SocketAddr;
use std::sync::Arc;

use mcpguard_protocol::mcp::Era;

use crate::auth::Identity;
use crate::session::Session;

/// The agent side of the connection a call came on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Downstream {
    /// Streamable HTTP at `/mcp`.
    Http,
    /// `mcpguard stdio`.
    Stdio,
}

/// The caller of one request.
#[derive(Clone)]
pub struct Caller {
    /// The protocol era the agent speaks.
    pub era: Era,
    /// The revision the agent speaks.
    pub protocol_version: Arc<str>,
    /// The handshake-era session the call belongs to.
    pub session: Option<Arc<Session>>,
    /// Raw JSON of the agent's `clientInfo`, when known.
    pub client_info: Option<Arc<str>>,
    /// Raw JSON of the agent's capabilities, when known.
    pub client_capabilities: Option<Arc<str>>,
    /// How the agent reached the gateway.
    pub downstream: Downstream,
    /// The agent's address (HTTP).
    pub remote: Option<SocketAddr>,
    /// HTTP headers of the agent's request that go on to a stateless HTTP upstream as they
    /// are (the `Mcp-Name` of methods the gateway does not interpret).
    pub forwarded_headers: Vec<(String, String)>,
    /// Who the caller authenticated as (none when authentication is off).
    pub identity: Option<Arc<Identity>>,
    /// The agent's W3C trace context, when its request carried one.
    pub trace_parent: Option<Arc<crate::trace::TraceParent>>,
}

impl Caller {
    /// The caller of a request in handshake-era `session`.
    pub fn of_session(
        session: &Arc<Session>,
        downstream: Downstream,
        remote: Option<SocketAddr>,
    ) -> Caller {
        Caller {
            era: Era::Handshake,
            protocol_version: session.protocol_version.as_str().into(),
            client_info: Some(session.client_info.clone()),
            client_capabilities: Some(session.client_capabilities.clone()),
            session: Some(session.clone()),
            downstream,
            remote,
            forwarded_headers: Vec::new(),
            identity: session.identity(),
            trace_parent: None,
        }
    }

    /// True when the agent declared capability `key` (e.g. `sampling`, `elicitation`).
    pub fn has_capability(&self, key: &str) -> bool {
        self.client_capabilities
            .as_deref()
            .is_some_and(|caps| mcpguard_protocol::json::member(caps, key).is_some())
    }

    /// The session id, when there is a session.
    pub fn session_id(&self) -> Option<&str> {
        self.session.as_deref().map(Session::id)
    }

    /// The short session id for logs (see [`Session::log_id`]).
    pub fn session_log_id(&self) -> Option<&str> {
        self.session.as_deref().map(Session::log_id)
    }
}
