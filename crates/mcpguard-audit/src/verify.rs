//! `audit-verify`: recompute the chain and the tree from what is stored and compare them
//! with the signed checkpoints. Reports the first record that is wrong and how.

use std::fmt;

use crate::AuditError;
use crate::checkpoint::{Checkpoint, NoteVerifier};
use crate::merkle::{Frontier, Hash, leaf_hash};
use crate::record::GENESIS;
use crate::store::AuditStore;

/// What is wrong with a log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// Records are missing in the middle of the log.
    Deleted {
        /// The first missing sequence number.
        first_missing: u64,
        /// The next record present.
        next_present: u64,
    },
    /// A row holds a record written for another position.
    Reordered {
        /// The row's sequence number.
        seq: u64,
        /// The sequence number written inside the record.
        holds: u64,
    },
    /// A record's content was changed.
    Edited {
        /// The changed record.
        seq: u64,
        /// How it shows.
        detail: String,
    },
    /// A record cannot be read as one this gateway writes.
    Unreadable {
        /// The record.
        seq: u64,
        /// Why.
        detail: String,
    },
    /// Records at the end were removed: a signed checkpoint covers more than the log.
    Truncated {
        /// Records in the log.
        log_size: u64,
        /// Records the checkpoint signs.
        checkpoint_size: u64,
    },
    /// The log's first `size` records hash to another root than the signed checkpoint:
    /// they were rewritten and re-chained.
    Rewritten {
        /// The checkpoint's size.
        size: u64,
    },
    /// A checkpoint whose signature does not verify with the key.
    BadCheckpoint {
        /// The size it claims.
        size: u64,
        /// Why.
        detail: String,
    },
}

impl Problem {
    /// The first sequence number the problem concerns.
    pub fn seq(&self) -> Option<u64> {
        match self {
            Problem::Deleted { first_missing, .. } => Some(*first_missing),
            Problem::Reordered { seq, .. }
            | Problem::Edited { seq, .. }
            | Problem::Unreadable { seq, .. } => Some(*seq),
            Problem::Truncated { log_size, .. } => Some(log_size + 1),
            Problem::Rewritten { .. } | Problem::BadCheckpoint { .. } => None,
        }
    }

    /// One word for the kind of damage.
    pub fn kind(&self) -> &'static str {
        match self {
            Problem::Deleted { .. } => "deleted",
            Problem::Reordered { .. } => "reordered",
            Problem::Edited { .. } => "edited",
            Problem::Unreadable { .. } => "unreadable",
            Problem::Truncated { .. } => "truncated",
            Problem::Rewritten { .. } => "rewritten",
            Problem::BadCheckpoint { .. } => "bad-checkpoint",
        }
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Deleted {
                first_missing,
                next_present,
            } => {
                if next_present - first_missing == 1 {
                    write!(f, "record {first_missing} was deleted")
                } else {
                    write!(
                        f,
                        "records {first_missing}..{} were deleted",
                        next_present - 1
                    )
                }
            }
            Problem::Reordered { seq, holds } => write!(
                f,
                "record {seq} holds the record written as {holds} (records were reordered)"
            ),
            Problem::Edited { seq, detail } => write!(f, "record {seq} was edited: {detail}"),
            Problem::Unreadable { seq, detail } => {
                write!(f, "record {seq} is unreadable: {detail}")
            }
            Problem::Truncated {
                log_size,
                checkpoint_size,
            } => write!(
                f,
                "the log was truncated: a signed checkpoint covers {checkpoint_size} records but the log ends at {log_size} (records {}..{checkpoint_size} are gone)",
                log_size + 1
            ),
            Problem::Rewritten { size } => write!(
                f,
                "the first {size} records do not match the signed checkpoint of size {size}: they were rewritten and re-chained"
            ),
            Problem::BadCheckpoint { size, detail } => {
                write!(f, "the checkpoint of size {size} is not valid: {detail}")
            }
        }
    }
}

/// The outcome of a verification.
#[derive(Debug, Clone)]
pub struct Report {
    /// Records read.
    pub events: u64,
    /// The root over every record read.
    pub root: Hash,
    /// Checkpoints whose signature and root both checked.
    pub checkpoints_verified: usize,
    /// The newest valid checkpoint.
    pub newest_checkpoint: Option<Checkpoint>,
    /// What is wrong, first chain problem first; empty when the log is intact.
    pub problems: Vec<Problem>,
}

/// Reads the fixed prefix `{"schema":1,"seq":N,"prev":"<64 hex>","event":` of a record.
pub(crate) fn header(data: &str) -> Result<(u64, &str), String> {
    let rest = data
        .strip_prefix("{\"schema\":1,\"seq\":")
        .ok_or("it does not start as a version-1 record")?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    let seq: u64 = rest[..digits]
        .parse()
        .map_err(|_| "its sequence number is not a number")?;
    let rest = rest[digits..]
        .strip_prefix(",\"prev\":\"")
        .ok_or("it has no `prev` link")?;
    if rest.len() < 64 + 11 || !rest.is_char_boundary(64) {
        return Err("its `prev` link is cut short".into());
    }
    let (prev, rest) = rest.split_at(64);
    if !rest.starts_with("\",\"event\":") || !data.ends_with('}') {
        return Err("it is not laid out as a record".into());
    }
    Ok((seq, prev))
}

