//! The group-commit writer. Callers queue their event and wait until it is durable. The
//! caller that finds the store idle commits everything queued itself (leader-based group
//! commit): a lone call is written at once by its own thread, with no hand-off, and
//! whatever queues while a commit runs goes into the next one, so one fsync covers many
//! events under load. A leader commits at most a few batches before handing the rest to
//! a background thread, which also signs checkpoints periodically and when the writer
//! closes. The writer keeps the Merkle frontier.

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

/// Batches a leader commits before it leaves the rest to the background thread.
const LEADER_ROUNDS: usize = 2;

/// What the background thread is asked to do.
enum Job {
    /// A leader left queued events behind.
    Drain,
    /// Sign a checkpoint now.
    Checkpoint(Reply),
    /// Commit what is queued, sign a final checkpoint, stop.
    Close(Reply),
}

#[derive(Default)]
struct Health {
    failing: AtomicBool,
    last_error: Mutex<Option<String>>,
}

/// What callers and the background thread share.
struct Shared {
    /// The store and the tree; `None` once closed.
    worker: Mutex<Option<Worker>>,
    /// Events waiting for a commit.
    queue: Mutex<Vec<(Entry, Reply)>>,
    /// Set (under the queue lock) when the writer closes: no event is queued after it.
    closing: AtomicBool,
    /// The most events one commit holds.
    max_batch: usize,
    /// Whether callers may commit on their own thread.
    inline: bool,
    health: Arc<Health>,
    jobs: Mutex<mpsc::Sender<Job>>,
}

impl Shared {
    /// Commits what is queued if no one else is committing, for at most `rounds`
    /// batches; leaves the rest to the background thread.
    fn drain(&self, rounds: usize) {
        let mut left = rounds;
        loop {
            let Some(mut guard) = self.worker.try_lock() else {
                // The committer re-checks the queue after it lets go.
                return;
            };
            let Some(worker) = guard.as_mut() else {
                // Closed: fail whatever is still queued.
                for (_, reply) in std::mem::take(&mut *self.queue.lock()) {
                    let _ = reply.send(Err(closed()));
                }
                return;
            };
            while left > 0 {
                let batch: Vec<(Entry, Reply)> = {
                    let mut queue = self.queue.lock();
                    let n = queue.len().min(self.max_batch);
                    queue.drain(..n).collect()
                };
                if batch.is_empty() {
                    break;
                }
                let (entries, replies): (Vec<Entry>, Vec<Reply>) = batch.into_iter().unzip();
                worker.commit(&entries, replies);
                left -= 1;
            }
            drop(guard);
            // Events queued by callers that found the store busy while we held it.
            if self.queue.lock().is_empty() {
                return;
            }
            if left == 0 {
                let _ = self.jobs.lock().send(Job::Drain);
                return;
            }
        }
    }
}

