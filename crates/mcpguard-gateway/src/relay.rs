//! Relays: how messages from upstreams reach agents.
//!
//! - [`CallRelay`]: messages about one call go on that call's stream (the SSE answer to
//!   the POST, or stdout for `mcpguard stdio`).
//! - [`SessionRelay`]: messages from an agent's own upstream session that belong to no
//!   call go on the agent's `GET` stream.
//! - [`BroadcastRelay`]: messages from a shared link that belong to no call (list changes)
//!   go to every session.

use std::sync::{Arc, Weak};

use async_trait::async_trait;
use mcpguard_protocol::mcp::method;
use mcpguard_protocol::{Message, RpcError, codes};
use tokio::sync::mpsc;

use crate::gateway::Agents;
use crate::listeners::Listeners;
use crate::session::{CLIENT_ANSWER_TIMEOUT, Session, SessionStore};
use crate::upstream::{Relay, StreamSignal};

/// What travels towards the agent on a call's stream.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A message for the agent.
    Message(Message),
    /// A hint about how the upstream answers (see [`StreamSignal`]).
    Signal(StreamSignal),
}

/// The capability an agent must have declared to be asked `method`.
fn required_capability(request_method: &str) -> Option<&'static str> {
    match request_method {
        method::SAMPLING_CREATE => Some("sampling"),
        method::ELICITATION_CREATE => Some("elicitation"),
        method::ROOTS_LIST => Some("roots"),
        _ => None,
    }
}

fn refuse(message: &Message, code: i64, text: String) -> Message {
    Message::error_response(message.id(), &RpcError::new(code, text))
}

/// Sends a server→client request to the agent of `session` through `send`, and waits for
/// the agent's answer; the answer carries `request`'s id.
async fn ask_agent(
    session: &Session,
    request: Message,
    send: impl FnOnce(Message) -> bool,
) -> Message {
    let method = request.method().unwrap_or_default().to_string();
    if let Some(capability) = required_capability(&method)
        && mcpguard_protocol::json::member(&session.client_capabilities, capability).is_none()
    {
        return refuse(
            &request,
            codes::METHOD_NOT_FOUND,
            format!(
                "the agent did not declare the `{capability}` capability, so the gateway cannot relay `{method}`"
            ),
        );
    }
    let original_id = request.id().unwrap_or("null").to_string();
    let (gateway_id, answer) = session.expect_answer();
    if !send(request.with_id(&gateway_id)) {
        session.forget_answer(&gateway_id);
        return refuse(
            &request,
            codes::CONNECTION_CLOSED,
            "the agent's stream is closed; it cannot be asked".into(),
        );
    }
    match tokio::time::timeout(CLIENT_ANSWER_TIMEOUT, answer).await {
        Ok(Ok(reply)) => reply.with_id(&original_id),
        _ => {
            session.forget_answer(&gateway_id);
            refuse(
                &request,
                codes::CONNECTION_CLOSED,
                format!(
                    "the agent did not answer `{method}` within {}s",
                    CLIENT_ANSWER_TIMEOUT.as_secs()
                ),
            )
        }
    }
}

/// Asks the agent of `session` on its `GET` stream (for requests that belong to no call).
async fn ask_on_session_stream(session: &Arc<Session>, request: Message) -> Message {
    let target = session.clone();
    ask_agent(session, request, move |m| {
        target.send_unsolicited(&m);
        true
    })
    .await
}

/// The rank of an MCP log level (RFC 5424 severities, `debug` lowest).
pub fn log_rank(level: &str) -> Option<u8> {
    const LEVELS: [&str; 8] = [
        "debug",
        "info",
        "notice",
        "warning",
        "error",
        "critical",
        "alert",
        "emergency",
    ];
    LEVELS.iter().position(|l| *l == level).map(|p| p as u8)
}

/// False for a log line below the level `session`'s agent asked for with
/// `logging/setLevel`: an upstream shared by several agents logs at the lowest level any
/// of them asked for, and each agent gets only what it asked for.
pub fn wanted_by(session: &Session, message: &Message) -> bool {
    if message.method() != Some(method::MESSAGE) {
        return true;
    }
    let Some(wanted) = session.log_level.lock().as_deref().and_then(log_rank) else {
        return true;
    };
    let level = message
        .params()
        .and_then(|p| mcpguard_protocol::json::member_str(p, "level"))
        .and_then(|l| log_rank(&l));
    level.is_none_or(|level| level >= wanted)
}

/// Messages about one call.
pub struct CallRelay {
    session: Option<Arc<Session>>,
    stream: mpsc::UnboundedSender<Outbound>,
}

impl CallRelay {
    /// A relay writing to `stream`; server→client requests need `session`.
    pub fn new(
        session: Option<Arc<Session>>,
        stream: mpsc::UnboundedSender<Outbound>,
    ) -> CallRelay {
        CallRelay { session, stream }
    }
}

