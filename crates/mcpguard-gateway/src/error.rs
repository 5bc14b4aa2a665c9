//! Errors that become JSON-RPC error responses, with blame and retry advice.

use mcpguard_protocol::{RpcError, codes};
use serde_json::json;

/// Whose fault an error is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Blame {
    /// The agent sent something wrong.
    Agent,
    /// An upstream server failed or misbehaved.
    Upstream,
    /// The gateway itself (configuration, bug, shutdown).
    Internal,
}

impl Blame {
    fn as_str(self) -> &'static str {
        match self {
            Blame::Agent => "agent",
            Blame::Upstream => "upstream",
            Blame::Internal => "internal",
        }
    }
}

/// A failure while handling one call.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CallError {
    /// The upstream cannot be reached, died, or is restarting.
    #[error("upstream `{upstream}` is unavailable: {reason}")]
    Unavailable {
        /// Upstream name.
        upstream: String,
        /// What happened.
        reason: String,
    },
    /// The upstream no longer knows the session the call was sent in (it restarted or
    /// expired it). The call was not run; the gateway opens a new session and retries once.
    #[error("upstream `{upstream}` ended the session; a new one could not be used either")]
    SessionExpired {
        /// Upstream name.
        upstream: String,
    },
    /// The upstream did not answer in time.
    #[error("upstream `{upstream}` did not answer within {seconds}s{detail}")]
    Timeout {
        /// Upstream name.
        upstream: String,
        /// The timeout that expired.
        seconds: f64,
        /// Extra context (starts with `; ` when present).
        detail: String,
    },
    /// The upstream answered with something that is not valid MCP.
    #[error("upstream `{upstream}` sent an invalid answer: {reason}")]
    Protocol {
        /// Upstream name.
        upstream: String,
        /// What was wrong.
        reason: String,
    },
    /// The request cannot be routed to any upstream.
    #[error("{0}")]
    NotRoutable(String),
    /// The client's and the upstream's protocol revisions cannot be bridged for this call.
    #[error("{0}")]
    Bridge(String),
    /// The request itself is wrong.
    #[error("{message}")]
    BadRequest {
        /// JSON-RPC code.
        code: i64,
        /// One-line message.
        message: String,
    },
    /// The gateway is stopping.
    #[error("the gateway is shutting down; retry against another replica")]
    ShuttingDown,
}

impl CallError {
    /// Whose fault it is.
    pub fn blame(&self) -> Blame {
        match self {
            CallError::Unavailable { .. }
            | CallError::Timeout { .. }
            | CallError::Protocol { .. }
            | CallError::SessionExpired { .. } => Blame::Upstream,
            CallError::NotRoutable(_) | CallError::BadRequest { .. } => Blame::Agent,
            CallError::Bridge(_) | CallError::ShuttingDown => Blame::Internal,
        }
    }

    /// Whether retrying the same call may succeed.
    pub fn retryable(&self) -> bool {
        matches!(
            self,
            CallError::Unavailable { .. }
                | CallError::Timeout { .. }
                | CallError::ShuttingDown
                | CallError::SessionExpired { .. }
        )
    }

    /// The JSON-RPC error code.
    pub fn code(&self) -> i64 {
        match self {
            CallError::Unavailable { .. } | CallError::SessionExpired { .. } => {
                codes::UPSTREAM_UNAVAILABLE
            }
            CallError::Timeout { .. } => codes::UPSTREAM_TIMEOUT,
            CallError::Protocol { .. } => codes::UPSTREAM_PROTOCOL_ERROR,
            CallError::NotRoutable(_) => codes::METHOD_NOT_FOUND,
            CallError::Bridge(_) => codes::ERA_BRIDGE_UNSUPPORTED,
            CallError::BadRequest { code, .. } => *code,
            CallError::ShuttingDown => codes::SHUTTING_DOWN,
        }
    }

    /// The upstream involved, if any.
    pub fn upstream(&self) -> Option<&str> {
        match self {
            CallError::Unavailable { upstream, .. }
            | CallError::SessionExpired { upstream }
            | CallError::Timeout { upstream, .. }
            | CallError::Protocol { upstream, .. } => Some(upstream),
            _ => None,
        }
    }

    /// As a JSON-RPC error object, with `data.mcpguard` describing blame and retry.
    pub fn to_rpc(&self) -> RpcError {
        let mut detail = json!({
            "blame": self.blame().as_str(),
            "retryable": self.retryable(),
        });
        if let Some(upstream) = self.upstream() {
            detail["upstream"] = json!(upstream);
        }
        RpcError::new(self.code(), self.to_string()).with_data(json!({ "mcpguard": detail }))
    }
}
