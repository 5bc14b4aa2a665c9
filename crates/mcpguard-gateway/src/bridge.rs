//! Bridging the two protocol eras.
//!
//! - A handshake-era agent calling a stateless upstream: each request gets the 2026-07-28
//!   `_meta` envelope built from the agent's `initialize`, and an `input_required` result
//!   is answered by asking the agent with real server→client requests (elicitation,
//!   sampling, roots) and retrying with `inputResponses` and the opaque `requestState`.
//! - A stateless agent calling a handshake-era upstream: the envelope keys are removed
//!   and results get `resultType: "complete"`; a server→client request from the upstream
//!   mid-call becomes an `input_required` result for the agent (see [`crate::parking`]).

use std::sync::Arc;

use mcpguard_protocol::json;
use mcpguard_protocol::{Message, RpcError, codes};

use crate::caller::Caller;
use crate::error::CallError;
use crate::upstream::setup::meta_key;
use crate::upstream::{CallOptions, Connection, Relay};

/// Most `input_required` rounds one call may take before the gateway gives up.
pub const MAX_INPUT_ROUNDS: usize = 8;

/// Adds the 2026-07-28 envelope to a request from a handshake-era agent, keeping any
/// `_meta` the agent sent (a progress token, for one).
pub fn add_envelope(request: &Message, caller: &Caller) -> Message {
    let params = request
        .params()
        .filter(|p| json::is_object(p))
        .unwrap_or("{}");
    // A `_meta` that is not an object is not the agent's to keep: the envelope replaces it.
    let mut meta = json::member(params, "_meta")
        .filter(|m| json::is_object(m))
        .unwrap_or("{}")
        .to_string();
    meta = json::set_member(&meta, meta_key::PROTOCOL_VERSION, "\"2026-07-28\"");
    // `clientInfo` is optional, but when present it must be a whole `Implementation`.
    if let Some(info) = caller.client_info.as_deref() {
        meta = json::set_member(&meta, meta_key::CLIENT_INFO, info);
    }
    meta = json::set_member(
        &meta,
        meta_key::CLIENT_CAPABILITIES,
        caller.client_capabilities.as_deref().unwrap_or("{}"),
    );
    // Handshake-era servers send log messages unless told otherwise; ask the stateless
    // upstream for them at `info` until the agent sets a level.
    let level = caller
        .session
        .as_ref()
        .map(|s| s.log_level.lock().clone().unwrap_or_else(|| "info".into()));
    if let Some(level) = level {
        meta = json::set_member(
            &meta,
            meta_key::LOG_LEVEL,
            &serde_json::Value::from(level).to_string(),
        );
    }
    request.with_params(&json::set_member(params, "_meta", &meta))
}

/// Removes the 2026-07-28 envelope keys from a request bound for a handshake-era upstream.
pub fn strip_envelope(request: &Message) -> Message {
    let Some(params) = request.params() else {
        return request.clone();
    };
    let Some(meta) = json::member(params, "_meta") else {
        return request.clone();
    };
    let mut stripped = meta.to_string();
    for key in [
        meta_key::PROTOCOL_VERSION,
        meta_key::CLIENT_INFO,
        meta_key::CLIENT_CAPABILITIES,
        meta_key::LOG_LEVEL,
    ] {
        stripped = json::remove_member(&stripped, key);
    }
    let empty = stripped
        .chars()
        .all(|c| c == '{' || c == '}' || c.is_whitespace());
    let params = if empty {
        json::remove_member(params, "_meta")
    } else {
        json::set_member(params, "_meta", &stripped)
    };
    request.with_params(&params)
}

/// Methods whose 2026-07-28 results must carry cache hints (`ttlMs`, `cacheScope`).
pub const CACHEABLE_METHODS: &[&str] = &[
    mcpguard_protocol::mcp::method::TOOLS_LIST,
    mcpguard_protocol::mcp::method::PROMPTS_LIST,
    mcpguard_protocol::mcp::method::RESOURCES_LIST,
    mcpguard_protocol::mcp::method::RESOURCES_TEMPLATES_LIST,
    mcpguard_protocol::mcp::method::RESOURCES_READ,
    mcpguard_protocol::mcp::method::DISCOVER,
];

