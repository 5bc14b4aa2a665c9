//! The store behind the log: one trait, with backends (SQLite embedded; PostgreSQL for
//! replicas) that all keep the same promises, checked by one conformance suite.

use crate::AuditError;
use crate::event::AuditEvent;
use crate::merkle::Hash;
use crate::record::Head;

/// One stored row as it is on disk, unchecked.
#[derive(Debug, Clone)]
pub struct StoredRow {
    /// The row's sequence number.
    pub seq: u64,
    /// The leaf hash the writer stored beside the record.
    pub hash: Vec<u8>,
    /// The record's exact bytes.
    pub data: String,
}

/// A stored checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredCheckpoint {
    /// The tree size it signs.
    pub size: u64,
    /// The signed note.
    pub note: String,
    /// When it was written (microseconds since the epoch).
    pub time_unix_us: i64,
}

/// The payloads a trace keeps for replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payloads {
    /// None kept (`envelopes.payloads: drop`): the trace cannot be replayed.
    Dropped,
    /// Kept as they are (JSON text).
    Plain {
        /// The canonical request.
        request: Vec<u8>,
        /// The canonical result.
        result: Vec<u8>,
    },
    /// Kept encrypted (sealed with the payload key; opaque to the store).
    Sealed {
        /// The sealed request.
        request: Vec<u8>,
        /// The sealed result.
        result: Vec<u8>,
    },
}

impl Payloads {
    /// `dropped`, `plain` or `sealed`.
    pub fn mode(&self) -> &'static str {
        match self {
            Payloads::Dropped => "dropped",
            Payloads::Plain { .. } => "plain",
            Payloads::Sealed { .. } => "sealed",
        }
    }
}

/// The request and result blobs of a trace's payloads.
pub(crate) fn trace_payloads(p: &Payloads) -> (Option<&[u8]>, Option<&[u8]>) {
    match p {
        Payloads::Dropped => (None, None),
        Payloads::Plain { request, result } | Payloads::Sealed { request, result } => {
            (Some(request), Some(result))
        }
    }
}

/// Payloads from a stored mode and blobs.
pub(crate) fn payloads_of(
    mode: &str,
    request: Option<Vec<u8>>,
    result: Option<Vec<u8>>,
) -> Payloads {
    match (mode, request, result) {
        ("plain", Some(request), Some(result)) => Payloads::Plain { request, result },
        ("sealed", Some(request), Some(result)) => Payloads::Sealed { request, result },
        _ => Payloads::Dropped,
    }
}

/// An execution trace: the signed envelope (a Sigstore bundle) and what replay needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trace {
    /// The envelope id (also the event's `envelope_id`).
    pub id: String,
    /// The audit record it belongs to (set by the store).
    pub seq: u64,
    /// When the call started.
    pub time_unix_us: i64,
    /// The tool as the agent named it.
    pub tool: Option<String>,
    /// The upstream.
    pub upstream: Option<String>,
    /// The Sigstore bundle (JSON).
    pub bundle: String,
    /// Request and result, if kept.
    pub payloads: Payloads,
}

/// One event to append, with its trace when the call was executed.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The event.
    pub event: AuditEvent,
    /// Its execution trace.
    pub trace: Option<Trace>,
}

/// What an appended event became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Its sequence number.
    pub seq: u64,
    /// Its leaf hash.
    pub hash: Hash,
    /// The stored record's bytes.
    pub data: String,
}

