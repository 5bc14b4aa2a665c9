use std::collections::VecDeque;

use async_trait::async_trait;
use mcpguard_protocol::mcp::Era;
use parking_lot::Mutex;

use super::*;
use crate::caller::Downstream;
use crate::upstream::ServerInfo;

fn caller() -> Caller {
    Caller {
        era: Era::Handshake,
        protocol_version: "2025-11-25".into(),
        session: None,
        client_info: Some(r#"{"name":"agent","version":"1"}"#.into()),
        client_capabilities: Some(r#"{"elicitation":{}}"#.into()),
        downstream: Downstream::Http,
        remote: None,
        forwarded_headers: Vec::new(),
        identity: None,
        trace_parent: None,
    }
}

#[test]
fn the_envelope_is_added_and_keeps_the_agents_meta() {
    let request = Message::request(
        "3",
        "tools/call",
        Some(r#"{"name":"x","_meta":{"progressToken":4}}"#),
    );
    let enveloped = add_envelope(&request, &caller());
    let meta = json::member(enveloped.params().unwrap(), "_meta").unwrap();
    assert_eq!(json::member(meta, "progressToken"), Some("4"));
    assert_eq!(
        json::member_str(meta, meta_key::PROTOCOL_VERSION).as_deref(),
        Some("2026-07-28")
    );
    assert_eq!(
        json::member(meta, meta_key::CLIENT_INFO),
        Some(r#"{"name":"agent","version":"1"}"#)
    );
    assert_eq!(
        json::member(meta, meta_key::CLIENT_CAPABILITIES),
        Some(r#"{"elicitation":{}}"#)
    );
    // And removed again: only the agent's own `_meta` stays.
    let stripped = strip_envelope(&enveloped);
    assert_eq!(
        stripped.params(),
        Some(r#"{"name":"x","_meta":{"progressToken":4}}"#)
    );
    let bare = strip_envelope(&add_envelope(
        &Message::request("1", "tools/list", None),
        &caller(),
    ));
    assert_eq!(bare.params(), Some("{}"));
}

#[test]
fn handshake_results_get_what_stateless_agents_require() {
    let list = mark_complete(Message::response("1", r#"{"tools":[]}"#), "tools/list");
    assert_eq!(
        list.result(),
        Some(r#"{"tools":[],"resultType":"complete","ttlMs":0,"cacheScope":"private"}"#)
    );
    let call = mark_complete(Message::response("1", r#"{"content":[]}"#), "tools/call");
    assert_eq!(
        call.result(),
        Some(r#"{"content":[],"resultType":"complete"}"#)
    );
    let kept = mark_complete(
        Message::response("1", r#"{"resultType":"input_required"}"#),
        "tools/call",
    );
    assert_eq!(kept.result(), Some(r#"{"resultType":"input_required"}"#));
    assert!(is_input_required(&kept));
}

/// An upstream that answers from a script and remembers what it was sent.
struct Scripted {
    replies: Mutex<VecDeque<String>>,
    seen: Mutex<Vec<Message>>,
}

#[async_trait]
impl Connection for Scripted {
    async fn call(
        &self,
        request: Message,
        _: Arc<dyn Relay>,
        _: &CallOptions,
    ) -> Result<Message, CallError> {
        self.seen.lock().push(request.clone());
        let result = self
            .replies
            .lock()
            .pop_front()
            .unwrap_or_else(|| "{}".into());
        Ok(Message::response(request.id().unwrap_or("null"), &result))
    }
    async fn notify(&self, _: Message) -> Result<(), CallError> {
        Ok(())
    }
    fn info(&self) -> Option<ServerInfo> {
        None
    }
}

/// An agent that accepts every elicitation with `{"v": <round>}`.
struct Agent {
    asked: Mutex<Vec<String>>,
}

#[async_trait]
impl Relay for Agent {
    async fn notify(&self, _: Message) {}
    async fn request(&self, message: Message) -> Message {
        let mut asked = self.asked.lock();
        asked.push(message.method().unwrap_or_default().to_string());
        let answer = format!(r#"{{"action":"accept","content":{{"v":{}}}}}"#, asked.len());
        Message::response(message.id().unwrap_or("null"), &answer)
    }
}

#[tokio::test]
async fn input_required_rounds_are_answered_by_asking_the_agent() {
    let upstream = Arc::new(Scripted {
        replies: Mutex::new(VecDeque::from([
            r#"{"resultType":"input_required","inputRequests":{"k1":{"method":"elicitation/create","params":{"message":"?"}}},"requestState":"s1"}"#.to_string(),
            r#"{"resultType":"input_required","inputRequests":{"k2":{"method":"elicitation/create","params":{"message":"??"}}},"requestState":"s2"}"#.to_string(),
            r#"{"content":[{"type":"text","text":"done"}],"resultType":"complete"}"#.to_string(),
        ])),
        seen: Mutex::new(Vec::new()),
    });
    let agent = Arc::new(Agent {
        asked: Mutex::new(Vec::new()),
    });
    let connection: Arc<dyn Connection> = upstream.clone();
    let relay: Arc<dyn Relay> = agent.clone();
    let request = Message::request("1", "tools/call", Some(r#"{"name":"t"}"#));
    let reply = call_with_input_rounds(
        &connection,
        request,
        &relay,
        &CallOptions::with_timeout(std::time::Duration::from_secs(1)),
    )
    .await
    .unwrap();
    assert!(reply.result().unwrap().contains("done"));
    assert_eq!(agent.asked.lock().len(), 2);
    let seen = upstream.seen.lock();
    assert_eq!(seen.len(), 3);
    let second = seen[1].params().unwrap();
    assert_eq!(
        json::member(second, "inputResponses"),
        Some(r#"{"k1":{"action":"accept","content":{"v":1}}}"#)
    );
    assert_eq!(json::member(second, "requestState"), Some(r#""s1""#));
    // Each round sends the latest state and only the latest answers.
    let third = seen[2].params().unwrap();
    assert_eq!(json::member(third, "requestState"), Some(r#""s2""#));
    assert!(
        !json::member(third, "inputResponses")
            .unwrap()
            .contains("k1")
    );
}

#[tokio::test]
async fn an_upstream_that_never_stops_asking_is_cut_off() {
    let endless = r#"{"resultType":"input_required","requestState":"again"}"#;
    let upstream: Arc<dyn Connection> = Arc::new(Scripted {
        replies: Mutex::new(std::iter::repeat_n(endless.to_string(), 20).collect()),
        seen: Mutex::new(Vec::new()),
    });
    let relay: Arc<dyn Relay> = Arc::new(Agent {
        asked: Mutex::new(Vec::new()),
    });
    let reply = call_with_input_rounds(
        &upstream,
        Message::request("1", "tools/call", Some("{}")),
        &relay,
        &CallOptions::with_timeout(std::time::Duration::from_secs(1)),
    )
    .await
    .unwrap();
    assert!(
        reply.error().unwrap().contains("more than 8 times"),
        "{reply:?}"
    );
}
