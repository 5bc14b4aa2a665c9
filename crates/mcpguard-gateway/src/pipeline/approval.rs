//! `require_approval`: asking the agent's user through MCP elicitation before a call runs.
//!
//! Handshake era: the gateway sends `elicitation/create` to the agent and waits for the
//! answer. 2026-07-28 era: the call is answered with an `input_required` result holding the
//! same question and a `requestState` token bound to this exact call (method, name and
//! arguments) by an HMAC, valid for a few minutes; the agent's retry carries the answer and
//! the token, which the gateway checks and removes before forwarding. An agent that cannot
//! be asked (no elicitation capability) gets a denial.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hmac::{Hmac, Mac};
use mcpguard_protocol::{Message, json};
use sha2::{Digest, Sha256};

/// The `inputRequests` key of the gateway's question.
pub const INPUT_KEY: &str = "mcpguard.approval";
/// Prefix of the gateway's `requestState` tokens.
const TOKEN_PREFIX: &str = "mcpguard-approval.v1.";
/// How long an approval question stays answerable.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(600);

/// Signs and checks approval tokens.
pub struct Approvals {
    key: [u8; 32],
    /// Tokens already answered (each works once), with their expiry.
    used: parking_lot::Mutex<std::collections::HashMap<String, u64>>,
}

/// The user's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Approved.
    Approved,
    /// Declined, cancelled or not approved.
    Refused(String),
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// What the token binds: the caller, the method and every parameter (name, arguments,
/// URI, …) except `_meta` and the approval members themselves.
fn call_digest(request: &Message, caller: &str) -> [u8; 32] {
    let params = request.params().unwrap_or("{}");
    let bound = json::remove_member(
        &json::remove_member(&json::remove_member(params, "_meta"), "requestState"),
        "inputResponses",
    );
    let mut hasher = Sha256::new();
    hasher.update(caller.as_bytes());
    hasher.update([0]);
    hasher.update(request.method().unwrap_or_default().as_bytes());
    hasher.update([0]);
    hasher.update(bound.as_bytes());
    hasher.finalize().into()
}

impl Approvals {
    /// With a fresh random key (tokens do not survive a restart).
    pub fn new() -> Approvals {
        Approvals {
            key: rand::random(),
            used: parking_lot::Mutex::new(std::collections::HashMap::new()),
        }
    }

    fn mac(&self, expiry: u64, nonce: &str, digest: &[u8; 32]) -> Vec<u8> {
        let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(&self.key) {
            Ok(mac) => mac,
            Err(_) => return Vec::new(),
        };
        mac.update(&expiry.to_be_bytes());
        mac.update(nonce.as_bytes());
        mac.update(digest);
        mac.finalize().into_bytes().to_vec()
    }

    fn token(&self, request: &Message, caller: &str) -> String {
        let expiry = now() + TOKEN_LIFETIME.as_secs();
        let nonce = format!("{:016x}", rand::random::<u64>());
        let mac: String = self
            .mac(expiry, &nonce, &call_digest(request, caller))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        format!("{TOKEN_PREFIX}{expiry}.{nonce}.{mac}")
    }

    /// The elicitation parameters for a question about `request`.
    pub fn question(message: &str) -> String {
        serde_json::json!({
            "mode": "form",
            "message": message,
            "requestedSchema": {
                "type": "object",
                "properties": {
                    "approve": {"type": "boolean", "title": "Allow this call?", "default": false}
                },
                "required": ["approve"]
            }
        })
        .to_string()
    }

    /// The `input_required` answer that asks the stateless agent.
    pub fn input_required(&self, request: &Message, caller: &str, message: &str) -> Message {
        let result = format!(
            r#"{{"resultType":"input_required","inputRequests":{{{}:{{"method":"elicitation/create","params":{}}}}},"requestState":{}}}"#,
            serde_json::Value::from(INPUT_KEY),
            Self::question(message),
            serde_json::Value::from(self.token(request, caller)),
        );
        Message::response(request.id().unwrap_or("null"), &result)
    }

