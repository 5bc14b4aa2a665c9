//! MCPGuard's tamper-evident audit log.
//!
//! Every call becomes an [`AuditEvent`]; the [`AuditWriter`] appends it to an
//! [`AuditStore`] (SQLite embedded; PostgreSQL for replicas) with group commit, as a
//! record that carries the hash of its predecessor (hash chain) and is a leaf of an RFC
//! 6962 Merkle tree ([`merkle`]). Signed checkpoints ([`checkpoint`], C2SP
//! tlog-checkpoint with Ed25519) pin the tree; [`verify`] recomputes everything and names
//! the first bad record; [`proof`] makes inclusion and consistency proofs; [`export`]
//! writes JSONL, CSV, CEF and OCSF.

pub mod checkpoint;
mod error;
pub mod event;
pub mod export;
pub mod keys;
pub mod merkle;
pub mod postgres;
pub mod proof;
pub mod record;
pub mod sqlite;
pub mod store;
pub mod syslog;
pub mod verify;
pub mod writer;

pub use checkpoint::{Checkpoint, NoteSigner, NoteVerifier};
pub use error::AuditError;
pub use event::{
    AuditEvent, DecisionRecord, EgressRecord, FindingRecord, FlowRecord, Outcome, SandboxRecord,
};
pub use postgres::PostgresStore;
pub use sqlite::{Durability, SqliteStore};
pub use store::{AuditStore, Entry, Filter, Payloads, Trace};
pub use writer::{AppendFailure, AuditWriter, WriterConfig};

/// Reads the events in `store` that pass `filter`, in the filter's order, calling `each`
/// with the stored bytes and the decoded record until it returns false or the limit is
/// reached. A record that cannot be decoded is an error naming it.
pub fn query(
    store: &mut dyn AuditStore,
    filter: &Filter,
    each: &mut dyn FnMut(&str, &record::Record) -> bool,
) -> Result<usize, AuditError> {
    let mut found = 0usize;
    let mut failure = None;
    store.candidates(filter, &mut |row| {
        let record: record::Record = match serde_json::from_str(&row.data) {
            Ok(r) => r,
            Err(e) => {
                failure = Some(AuditError::Record {
                    seq: row.seq,
                    detail: format!("cannot be read ({e}); run `mcpguard audit-verify`"),
                });
                return false;
            }
        };
        if !filter.matches(&record.event) {
            return true;
        }
        found += 1;
        each(&row.data, &record) && filter.limit.is_none_or(|l| found < l)
    })?;
    match failure {
        Some(e) => Err(e),
        None => Ok(found),
    }
}

#[cfg(test)]
mod tests;