/// Gives a handshake-era result the fields a 2026-07-28 agent requires: `resultType`, and
/// for cacheable methods `ttlMs: 0` and `cacheScope: "private"` (no caching: the
/// upstream made no promise).
pub fn mark_complete(reply: Message, method: &str) -> Message {
    let Some(result) = reply.result().filter(|r| r.starts_with('{')) else {
        return reply;
    };
    if is_input_required(&reply) {
        return reply;
    }
    let mut result = result.to_string();
    if json::member(&result, "resultType").is_none() {
        result = json::set_member(&result, "resultType", "\"complete\"");
    }
    if CACHEABLE_METHODS.contains(&method) {
        if json::member(&result, "ttlMs").is_none() {
            result = json::set_member(&result, "ttlMs", "0");
        }
        if json::member(&result, "cacheScope").is_none() {
            result = json::set_member(&result, "cacheScope", "\"private\"");
        }
    }
    reply.with_result(&result)
}

/// True when a reply is an `input_required` result.
pub fn is_input_required(reply: &Message) -> bool {
    reply
        .result()
        .and_then(|r| json::member_str(r, "resultType"))
        .is_some_and(|t| t == "input_required")
}

/// Calls a stateless upstream for a handshake-era agent, answering `input_required`
/// rounds by asking the agent.
pub async fn call_with_input_rounds(
    connection: &Arc<dyn Connection>,
    request: Message,
    relay: &Arc<dyn Relay>,
    options: &CallOptions,
) -> Result<Message, CallError> {
    let mut current = request;
    for _ in 0..MAX_INPUT_ROUNDS {
        let reply = connection
            .call(current.clone(), relay.clone(), options)
            .await?;
        if !is_input_required(&reply) {
            return Ok(reply);
        }
        let result = reply.result().unwrap_or("{}");
        let responses = match answer_input_requests(result, relay).await {
            Ok(responses) => responses,
            Err(error) => return Ok(Message::error_response(current.id(), &error)),
        };
        let params = current.params().unwrap_or("{}");
        let mut params = json::set_member(params, "inputResponses", &responses);
        params = match json::member(result, "requestState") {
            Some(state) => json::set_member(&params, "requestState", state),
            None => json::remove_member(&params, "requestState"),
        };
        current = current.with_params(&params);
    }
    Ok(Message::error_response(
        current.id(),
        &RpcError::new(
            codes::INTERNAL_ERROR,
            format!(
                "the upstream asked for input more than {MAX_INPUT_ROUNDS} times in one call; the gateway stopped"
            ),
        ),
    ))
}

/// Asks the agent every request in `inputRequests`; returns the `inputResponses` object.
async fn answer_input_requests(result: &str, relay: &Arc<dyn Relay>) -> Result<String, RpcError> {
    let requests = json::member(result, "inputRequests").unwrap_or("{}");
    let entries: Vec<(String, Box<serde_json::value::RawValue>)> = serde_json::from_str::<
        std::collections::BTreeMap<String, Box<serde_json::value::RawValue>>,
    >(requests)
    .map(|map| map.into_iter().collect())
    .map_err(|_| {
        RpcError::new(
            codes::INTERNAL_ERROR,
            "the upstream's `inputRequests` is not an object",
        )
    })?;
    let mut out = serde_json::Map::new();
    for (key, entry) in entries {
        let entry = entry.get();
        let method = json::member_str(entry, "method").ok_or_else(|| {
            RpcError::new(
                codes::INTERNAL_ERROR,
                format!("input request `{key}` names no method"),
            )
        })?;
        let params = json::member(entry, "params");
        let ask = Message::request("0", &method, params);
        let answer = relay.request(ask).await;
        match answer.result() {
            Some(value) => {
                let value: serde_json::Value =
                    serde_json::from_str(value).unwrap_or(serde_json::Value::Null);
                out.insert(key, value);
            }
            None => {
                let error = answer.error().unwrap_or("{}");
                let message = json::member_str(error, "message")
                    .unwrap_or_default()
                    .into_owned();
                let code = json::member(error, "code")
                    .and_then(|c| c.parse().ok())
                    .unwrap_or(codes::INTERNAL_ERROR);
                return Err(RpcError::new(code, message));
            }
        }
    }
    Ok(serde_json::Value::Object(out).to_string())
}

