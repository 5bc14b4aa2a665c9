//! Errors of the audit log.

/// Why the audit log could not do something.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// The store failed (disk full, corrupt file, lost connection...).
    #[error("audit store `{location}`: {detail}")]
    Store {
        /// The database file or server.
        location: String,
        /// What went wrong, and a hint.
        detail: String,
    },
    /// A signing or verifying key could not be used.
    #[error("key `{path}`: {detail}")]
    Key {
        /// The key file.
        path: String,
        /// What went wrong, and a hint.
        detail: String,
    },
    /// A record could not be encoded or decoded.
    #[error("audit record {seq}: {detail}")]
    Record {
        /// The record's sequence number.
        seq: u64,
        /// What is wrong with it.
        detail: String,
    },
    /// The writer has stopped (the gateway is shutting down or it failed for good).
    #[error("the audit writer has stopped")]
    Closed,
    /// A checkpoint could not be made or read.
    #[error("checkpoint: {0}")]
    Checkpoint(#[from] crate::checkpoint::NoteError),
}
