//! The table of calls waiting for an upstream's reply on a shared link.
//!
//! Each call gets a fresh numeric id on the link; the caller's own id is kept here and put
//! back on the reply, so two agents that both use id `1` never see each other's answers.
//! Progress tokens are remapped the same way, because the agents choose them too.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use mcpguard_protocol::Message;
use parking_lot::Mutex;
use tokio::sync::oneshot;

use super::Relay;
use crate::error::CallError;

struct Entry {
    reply: oneshot::Sender<Result<Message, CallError>>,
    original_id: Box<str>,
    relay: Arc<dyn Relay>,
    progress_token: Option<Box<str>>,
}

struct ProgressEntry {
    original: Box<str>,
    relay: Arc<dyn Relay>,
}

/// Calls in flight on one link.
#[derive(Default)]
pub struct PendingTable {
    calls: Mutex<HashMap<u64, Entry>>,
    progress: Mutex<HashMap<Box<str>, ProgressEntry>>,
    next_id: AtomicU64,
}

/// A registered call: its id on the link and where its reply will arrive.
pub struct Registration {
    /// The id used on the link.
    pub link_id: u64,
    /// Resolves with the reply (carrying the caller's id) or a failure.
    pub reply: oneshot::Receiver<Result<Message, CallError>>,
    /// The link-side progress token, when the call asked for progress.
    pub progress_token: Option<Box<str>>,
}

impl PendingTable {
    /// An empty table.
    pub fn new() -> PendingTable {
        PendingTable::default()
    }

    /// Registers a call. `progress_token` is the caller's raw `_meta.progressToken`, if any;
    /// the registration carries the token to use on the link instead.
    pub fn register(
        &self,
        original_id: &str,
        relay: Arc<dyn Relay>,
        progress_token: Option<&str>,
    ) -> Registration {
        let link_id = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
        let relay = super::remap::RestoreIds::wrap(relay, &link_id.to_string(), original_id);
        let (tx, rx) = oneshot::channel();
        let link_token = progress_token.map(|original| {
            let token: Box<str> = format!("\"mcpguard-progress-{link_id}\"").into();
            self.progress.lock().insert(
                token.clone(),
                ProgressEntry {
                    original: original.into(),
                    relay: relay.clone(),
                },
            );
            token
        });
        self.calls.lock().insert(
            link_id,
            Entry {
                reply: tx,
                original_id: original_id.into(),
                relay,
                progress_token: link_token.clone(),
            },
        );
        Registration {
            link_id,
            reply: rx,
            progress_token: link_token,
        }
    }

    /// Delivers a reply that arrived with `link_id_raw`. Returns false when no call waits
    /// for it (a late or unknown reply).
    pub fn complete(&self, reply: Message) -> bool {
        let Some(link_id) = reply.id().and_then(|raw| raw.parse::<u64>().ok()) else {
            return false;
        };
        let Some(entry) = self.calls.lock().remove(&link_id) else {
            return false;
        };
        self.forget_progress(entry.progress_token.as_deref());
        let link = link_id.to_string();
        let restored = super::remap::restore_quoted_id(reply, &link, &entry.original_id)
            .with_id(&entry.original_id);
        entry.reply.send(Ok(restored)).is_ok()
    }

    /// Forgets a call (after a timeout or cancellation). Returns true when it was pending.
    pub fn remove(&self, link_id: u64) -> bool {
        match self.calls.lock().remove(&link_id) {
            Some(entry) => {
                self.forget_progress(entry.progress_token.as_deref());
                true
            }
            None => false,
        }
    }

    fn forget_progress(&self, token: Option<&str>) {
        if let Some(token) = token {
            self.progress.lock().remove(token);
        }
    }

    /// Fails every pending call (the link died).
    pub fn fail_all(&self, error: &CallError) {
        let entries: Vec<Entry> = self.calls.lock().drain().map(|(_, e)| e).collect();
        self.progress.lock().clear();
        for entry in entries {
            let _ = entry.reply.send(Err(error.clone()));
        }
    }

    /// The relay of the one call pending, when exactly one is: a server→client message
    /// that names no call can only belong to it. With several calls in flight (on a link
    /// shared by several agents) there is no telling, and guessing would hand one agent's
    /// question or log line to another.
    pub fn sole_relay(&self) -> Option<Arc<dyn Relay>> {
        let calls = self.calls.lock();
        match calls.len() {
            1 => calls.values().next().map(|entry| entry.relay.clone()),
            _ => None,
        }
    }

    /// The relay of the call sent as `link_id`, if it is still pending.
    pub fn relay_of(&self, link_id: u64) -> Option<Arc<dyn Relay>> {
        self.calls
            .lock()
            .get(&link_id)
            .map(|entry| entry.relay.clone())
    }

    /// For a progress notification carrying link-side `token`: the relay to deliver it to
    /// and the caller's original token.
    pub fn progress_target(&self, token: &str) -> Option<(Arc<dyn Relay>, Box<str>)> {
        self.progress
            .lock()
            .get(token)
            .map(|entry| (entry.relay.clone(), entry.original.clone()))
    }

    /// Number of calls in flight.
    pub fn len(&self) -> usize {
        self.calls.lock().len()
    }

    /// True when nothing is in flight.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Rewrites `_meta.progressToken` of a request's params to `token`.
pub fn with_progress_token(request: &Message, token: &str) -> Message {
    let Some(params) = request.params() else {
        return request.clone();
    };
    let Some(meta) = mcpguard_protocol::mcp::meta(Some(params)) else {
        return request.clone();
    };
    let meta = mcpguard_protocol::json::set_member(meta, "progressToken", token);
    let params = mcpguard_protocol::json::set_member(params, "_meta", &meta);
    request.with_params(&params)
}

/// Rewrites `params.progressToken` of a progress notification to `token`.
pub fn with_notification_token(notification: &Message, token: &str) -> Message {
    match notification.params() {
        Some(params) => notification.with_params(&mcpguard_protocol::json::set_member(
            params,
            "progressToken",
            token,
        )),
        None => notification.clone(),
    }
}

#[cfg(test)]
mod tests;
