//! `subscriptions/listen` streams of stateless (2026-07-28) agents in a federation.
//!
//! With several upstreams the gateway answers `subscriptions/listen` itself: it sends the
//! one acknowledgement, opens a listen stream to every stateless upstream (whose own
//! acknowledgements it swallows), and registers the agent here so that list changes from
//! handshake-era upstreams (which arrive outside any call) reach the agent's stream too,
//! tagged with the agent's `subscriptionId`.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use mcpguard_protocol::mcp::method;
use mcpguard_protocol::{Message, json};
use parking_lot::Mutex;

use crate::upstream::remap::SUBSCRIPTION_ID;
use crate::upstream::{Relay, StreamSignal};

/// The notification that acknowledges a listen request.
pub const ACKNOWLEDGED: &str = "notifications/subscriptions/acknowledged";

/// What a listener asked to hear about (the `notifications` param of the request).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// `notifications/tools/list_changed`.
    pub tools: bool,
    /// `notifications/prompts/list_changed`.
    pub prompts: bool,
    /// `notifications/resources/list_changed`.
    pub resources: bool,
    /// `notifications/resources/updated` for these URIs.
    pub uris: Vec<String>,
}

impl Filter {
    /// Reads the `notifications` object of a `subscriptions/listen` request.
    pub fn parse(notifications: Option<&str>) -> Filter {
        let Some(object) = notifications else {
            return Filter::default();
        };
        let flag = |key: &str| json::member(object, key) == Some("true");
        Filter {
            tools: flag("toolsListChanged"),
            prompts: flag("promptsListChanged"),
            resources: flag("resourcesListChanged"),
            uris: json::member(object, "resourceSubscriptions")
                .and_then(|list| serde_json::from_str(list).ok())
                .unwrap_or_default(),
        }
    }

    fn wants(&self, message: &Message) -> bool {
        match message.method() {
            Some(method::TOOLS_LIST_CHANGED) => self.tools,
            Some(method::PROMPTS_LIST_CHANGED) => self.prompts,
            Some(method::RESOURCES_LIST_CHANGED) => self.resources,
            Some(method::RESOURCES_UPDATED) => message
                .params()
                .and_then(|p| json::member_str(p, "uri"))
                .is_some_and(|uri| self.uris.iter().any(|u| *u == uri)),
            _ => false,
        }
    }
}

struct Listener {
    relay: Arc<dyn Relay>,
    subscription_id: String,
    filter: Filter,
}

/// The open listen streams.
#[derive(Default)]
pub struct Listeners {
    next: AtomicU64,
    open: Mutex<HashMap<u64, Listener>>,
}

/// Removes its listener when dropped (the agent hung up).
pub struct Registration {
    listeners: Arc<Listeners>,
    key: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.listeners.open.lock().remove(&self.key);
    }
}

impl Listeners {
    /// No listeners.
    pub fn new() -> Listeners {
        Listeners::default()
    }

    /// Registers a listen stream with the agent's raw request id.
    pub fn add(
        self: &Arc<Self>,
        relay: Arc<dyn Relay>,
        subscription_id: &str,
        filter: Filter,
    ) -> Registration {
        let key = self.next.fetch_add(1, Ordering::Relaxed);
        self.open.lock().insert(
            key,
            Listener {
                relay,
                subscription_id: subscription_id.to_string(),
                filter,
            },
        );
        Registration {
            listeners: self.clone(),
            key,
        }
    }

    /// Delivers a notification that belongs to no call to every listener that wants it.
    pub async fn deliver(&self, message: &Message) {
        let targets: Vec<(Arc<dyn Relay>, String)> = self
            .open
            .lock()
            .values()
            .filter(|l| l.filter.wants(message))
            .map(|l| (l.relay.clone(), l.subscription_id.clone()))
            .collect();
        for (relay, id) in targets {
            relay.notify(tag(message, &id)).await;
        }
    }

    /// Number of open listen streams.
    pub fn len(&self) -> usize {
        self.open.lock().len()
    }

    /// True when none is open.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// `message` with `params._meta.subscriptionId` set to `id` (raw JSON).
pub fn tag(message: &Message, id: &str) -> Message {
    let params = message.params().unwrap_or("{}");
    let meta = json::member(params, "_meta").unwrap_or("{}");
    let meta = json::set_member(meta, SUBSCRIPTION_ID, id);
    message.with_params(&json::set_member(params, "_meta", &meta))
}

/// The acknowledgement the gateway sends for a listen request `id` with `notifications`.
pub fn acknowledgement(id: &str, notifications: Option<&str>) -> Message {
    let params = format!(
        r#"{{"_meta":{{"{SUBSCRIPTION_ID}":{id}}},"notifications":{}}}"#,
        notifications.unwrap_or("{}")
    );
    Message::notification(ACKNOWLEDGED, Some(&params))
}

/// Passes an upstream listen stream's frames on, minus its own acknowledgement (the agent
/// got the gateway's).
pub struct DropAcknowledgement(pub Arc<dyn Relay>);

#[async_trait]
impl Relay for DropAcknowledgement {
    async fn notify(&self, message: Message) {
        if message.method() != Some(ACKNOWLEDGED) {
            self.0.notify(message).await;
        }
    }

    async fn request(&self, message: Message) -> Message {
        self.0.request(message).await
    }

    async fn signal(&self, signal: StreamSignal) {
        self.0.signal(signal).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc;

    struct Collect(mpsc::UnboundedSender<Message>);

    #[async_trait]
    impl Relay for Collect {
        async fn notify(&self, message: Message) {
            let _ = self.0.send(message);
        }
        async fn request(&self, message: Message) -> Message {
            message
        }
    }

    #[tokio::test]
    async fn listeners_hear_only_what_they_asked_for_tagged_with_their_id() {
        let listeners = Arc::new(Listeners::new());
        let (tx, mut rx) = mpsc::unbounded_channel();
        let filter = Filter::parse(Some(
            r#"{"toolsListChanged":true,"resourceSubscriptions":["a://1"]}"#,
        ));
        assert!(filter.tools && !filter.prompts && filter.uris == ["a://1"]);
        let registration = listeners.add(Arc::new(Collect(tx)), "\"sub-1\"", filter);
        listeners
            .deliver(&Message::notification(method::TOOLS_LIST_CHANGED, None))
            .await;
        listeners
            .deliver(&Message::notification(method::PROMPTS_LIST_CHANGED, None))
            .await;
        listeners
            .deliver(&Message::notification(
                method::RESOURCES_UPDATED,
                Some(r#"{"uri":"a://2"}"#),
            ))
            .await;
        listeners
            .deliver(&Message::notification(
                method::RESOURCES_UPDATED,
                Some(r#"{"uri":"a://1"}"#),
            ))
            .await;
        let first = rx.recv().await.unwrap();
        assert_eq!(first.method(), Some(method::TOOLS_LIST_CHANGED));
        assert_eq!(
            crate::upstream::remap::quoted_request_id(&first),
            Some("\"sub-1\"")
        );
        let second = rx.recv().await.unwrap();
        assert_eq!(
            second
                .params()
                .and_then(|p| json::member_str(p, "uri"))
                .as_deref(),
            Some("a://1")
        );
        assert!(rx.try_recv().is_err());
        drop(registration);
        assert!(listeners.is_empty());
    }

    #[test]
    fn the_acknowledgement_names_the_request() {
        let ack = acknowledgement("7", Some(r#"{"toolsListChanged":true}"#));
        assert_eq!(crate::upstream::remap::quoted_request_id(&ack), Some("7"));
        assert_eq!(ack.method(), Some(ACKNOWLEDGED));
    }
}