/// Which events to read. Empty fields match everything; all given fields must match.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// From this time on (microseconds since the epoch, inclusive).
    pub since_us: Option<i64>,
    /// Before this time (exclusive).
    pub until_us: Option<i64>,
    /// The authenticated identity.
    pub identity: Option<String>,
    /// The tool name (or resource URI) as the agent wrote it.
    pub tool: Option<String>,
    /// The upstream.
    pub server: Option<String>,
    /// The outcome (`allowed`, `denied`, ...) or the decision's action (`deny`, ...).
    pub action: Option<String>,
    /// The deciding rule id.
    pub rule: Option<String>,
    /// An OWASP ASI id the deciding rule maps to.
    pub owasp_asi: Option<String>,
    /// A label the call carried.
    pub label: Option<String>,
    /// The session.
    pub session: Option<String>,
    /// At most this many events (the newest when `newest_first`).
    pub limit: Option<usize>,
    /// Newest first instead of oldest first.
    pub newest_first: bool,
}

impl Filter {
    /// Whether `event` passes every given field. Backends may narrow with an index
    /// first, but the answer is always this.
    pub fn matches(&self, event: &AuditEvent) -> bool {
        let eq = |want: &Option<String>, have: Option<&str>| {
            want.as_deref().is_none_or(|w| have == Some(w))
        };
        self.since_us.is_none_or(|t| event.time_unix_us >= t)
            && self.until_us.is_none_or(|t| event.time_unix_us < t)
            && eq(&self.identity, event.identity.as_deref())
            && eq(&self.tool, event.tool.as_deref())
            && eq(&self.server, event.upstream.as_deref())
            && eq(&self.session, event.session.as_deref())
            && eq(&self.rule, event.rule())
            && self
                .action
                .as_deref()
                .is_none_or(|a| event.outcome.as_str() == a || event.action() == a)
            && self.owasp_asi.as_deref().is_none_or(|id| {
                event
                    .decision
                    .as_ref()
                    .is_some_and(|d| d.owasp_asi.iter().any(|x| x.eq_ignore_ascii_case(id)))
            })
            && self
                .label
                .as_deref()
                .is_none_or(|l| event.labels.iter().any(|x| x == l))
    }
}

/// An append-only event store with a hash chain.
///
/// `append` links each event to the current head inside one transaction: either every
/// event of the batch is stored, chained and durable, or none is.
pub trait AuditStore: Send {
    /// Where the store lives, for messages.
    fn location(&self) -> String;

    /// Whether a commit may run on a caller's thread (inside an async runtime). A store
    /// whose client runs its own runtime (the synchronous PostgreSQL client) says no, and
    /// its commits run on the writer's thread.
    fn commits_inline(&self) -> bool {
        true
    }

    /// The current head (re-read from the store).
    fn head(&mut self) -> Result<Head, AuditError>;

    /// Appends `entries` in order (events chained after the head, traces beside them);
    /// durable on return.
    fn append(&mut self, entries: &[Entry]) -> Result<Vec<Appended>, AuditError>;

    /// The trace with envelope id `id`.
    fn trace(&mut self, id: &str) -> Result<Option<Trace>, AuditError>;

    /// Traces newest first (optionally of one tool), at most `limit`.
    fn traces(&mut self, tool: Option<&str>, limit: usize) -> Result<Vec<Trace>, AuditError>;

    /// Calls `each` with the rows from `from` (inclusive) on, in sequence order, until it
    /// returns false.
    fn scan(
        &mut self,
        from: u64,
        each: &mut dyn FnMut(StoredRow) -> bool,
    ) -> Result<(), AuditError>;

    /// Stores a signed checkpoint of the first `size` records.
    fn add_checkpoint(
        &mut self,
        size: u64,
        note: &str,
        time_unix_us: i64,
    ) -> Result<(), AuditError>;

    /// Every checkpoint, smallest size first.
    fn checkpoints(&mut self) -> Result<Vec<StoredCheckpoint>, AuditError>;

    /// Calls `each` with the rows a filter may match, in the filter's order; the caller
    /// applies [`Filter::matches`] to the decoded events. Backends narrow only by what
    /// the hash chain covers (today: nothing), never by side columns.
    fn candidates(
        &mut self,
        filter: &Filter,
        each: &mut dyn FnMut(StoredRow) -> bool,
    ) -> Result<(), AuditError>;
}
