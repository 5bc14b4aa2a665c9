//! How an event is stored: a record `{"schema","seq","prev","event"}` whose exact bytes
//! are the Merkle leaf, and whose `prev` is the leaf hash of the record before it (the
//! hash chain). Pure: no I/O.

use serde::{Deserialize, Serialize, de::IgnoredAny};

use crate::event::{AuditEvent, SCHEMA_VERSION};
use crate::merkle::{Hash, leaf_hash};

/// The chain's start: what record 1 names as its predecessor.
pub const GENESIS: Hash = [0u8; 32];

#[derive(Serialize)]
struct RecordOut<'a> {
    schema: u32,
    seq: u64,
    prev: String,
    event: &'a AuditEvent,
}

/// A stored record, read back.
#[derive(Debug, Deserialize)]
pub struct Record {
    /// The event schema version.
    pub schema: u32,
    /// The record's position, from 1.
    pub seq: u64,
    /// Hex leaf hash of the record before (zeros for the first).
    pub prev: String,
    /// The event.
    pub event: AuditEvent,
}

/// A record's chain fields only (cheap to read when verifying).
#[derive(Debug, Deserialize)]
pub struct RecordHeader {
    /// The event schema version.
    pub schema: u32,
    /// The record's position, from 1.
    pub seq: u64,
    /// Hex leaf hash of the record before.
    pub prev: String,
    #[serde(rename = "event")]
    _event: IgnoredAny,
}

/// The bytes of record `seq` after `prev`, and their leaf hash.
pub fn encode(
    seq: u64,
    prev: &Hash,
    event: &AuditEvent,
) -> Result<(String, Hash), serde_json::Error> {
    let data = serde_json::to_string(&RecordOut {
        schema: SCHEMA_VERSION,
        seq,
        prev: hex::encode(prev),
        event,
    })?;
    let hash = leaf_hash(data.as_bytes());
    Ok((data, hash))
}

/// The head of a chain: how many records, and the last one's leaf hash.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// Records so far (= the last seq).
    pub size: u64,
    /// The last record's leaf hash ([`GENESIS`] when empty).
    pub last: Hash,
}

impl Default for Head {
    fn default() -> Head {
        Head {
            size: 0,
            last: GENESIS,
        }
    }
}