/// Most bridged resource subscriptions one session may hold (each is an upstream stream).
pub const MAX_SUBSCRIPTIONS_PER_SESSION: usize = 256;

/// How long a stateless upstream has to acknowledge a bridged subscription.
const LISTEN_ACK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// `resources/subscribe` or `resources/unsubscribe` from a handshake-era agent, for a
/// stateless upstream (which has neither): kept as a `subscriptions/listen` stream of the
/// gateway's, whose `resources/updated` frames go to the agent's session stream.
pub async fn resource_subscription(
    connection: &Arc<dyn Connection>,
    request: &Message,
    caller: &Caller,
    upstream: &str,
) -> Result<Message, CallError> {
    let Some(session) = caller.session.clone() else {
        return Err(CallError::Bridge(
            "resource subscriptions need a session".into(),
        ));
    };
    let uri = request
        .params()
        .and_then(|p| json::member_str(p, "uri"))
        .unwrap_or_default()
        .into_owned();
    let key = format!("{upstream}\u{0}{uri}");
    let reply_ok = Message::response(request.id().unwrap_or("null"), "{}");
    if request.method() == Some(mcpguard_protocol::mcp::method::RESOURCES_UNSUBSCRIBE) {
        session.remove_subscription(&key);
        return Ok(reply_ok);
    }
    if session.subscription_count() >= MAX_SUBSCRIPTIONS_PER_SESSION {
        return Err(CallError::BadRequest {
            code: codes::INVALID_REQUEST,
            message: format!(
                "this session already holds {MAX_SUBSCRIPTIONS_PER_SESSION} resource subscriptions; unsubscribe from some first"
            ),
        });
    }
    let params = format!(
        r#"{{"notifications":{{"resourceSubscriptions":[{}]}}}}"#,
        serde_json::Value::from(uri.clone())
    );
    let listen = Message::request(
        "\"mcpguard-listen\"",
        mcpguard_protocol::mcp::method::SUBSCRIPTIONS_LISTEN,
        Some(&params),
    );
    let listen = add_envelope(&listen, caller);
    let (ack_tx, ack_rx) = tokio::sync::oneshot::channel();
    let relay: Arc<dyn Relay> = Arc::new(ListenRelay {
        session: crate::relay::SessionRelay::new(&session),
        ack: parking_lot::Mutex::new(Some(ack_tx)),
    });
    let connection = connection.clone();
    let options = CallOptions::with_timeout(crate::upstream::OPEN_ENDED);
    let name = upstream.to_string();
    let task = tokio::spawn(async move {
        if let Err(e) = connection.call(listen, relay, &options).await {
            tracing::debug!(upstream = %name, "a bridged subscription ended: {e}");
        }
    });
    let abort = task.abort_handle();
    session.add_subscription(key.clone(), abort);
    match tokio::time::timeout(LISTEN_ACK_TIMEOUT, ack_rx).await {
        Ok(Ok(())) => Ok(reply_ok),
        _ => {
            session.remove_subscription(&key);
            Err(CallError::Unavailable {
                upstream: upstream.to_string(),
                reason: format!("it did not acknowledge a subscription to `{uri}`"),
            })
        }
    }
}

/// Passes a bridged subscription's frames to the agent's session; swallows the
/// acknowledgement (a handshake-era agent does not know it) after noting it.
struct ListenRelay {
    session: crate::relay::SessionRelay,
    ack: parking_lot::Mutex<Option<tokio::sync::oneshot::Sender<()>>>,
}

#[async_trait::async_trait]
impl Relay for ListenRelay {
    async fn notify(&self, message: Message) {
        if message.method() == Some("notifications/subscriptions/acknowledged") {
            if let Some(ack) = self.ack.lock().take() {
                let _ = ack.send(());
            }
            return;
        }
        self.session.notify(message).await;
    }

    async fn request(&self, message: Message) -> Message {
        self.session.request(message).await
    }
}

#[cfg(test)]
mod tests;