/// The handle to the writer. Cheap to share behind an `Arc`.
pub struct AuditWriter {
    shared: Arc<Shared>,
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
    /// or truncated, and the writer refuses to append to it), then starts the background
    /// thread.
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
        let (jobs, rx) = mpsc::channel();
        let health = Arc::new(Health::default());
        let interval = config.checkpoint_interval;
        let inline = store.commits_inline();
        let shared = Arc::new(Shared {
            max_batch: config.max_batch.max(1),
            inline,
            worker: Mutex::new(Some(Worker {
                store,
                signer,
                config,
                frontier,
                checkpointed: state.checkpoint.unwrap_or(0),
                health: health.clone(),
                sinks,
                broken: None,
            })),
            queue: Mutex::new(Vec::new()),
            closing: AtomicBool::new(false),
            health,
            jobs: Mutex::new(jobs),
        });
        let background = shared.clone();
        let thread = std::thread::Builder::new()
            .name("mcpguard-audit".into())
            .spawn(move || background_loop(&background, &rx, interval))
            .map_err(|e| AuditError::Store {
                location: location.clone(),
                detail: format!("cannot start the writer thread: {e}"),
            })?;
        Ok((
            AuditWriter {
                shared,
                thread: Mutex::new(Some(thread)),
                location,
            },
            state,
        ))
    }

    fn enqueue(&self, entry: Entry) -> oneshot::Receiver<Result<u64, AppendFailure>> {
        let (reply, rx) = oneshot::channel();
        {
            let mut queue = self.shared.queue.lock();
            if self.shared.closing.load(Ordering::Acquire) {
                let _ = reply.send(Err(closed()));
                return rx;
            }
            queue.push((entry, reply));
        }
        if self.shared.inline {
            self.shared.drain(LEADER_ROUNDS);
        } else {
            let _ = self.shared.jobs.lock().send(Job::Drain);
        }
        rx
    }

    /// Appends `event`; resolves with its sequence number once it is durable. When the
    /// store is idle the commit runs on the calling thread.
    pub async fn append(&self, event: AuditEvent) -> Result<u64, AppendFailure> {
        self.append_entry(Entry { event, trace: None }).await
    }

    /// Appends an event with its execution trace, in one transaction.
    pub async fn append_entry(&self, entry: Entry) -> Result<u64, AppendFailure> {
        self.enqueue(entry).await.unwrap_or_else(|_| Err(closed()))
    }

    /// [`AuditWriter::append`] for threads outside an async runtime.
    pub fn append_blocking(&self, event: AuditEvent) -> Result<u64, AppendFailure> {
        self.enqueue(Entry { event, trace: None })
            .blocking_recv()
            .unwrap_or_else(|_| Err(closed()))
    }

    fn job(&self, job: impl FnOnce(Reply) -> Job) -> oneshot::Receiver<Result<u64, AppendFailure>> {
        let (reply, rx) = oneshot::channel();
        if let Err(mpsc::SendError(Job::Checkpoint(reply) | Job::Close(reply))) =
            self.shared.jobs.lock().send(job(reply))
        {
            let _ = reply.send(Err(closed()));
        }
        rx
    }

    /// Signs a checkpoint now (if the log grew); returns the checkpointed size.
    pub fn checkpoint_blocking(&self) -> Result<u64, AppendFailure> {
        self.job(Job::Checkpoint)
            .blocking_recv()
            .unwrap_or_else(|_| Err(closed()))
    }

    /// Commits what is queued, writes a final checkpoint and stops; later appends fail.
    pub async fn close(&self) -> Result<u64, AppendFailure> {
        let result = self.job(Job::Close).await.unwrap_or_else(|_| Err(closed()));
        self.join();
        result
    }

    /// [`AuditWriter::close`] for threads outside an async runtime.
    pub fn close_blocking(&self) -> Result<u64, AppendFailure> {
        let result = self
            .job(Job::Close)
            .blocking_recv()
            .unwrap_or_else(|_| Err(closed()));
        self.join();
        result
    }

    fn join(&self) {
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }

    /// False after a failed commit, until a commit succeeds again.
    pub fn healthy(&self) -> bool {
        !self.shared.health.failing.load(Ordering::Acquire)
    }

    /// The last commit failure, if the store is failing now.
    pub fn last_error(&self) -> Option<String> {
        if self.healthy() {
            None
        } else {
            self.shared.health.last_error.lock().clone()
        }
    }

    /// Where the store lives.
    pub fn location(&self) -> &str {
        &self.location
    }
}

/// The background thread: drains what leaders leave, signs checkpoints on time, closes.
fn background_loop(shared: &Shared, jobs: &mpsc::Receiver<Job>, interval: Duration) {
    let mut next_checkpoint = Instant::now() + interval;
    // Every locked section here ends with a drain: a caller that found the store busy
    // while this thread held it left its event queued for whoever holds it.
    let checkpoint = |shared: &Shared| -> Result<u64, AppendFailure> {
        let result = match shared.worker.lock().as_mut() {
            Some(worker) => worker.checkpoint(),
            None => Err(closed()),
        };
        shared.drain(usize::MAX);
        result
    };
    loop {
        // The timer is checked first, so a steady stream of jobs cannot starve it.
        if Instant::now() >= next_checkpoint {
            if let Err(e) = checkpoint(shared) {
                tracing::error!(target: "mcpguard::audit", error = %e, "cannot write a checkpoint");
            }
            next_checkpoint = Instant::now() + interval;
        }
        let wait = next_checkpoint.saturating_duration_since(Instant::now());
        match jobs.recv_timeout(wait) {
            Ok(Job::Drain) => shared.drain(usize::MAX),
            Ok(Job::Checkpoint(reply)) => {
                let _ = reply.send(checkpoint(shared));
            }
            Err(RecvTimeoutError::Timeout) => {}
            Ok(Job::Close(reply)) => {
                let _ = reply.send(close(shared));
                return;
            }
            Err(RecvTimeoutError::Disconnected) => {
                let _ = close(shared);
                return;
            }
        }
    }
}

