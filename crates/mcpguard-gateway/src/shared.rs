//! State that replicas of the gateway share through Redis, so that any replica serves any
//! request: handshake-era sessions, each session's taint state (its ledger of sensitive
//! values, whether it read untrusted content, its call history) and the pins of tool
//! definitions.
//!
//! Every operation is one Lua script, so one round trip, atomic in Redis. Keys never
//! hold a session id (the id is the session's credential): they hold its SHA-256. The
//! ledger is a Redis stream per session; each replica keeps a local copy and reads only
//! the entries added since it last looked. Values are never stored, only their keyed
//! fingerprints, which is why replicas must share `taint.digest_key`.
//!
//! What stays local to a replica: open SSE streams and their replay buffers. An agent's
//! answer to a server→client request, or its cancellation of a call, that reaches another
//! replica is passed on through Redis pub/sub to the replica that waits for it
//! ([`SharedState::send_to_session`], [`SharedState::listen`]).

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use mcpguard_detect::SharedEntry;
use sha2::{Digest, Sha256};

use crate::config::{Config, StateBackend, StateRedisConfig};
use crate::redis_link::RedisLink;

/// What a replica needs to serve a session another replica opened.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SessionRecord {
    /// The revision agreed at `initialize`.
    pub protocol_version: String,
    /// The `initialize` params the agent sent (replayed to upstreams the replica opens).
    pub initialize_params: String,
    /// Who opened it, when authentication is on; only they may use it.
    pub owner: Option<String>,
}

/// A session's taint state as Redis holds it, after counting the call being judged.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaintSync {
    /// Calls judged before this one.
    pub calls: u64,
    /// The session has read untrusted content.
    pub untrusted: bool,
    /// Tools called before this one (oldest first, bounded).
    pub tools: Vec<String>,
    /// Calls in about the last minute, this one included.
    pub recent_calls: u64,
    /// Labels the called tool's definition earned on any replica.
    pub tool_flags: Vec<String>,
    /// Ledger entries added since the caller's cursor.
    pub entries: Vec<SharedEntry>,
    /// Where to read from next time.
    pub cursor: String,
    /// Entries that could not be read (counted, skipped).
    pub unreadable: usize,
}

/// The taint-state key of a handshake-era session's calls (the guard's caller key).
pub fn session_caller(id: &str) -> String {
    format!("session:{id}")
}

/// The Redis keys of one caller's taint state.
struct TaintKeys {
    facts: String,
    tools: String,
    ledger: String,
    entries: String,
    sequence: String,
}

impl TaintKeys {
    fn all(self) -> [String; 5] {
        [
            self.facts,
            self.tools,
            self.ledger,
            self.entries,
            self.sequence,
        ]
    }
}

/// Tools remembered per session.
const TOOL_HISTORY: usize = 64;

/// `session:` lookups: the record, touched so that it lives another idle period.
const LOAD_SESSION: &str = r"
local record = redis.call('GET', KEYS[1])
if record then
  for i = 1, #KEYS do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
end
return record
";

/// Counts the call (on Redis's clock, the same for every replica), reads the facts before
/// it, the tool's flags and the ledger entries recorded after the cursor.
/// KEYS: facts, tools, ledger (sorted set: fingerprint by sequence number), entries
/// (hash: fingerprint to entry), sequence, flags. ARGV: ttl ms, cursor (a sequence
/// number), tool name ('' for none), history length.
const SYNC_TAINT: &str = r"
local ttl = tonumber(ARGV[1])
local time = redis.call('TIME')
local now_ms = tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
local minute = math.floor(now_ms / 60000)
local calls = tonumber(redis.call('HGET', KEYS[1], 'calls') or '0')
local untrusted = redis.call('HGET', KEYS[1], 'untrusted') or '0'
local current = redis.call('HINCRBY', KEYS[1], 'w:' .. minute, 1)
local previous = tonumber(redis.call('HGET', KEYS[1], 'w:' .. (minute - 1)) or '0')
redis.call('HDEL', KEYS[1], 'w:' .. (minute - 2))
redis.call('HINCRBY', KEYS[1], 'calls', 1)
local tools = redis.call('LRANGE', KEYS[2], 0, -1)
local flags = {}
if ARGV[3] ~= '' then
  redis.call('RPUSH', KEYS[2], ARGV[3])
  redis.call('LTRIM', KEYS[2], -tonumber(ARGV[4]), -1)
  flags = redis.call('SMEMBERS', KEYS[6])
