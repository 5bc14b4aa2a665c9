//! The group-commit writer: one thread owns the store; callers hand it events and wait
//! until their event is durable. Whatever queued while a commit was running goes into the
//! next commit, so one fsync covers many events under load and a lone event is written
//! at once. The writer also keeps the Merkle frontier and signs checkpoints
//! periodically and when it closes.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::oneshot;

use crate::AuditError;
use crate::checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
use crate::event::AuditEvent;
use crate::merkle::{Frontier, Hash};
use crate::store::{AuditStore, Entry};

/// How the writer batches and checkpoints.
#[derive(Debug, Clone)]
pub struct WriterConfig {
    /// The most events one commit holds.
    pub max_batch: usize,
    /// How often a checkpoint is signed when the log has grown.
    pub checkpoint_interval: Duration,
    /// The log's name in checkpoints.
    pub origin: String,
}

impl Default for WriterConfig {
    fn default() -> WriterConfig {
        WriterConfig {
            max_batch: 1024,
            checkpoint_interval: Duration::from_secs(10),
            origin: "mcpguard/audit".into(),
        }
    }
}

/// Gets every record once it is durable: a live copy for a SIEM. `offer` must not block
/// the writer (queue and send elsewhere); the store stays the record of truth.
pub trait Sink: Send {
    /// Record `seq` with its stored bytes was committed.
    fn offer(&mut self, seq: u64, data: &str);
    /// The writer is stopping: send what is queued, then stop.
    fn close(&mut self) {}
}

/// Why an append was not recorded (shared by every event of a failed commit).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0}")]
pub struct AppendFailure(Arc<str>);

type Reply = oneshot::Sender<Result<u64, AppendFailure>>;

enum Msg {
    Append(Box<Entry>, Reply),
    Checkpoint(Reply),
    Close(Reply),
}

#[derive(Default)]
struct Health {
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
}

/// The handle to the writer thread. Cheap to share behind an `Arc`.
pub struct AuditWriter {
    tx: mpsc::Sender<Msg>,
    health: Arc<Health>,
    thread: Mutex<Option<JoinHandle<()>>>,
    location: String,
}

/// The state of an existing log, checked when a writer opens it.
#[derive(Debug, Clone)]
pub struct OpenState {
    /// Records in the log.
    pub size: u64,
    /// The newest checkpoint's size, if any.
    pub checkpoint: Option<u64>,
}

impl AuditWriter {
    /// Opens the log in `store`: rebuilds the Merkle frontier from the stored hashes,
    /// checks it against the newest checkpoint (a log that does not match it was edited
    /// or truncated, and the writer refuses to append to it), then starts the thread.
    pub fn start(
        store: Box<dyn AuditStore>,
        signer: NoteSigner,
        config: WriterConfig,
    ) -> Result<(AuditWriter, OpenState), AuditError> {
        AuditWriter::start_with_sinks(store, signer, config, Vec::new())
    }

    /// [`AuditWriter::start`], also handing every committed record to `sinks`.
    pub fn start_with_sinks(
        mut store: Box<dyn AuditStore>,
        signer: NoteSigner,
        config: WriterConfig,
        sinks: Vec<Box<dyn Sink>>,
    ) -> Result<(AuditWriter, OpenState), AuditError> {
        let location = store.location();
        let (frontier, state) = open_log(store.as_mut(), &signer.verifier())?;
        let (tx, rx) = mpsc::channel();
        let health = Arc::new(Health::default());
        let mut worker = Worker {
            store,
            signer,
            config,
            frontier,
            checkpointed: state.checkpoint.unwrap_or(0),
            health: health.clone(),
            sinks,
        };
        let thread = std::thread::Builder::new()
            .name("mcpguard-audit".into())
            .spawn(move || worker.run(rx))
            .map_err(|e| AuditError::Store {
                location: location.clone(),
                detail: format!("cannot start the writer thread: {e}"),
            })?;
        Ok((
            AuditWriter {
                tx,
                health,
                thread: Mutex::new(Some(thread)),
                location,
            },
            state,
        ))
    }

    /// Appends `event`; resolves with its sequence number once it is durable.
    pub async fn append(&self, event: AuditEvent) -> Result<u64, AppendFailure> {
        self.append_entry(Entry { event, trace: None }).await
    }