/// Stops queueing, commits what is queued, signs the final checkpoint, closes the sinks.
fn close(shared: &Shared) -> Result<u64, AppendFailure> {
    let mut guard = shared.worker.lock();
    let queued = {
        let mut queue = shared.queue.lock();
        shared.closing.store(true, Ordering::Release);
        std::mem::take(&mut *queue)
    };
    let result = match guard.as_mut() {
        Some(worker) => {
            for batch in chunks(queued, shared.max_batch) {
                let (entries, replies): (Vec<Entry>, Vec<Reply>) = batch.into_iter().unzip();
                worker.commit(&entries, replies);
            }
            let result = worker.checkpoint();
            for sink in &mut worker.sinks {
                sink.close();
            }
            result
        }
        None => {
            for (_, reply) in queued {
                let _ = reply.send(Err(closed()));
            }
            Err(closed())
        }
    };
    *guard = None;
    result
}

/// `items` in batches of at most `size`.
fn chunks<T>(items: Vec<T>, size: usize) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut items = items.into_iter().peekable();
    while items.peek().is_some() {
        out.push(items.by_ref().take(size.max(1)).collect());
    }
    out
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
    // Checkpoints first: every record a checkpoint covers was stored before it, so the
    // scan below sees them even while other replicas append.
    let newest = store.checkpoints()?.pop();
    let head = store.head()?;
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
        && cp.size > frontier.size()
    {
        return Err(refuse(format!(
            "a signed checkpoint covers {} records but the log holds {} (truncated)",
            cp.size,
            frontier.size()
        )));
    }
    let size = frontier.size();
    Ok((
        frontier,
        OpenState {
            size,
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
    /// Why the log can no longer be vouched for, once it cannot.
    broken: Option<String>,
}

impl Worker {
    fn commit(&mut self, events: &[Entry], replies: Vec<Reply>) {
        if let Some(why) = self.broken.clone() {
            let failure = self.fail(&why);
            for reply in replies {
                let _ = reply.send(Err(failure.clone()));
            }
            return;
        }
        match self.store.append(events) {
            Ok(appended) => {
                let first = appended.first().map_or(0, |a| a.seq);
                // Other writers (replicas, a `replay`, or a commit that reported failure
                // but landed) may have appended since: take their records in first.
                let mut consistent = true;
                if first > self.frontier.size() + 1
                    && let Err(e) = self.catch_up(Some(first - 1))
                {
                    self.fail(&e.to_string());
                    consistent = false;
                }
                if consistent && first == self.frontier.size() + 1 {
                    for a in &appended {
                        self.frontier.push(a.hash);
                    }
                    self.health.failing.store(false, Ordering::Release);
                } else if consistent && let Err(e) = self.resync() {
                    self.fail(&e.to_string());
                }
                for sink in &mut self.sinks {
                    for a in &appended {
                        sink.offer(a.seq, &a.data);
                    }
                }
                // These events are stored; what follows is refused while the log is
                // unhealthy.
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
            // Records another writer appended are taken into the tree (and signed) only
            // when they hash to what is stored and chain onto the tree's last record.
            let hash = crate::merkle::leaf_hash(row.data.as_bytes());
            let prev = hex::encode(frontier.last_leaf().unwrap_or(crate::record::GENESIS));
            let linked = crate::verify::header(&row.data)
                .is_ok_and(|(seq, link)| seq == row.seq && link == prev);
            if row.seq == frontier.size() + 1 && row.hash == hash && linked {
                frontier.push(hash);
                true
            } else {
                broken = Some(row.seq);
                false
            }
        })?;
        match broken {
            Some(seq) => {
                self.broken = Some(format!(
                    "record {seq}, written by another process, does not chain onto this log"
                ));
                Err(AuditError::Record {
                    seq,
                    detail: "written by another process, it does not chain onto this log; the gateway will not sign it. Run `mcpguard audit-verify`".into(),
                })
            }
            None => Ok(()),
        }
    }

    fn checkpoint(&mut self) -> Result<u64, AppendFailure> {
        if let Some(why) = self.broken.clone() {
            return Err(self.fail(&why));
        }
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
