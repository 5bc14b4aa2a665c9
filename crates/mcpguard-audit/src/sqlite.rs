//! The embedded store: one SQLite file in WAL mode. Append-only is enforced by triggers
//! that abort any UPDATE or DELETE; the hash chain and signed checkpoints catch whoever
//! drops the triggers first.

use std::path::{Path, PathBuf};

use rusqlite::{Connection, OpenFlags, OptionalExtension as _, params};

use crate::AuditError;
use crate::record::{self, Head};
use crate::store::{
    Appended, AuditStore, Entry, Filter, StoredCheckpoint, StoredRow, Trace, payloads_of,
    trace_payloads,
};

/// How hard a commit waits for the disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// fsync the WAL at every commit: an acknowledged event survives a power cut.
    #[default]
    Full,
    /// Commit to the operating system without fsync: an acknowledged event survives the
    /// gateway being killed (`kill -9`), not a power cut.
    Process,
}

const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS audit_meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS audit_events(
    seq INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    data TEXT NOT NULL,
    time_us INTEGER NOT NULL,
    session TEXT,
    identity TEXT,
    tool TEXT,
    server TEXT,
    outcome TEXT NOT NULL,
    rule TEXT
);
CREATE TABLE IF NOT EXISTS audit_checkpoints(
    size INTEGER PRIMARY KEY,
    note TEXT NOT NULL,
    time_us INTEGER NOT NULL
);
CREATE TRIGGER IF NOT EXISTS audit_events_no_update BEFORE UPDATE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: UPDATE is refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_events_no_delete BEFORE DELETE ON audit_events
BEGIN SELECT RAISE(ABORT, 'the audit log is append-only: DELETE is refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_update BEFORE UPDATE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only: UPDATE is refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_checkpoints_no_delete BEFORE DELETE ON audit_checkpoints
BEGIN SELECT RAISE(ABORT, 'checkpoints are append-only: DELETE is refused'); END;
CREATE TABLE IF NOT EXISTS audit_traces(
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    time_us INTEGER NOT NULL,
    tool TEXT,
    server TEXT,
    bundle TEXT NOT NULL,
    payloads TEXT NOT NULL,
    request BLOB,
    result BLOB
);
CREATE TRIGGER IF NOT EXISTS audit_traces_no_update BEFORE UPDATE ON audit_traces
BEGIN SELECT RAISE(ABORT, 'traces are append-only: UPDATE is refused'); END;
CREATE TRIGGER IF NOT EXISTS audit_traces_no_delete BEFORE DELETE ON audit_traces
BEGIN SELECT RAISE(ABORT, 'traces are append-only: DELETE is refused'); END;
INSERT OR IGNORE INTO audit_meta(key, value) VALUES ('schema', '1');
"#;

const INSERT_TRACE: &str = "INSERT INTO audit_traces(id, seq, time_us, tool, server, bundle, payloads, request, result) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)";

const INSERT: &str = "INSERT INTO audit_events(seq, hash, data, time_us, session, identity, tool, server, outcome, rule) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)";

/// The SQLite store.
pub struct SqliteStore {
    conn: Connection,
    path: PathBuf,
    checkpointer: Option<Checkpointer>,
}

/// Copies the WAL into the database from a connection of its own, so that commits never
/// pay for it (SQLite's automatic checkpoint runs inside the commit that crosses the
/// threshold, a latency spike on one unlucky call).
struct Checkpointer {
    stop: std::sync::mpsc::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Checkpointer {
    fn start(path: &Path) -> Result<Checkpointer, AuditError> {
        let conn = Connection::open(path).map_err(|e| store_error(path, &e))?;
        conn.busy_timeout(std::time::Duration::from_millis(100))
            .map_err(|e| store_error(path, &e))?;
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let shown = path.display().to_string();
        let thread = std::thread::Builder::new()
            .name("mcpguard-audit-wal".into())
            .spawn(move || {
                let every = std::time::Duration::from_millis(250);
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every) {
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                        tracing::warn!(target: "mcpguard::audit", path = %shown, error = %e, "WAL checkpoint failed; will retry");
                    }
                }
                let _ = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()));
            })
            .map_err(|e| AuditError::Store {
                location: path.display().to_string(),
                detail: format!("cannot start the WAL checkpoint thread: {e}"),
            })?;
        Ok(Checkpointer {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let _ = self.stop.send(());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl SqliteStore {
    /// Opens (creating when missing) the log at `path` for writing.
    pub fn open(path: &Path, durability: Durability) -> Result<SqliteStore, AuditError> {
        let conn = Connection::open(path).map_err(|e| store_error(path, &e))?;
        let sync = match durability {
            Durability::Full => "FULL",
            Durability::Process => "NORMAL",
        };
        let setup = format!(
            "PRAGMA journal_mode=WAL; PRAGMA synchronous={sync}; PRAGMA busy_timeout=5000; PRAGMA wal_autocheckpoint=0; {SCHEMA}"
        );
        conn.execute_batch(&setup)
            .map_err(|e| store_error(path, &e))?;
        let mut store = SqliteStore::over(conn, path)?;
        store.checkpointer = Some(Checkpointer::start(path)?);
        Ok(store)
    }

    /// Opens an existing log read-only (for verify, query and export; safe while a
    /// gateway writes).
    pub fn open_read_only(path: &Path) -> Result<SqliteStore, AuditError> {
        if !path.exists() {
            return Err(AuditError::Store {
                location: path.display().to_string(),
                detail: "no such file; check `audit.path` in the configuration or pass --db".into(),
            });
        }
        let conn = Connection::open_with_flags(
            path,
            OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(|e| store_error(path, &e))?;
        conn.busy_timeout(std::time::Duration::from_secs(5))
            .map_err(|e| store_error(path, &e))?;
        SqliteStore::over(conn, path)
    }

    /// A store over an open connection whose schema version is ours.
    fn over(conn: Connection, path: &Path) -> Result<SqliteStore, AuditError> {
        let mut store = SqliteStore {
            conn,
            path: path.to_path_buf(),
            checkpointer: None,
        };
        store.check_schema()?;
        Ok(store)
    }

    fn check_schema(&mut self) -> Result<(), AuditError> {
        let version: Option<String> = self
            .conn
            .query_row(
                "SELECT value FROM audit_meta WHERE key = 'schema'",
                [],
                |r| r.get(0),
            )
            .optional()
            .map_err(|e| self.error(&e))?;
        match version.as_deref() {
            Some("1") => Ok(()),
            Some(v) => Err(AuditError::Store {
                location: self.location(),
                detail: format!("audit schema version `{v}` is not one this mcpguard reads (1)"),
            }),
            None => Err(AuditError::Store {
                location: self.location(),
                detail: "not an MCPGuard audit log (no schema version)".into(),
            }),
        }
    }

    fn error(&self, e: &rusqlite::Error) -> AuditError {
        store_error(&self.path, e)
    }
}

/// A store error with a hint for the common SQLite failures.
fn store_error(path: &Path, e: &rusqlite::Error) -> AuditError {
    use rusqlite::ErrorCode;
    let hint = match e.sqlite_error_code() {
        Some(ErrorCode::DiskFull) => "; the disk is full: free space or move `audit.path`",
        Some(ErrorCode::DatabaseCorrupt) | Some(ErrorCode::NotADatabase) => {
            "; the file is damaged or not a database: move it aside, keep it as evidence, and run `mcpguard audit-verify --db <copy>` on it"
        }
        Some(ErrorCode::ReadOnly)
        | Some(ErrorCode::CannotOpen)
        | Some(ErrorCode::PermissionDenied) => {
            "; check that the directory exists and the gateway may write there"
        }
        Some(ErrorCode::DatabaseBusy) | Some(ErrorCode::DatabaseLocked) => {
            "; another process holds the database (two gateways on one SQLite file? use PostgreSQL for replicas)"
        }
        _ => "",
    };
    AuditError::Store {
        location: path.display().to_string(),
        detail: format!("{e}{hint}"),
    }
}

fn trace_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Trace> {
    let mode: String = r.get(6)?;
    Ok(Trace {
        id: r.get(0)?,
        seq: r.get::<_, i64>(1)? as u64,
        time_unix_us: r.get(2)?,
        tool: r.get(3)?,
        upstream: r.get(4)?,
        bundle: r.get(5)?,
        payloads: payloads_of(&mode, r.get(7)?, r.get(8)?),
    })
}

const TRACE_COLUMNS: &str = "id, seq, time_us, tool, server, bundle, payloads, request, result";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
    Ok(StoredRow {
        seq: r.get::<_, i64>(0)? as u64,
        hash: r.get(1)?,
        data: r.get(2)?,
    })
}

impl AuditStore for SqliteStore {
    fn location(&self) -> String {
        self.path.display().to_string()
    }

    fn head(&mut self) -> Result<Head, AuditError> {
        let last: Option<(i64, Vec<u8>)> = self
            .conn
            .query_row(
                "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.error(&e))?;
        let head = match last {
            None => Head::default(),
            Some((seq, hash)) => Head {
                size: seq as u64,
                last: hash.try_into().map_err(|_| AuditError::Record {
                    seq: seq as u64,
                    detail: "the stored hash is not 32 bytes; run `mcpguard audit-verify`".into(),
                })?,
            },
        };
        Ok(head)
    }

    fn append(&mut self, entries: &[Entry]) -> Result<Vec<Appended>, AuditError> {
        let path = self.path.clone();
        let mut head = Head::default();
        let err = |e: rusqlite::Error| store_error(&path, &e);
        // IMMEDIATE takes the write lock first, and the head is read under it: another
        // process appending to the same file (a `replay`) cannot make a fork or a gap.
        let tx = self
            .conn
            .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
            .map_err(err)?;
        if let Some((seq, hash)) = tx
            .query_row(
                "SELECT seq, hash FROM audit_events ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?)),
            )
            .optional()
            .map_err(err)?
        {
            head = Head {
                size: seq as u64,
                last: hash.try_into().map_err(|_| AuditError::Record {
                    seq: seq as u64,
                    detail: "the stored hash is not 32 bytes; run `mcpguard audit-verify`".into(),
                })?,
            };
        }
        let mut out = Vec::with_capacity(entries.len());
        {
            let mut insert = tx.prepare_cached(INSERT).map_err(err)?;
            let mut insert_trace = tx.prepare_cached(INSERT_TRACE).map_err(err)?;
            for entry in entries {
                let event = &entry.event;
                let seq = head.size + 1;
                let (data, hash) =
                    record::encode(seq, &head.last, event).map_err(|e| AuditError::Record {
                        seq,
                        detail: e.to_string(),
                    })?;
                insert
                    .execute(params![
                        seq as i64,
                        &hash[..],
                        data,
                        event.time_unix_us,
                        event.session,
                        event.identity,
                        event.tool,
                        event.upstream,
                        event.outcome.as_str(),
                        event.rule(),
                    ])
                    .map_err(err)?;
                if let Some(t) = &entry.trace {
                    let (request, result) = trace_payloads(&t.payloads);
                    insert_trace
                        .execute(params![
                            t.id,
                            seq as i64,
                            t.time_unix_us,
                            t.tool,
                            t.upstream,
                            t.bundle,
                            t.payloads.mode(),
                            request,
                            result,
                        ])
                        .map_err(err)?;
                }
                head = Head {
                    size: seq,
                    last: hash,
                };
                out.push(Appended { seq, hash, data });
            }
        }
        tx.commit().map_err(err)?;
        Ok(out)
    }

    fn scan(
        &mut self,
        from: u64,
        each: &mut dyn FnMut(StoredRow) -> bool,
    ) -> Result<(), AuditError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT seq, hash, data FROM audit_events WHERE seq >= ?1 ORDER BY seq")
            .map_err(|e| store_error(&self.path, &e))?;
        let mut rows = stmt
            .query([from as i64])
            .map_err(|e| store_error(&self.path, &e))?;
        while let Some(r) = rows.next().map_err(|e| store_error(&self.path, &e))? {
            if !each(row(r).map_err(|e| store_error(&self.path, &e))?) {
                break;
            }
        }
        Ok(())
    }

    fn trace(&mut self, id: &str) -> Result<Option<Trace>, AuditError> {
        self.conn
            .query_row(
                &format!("SELECT {TRACE_COLUMNS} FROM audit_traces WHERE id = ?1"),
                [id],
                trace_row,
            )
            .optional()
            .map_err(|e| self.error(&e))
    }

    fn traces(&mut self, tool: Option<&str>, limit: usize) -> Result<Vec<Trace>, AuditError> {
        let mut stmt = self
            .conn
            .prepare(&format!(
                "SELECT {TRACE_COLUMNS} FROM audit_traces WHERE ?1 IS NULL OR tool = ?1 ORDER BY seq DESC LIMIT ?2"
            ))
            .map_err(|e| store_error(&self.path, &e))?;
        let rows = stmt
            .query_map(params![tool, limit as i64], trace_row)
            .map_err(|e| store_error(&self.path, &e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| store_error(&self.path, &e))
    }

    fn add_checkpoint(
        &mut self,
        size: u64,
        note: &str,
        time_unix_us: i64,
    ) -> Result<(), AuditError> {
        self.conn
            .execute(
                "INSERT OR IGNORE INTO audit_checkpoints(size, note, time_us) VALUES (?1, ?2, ?3)",
                params![size as i64, note, time_unix_us],
            )
            .map_err(|e| self.error(&e))?;
        Ok(())
    }

    fn checkpoints(&mut self) -> Result<Vec<StoredCheckpoint>, AuditError> {
        let mut stmt = self
            .conn
            .prepare("SELECT size, note, time_us FROM audit_checkpoints ORDER BY size")
            .map_err(|e| store_error(&self.path, &e))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(StoredCheckpoint {
                    size: r.get::<_, i64>(0)? as u64,
                    note: r.get(1)?,
                    time_unix_us: r.get(2)?,
                })
            })
            .map_err(|e| store_error(&self.path, &e))?;
        rows.collect::<Result<Vec<_>, _>>()
            .map_err(|e| store_error(&self.path, &e))
    }

    fn candidates(
        &mut self,
        filter: &Filter,
        each: &mut dyn FnMut(StoredRow) -> bool,
    ) -> Result<(), AuditError> {
        // Every filter is applied by the caller to the decoded record, which the chain
        // covers; the side columns are not covered, so they never narrow a query (an
        // edited column must not hide a record).
        let sql = if filter.newest_first {
            "SELECT seq, hash, data FROM audit_events ORDER BY seq DESC"
        } else {
            "SELECT seq, hash, data FROM audit_events ORDER BY seq"
        };
        let mut stmt = self
            .conn
            .prepare(sql)
            .map_err(|e| store_error(&self.path, &e))?;
        let mut rows = stmt.query([]).map_err(|e| store_error(&self.path, &e))?;
        while let Some(r) = rows.next().map_err(|e| store_error(&self.path, &e))? {
            if !each(row(r).map_err(|e| store_error(&self.path, &e))?) {
                break;
            }
        }
        Ok(())
    }
}