    /// Appends an event with its execution trace, in one transaction.
    pub async fn append_entry(&self, entry: Entry) -> Result<u64, AppendFailure> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Append(Box::new(entry), reply))?;
        rx.await.unwrap_or_else(|_| Err(closed()))
    }

    /// [`AuditWriter::append`] for threads outside an async runtime.
    pub fn append_blocking(&self, event: AuditEvent) -> Result<u64, AppendFailure> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Append(Box::new(Entry { event, trace: None }), reply))?;
        rx.blocking_recv().unwrap_or_else(|_| Err(closed()))
    }

    /// Signs a checkpoint now (if the log grew); returns the checkpointed size.
    pub fn checkpoint_blocking(&self) -> Result<u64, AppendFailure> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Checkpoint(reply))?;
        rx.blocking_recv().unwrap_or_else(|_| Err(closed()))
    }

    /// Writes a final checkpoint and stops the thread; later appends fail.
    pub async fn close(&self) -> Result<u64, AppendFailure> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Close(reply))?;
        let result = rx.await.unwrap_or_else(|_| Err(closed()));
        self.join();
        result
    }

    /// [`AuditWriter::close`] for threads outside an async runtime.
    pub fn close_blocking(&self) -> Result<u64, AppendFailure> {
        let (reply, rx) = oneshot::channel();
        self.send(Msg::Close(reply))?;
        let result = rx.blocking_recv().unwrap_or_else(|_| Err(closed()));
        self.join();
        result
    }

    fn join(&self) {
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }

    fn send(&self, msg: Msg) -> Result<(), AppendFailure> {
        self.tx.send(msg).map_err(|_| closed())
    }

    /// False after a failed commit, until a commit succeeds again.
    pub fn healthy(&self) -> bool {
        !self.health.failing.load(Ordering::Acquire)
    }

    /// The last commit failure, if the store is failing now.
    pub fn last_error(&self) -> Option<String> {
        if self.healthy() {
            None
        } else {
            self.health.last_error.lock().clone()
        }
    }

    /// Where the store lives.
    pub fn location(&self) -> &str {
        &self.location
    }
}

fn closed() -> AppendFailure {
    AppendFailure(AuditError::Closed.to_string().into())
}

/// Reads every stored hash into a frontier, checking the newest valid checkpoint on the
/// way.
fn open_log(
    store: &mut dyn AuditStore,
    verifier: &NoteVerifier,
) -> Result<(Frontier, OpenState), AuditError> {
    let location = store.location();
    let head = store.head()?;
    let newest = store.checkpoints()?.pop();
    let checkpoint = match &newest {
        Some(stored) => Some(verifier.verify(&stored.note).map_err(|e| AuditError::Store {
            location: location.clone(),
            detail: format!(
                "the newest checkpoint (size {}) does not verify with the configured key: {e}; run `mcpguard audit-verify`",
                stored.size
            ),
        })?),
        None => None,
    };
    let mut frontier = Frontier::default();
    let mut broken: Option<String> = None;
    let mut mismatch = false;
    store.scan(1, &mut |row| {
        if row.seq != frontier.size() + 1 {
            broken = Some(format!("record {} is missing", frontier.size() + 1));
            return false;
        }
        let Ok(hash) = <Hash>::try_from(row.hash.as_slice()) else {
            broken = Some(format!("record {} has a malformed hash", row.seq));
            return false;
        };
        frontier.push(hash);
        if let Some(cp) = &checkpoint
            && cp.size == frontier.size()
            && cp.root != frontier.root()
        {
            mismatch = true;
            return false;
        }
        true
    })?;
    let refuse = |detail: String| AuditError::Store {
        location: location.clone(),
        detail: format!(
            "{detail}; the log was tampered with or damaged, so the gateway will not append to it. Run `mcpguard audit-verify`, keep the file as evidence and start a new log (move it aside)"
        ),
    };
    if let Some(b) = broken {
        return Err(refuse(b));
    }
    if mismatch {
        return Err(refuse(format!(
            "the first {} records differ from the signed checkpoint",
            checkpoint.as_ref().map(|c| c.size).unwrap_or(0)
        )));
    }
    // Another replica may append while this one reads: more records than the head said
    // is fine, fewer is not.
    if frontier.size() < head.size {
        return Err(refuse(format!(
            "the log ends at record {} but its newest record is numbered {}",
            frontier.size(),
            head.size
        )));
    }
    if let Some(cp) = &checkpoint
        && cp.size > head.size
    {
        return Err(refuse(format!(
            "a signed checkpoint covers {} records but the log holds {} (truncated)",
            cp.size, head.size
        )));
    }
    Ok((
        frontier,
        OpenState {
            size: head.size,
            checkpoint: checkpoint.map(|c| c.size),
        },
    ))
}

struct Worker {
    store: Box<dyn AuditStore>,
    signer: NoteSigner,
    config: WriterConfig,
    frontier: Frontier,
    checkpointed: u64,
    health: Arc<Health>,
    sinks: Vec<Box<dyn Sink>>,
}

impl Worker {
    fn run(&mut self, rx: mpsc::Receiver<Msg>) {
        self.serve(rx);
        for sink in &mut self.sinks {
            sink.close();
        }
    }

