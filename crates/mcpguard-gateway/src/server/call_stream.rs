//! The SSE stream of one stateless (2026-07-28) call: the call's messages in order until
//! its answer, through a bounded queue. For an agent that falls behind, notifications
//! (progress, log lines) beyond the queue are dropped; the answer and requests never are
//! (the pump waits for room instead), so a stalled agent costs a bounded amount of memory.

use mcpguard_protocol::Kind;
use tokio::sync::mpsc;

use crate::relay::Outbound;
use crate::session::StreamEvent;

/// Moves the call's messages (`first`, then `rx`) into `events` until the answer to
/// `request_id` (or until the agent is gone).
pub async fn pump(
    first: Outbound,
    mut rx: mpsc::UnboundedReceiver<Outbound>,
    request_id: String,
    events: mpsc::Sender<StreamEvent>,
) {
    let mut next = Some(first);
    let mut dropped = 0u64;
    while let Some(item) = match next.take() {
        Some(item) => Some(item),
        None => rx.recv().await,
    } {
        let Outbound::Message(message) = item else {
            continue;
        };
        let last = super::http::is_final(&message, &request_id);
        let droppable = message.kind() == Kind::Notification;
        let event = StreamEvent {
            id: String::new(),
            message: Some(message),
            retry_ms: None,
        };
        let delivered = match events.try_send(event) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(_)) if droppable => {
                dropped += 1;
                true
            }
            Err(mpsc::error::TrySendError::Full(event)) => events.send(event).await.is_ok(),
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        };
        if !delivered || last {
            break;
        }
    }
    if dropped > 0 {
        tracing::debug!(
            dropped,
            "notifications dropped for an agent that fell behind"
        );
    }
}

#[cfg(test)]
mod tests {
    use mcpguard_protocol::Message;

    use super::*;

    #[tokio::test]
    async fn a_stalled_agent_misses_notifications_but_never_the_answer() {
        let (tx, rx) = mpsc::unbounded_channel();
        let (events_tx, mut events) = mpsc::channel(8);
        let progress = |n: u32| {
            Outbound::Message(Message::notification(
                "notifications/progress",
                Some(&format!(r#"{{"progress":{n}}}"#)),
            ))
        };
        for n in 1..100 {
            let _ = tx.send(progress(n));
        }
        let _ = tx.send(Outbound::Message(Message::response("7", r#"{"ok":true}"#)));
        let pump = tokio::spawn(pump(progress(0), rx, "7".into(), events_tx));
        // The agent reads nothing until the call has produced everything...
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        let mut got = Vec::new();
        while let Some(event) = events.recv().await {
            got.push(event.message.map(|m| m.kind()));
        }
        let _ = pump.await;
        // ...and gets the first notifications that fit, then the answer.
        assert_eq!(got.len(), 9, "{got:?}");
        assert_eq!(got.last(), Some(&Some(Kind::Response)));
    }
}
