//! Bridging a handshake-era upstream's questions to a stateless (2026-07-28) agent.
//!
//! A handshake-era server asks the client mid-call (`elicitation/create`,
//! `sampling/createMessage`, `roots/list`) and waits. A stateless agent cannot receive such
//! a request; it is asked through an `input_required` result instead, and answers by
//! calling again with `inputResponses` and the `requestState` it was given. So when the
//! upstream asks, the gateway *parks* the upstream call (still waiting for its answer),
//! hands the agent an `input_required` result whose `requestState` names the parked call,
//! and when the agent calls again, passes its answer to the waiting upstream and carries
//! on with the same call. The `requestState` is an unguessable token; a parked call nobody
//! resumes is dropped (and so cancelled upstream) after [`PARK_LIMIT`].
//!
//! With replicas, the token also names the replica that holds the call
//! (`mcpguard-parked.<replica>.<random>`), so a retry that lands on another replica is
//! passed to the holder (see `shared.rs`).

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use mcpguard_protocol::mcp::method;
use mcpguard_protocol::{Message, RpcError, codes, json};
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};

use crate::error::CallError;
use crate::upstream::{CallOptions, Connection, Relay, StreamSignal};

/// How long a parked call waits for the agent to come back.
pub const PARK_LIMIT: Duration = Duration::from_secs(600);

/// Most calls parked at once; beyond it a new question fails the call instead.
pub const MAX_PARKED: usize = 1024;

const TOKEN_PREFIX: &str = "mcpguard-parked.";

type CallFuture = Pin<Box<dyn Future<Output = Result<Message, CallError>> + Send>>;

/// A question from the upstream, waiting for the agent's answer.
struct Ask {
    request: Message,
    answer: oneshot::Sender<Message>,
}

struct Parked {
    /// What the call was (method and target name): a resumption must be the same call.
    what: (String, Option<String>),
    call: CallFuture,
    asks: mpsc::UnboundedReceiver<Ask>,
    pending: Ask,
    key: String,
    relay: Arc<AskRelay>,
    since: Instant,
}

/// The calls waiting for their agents.
#[derive(Default)]
pub struct Parking {
    parked: Mutex<HashMap<String, Parked>>,
    /// This replica's id, put in tokens when replicas share state.
    replica: Option<String>,
}

/// The replica named in a parked-call token, when it names one.
pub fn replica_of(params: Option<&str>) -> Option<String> {
    let state = json::member_str(params?, "requestState")?;
    let rest = state.strip_prefix(TOKEN_PREFIX)?;
    rest.split_once('.').map(|(replica, _)| replica.to_string())
}

/// True when `params` carry a `requestState` issued by the gateway's parking.
pub fn is_parked_state(params: Option<&str>) -> bool {
    params
        .and_then(|p| json::member_str(p, "requestState"))
        .is_some_and(|state| state.starts_with(TOKEN_PREFIX))
}

impl Parking {
    /// An empty parking.
    pub fn new() -> Parking {
        Parking::default()
    }

    /// An empty parking of replica `replica`, whose tokens name it.
    pub fn of_replica(replica: &str) -> Parking {
        Parking {
            parked: Mutex::new(HashMap::new()),
            replica: Some(replica.to_string()),
        }
    }

    /// This replica's id, when tokens name one.
    pub fn replica(&self) -> Option<&str> {
        self.replica.as_deref()
    }

    /// Number of parked calls.
    pub fn len(&self) -> usize {
        self.parked.lock().len()
    }

    /// True when no call is parked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Starts `request` on a handshake-era `connection` for a stateless agent. The answer is
    /// the upstream's, or an `input_required` result when the upstream asks a question.
    pub async fn start(
        &self,
        connection: Arc<dyn Connection>,
        request: Message,
        relay: Arc<dyn Relay>,
        options: CallOptions,
    ) -> Result<Message, CallError> {
        let agent_id = request.id().unwrap_or("null").to_string();
        let what = call_identity(&request);
        let (asks_tx, asks) = mpsc::unbounded_channel();
        let relay = Arc::new(AskRelay {
            inner: Mutex::new(relay),
            asks: asks_tx,
        });
        let call_relay: Arc<dyn Relay> = relay.clone();
        let call: CallFuture =
            Box::pin(async move { connection.call(request, call_relay, &options).await });
        self.drive(what, call, asks, relay, &agent_id).await
    }