/// Checks the whole log in `store` with `verifier`; `progress` gets the record count now
/// and then.
pub fn verify(
    store: &mut dyn AuditStore,
    verifier: &NoteVerifier,
    progress: &mut dyn FnMut(u64),
) -> Result<Report, AuditError> {
    let mut problems = Vec::new();
    let mut checkpoints: Vec<Checkpoint> = Vec::new();
    for stored in store.checkpoints()? {
        match verifier.verify(&stored.note) {
            Ok(cp) if cp.size == stored.size => checkpoints.push(cp),
            Ok(cp) => problems.push(Problem::BadCheckpoint {
                size: stored.size,
                detail: format!(
                    "it is stored as size {} but signs size {}",
                    stored.size, cp.size
                ),
            }),
            Err(e) => problems.push(Problem::BadCheckpoint {
                size: stored.size,
                detail: e.to_string(),
            }),
        }
    }
    let mut frontier = Frontier::default();
    let mut prev = GENESIS;
    let mut prev_hex = hex::encode(GENESIS);
    let mut next_checkpoint = 0usize;
    let mut verified = 0usize;
    let mut chain_problem: Option<Problem> = None;
    store.scan(1, &mut |row| {
        let expected = frontier.size() + 1;
        if row.seq != expected {
            chain_problem = Some(Problem::Deleted {
                first_missing: expected,
                next_present: row.seq,
            });
            return false;
        }
        let (seq, link) = match header(&row.data) {
            Ok(h) => h,
            Err(detail) => {
                chain_problem = Some(Problem::Unreadable {
                    seq: row.seq,
                    detail: detail.to_string(),
                });
                return false;
            }
        };
        if seq != row.seq {
            chain_problem = Some(Problem::Reordered {
                seq: row.seq,
                holds: seq,
            });
            return false;
        }
        let hash = leaf_hash(row.data.as_bytes());
        if row.hash != hash {
            chain_problem = Some(Problem::Edited {
                seq: row.seq,
                detail: "its content no longer matches the hash written with it".into(),
            });
            return false;
        }
        if link != prev_hex {
            // Either the record before was changed and its hash recomputed, or this
            // record's link was: name the earlier one (the first that may be wrong).
            chain_problem = Some(Problem::Edited {
                seq: (row.seq - 1).max(1),
                detail: if row.seq == 1 {
                    "it does not start the chain (its link to a predecessor was changed)".into()
                } else {
                    format!(
                        "record {} was chained to different content: record {} was changed and its hash recomputed, or record {}'s link was",
                        row.seq,
                        row.seq - 1,
                        row.seq
                    )
                },
            });
            return false;
        }
        frontier.push(hash);
        prev = hash;
        prev_hex = hex::encode(prev);
        while let Some(cp) = checkpoints.get(next_checkpoint)
            && cp.size == frontier.size()
        {
            if cp.root == frontier.root() {
                verified += 1;
            } else {
                chain_problem = Some(Problem::Rewritten { size: cp.size });
                return false;
            }
            next_checkpoint += 1;
        }
        if frontier.size() % 100_000 == 0 {
            progress(frontier.size());
        }
        true
    })?;
    let size = frontier.size();
    if let Some(p) = chain_problem {
        problems.insert(0, p);
    } else if let Some(cp) = checkpoints.iter().rev().find(|cp| cp.size > size) {
        problems.insert(
            0,
            Problem::Truncated {
                log_size: size,
                checkpoint_size: cp.size,
            },
        );
    }
    let newest_checkpoint = checkpoints.into_iter().rev().find(|cp| cp.size <= size);
    Ok(Report {
        events: size,
        root: frontier.root(),
        checkpoints_verified: verified,
        newest_checkpoint,
        problems,
    })
}

#[cfg(test)]
mod tests {
    use super::header;

    #[test]
    fn the_record_header_is_read_strictly() {
        let prev = "ab".repeat(32);
        let good = format!("{{\"schema\":1,\"seq\":17,\"prev\":\"{prev}\",\"event\":{{}}}}");
        assert_eq!(header(&good).unwrap(), (17, prev.as_str()));
        assert!(header(&good.replace("\"seq\":17", "\"seq\":x")).is_err());
        assert!(header(&good.replace("schema\":1", "schema\":2")).is_err());
        assert!(header(&good[..good.len() - 2]).is_err());
        assert!(header("{\"schema\":1,\"seq\":1,\"prev\":\"é").is_err());
    }
}
