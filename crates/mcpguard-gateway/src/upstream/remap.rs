//! Keeping the agent's own request id in messages that echo it.
//!
//! A link sends each request under its own id. Messages that quote the request id back —
//! 2026-07-28 subscription frames carry `_meta["io.modelcontextprotocol/subscriptionId"]`
//! — must show the agent its own id again.

use std::sync::Arc;

use async_trait::async_trait;
use mcpguard_protocol::{Message, json};

use super::{Relay, StreamSignal};

/// The `_meta` key naming the `subscriptions/listen` request a frame belongs to.
pub const SUBSCRIPTION_ID: &str = "io.modelcontextprotocol/subscriptionId";

/// The link id quoted in a notification's `params._meta.subscriptionId`, if any.
pub fn quoted_request_id(message: &Message) -> Option<&str> {
    let meta = json::member(message.params()?, "_meta")?;
    json::member(meta, SUBSCRIPTION_ID)
}

/// `message` with a quoted `link_id` (in `params._meta` or `result._meta`) replaced by
/// `original_id`; unchanged when it quotes nothing or something else.
pub fn restore_quoted_id(message: Message, link_id: &str, original_id: &str) -> Message {
    // Cheap test first: almost no message quotes a request id.
    if memchr::memmem::find(message.bytes(), b"subscriptionId").is_none() {
        return message;
    }
    let (object, is_result) = match (message.params(), message.result()) {
        (Some(params), _) => (params, false),
        (None, Some(result)) => (result, true),
        _ => return message,
    };
    let Some(meta) = json::member(object, "_meta") else {
        return message;
    };
    if json::member(meta, SUBSCRIPTION_ID) != Some(link_id) {
        return message;
    }
    let meta = json::set_member(meta, SUBSCRIPTION_ID, original_id);
    let object = json::set_member(object, "_meta", &meta);
    if is_result {
        message.with_result(&object)
    } else {
        message.with_params(&object)
    }
}

/// A relay that restores the agent's id in the notifications it passes on.
pub struct RestoreIds {
    inner: Arc<dyn Relay>,
    link_id: String,
    original_id: String,
}

impl RestoreIds {
    /// Wraps `inner` for a call sent as `link_id` that the agent sent as `original_id`.
    pub fn wrap(inner: Arc<dyn Relay>, link_id: &str, original_id: &str) -> Arc<dyn Relay> {
        Arc::new(RestoreIds {
            inner,
            link_id: link_id.to_string(),
            original_id: original_id.to_string(),
        })
    }
}

#[async_trait]
impl Relay for RestoreIds {
    async fn notify(&self, message: Message) {
        self.inner
            .notify(restore_quoted_id(message, &self.link_id, &self.original_id))
            .await;
    }

    async fn request(&self, message: Message) -> Message {
        self.inner.request(message).await
    }

    async fn signal(&self, signal: StreamSignal) {
        self.inner.signal(signal).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn restores_the_agents_id_in_frames_and_results() {
        let frame = Message::parse(
            br#"{"jsonrpc":"2.0","method":"notifications/tools/list_changed","params":{"_meta":{"io.modelcontextprotocol/subscriptionId":7}}}"#.to_vec(),
        )
        .unwrap();
        assert_eq!(quoted_request_id(&frame), Some("7"));
        let restored = restore_quoted_id(frame.clone(), "7", "\"sub-1\"");
        assert_eq!(quoted_request_id(&restored), Some("\"sub-1\""));
        // Another id is left alone.
        let other = restore_quoted_id(frame, "8", "\"sub-1\"");
        assert_eq!(quoted_request_id(&other), Some("7"));
        let result = Message::parse(
            br#"{"jsonrpc":"2.0","id":"sub-1","result":{"_meta":{"io.modelcontextprotocol/subscriptionId":7},"resultType":"complete"}}"#.to_vec(),
        )
        .unwrap();
        let restored = restore_quoted_id(result, "7", "\"sub-1\"");
        assert!(
            restored
                .as_str()
                .contains(r#""io.modelcontextprotocol/subscriptionId":"sub-1""#)
        );
    }
}