    /// When `request` is a stateless agent's retry answering the gateway's question: the
    /// request without the approval members, and the answer. `None` when it is not.
    pub fn retry(&self, request: &Message, caller: &str) -> Option<(Message, Answer)> {
        let params = request.params()?;
        let state = json::member_str(params, "requestState")?;
        let rest = state.strip_prefix(TOKEN_PREFIX)?;
        let stripped = request.with_params(&json::remove_member(
            &json::remove_member(params, "requestState"),
            "inputResponses",
        ));
        let (expiry, rest) = rest.split_once('.')?;
        let (nonce, mac) = rest.split_once('.')?;
        let expiry: u64 = expiry.parse().ok()?;
        let expected: String = self
            .mac(expiry, nonce, &call_digest(&stripped, caller))
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let valid: bool = subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), mac.as_bytes()).into();
        if !valid {
            return Some((stripped, Answer::Refused("the approval token does not belong to this call (the arguments changed, or it was forged)".into())));
        }
        if expiry < now() {
            return Some((
                stripped,
                Answer::Refused("the approval expired; call again to be asked again".into()),
            ));
        }
        {
            let mut used = self.used.lock();
            let time = now();
            used.retain(|_, until| *until >= time);
            if used.insert(state.to_string(), expiry).is_some() {
                return Some((
                    stripped,
                    Answer::Refused(
                        "this approval was already used; call again to be asked again".into(),
                    ),
                ));
            }
        }
        let answer = json::member(params, "inputResponses")
            .and_then(|r| json::member(r, INPUT_KEY))
            .map_or_else(
                || Answer::Refused("the retry carries no answer to the approval question".into()),
                read_answer,
            );
        Some((stripped, answer))
    }
}

impl Default for Approvals {
    fn default() -> Self {
        Approvals::new()
    }
}

/// Reads an `ElicitResult` (`{"action": "accept", "content": {"approve": true}}`).
pub fn read_answer(result: &str) -> Answer {
    let action = json::member_str(result, "action").unwrap_or_default();
    let approved =
        json::member(result, "content").and_then(|c| json::member(c, "approve")) == Some("true");
    match (action.as_ref(), approved) {
        ("accept", true) => Answer::Approved,
        ("accept", false) => Answer::Refused("the user did not approve the call".into()),
        ("decline", _) => Answer::Refused("the user declined the call".into()),
        ("cancel", _) => Answer::Refused("the user cancelled the approval".into()),
        _ => Answer::Refused(format!("unexpected approval answer `{action}`")),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests")]
    use super::*;

    fn call(args: &str) -> Message {
        Message::request(
            "7",
            "tools/call",
            Some(&format!(r#"{{"name":"delete_file","arguments":{args}}}"#)),
        )
    }

    fn retry_of(asked: &Message, request: &Message, answer: &str) -> Message {
        let state = json::member(asked.result().unwrap(), "requestState").unwrap();
        let params = json::set_member(request.params().unwrap(), "requestState", state);
        let params = json::set_member(
            &params,
            "inputResponses",
            &format!(r#"{{"{INPUT_KEY}":{answer}}}"#),
        );
        request.with_params(&params)
    }

    #[test]
    fn an_approved_retry_passes_and_is_stripped() {
        let approvals = Approvals::new();
        let request = call(r#"{"path":"/tmp/x"}"#);
        let asked = approvals.input_required(&request, "agent", "ok?");
        assert!(asked.result().unwrap().contains("input_required"));
        let retry = retry_of(
            &asked,
            &request,
            r#"{"action":"accept","content":{"approve":true}}"#,
        );
        let (stripped, answer) = approvals.retry(&retry, "agent").unwrap();
        assert_eq!(answer, Answer::Approved);
        assert_eq!(stripped.params(), request.params());
    }

    #[test]
    fn declines_changed_arguments_and_forgeries_are_refused() {
        let approvals = Approvals::new();
        let request = call(r#"{"path":"/tmp/x"}"#);
        let asked = approvals.input_required(&request, "agent", "ok?");
        let declined = retry_of(&asked, &request, r#"{"action":"decline"}"#);
        assert!(matches!(
            approvals.retry(&declined, "agent").unwrap().1,
            Answer::Refused(_)
        ));
        let other = call(r#"{"path":"/"}"#);
        let swapped = retry_of(
            &asked,
            &other,
            r#"{"action":"accept","content":{"approve":true}}"#,
        );
        match approvals.retry(&swapped, "agent").unwrap().1 {
            Answer::Refused(why) => assert!(why.contains("does not belong"), "{why}"),
            other => panic!("{other:?}"),
        }
        let forged = Approvals::new().input_required(&request, "agent", "ok?");
        let forged = retry_of(
            &forged,
            &request,
            r#"{"action":"accept","content":{"approve":true}}"#,
        );
        assert!(matches!(
            approvals.retry(&forged, "agent").unwrap().1,
            Answer::Refused(_)
        ));
        assert!(approvals.retry(&request, "agent").is_none());
        // Another caller cannot use it; the same caller can use it once.
        let asked = approvals.input_required(&request, "agent", "ok?");
        let yes = retry_of(
            &asked,
            &request,
            r#"{"action":"accept","content":{"approve":true}}"#,
        );
        assert!(matches!(
            approvals.retry(&yes, "someone-else").unwrap().1,
            Answer::Refused(_)
        ));
        assert_eq!(approvals.retry(&yes, "agent").unwrap().1, Answer::Approved);
        match approvals.retry(&yes, "agent").unwrap().1 {
            Answer::Refused(why) => assert!(why.contains("already used"), "{why}"),
            other => panic!("{other:?}"),
        }
    }
}