    fn serve(&mut self, rx: mpsc::Receiver<Msg>) {
        let mut next_checkpoint = Instant::now() + self.config.checkpoint_interval;
        let mut held: Option<Msg> = None;
        loop {
            let msg = match held.take() {
                Some(m) => m,
                None => {
                    let wait = next_checkpoint.saturating_duration_since(Instant::now());
                    match rx.recv_timeout(wait) {
                        Ok(m) => m,
                        Err(RecvTimeoutError::Timeout) => {
                            if let Err(e) = self.checkpoint() {
                                tracing::error!(target: "mcpguard::audit", error = %e, "cannot write a checkpoint");
                            }
                            next_checkpoint = Instant::now() + self.config.checkpoint_interval;
                            continue;
                        }
                        Err(RecvTimeoutError::Disconnected) => {
                            let _ = self.checkpoint();
                            return;
                        }
                    }
                }
            };
            match msg {
                Msg::Append(event, reply) => {
                    let mut events = vec![*event];
                    let mut replies = vec![reply];
                    while events.len() < self.config.max_batch {
                        match rx.try_recv() {
                            Ok(Msg::Append(e, r)) => {
                                events.push(*e);
                                replies.push(r);
                            }
                            Ok(other) => {
                                held = Some(other);
                                break;
                            }
                            Err(_) => break,
                        }
                    }
                    self.commit(&events, replies);
                }
                Msg::Checkpoint(reply) => {
                    let _ = reply.send(self.checkpoint());
                }
                Msg::Close(reply) => {
                    let _ = reply.send(self.checkpoint());
                    return;
                }
            }
        }
    }

    fn commit(&mut self, events: &[Entry], replies: Vec<Reply>) {
        match self.store.append(events) {
            Ok(appended) => {
                let first = appended.first().map_or(0, |a| a.seq);
                // Other replicas (or a commit that reported failure but landed) may have
                // appended since: take their records into the tree first.
                if first > self.frontier.size() + 1
                    && let Err(e) = self.catch_up(Some(first - 1))
                {
                    self.fail(&e.to_string());
                }
                if first == self.frontier.size() + 1 {
                    for a in &appended {
                        self.frontier.push(a.hash);
                    }
                } else if let Err(e) = self.resync() {
                    self.fail(&e.to_string());
                }
                self.health.failing.store(false, Ordering::Release);
                for sink in &mut self.sinks {
                    for a in &appended {
                        sink.offer(a.seq, &a.data);
                    }
                }
                for (reply, a) in replies.into_iter().zip(appended) {
                    let _ = reply.send(Ok(a.seq));
                }
            }
            Err(e) => {
                let failure = self.fail(&e.to_string());
                for reply in replies {
                    let _ = reply.send(Err(failure.clone()));
                }
            }
        }
    }

    fn fail(&self, error: &str) -> AppendFailure {
        tracing::error!(target: "mcpguard::audit", error, "audit append failed");
        *self.health.last_error.lock() = Some(error.to_string());
        self.health.failing.store(true, Ordering::Release);
        AppendFailure(error.into())
    }

    /// Rebuilds the frontier from the store (after a commit whose outcome was unclear).
    fn resync(&mut self) -> Result<(), AuditError> {
        let (frontier, _) = open_log(self.store.as_mut(), &self.signer.verifier())?;
        self.frontier = frontier;
        Ok(())
    }

    /// Pushes the stored records after the frontier (up to `upto`) into it.
    fn catch_up(&mut self, upto: Option<u64>) -> Result<(), AuditError> {
        let from = self.frontier.size() + 1;
        let frontier = &mut self.frontier;
        let mut broken = None;
        self.store.scan(from, &mut |row| {
            if upto.is_some_and(|u| row.seq > u) {
                return false;
            }
            match <Hash>::try_from(row.hash.as_slice()) {
                Ok(h) if row.seq == frontier.size() + 1 => {
                    frontier.push(h);
                    true
                }
                _ => {
                    broken = Some(row.seq);
                    false
                }
            }
        })?;
        match broken {
            Some(seq) => Err(AuditError::Record {
                seq,
                detail: "missing or malformed while catching up; run `mcpguard audit-verify`"
                    .into(),
            }),
            None => Ok(()),
        }
    }

    fn checkpoint(&mut self) -> Result<u64, AppendFailure> {
        // A checkpoint covers everything stored, other replicas' records too.
        if let Err(e) = self.catch_up(None) {
            return Err(self.fail(&e.to_string()));
        }
        let size = self.frontier.size();
        if size == 0 || size == self.checkpointed {
            return Ok(size);
        }
        let note = self.signer.sign(&Checkpoint {
            origin: self.config.origin.clone(),
            size,
            root: self.frontier.root(),
        });
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_micros() as i64)
            .unwrap_or(0);
        match self.store.add_checkpoint(size, &note, now) {
            Ok(()) => {
                self.checkpointed = size;
                Ok(size)
            }
            Err(e) => Err(self.fail(&e.to_string())),
        }
    }
}