    /// Resumes the parked call named by `request`'s `requestState` with the agent's
    /// `inputResponses`. `relay` carries the resumed call's messages to the agent.
    pub async fn resume(
        &self,
        request: &Message,
        relay: Arc<dyn Relay>,
    ) -> Result<Message, CallError> {
        let agent_id = request.id().unwrap_or("null").to_string();
        let params = request.params().unwrap_or("{}");
        let token = json::member_str(params, "requestState")
            .unwrap_or_default()
            .into_owned();
        let Some(parked) = self
            .take(&token)
            .filter(|p| p.what == call_identity(request))
        else {
            return Ok(Message::error_response(
                Some(&agent_id),
                &RpcError::new(codes::INVALID_PARAMS, "invalid or expired requestState")
                    .with_data(serde_json::json!({"reason": "invalid_request_state"})),
            ));
        };
        *parked.relay.inner.lock() = relay;
        let answer =
            json::member(params, "inputResponses").and_then(|r| json::member(r, &parked.key));
        let Some(answer) = answer else {
            // Not answered: ask again, with the same question.
            let reply = input_required(&agent_id, &parked.key, &parked.pending.request, &token);
            self.parked.lock().insert(token, parked);
            return Ok(reply);
        };
        let Parked {
            what,
            call,
            asks,
            pending,
            relay,
            ..
        } = parked;
        let reply = Message::response(pending.request.id().unwrap_or("null"), answer);
        let _ = pending.answer.send(reply);
        self.drive(what, call, asks, relay, &agent_id).await
    }

    async fn drive(
        &self,
        what: (String, Option<String>),
        mut call: CallFuture,
        mut asks: mpsc::UnboundedReceiver<Ask>,
        relay: Arc<AskRelay>,
        agent_id: &str,
    ) -> Result<Message, CallError> {
        tokio::select! {
            biased;
            Some(ask) = asks.recv() => {
                if self.len() >= MAX_PARKED {
                    // Dropping the call cancels it upstream.
                    return Ok(Message::error_response(
                        Some(agent_id),
                        &RpcError::new(
                            codes::INTERNAL_ERROR,
                            format!("the gateway already holds {MAX_PARKED} calls waiting for their agents; retry later"),
                        ),
                    ));
                }
                let (token, key) = self.park_token();
                let reply = input_required(agent_id, &key, &ask.request, &token);
                let parked = Parked { what, call, asks, pending: ask, key, relay, since: Instant::now() };
                self.parked.lock().insert(token, parked);
                Ok(reply)
            }
            reply = &mut call => reply.map(|r| r.with_id(agent_id)),
        }
    }

    fn park_token(&self) -> (String, String) {
        self.expire();
        let token = match &self.replica {
            Some(replica) => format!("{TOKEN_PREFIX}{replica}.{}", uuid::Uuid::new_v4().simple()),
            None => format!("{TOKEN_PREFIX}{}", uuid::Uuid::new_v4().simple()),
        };
        let key = format!("mcpguard-{}", uuid::Uuid::new_v4().simple());
        (token, key)
    }

    fn take(&self, token: &str) -> Option<Parked> {
        self.expire();
        self.parked.lock().remove(token)
    }

    /// Drops parked calls nobody came back for (dropping a call cancels it upstream).
    /// Runs on every parking and from the gateway's housekeeping.
    pub fn expire(&self) {
        self.parked
            .lock()
            .retain(|_, parked| parked.since.elapsed() < PARK_LIMIT);
    }
}

/// What a call is, for matching a resumption: its method and target name.
fn call_identity(request: &Message) -> (String, Option<String>) {
    (
        request.method().unwrap_or_default().to_string(),
        mcpguard_protocol::mcp::call_target(request).map(|n| n.into_owned()),
    )
}

/// The `input_required` result that asks the agent `question` (a server→client request).
fn input_required(agent_id: &str, key: &str, question: &Message, token: &str) -> Message {
    let mut entry = format!(
        r#"{{"method":{}"#,
        serde_json::Value::from(question.method().unwrap_or_default())
    );
    if let Some(params) = question.params() {
        entry.push_str(r#","params":"#);
        entry.push_str(params);
    }
    entry.push('}');
    let result = format!(
        r#"{{"resultType":"input_required","inputRequests":{{{}:{entry}}},"requestState":{}}}"#,
        serde_json::Value::from(key),
        serde_json::Value::from(token)
    );
    Message::response(agent_id, &result)
}

/// The relay of a call that may be parked: questions go to the parking, everything else to
/// the current request's relay (swapped on each resumption).
struct AskRelay {
    inner: Mutex<Arc<dyn Relay>>,
    asks: mpsc::UnboundedSender<Ask>,
}

#[async_trait]
impl Relay for AskRelay {
    async fn notify(&self, message: Message) {
        let inner = self.inner.lock().clone();
        inner.notify(message).await;
    }

    async fn request(&self, message: Message) -> Message {
        if message.method() == Some(method::PING) {
            return Message::response(message.id().unwrap_or("null"), "{}");
        }
        let (answer, answered) = oneshot::channel();
        let id = message.id().map(str::to_string);
        if self
            .asks
            .send(Ask {
                request: message,
                answer,
            })
            .is_err()
        {
            return gone(id.as_deref());
        }
        answered.await.unwrap_or_else(|_| gone(id.as_deref()))
    }

    async fn signal(&self, signal: StreamSignal) {
        let inner = self.inner.lock().clone();
        inner.signal(signal).await;
    }
}

fn gone(id: Option<&str>) -> Message {
    Message::error_response(
        id,
        &RpcError::new(
            codes::CONNECTION_CLOSED,
            "the agent did not come back to answer",
        ),
    )
}

#[cfg(test)]
mod tests;
