//! A call's deadline that stops while the agent is being asked something.
//!
//! The per-call timeout is for the upstream. When the upstream asks the agent a question
//! mid-call (elicitation, sampling, roots), the answer may take a person minutes; that time
//! is not the upstream's. The clock stops while a question is out, and the upstream gets
//! its full timeout again once the answer is back.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mcpguard_protocol::Message;
use parking_lot::Mutex;
use tokio::sync::Notify;
use tokio::time::Instant;

use super::{Relay, StreamSignal};

struct State {
    /// `None` while a question is out.
    until: Option<Instant>,
    asking: usize,
}

/// One call's deadline.
pub struct Deadline {
    timeout: Duration,
    state: Mutex<State>,
    changed: Notify,
}

impl Deadline {
    /// A deadline `timeout` from now.
    pub fn new(timeout: Duration) -> Arc<Deadline> {
        Arc::new(Deadline {
            timeout,
            state: Mutex::new(State {
                until: Some(Instant::now() + timeout),
                asking: 0,
            }),
            changed: Notify::new(),
        })
    }

    fn pause(&self) {
        let mut state = self.state.lock();
        state.asking += 1;
        state.until = None;
        self.changed.notify_waiters();
    }

    fn resume(&self) {
        let mut state = self.state.lock();
        state.asking = state.asking.saturating_sub(1);
        if state.asking == 0 {
            state.until = Some(Instant::now() + self.timeout);
        }
        self.changed.notify_waiters();
    }

    /// Resolves when the deadline passes (never while a question is out).
    pub async fn expired(&self) {
        loop {
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            let until = self.state.lock().until;
            match until {
                Some(until) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(until) => {
                            if self.state.lock().until == Some(until) {
                                return;
                            }
                        }
                        _ = changed => {}
                    }
                }
                None => changed.await,
            }
        }
    }

    /// `relay`, with this deadline stopped while the agent answers a question.
    pub fn pausing(self: &Arc<Self>, relay: Arc<dyn Relay>) -> Arc<dyn Relay> {
        Arc::new(Pausing {
            inner: relay,
            deadline: self.clone(),
        })
    }
}

struct Pausing {
    inner: Arc<dyn Relay>,
    deadline: Arc<Deadline>,
}

#[async_trait]
impl Relay for Pausing {
    async fn notify(&self, message: Message) {
        self.inner.notify(message).await;
    }

    async fn request(&self, message: Message) -> Message {
        self.deadline.pause();
        let answer = self.inner.request(message).await;
        self.deadline.resume();
        answer
    }

    async fn signal(&self, signal: StreamSignal) {
        self.inner.signal(signal).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::upstream::NoRelay;

    #[tokio::test(start_paused = true)]
    async fn the_clock_stops_while_the_agent_is_asked() {
        let deadline = Deadline::new(Duration::from_secs(10));
        let expired = tokio::spawn({
            let deadline = deadline.clone();
            async move {
                deadline.expired().await;
                Instant::now()
            }
        });
        let start = Instant::now();
        tokio::time::sleep(Duration::from_secs(5)).await;
        deadline.pause();
        // A person takes a minute to answer: the deadline does not pass meanwhile.
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(!expired.is_finished());
        deadline.resume();
        let at = expired.await.unwrap();
        // Full timeout again after the answer.
        assert_eq!(at - start, Duration::from_secs(75));
    }

    #[tokio::test(start_paused = true)]
    async fn without_questions_it_is_a_plain_timeout() {
        let deadline = Deadline::new(Duration::from_secs(3));
        let start = Instant::now();
        deadline.expired().await;
        assert_eq!(Instant::now() - start, Duration::from_secs(3));
        let relay = deadline.pausing(Arc::new(NoRelay));
        let answer = relay
            .request(Message::request("1", "roots/list", None))
            .await;
        assert!(answer.error().is_some());
    }
}