#[async_trait]
impl Relay for CallRelay {
    async fn notify(&self, message: Message) {
        if let Some(session) = &self.session
            && !wanted_by(session, &message)
        {
            return;
        }
        if let Err(unsent) = self.stream.send(Outbound::Message(message)) {
            // The call's stream is gone (the call ended): fall back to the session stream.
            if let (Some(session), Outbound::Message(message)) = (&self.session, unsent.0) {
                session.send_unsolicited(&message);
            }
        }
    }

    async fn signal(&self, signal: StreamSignal) {
        let _ = self.stream.send(Outbound::Signal(signal));
    }

    async fn request(&self, message: Message) -> Message {
        let Some(session) = &self.session else {
            let method = message.method().unwrap_or_default().to_string();
            return refuse(
                &message,
                codes::ERA_BRIDGE_UNSUPPORTED,
                format!(
                    "the agent speaks the stateless 2026-07-28 revision and cannot receive `{method}` requests; the gateway cannot bridge this server request yet"
                ),
            );
        };
        let stream = self.stream.clone();
        ask_agent(session, message, |m| {
            stream.send(Outbound::Message(m)).is_ok()
        })
        .await
    }
}

/// Messages from an agent's own upstream session that belong to no call.
pub struct SessionRelay {
    session: Weak<Session>,
}

impl SessionRelay {
    /// A relay to `session`'s `GET` stream.
    pub fn new(session: &Arc<Session>) -> SessionRelay {
        SessionRelay {
            session: Arc::downgrade(session),
        }
    }
}

#[async_trait]
impl Relay for SessionRelay {
    async fn notify(&self, message: Message) {
        if let Some(session) = self.session.upgrade()
            && wanted_by(&session, &message)
        {
            session.send_unsolicited(&message);
        }
    }

    async fn request(&self, message: Message) -> Message {
        match self.session.upgrade() {
            Some(session) => ask_on_session_stream(&session, message).await,
            None => refuse(
                &message,
                codes::CONNECTION_CLOSED,
                "the agent's session has ended".into(),
            ),
        }
    }
}

/// Messages from a shared link that belong to no call. List changes go to every session
/// and every listen stream; a resource update only to the sessions that subscribed to it;
/// anything else (log lines, questions) only when the gateway serves a single agent —
/// otherwise nobody can say whose it is, and it is dropped or refused rather than shown
/// to the wrong agent.
pub struct BroadcastRelay {
    sessions: Weak<SessionStore>,
    listeners: Weak<Listeners>,
    agents: Agents,
}

impl BroadcastRelay {
    /// A relay to the sessions in `sessions` and the listen streams in `listeners`.
    pub fn new(
        sessions: &Arc<SessionStore>,
        listeners: &Arc<Listeners>,
        agents: Agents,
    ) -> BroadcastRelay {
        BroadcastRelay {
            sessions: Arc::downgrade(sessions),
            listeners: Arc::downgrade(listeners),
            agents,
        }
    }

    fn the_one_session(&self) -> Option<Arc<Session>> {
        if self.agents != Agents::One {
            return None;
        }
        let all = self.sessions.upgrade()?.all();
        (all.len() == 1).then(|| all[0].clone())
    }
}

#[async_trait]
impl Relay for BroadcastRelay {
    async fn notify(&self, message: Message) {
        let method = message.method().unwrap_or_default();
        let sessions = self.sessions.upgrade().map(|s| s.all()).unwrap_or_default();
        if method.ends_with("/list_changed") {
            for session in &sessions {
                session.send_unsolicited(&message);
            }
        } else if method == method::RESOURCES_UPDATED {
            let uri = message
                .params()
                .and_then(|p| mcpguard_protocol::json::member_str(p, "uri"))
                .unwrap_or_default();
            for session in sessions.iter().filter(|s| s.is_subscribed(&uri)) {
                session.send_unsolicited(&message);
            }
        } else if let Some(session) = self.the_one_session() {
            if wanted_by(&session, &message) {
                session.send_unsolicited(&message);
            }
        } else {
            tracing::debug!(
                method,
                "dropped a notification that belongs to no call and no single agent"
            );
            return;
        }
        if let Some(listeners) = self.listeners.upgrade() {
            listeners.deliver(&message).await;
        }
    }

    async fn request(&self, message: Message) -> Message {
        match self.the_one_session() {
            Some(session) => ask_on_session_stream(&session, message).await,
            None => refuse(
                &message,
                codes::METHOD_NOT_FOUND,
                "this upstream is shared by several agents and asked a question outside any call; the gateway cannot tell which agent should answer".into(),
            ),
        }
    }
}
