//! Agent sessions of the handshake era, and their SSE streams.
//!
//! A session starts with `initialize` and is named by an unguessable `Mcp-Session-Id`.
//! It owns the streams that carry messages to the agent: one per POST answered with SSE,
//! plus the standalone `GET` stream. Each stream keeps its last events so an agent that
//! lost the connection can resume with `Last-Event-ID` (event ids are `<stream>-<seq>`).
//! Server→client requests relayed to the agent get gateway ids, and the agent's answers
//! are matched back here.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use mcpguard_protocol::mcp::Era;
use mcpguard_protocol::{Message, sse};
use parking_lot::Mutex;
use tokio::sync::{OnceCell, mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use crate::upstream::http::HttpLink;

/// Most bytes of messages one stream keeps for resumption (besides its event count).
pub const REPLAY_BUFFER_BYTES: usize = 16 * 1024 * 1024;

/// Events an attached agent may fall behind by before its response is cut (it resumes
/// with `Last-Event-ID` from the replay buffer): a stalled agent never makes the gateway
/// hold more than that and the replay buffer.
pub const LIVE_QUEUE: usize = 1024;

/// How long an agent has to answer a server→client request.
pub const CLIENT_ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// One event of a stream: its id and its message (`None` for the priming event).
#[derive(Debug, Clone)]
pub struct StreamEvent {
    /// The SSE event id, `<stream>-<seq>`.
    pub id: String,
    /// The message, or `None` for a priming event.
    pub message: Option<Message>,
    /// For a priming event: the reconnection delay to suggest, in milliseconds.
    pub retry_ms: Option<u64>,
}

impl StreamEvent {
    /// The event encoded for a `text/event-stream` body.
    pub fn to_sse(&self) -> Bytes {
        match &self.message {
            Some(message) => sse::encode(Some(&self.id), message.bytes()),
            None => sse::encode_priming(&self.id, self.retry_ms),
        }
    }
}

/// One SSE stream towards the agent, with a replay buffer.
pub struct Stream {
    number: u64,
    state: Mutex<StreamState>,
    capacity: usize,
}

struct StreamState {
    events: VecDeque<(u64, StreamEvent)>,
    next_seq: u64,
    /// The first event not yet handed to an attached agent.
    undelivered: u64,
    /// Bytes of the messages in `events`.
    bytes: usize,
    live: Option<mpsc::Sender<StreamEvent>>,
    finished: bool,
}

impl Stream {
    fn new(number: u64, capacity: usize) -> Stream {
        Stream {
            number,
            capacity: capacity.max(1),
            state: Mutex::new(StreamState {
                events: VecDeque::new(),
                next_seq: 0,
                undelivered: 0,
                bytes: 0,
                live: None,
                finished: false,
            }),
        }
    }

    /// The stream's number within its session.
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Sends the priming event: an id and no data, so the agent can resume from the start.
    pub fn prime(&self, retry_ms: Option<u64>) {
        self.record(None, retry_ms);
    }

    /// Appends a message and sends it to the attached agent, if any.
    pub fn push(&self, message: &Message) {
        self.record(Some(message.clone()), None);
    }

    /// Ends the attached agent's response without finishing the stream: the agent resumes
    /// with `Last-Event-ID` (the polling pattern of the 2025-11-25 transport).
    pub fn detach(&self) {
        self.state.lock().live = None;
    }

    fn record(&self, message: Option<Message>, retry_ms: Option<u64>) {
        let mut state = self.state.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        let event = StreamEvent {
            id: format!("{}-{seq}", self.number),
            message,
            retry_ms,
        };
        if let Some(live) = &state.live
            && let Err(e) = live.try_send(event.clone())
        {
            if matches!(e, mpsc::error::TrySendError::Full(_)) {
                tracing::debug!(
                    stream = self.number,
                    "the agent fell {LIVE_QUEUE} events behind: its response ends and it resumes from the replay buffer"
                );
            }
            state.live = None;
        }
        state.bytes += event.message.as_ref().map_or(0, |m| m.bytes().len());
        state.events.push_back((seq, event));
        while state.events.len() > self.capacity
            || (state.bytes > REPLAY_BUFFER_BYTES && state.events.len() > 1)
        {
            if let Some((_, dropped)) = state.events.pop_front() {
                state.bytes -= dropped.message.as_ref().map_or(0, |m| m.bytes().len());
            }
        }
    }

    /// Marks the stream complete: the attached agent's response ends after what it has.
    pub fn finish(&self) {
        let mut state = self.state.lock();
        state.finished = true;
        state.live = None;
    }

    /// Attaches an agent: replays the events after `after_seq` (all when `None`), then
    /// delivers new ones. The receiver ends when the stream finishes. `None` when events
    /// the agent asked for have already been dropped from the buffer.
    pub fn attach(&self, after_seq: Option<u64>) -> Option<mpsc::Receiver<StreamEvent>> {
        let mut state = self.state.lock();
        let first_kept = state
            .events
            .front()
            .map(|(seq, _)| *seq)
            .unwrap_or(state.next_seq);
        let wanted = after_seq.map_or(0, |seq| seq + 1);
        if wanted < first_kept {
            return None;
        }
        let (tx, rx) = mpsc::channel(self.capacity + LIVE_QUEUE);
        for (seq, event) in &state.events {
            if *seq >= wanted {
                let _ = tx.try_send(event.clone());
            }
        }
        if !state.finished {
            state.live = Some(tx);
        }
        Some(rx)
    }

    /// Attaches an agent that names no event to resume from (a fresh `GET`): it gets what
    /// no agent has received yet, then new events. Never replays what was delivered.
    pub fn attach_fresh(&self) -> mpsc::Receiver<StreamEvent> {
        let mut state = self.state.lock();
        let (tx, rx) = mpsc::channel(self.capacity + LIVE_QUEUE);
        let from = state.undelivered;
        for (seq, event) in &state.events {
            if *seq >= from {
                let _ = tx.try_send(event.clone());
            }
        }
        state.undelivered = state.next_seq;
        if !state.finished {
            state.live = Some(tx);
        }
        rx
    }

    /// True once finished.
    pub fn is_finished(&self) -> bool {
        self.state.lock().finished
    }

    /// True when an agent is attached.
    pub fn is_attached(&self) -> bool {
        self.state
            .lock()
            .live
            .as_ref()
            .is_some_and(|live| !live.is_closed())
    }
}

/// Splits an event id `<stream>-<seq>`.
pub fn parse_event_id(id: &str) -> Option<(u64, u64)> {
    let (stream, seq) = id.split_once('-')?;
    Some((stream.parse().ok()?, seq.parse().ok()?))
}

/// A handshake-era agent session.
pub struct Session {
    id: String,
    /// The revision agreed at `initialize`.
    pub protocol_version: String,
    /// Raw `initialize` params the agent sent.
    pub initialize_params: String,
    /// Raw `clientInfo`.
    pub client_info: Arc<str>,
    /// Raw `capabilities`.
    pub client_capabilities: Arc<str>,
    streams: Mutex<HashMap<u64, Arc<Stream>>>,
    standalone: Mutex<Option<Arc<Stream>>>,
    next_stream: AtomicU64,
    replay_capacity: usize,
    pending_answers: Mutex<HashMap<String, oneshot::Sender<Message>>>,
    next_request: AtomicU64,
    in_flight: Mutex<HashMap<String, CancellationToken>>,
    links: Mutex<HashMap<String, Arc<OnceCell<Arc<HttpLink>>>>>,
    last_seen: Mutex<Instant>,
    /// The lowest log level the agent asked for with `logging/setLevel`.
    pub log_level: Mutex<Option<String>>,
    closed: CancellationToken,
    subscriptions: Mutex<HashMap<String, tokio::task::AbortHandle>>,
    subscribed_uris: Mutex<std::collections::HashSet<String>>,
    /// Messages for the agent that belong to no call and found no `GET` stream yet.
    backlog: Mutex<VecDeque<Message>>,
    /// Who opened the session (when authentication is on).
    identity: std::sync::OnceLock<Arc<crate::auth::Identity>>,
    /// The name of who opened it; only they may use it.
    owner: std::sync::OnceLock<String>,
    /// With shared state: when this replica last confirmed in Redis that the session lives.
    confirmed: Mutex<Option<Instant>>,
    /// How replicas name the session to each other (a digest of the id), made once.
    tag: std::sync::OnceLock<String>,
    /// Stdio servers of its own (`isolation: session`), by upstream; stopped when it ends.
    own_stdio: Mutex<HashMap<String, Arc<crate::upstream::stdio::StdioUpstream>>>,
}

const BACKLOG_LIMIT: usize = 256;

impl Session {
    /// Records who opened the session (once).
    pub fn set_identity(&self, identity: Arc<crate::auth::Identity>) {
        let _ = self.owner.set(identity.name.clone());
        let _ = self.identity.set(identity);
    }

    /// The name of who opened the session, when authentication is on.
    pub fn owner(&self) -> Option<&str> {
        self.owner.get().map(String::as_str)
    }

    /// Who opened the session, when authentication is on.
    pub fn identity(&self) -> Option<Arc<crate::auth::Identity>> {
        self.identity.get().cloned()
    }

    /// Whether `identity` may use this session: the same identity that opened it.
    pub fn belongs_to(&self, identity: Option<&crate::auth::Identity>) -> bool {
        match (self.owner.get(), identity) {
            (None, _) => true,
            (Some(owner), Some(identity)) => *owner == identity.name,
            (Some(_), None) => false,
        }
    }

    /// A new session with a fresh random id.
    pub fn new(initialize_params: &str, protocol_version: &str, replay_capacity: usize) -> Session {
        Session::restore(
            uuid::Uuid::new_v4().simple().to_string(),
            initialize_params,
            protocol_version,
            None,
            replay_capacity,
        )
    }

    /// A session opened elsewhere (by another replica) under `id`, owned by `owner`.
    pub fn restore(
        id: String,
        initialize_params: &str,
        protocol_version: &str,
        owner: Option<String>,
        replay_capacity: usize,
    ) -> Session {
        let client_info = mcpguard_protocol::json::member(initialize_params, "clientInfo")
            .unwrap_or("{}")
            .into();
        let client_capabilities =
            mcpguard_protocol::json::member(initialize_params, "capabilities")
                .unwrap_or("{}")
                .into();
        let owned = std::sync::OnceLock::new();
        if let Some(owner) = owner {
            let _ = owned.set(owner);
        }
        Session {
            id,
            protocol_version: protocol_version.to_string(),
            initialize_params: initialize_params.to_string(),
            client_info,
            client_capabilities,
            streams: Mutex::new(HashMap::new()),
            standalone: Mutex::new(None),
            next_stream: AtomicU64::new(0),
            replay_capacity,
            pending_answers: Mutex::new(HashMap::new()),
            next_request: AtomicU64::new(0),
            in_flight: Mutex::new(HashMap::new()),
            links: Mutex::new(HashMap::new()),
            last_seen: Mutex::new(Instant::now()),
            log_level: Mutex::new(None),
            closed: CancellationToken::new(),
            subscriptions: Mutex::new(HashMap::new()),
            subscribed_uris: Mutex::new(std::collections::HashSet::new()),
            backlog: Mutex::new(VecDeque::new()),

            identity: std::sync::OnceLock::new(),
            owner: owned,
            confirmed: Mutex::new(None),
            tag: std::sync::OnceLock::new(),
            own_stdio: Mutex::new(HashMap::new()),
        }
    }

    /// The `Mcp-Session-Id`.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A short form of the id for logs: enough to follow a session, not enough to act as
    /// it (the full id is the session's only credential).
    pub fn log_id(&self) -> &str {
        &self.id[..self.id.len().min(8)]
    }

    /// The era (always the handshake era: stateless agents have no session).
    pub fn era(&self) -> Era {
        Era::Handshake
    }

    /// Notes activity now.
    pub fn touch(&self) {
        *self.last_seen.lock() = Instant::now();
    }

    /// Time since the last activity.
    pub fn idle_for(&self) -> Duration {
        self.last_seen.lock().elapsed()
    }

    /// True while the agent has calls running or its `GET` stream attached: such a session
    /// is in use however long ago its last message was.
    pub fn is_busy(&self) -> bool {
        !self.in_flight.lock().is_empty()
            || self
                .standalone
                .lock()
                .as_ref()
                .is_some_and(|stream| stream.is_attached())
    }

    /// Opens a new stream for a POST answered with SSE.
    pub fn open_stream(&self) -> Arc<Stream> {
        let number = self.next_stream.fetch_add(1, Ordering::Relaxed) + 1;
        let stream = Arc::new(Stream::new(number, self.replay_capacity));
        let standalone = self.standalone.lock().as_ref().map(|s| s.number());
        let mut streams = self.streams.lock();
        // Keep only the 64 most recent finished streams for resumption; the GET stream and
        // streams still running always stay.
        let mut finished: Vec<u64> = streams
            .iter()
            .filter(|(n, s)| Some(**n) != standalone && s.is_finished())
            .map(|(n, _)| *n)
            .collect();
        if finished.len() > 64 {
            finished.sort_unstable();
            for old in &finished[..finished.len() - 64] {
                streams.remove(old);
            }
        }
        streams.insert(number, stream.clone());
        stream
    }

    /// Finds a stream by number, for resumption.
    pub fn stream(&self, number: u64) -> Option<Arc<Stream>> {
        self.streams.lock().get(&number).cloned()
    }

    /// The standalone `GET` stream (opened on first use), with any backlog flushed into it.
    pub fn standalone_stream(&self) -> Arc<Stream> {
        let mut slot = self.standalone.lock();
        let stream = slot
            .get_or_insert_with(|| {
                let number = self.next_stream.fetch_add(1, Ordering::Relaxed) + 1;
                let stream = Arc::new(Stream::new(number, self.replay_capacity));
                stream.prime(None);
                self.streams.lock().insert(number, stream.clone());
                stream
            })
            .clone();
        drop(slot);
        for message in self.backlog.lock().drain(..) {
            stream.push(&message);
        }
        stream
    }

    /// Sends a message that belongs to no call: on the `GET` stream when the agent has one
    /// open, otherwise kept (bounded) until it opens one.
    pub fn send_unsolicited(&self, message: &Message) {
        let standalone = self.standalone.lock().clone();
        match standalone {
            Some(stream) => stream.push(message),
            None => {
                let mut backlog = self.backlog.lock();
                if backlog.len() >= BACKLOG_LIMIT {
                    backlog.pop_front();
                }
                backlog.push_back(message.clone());
            }
        }
    }

    /// Registers a server→client request about to be sent to the agent; returns the id to
    /// send it with and where the agent's answer will arrive.
    pub fn expect_answer(&self) -> (String, oneshot::Receiver<Message>) {
        let n = self.next_request.fetch_add(1, Ordering::Relaxed) + 1;
        let id = format!("\"mcpguard-{n}\"");
        let (tx, rx) = oneshot::channel();
        self.pending_answers.lock().insert(id.clone(), tx);
        (id, rx)
    }

    /// Forgets an expected answer (timeout).
    pub fn forget_answer(&self, id: &str) {
        self.pending_answers.lock().remove(id);
    }

    /// Delivers an agent's answer to a server→client request. False when nothing waits.
    pub fn deliver_answer(&self, answer: Message) -> bool {
        let Some(id) = answer.id() else {
            return false;
        };
        match self.pending_answers.lock().remove(id) {
            Some(tx) => tx.send(answer).is_ok(),
            None => false,
        }
    }

    /// Tracks an agent request in flight so `notifications/cancelled` can stop it.
    /// `None` when a request with that id is already in flight: ids must not be reused
    /// while their request runs (the answer and a cancellation would be ambiguous).
    pub fn track(&self, request_id: &str) -> Option<CancellationToken> {
        let mut in_flight = self.in_flight.lock();
        if in_flight.contains_key(request_id) {
            return None;
        }
        let token = self.closed.child_token();
        in_flight.insert(request_id.to_string(), token.clone());
        Some(token)
    }

    /// How replicas name this session to each other ([`crate::shared::session_tag`]).
    pub fn tag(&self) -> &str {
        self.tag
            .get_or_init(|| crate::shared::session_tag(&self.id))
    }

    /// Notes that the shared state confirmed the session lives, now.
    pub fn confirm(&self) {
        *self.confirmed.lock() = Some(Instant::now());
    }

    /// True when the shared state confirmed the session less than `within` ago.
    pub fn confirmed_within(&self, within: Duration) -> bool {
        self.confirmed
            .lock()
            .is_some_and(|at| at.elapsed() < within)
    }

    /// True while request `request_id` of the agent runs here.
    pub fn is_tracking(&self, request_id: &str) -> bool {
        self.in_flight.lock().contains_key(request_id)
    }

    /// Stops tracking a request.
    pub fn untrack(&self, request_id: &str) {
        self.in_flight.lock().remove(request_id);
    }

    /// Cancels an agent request in flight. False when it is not (or no longer) running.
    pub fn cancel(&self, request_id: &str) -> bool {
        match self.in_flight.lock().remove(request_id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }

    /// A token cancelled when the session ends (for what lives exactly as long as it).
    pub fn ending(&self) -> CancellationToken {
        self.closed.child_token()
    }

    /// The stdio server of its own this session has for `upstream`, started by `start`
    /// on first use.
    pub fn own_stdio(
        &self,
        upstream: &str,
        start: impl FnOnce() -> Arc<crate::upstream::stdio::StdioUpstream>,
    ) -> Arc<crate::upstream::stdio::StdioUpstream> {
        self.own_stdio
            .lock()
            .entry(upstream.to_string())
            .or_insert_with(start)
            .clone()
    }

    /// The per-upstream link slot of this session.
    pub fn link_slot(&self, upstream: &str) -> Arc<OnceCell<Arc<HttpLink>>> {
        self.links
            .lock()
            .entry(upstream.to_string())
            .or_insert_with(|| Arc::new(OnceCell::new()))
            .clone()
    }

    /// Drops a link (the upstream ended its session); the next call opens a new one.
    pub fn reset_link(&self, upstream: &str) {
        self.links.lock().remove(upstream);
    }

    /// Notes that the agent subscribed to (or, with `false`, unsubscribed from) `uri`, so
    /// updates of a shared upstream reach only subscribers.
    pub fn set_subscribed(&self, uri: &str, subscribed: bool) {
        let mut uris = self.subscribed_uris.lock();
        if subscribed {
            uris.insert(uri.to_string());
        } else {
            uris.remove(uri);
        }
    }

    /// True when the agent subscribed to `uri`.
    pub fn is_subscribed(&self, uri: &str) -> bool {
        self.subscribed_uris.lock().contains(uri)
    }

    /// Keeps a bridged resource subscription running under `key` (replacing any older one).
    pub fn add_subscription(&self, key: String, task: tokio::task::AbortHandle) {
        if let Some(old) = self.subscriptions.lock().insert(key, task) {
            old.abort();
        }
    }

    /// Number of bridged subscriptions held.
    pub fn subscription_count(&self) -> usize {
        self.subscriptions.lock().len()
    }

    /// Stops the bridged subscription under `key`. False when there was none.
    pub fn remove_subscription(&self, key: &str) -> bool {
        match self.subscriptions.lock().remove(key) {
            Some(task) => {
                task.abort();
                true
            }
            None => false,
        }
    }

    /// Ends the session: cancels its calls, finishes its streams, closes upstream links.
    pub async fn close(&self) {
        self.closed.cancel();
        for (_, task) in self.subscriptions.lock().drain() {
            task.abort();
        }
        for stream in self.streams.lock().values() {
            stream.finish();
        }
        let links: Vec<Arc<HttpLink>> = self
            .links
            .lock()
            .drain()
            .filter_map(|(_, cell)| cell.get().cloned())
            .collect();
        for link in links {
            link.close().await;
        }
    }

    /// True once ended.
    pub fn is_closed(&self) -> bool {
        self.closed.is_cancelled()
    }
}

/// All live sessions.
#[derive(Default)]
pub struct SessionStore {
    sessions: Mutex<HashMap<String, Arc<Session>>>,
}

impl SessionStore {
    /// An empty store.
    pub fn new() -> SessionStore {
        SessionStore::default()
    }

    /// Adds a session.
    pub fn insert(&self, session: Arc<Session>) {
        self.sessions
            .lock()
            .insert(session.id().to_string(), session);
    }

    /// Finds a live session.
    pub fn get(&self, id: &str) -> Option<Arc<Session>> {
        self.sessions.lock().get(id).cloned()
    }

    /// Adds a session unless one with its id is already here; answers the one kept.
    pub fn adopt(&self, session: Arc<Session>) -> Arc<Session> {
        self.sessions
            .lock()
            .entry(session.id().to_string())
            .or_insert(session)
            .clone()
    }

    /// Removes and closes a session. False when unknown.
    pub async fn end(&self, id: &str) -> bool {
        let session = self.sessions.lock().remove(id);
        match session {
            Some(session) => {
                session.close().await;
                true
            }
            None => false,
        }
    }

    /// Every live session.
    pub fn all(&self) -> Vec<Arc<Session>> {
        self.sessions.lock().values().cloned().collect()
    }

    /// Ends sessions idle for longer than `idle`.
    pub async fn expire(&self, idle: Duration) -> usize {
        let expired: Vec<String> = self
            .sessions
            .lock()
            .iter()
            .filter(|(_, s)| s.idle_for() > idle && !s.is_busy())
            .map(|(id, _)| id.clone())
            .collect();
        for id in &expired {
            self.end(id).await;
        }
        expired.len()
    }

    /// Number of live sessions.
    pub fn len(&self) -> usize {
        self.sessions.lock().len()
    }

    /// True when there is none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests;