end
local found = redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. ARGV[2], '+inf', 'WITHSCORES')
local entries = {}
for i = 1, #found, 2 do
  local entry = redis.call('HGET', KEYS[4], found[i])
  if entry then
    entries[#entries + 1] = found[i + 1]
    entries[#entries + 1] = entry
  end
end
for i = 1, 5 do redis.call('PEXPIRE', KEYS[i], ttl) end
return {calls, untrusted, tools, current, previous, flags, entries, tostring(now_ms)}
";

/// Records what a call's output taught: untrusted content, sensitive values. A value
/// recorded again moves to the newest place (one place per fingerprint, so repeating one
/// value never pushes others out); the ledger keeps the newest `keep`.
/// KEYS: facts, ledger, entries, sequence. ARGV: ttl ms, untrusted ('1' or '0'), keep,
/// then fingerprint, entry, fingerprint, entry...
const RECORD_TAINT: &str = r"
if ARGV[2] == '1' then redis.call('HSET', KEYS[1], 'untrusted', '1') end
for i = 4, #ARGV, 2 do
  local seq = redis.call('INCR', KEYS[4])
  redis.call('ZADD', KEYS[2], seq, ARGV[i])
  redis.call('HSET', KEYS[3], ARGV[i], ARGV[i + 1])
end
local excess = redis.call('ZCARD', KEYS[2]) - tonumber(ARGV[3])
if excess > 0 then
  local old = redis.call('ZRANGE', KEYS[2], 0, excess - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[2], 0, excess - 1)
  for i = 1, #old do redis.call('HDEL', KEYS[3], old[i]) end
end
for i = 1, 4 do redis.call('PEXPIRE', KEYS[i], ARGV[1]) end
return 1
";

/// Pins tool definitions (the first digest seen wins) and answers the pinned digests.
/// KEYS: pins. ARGV: tool, digest, tool, digest, ...
const PIN_TOOLS: &str = r"
local pinned = {}
for i = 1, #ARGV, 2 do
  redis.call('HSETNX', KEYS[1], ARGV[i], ARGV[i + 1])
  pinned[#pinned + 1] = redis.call('HGET', KEYS[1], ARGV[i])
end
return pinned
";

/// Adds labels to a tool and answers all it has. KEYS: flags. ARGV: labels.
const FLAG_TOOL: &str = r"
for i = 1, #ARGV do redis.call('SADD', KEYS[1], ARGV[i]) end
return redis.call('SMEMBERS', KEYS[1])
";

/// A retry of a parked call that another replica received, to resume here.
pub struct ResumeRequest {
    /// The replica waiting for the answer.
    pub reply_to: String,
    /// Its name for this exchange.
    pub call: String,
    /// The agent's retry (with `requestState` and `inputResponses`).
    pub request: mcpguard_protocol::Message,
}

/// What replicas send each other on their own channels: `kind` `resume` (with
/// `reply_to` and `request`) or `answer` (with `message`). A plain struct: raw JSON
/// values cannot sit in an internally tagged enum.
#[derive(serde::Deserialize)]
struct ReplicaMessage {
    kind: String,
    call: String,
    reply_to: Option<String>,
    request: Option<Box<serde_json::value::RawValue>>,
    message: Option<Box<serde_json::value::RawValue>>,
}

/// How often the subscription to other replicas' messages is checked.
const LISTEN_KEEPALIVE: Duration = Duration::from_secs(15);

/// How long a replica waits for another to finish a resumed call.
const RESUME_WAIT: Duration = Duration::from_secs(300);

/// The shared state of a replicated gateway.
pub struct SharedState {
    /// This replica's id (random per process).
    replica: String,
    /// Retries passed to other replicas, waiting for their answers.
    resumes: parking_lot::Mutex<
        std::collections::HashMap<String, tokio::sync::oneshot::Sender<mcpguard_protocol::Message>>,
    >,
    link: RedisLink,
    prefix: String,
    ttl_ms: u64,
    load_session: redis::Script,
    sync_taint: redis::Script,
    record_taint: redis::Script,
    pin_tools: redis::Script,
    flag_tool: redis::Script,
    save_session: redis::Script,
    delete: redis::Script,
    publish: redis::Script,
}

fn hashed(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..16])
}

/// How a session is named in Redis keys and channels (never by its id, its credential).
pub fn session_tag(id: &str) -> String {
    hashed(id)
}

impl SharedState {
    /// Shared state on the Redis of `config`; sessions and taint state idle for longer
    /// than `idle` are forgotten. Connects on first use.
    pub fn new(config: &StateRedisConfig, idle: Duration) -> Result<SharedState, String> {
        Ok(SharedState {
            replica: uuid::Uuid::new_v4().simple().to_string()[..12].to_string(),
            resumes: parking_lot::Mutex::new(std::collections::HashMap::new()),
            link: RedisLink::new(&config.url, Duration::from_millis(config.timeout_ms.max(1)))?,
            prefix: config.key_prefix.clone(),
            ttl_ms: idle.as_millis().clamp(1_000, u128::from(u64::MAX)) as u64,
            load_session: redis::Script::new(LOAD_SESSION),
            sync_taint: redis::Script::new(SYNC_TAINT),
            record_taint: redis::Script::new(RECORD_TAINT),
            pin_tools: redis::Script::new(PIN_TOOLS),
            flag_tool: redis::Script::new(FLAG_TOOL),
            save_session: redis::Script::new(
                "redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1",
            ),
            delete: redis::Script::new("return redis.call('DEL', unpack(KEYS))"),
            publish: redis::Script::new("return redis.call('PUBLISH', KEYS[1], ARGV[1])"),
        })
    }

    /// The shared state `config` asks for: none for the embedded `memory` backend.
    pub fn from_config(config: &Config) -> Result<Option<Arc<SharedState>>, String> {
        match config.state.backend {
            StateBackend::Memory => Ok(None),
            StateBackend::Redis => {
                let idle = Duration::from_secs_f64(
                    config.proxy.session_idle_timeout_seconds.clamp(1.0, 1e9),
                );
                SharedState::new(&config.state.redis, idle)
                    .map(|s| Some(Arc::new(s)))
                    .map_err(|e| format!("state.redis.url: {e}"))
            }
        }
    }

    /// This replica's id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    fn replica_channel(&self, replica: &str) -> String {
        format!("{}replica:{replica}", self.prefix)
    }

    async fn publish(&self, channel: String, payload: &str, what: &str) -> Result<u64, String> {
        let mut invocation = self.publish.prepare_invoke();
        invocation.key(channel).arg(payload);
        self.link.invoke(&invocation, what).await
    }

    /// Passes an agent's retry of a call parked on replica `holder` there, and waits for
    /// the call's answer. Answers an error message when the holder is gone or silent.
    pub async fn resume_elsewhere(
        &self,
        holder: &str,
        request: &mcpguard_protocol::Message,
    ) -> mcpguard_protocol::Message {
        use mcpguard_protocol::{Message, RpcError, codes};
        let fail = |why: String| {
            Message::error_response(
                request.id(),
                &RpcError::new(
                    codes::INVALID_PARAMS,
                    format!("invalid or expired requestState: {why}"),
                )
                .with_data(serde_json::json!({"reason": "invalid_request_state"})),
            )
        };
        let Ok(raw) = std::str::from_utf8(request.bytes()) else {
            return fail("the request is not UTF-8".into());
        };
        let call = uuid::Uuid::new_v4().simple().to_string();
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.resumes.lock().insert(call.clone(), tx);
        // Forgotten however this ends, also when the agent hangs up and this is dropped.
        struct Forget<'a>(&'a SharedState, &'a str);
        impl Drop for Forget<'_> {
            fn drop(&mut self) {
                self.0.resumes.lock().remove(self.1);
            }
        }
        let _forget = Forget(self, &call);
        let payload = format!(
            r#"{{"kind":"resume","reply_to":{},"call":"{call}","request":{raw}}}"#,
            serde_json::Value::from(self.replica.as_str())
        );
        let sent = self
            .publish(
                self.replica_channel(holder),
                &payload,
                "passing a retry to another replica",
            )
            .await;
        let outcome = match sent {
            Ok(0) => Err("the replica that holds the call is gone".to_string()),
            Err(e) => Err(e),
            Ok(_) => match tokio::time::timeout(RESUME_WAIT, rx).await {
                Ok(Ok(answer)) => Ok(answer),
                _ => Err("the replica that holds the call did not answer".to_string()),
            },
        };
        match outcome {
            Ok(answer) => {
                tracing::debug!(
                    replica = holder,
                    "a retry was resumed on the replica holding its call"
                );
                answer.with_id(request.id().unwrap_or("null"))
            }
            Err(why) => {
                tracing::warn!(replica = holder, reason = %why, "a parked call could not be resumed on its replica");
                fail(why)
            }
        }
    }

    /// Sends the answer of a resumed call back to the replica that passed the retry.
    pub async fn answer_resume(
        &self,
        resume: &ResumeRequest,
        answer: &mcpguard_protocol::Message,
    ) -> Result<(), String> {
        let Ok(raw) = std::str::from_utf8(answer.bytes()) else {
            return Err("the answer is not UTF-8".into());
        };
        let payload = format!(
            r#"{{"kind":"answer","call":{},"message":{raw}}}"#,
            serde_json::Value::from(resume.call.as_str())
        );
        self.publish(
            self.replica_channel(&resume.reply_to),
            &payload,
            "answering another replica",
        )
        .await
        .map(|_| ())
    }

    /// Handles a message on this replica's own channel.
    fn on_replica_message(&self, payload: &[u8], resume: &(impl Fn(ResumeRequest) + Send)) {
        let Ok(message) = serde_json::from_slice::<ReplicaMessage>(payload) else {
            tracing::warn!("an unreadable message from another replica was dropped");
            return;
        };
        let parse = |raw: &serde_json::value::RawValue| {
            mcpguard_protocol::Message::parse(bytes::Bytes::from(raw.get().to_string())).ok()
        };
        match (
            message.kind.as_str(),
            message.reply_to,
            message.request,
            message.message,
        ) {
            ("resume", Some(reply_to), Some(request), _) => {
                if let Some(request) = parse(&request) {
                    resume(ResumeRequest {
                        reply_to,
                        call: message.call,
                        request,
                    });
                }
            }
            ("answer", _, _, Some(answer)) => {
                let waiting = self.resumes.lock().remove(&message.call);
                if let (Some(waiting), Some(answer)) = (waiting, parse(&answer)) {
                    let _ = waiting.send(answer);
                }
            }
            _ => tracing::warn!("a message of unknown kind from another replica was dropped"),
        }
    }

    fn key(&self, kind: &str, name: &str) -> String {
        format!("{}{kind}:{}", self.prefix, hashed(name))
    }

    /// Publishes a session so other replicas can serve it.
    pub async fn save_session(&self, id: &str, record: &SessionRecord) -> Result<(), String> {
        let text = serde_json::to_string(record).map_err(|e| e.to_string())?;
        let mut invocation = self.save_session.prepare_invoke();
        invocation
            .key(self.key("session", id))
            .arg(text)
            .arg(self.ttl_ms);
        self.link
            .invoke::<i64>(&invocation, "saving the session")
            .await
            .map(|_| ())
    }

    /// The session `id`, touched (it lives another idle period); `None` when it is
    /// unknown, has ended or has expired.
    pub async fn load_session(&self, id: &str) -> Result<Option<SessionRecord>, String> {
        let mut invocation = self.load_session.prepare_invoke();
        invocation.key(self.key("session", id));
        // The session's taint state lives as long as the session does.
        for key in self.taint_keys(&session_caller(id)).all() {
            invocation.key(key);
        }
        invocation.arg(self.ttl_ms);
        let text: Option<String> = self
            .link
            .invoke(&invocation, "looking the session up")
            .await?;
        match text {
            None => Ok(None),
            Some(text) => serde_json::from_str(&text)
                .map(Some)
                .map_err(|e| format!("the shared record of a session is unreadable: {e}")),
        }
    }

    /// Ends the session `id` for every replica. False when it was unknown.
    pub async fn end_session(&self, id: &str) -> Result<bool, String> {
        let mut invocation = self.delete.prepare_invoke();
        invocation.key(self.key("session", id));
        for key in self.taint_keys(&session_caller(id)).all() {
            invocation.key(key);
        }
        let deleted: i64 = self.link.invoke(&invocation, "ending the session").await?;
        Ok(deleted > 0)
    }

    fn taint_keys(&self, caller: &str) -> TaintKeys {
        let base = self.key("taint", caller);
        TaintKeys {
            facts: format!("{base}:facts"),
            tools: format!("{base}:tools"),
            ledger: format!("{base}:ledger"),
            entries: format!("{base}:entries"),
            sequence: format!("{base}:seq"),
        }
    }

    /// Counts a call of `tool` by `caller` (a session or a stateless caller's key) and
    /// reads the caller's taint state: the facts before this call, and the ledger entries
    /// recorded after `cursor` (empty: from the start).
    pub async fn sync_taint(
        &self,
        caller: &str,
        tool: Option<&str>,
        cursor: &str,
    ) -> Result<TaintSync, String> {
        let tool = tool.unwrap_or_default();
        let keys = self.taint_keys(caller);
        let mut invocation = self.sync_taint.prepare_invoke();
        invocation
            .key(keys.facts)
            .key(keys.tools)
            .key(keys.ledger)
            .key(keys.entries)
            .key(keys.sequence)
            .key(self.key("flags", tool))
            .arg(self.ttl_ms)
            .arg(if cursor.is_empty() { "0" } else { cursor })
            .arg(tool)
            .arg(TOOL_HISTORY);
        type Reply = (
            u64,
            String,
            Vec<String>,
            u64,
            u64,
            Vec<String>,
            Vec<String>,
            String,
        );
        let (calls, untrusted, tools, current, previous, flags, found, now_ms): Reply = self
            .link
            .invoke(&invocation, "reading the session's taint state")
            .await?;
        let now_ms: u64 = now_ms.parse().unwrap_or(0);
        let into_minute = (now_ms % 60_000) as f64 / 60_000.0;
        let mut sync = TaintSync {
            calls,
            untrusted: untrusted == "1",
            tools,
            recent_calls: current + (previous as f64 * (1.0 - into_minute)) as u64,
            tool_flags: flags,
            cursor: cursor.to_string(),
            ..TaintSync::default()
        };
        for pair in found.chunks(2) {
            let [sequence, entry] = pair else {
                sync.unreadable += 1;
                continue;
            };
            match serde_json::from_str::<SharedEntry>(entry) {
                Ok(entry) => sync.entries.push(entry),
                Err(_) => sync.unreadable += 1,
            }
            // Scores come back as integers written in decimal.
            if sequence.parse::<u64>().is_ok() {
                sync.cursor = sequence.clone();
            }
        }
        Ok(sync)
    }

    /// Records what a call of `caller` taught: that it read untrusted content, and the
    /// sensitive values its output held (the ledger keeps the last `capacity` values, each
    /// once).
    pub async fn record_taint(
        &self,
        caller: &str,
        untrusted: bool,
        entries: &[SharedEntry],
        capacity: usize,
    ) -> Result<(), String> {
        let keys = self.taint_keys(caller);
        let mut invocation = self.record_taint.prepare_invoke();
        invocation
            .key(keys.facts)
            .key(keys.ledger)
            .key(keys.entries)
            .key(keys.sequence)
            .arg(self.ttl_ms)
            .arg(if untrusted { "1" } else { "0" })
            .arg(capacity.max(1) * 2);
        let mut seen = std::collections::HashSet::new();
        for entry in entries {
            let print = entry.fingerprint_id();
            if seen.insert(print.clone()) {
                invocation
                    .arg(print)
                    .arg(serde_json::to_string(entry).map_err(|e| e.to_string())?);
            }
        }
        self.link
            .invoke::<i64>(&invocation, "recording the session's taint")
            .await
            .map(|_| ())
    }

    /// Pins tool definitions (`server/tool` → digest); answers, for each, the digest
    /// pinned first by any replica.
    pub async fn pin_tools(&self, pins: &[(String, [u8; 32])]) -> Result<Vec<[u8; 32]>, String> {
        if pins.is_empty() {
            return Ok(Vec::new());
        }
        let mut invocation = self.pin_tools.prepare_invoke();
        invocation.key(format!("{}pins", self.prefix));
        for (tool, digest) in pins {
            invocation.arg(tool).arg(hex::encode(digest));
        }
        let pinned: Vec<String> = self.link.invoke(&invocation, "pinning tools").await?;
        pinned
            .iter()
            .map(|hex_digest| {
                hex::decode(hex_digest)
                    .ok()
                    .and_then(|b| <[u8; 32]>::try_from(b).ok())
                    .ok_or_else(|| {
                        format!("a pinned tool digest in Redis is malformed: `{hex_digest}`")
                    })
            })
            .collect()
    }

    /// Passes an agent's message for session `id` (an answer to a server→client request,
    /// a cancellation) to the replica that waits for it. Answers how many replicas
    /// listen. Nothing is stored: a message no replica waits for is dropped, as on one
    /// process.
    pub async fn send_to_session(&self, id: &str, message: &[u8]) -> Result<u64, String> {
        let mut invocation = self.publish.prepare_invoke();
        invocation
            .key(format!("{}mail:{}", self.prefix, session_tag(id)))
            .arg(message);
        self.link
            .invoke(&invocation, "passing a message to another replica")
            .await
    }

    /// Receives messages other replicas pass on, calling `deliver(session tag, message)`
    /// for each, until `stop`; reconnects (after a second) when Redis goes away.
    pub async fn listen(
        &self,
        stop: tokio_util::sync::CancellationToken,
        deliver: impl Fn(&str, &[u8]) + Send,
        resume: impl Fn(ResumeRequest) + Send,
    ) {
        use futures::StreamExt as _;
        let pattern = format!("{}mail:*", self.prefix);
        let channel_prefix = format!("{}mail:", self.prefix);
        let own = self.replica_channel(&self.replica);
        loop {
            let subscribing = async {
                let mut pubsub = self.link.client().get_async_pubsub().await?;
                pubsub.psubscribe(&pattern).await?;
                pubsub.subscribe(&own).await?;
                Ok::<_, redis::RedisError>(pubsub)
            };
            let subscribed = tokio::select! {
                _ = stop.cancelled() => return,
                subscribed = tokio::time::timeout(LISTEN_KEEPALIVE, subscribing) => match subscribed {
                    Ok(subscribed) => subscribed,
                    Err(_) => Err(redis::RedisError::from((redis::ErrorKind::Io, "subscribing timed out"))),
                },
            };
            match subscribed {
                Ok(pubsub) => {
                    tracing::debug!("listening for messages from other replicas");
                    let (mut sink, mut messages) = pubsub.split();
                    let mut keepalive = tokio::time::interval(LISTEN_KEEPALIVE);
                    keepalive.tick().await;
                    loop {
                        tokio::select! {
                            _ = stop.cancelled() => return,
                            _ = keepalive.tick() => {
                                // A connection that died without closing would leave the
                                // replica deaf: ask Redis, and reconnect when it is silent.
                                let pong = tokio::time::timeout(LISTEN_KEEPALIVE, sink.ping::<redis::Value>()).await;
                                if !matches!(pong, Ok(Ok(_))) {
                                    break;
                                }
                            }
                            message = messages.next() => match message {
                                Some(message) => {
                                    let channel = message.get_channel_name();
                                    if channel == own {
                                        self.on_replica_message(message.get_payload_bytes(), &resume);
                                    } else if let Some(tag) = channel.strip_prefix(&channel_prefix) {
                                        deliver(tag, message.get_payload_bytes());
                                    }
                                }
                                None => break,
                            },
                        }
                    }
                    tracing::warn!(
                        "the subscription to other replicas' messages ended; reconnecting"
                    );
                }
                Err(e) => {
                    tracing::warn!(error = %e, "cannot subscribe to other replicas' messages; retrying");
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            }
        }
    }

    /// Adds `labels` to the tool exposed as `tool`; answers every label it has earned on
    /// any replica.
    pub async fn flag_tool(
        &self,
        tool: &str,
        labels: &BTreeSet<String>,
    ) -> Result<BTreeSet<String>, String> {
        let mut invocation = self.flag_tool.prepare_invoke();
        invocation.key(self.key("flags", tool));
        for label in labels {
            invocation.arg(label);
        }
        let all: Vec<String> = self.link.invoke(&invocation, "flagging a tool").await?;
        Ok(all.into_iter().collect())
    }
}
