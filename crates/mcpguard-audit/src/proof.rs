//! Inclusion and consistency proofs anchored in signed checkpoints, as JSON documents an
//! outside party can check with nothing but the public key ([`check`]).

use serde::{Deserialize, Serialize};

use crate::AuditError;
use crate::checkpoint::{Checkpoint, NoteVerifier};
use crate::merkle::{self, Hash};
use crate::store::{AuditStore, StoredCheckpoint};

/// A proof document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Proof {
    /// Record `seq` is in the tree that `checkpoint` signs.
    Inclusion {
        /// The record's sequence number (leaf index + 1).
        seq: u64,
        /// The record's stored bytes.
        record: String,
        /// Hex leaf hash of the record.
        leaf_hash: String,
        /// The tree size of the checkpoint.
        tree_size: u64,
        /// Hex sibling hashes, leaf to root.
        proof: Vec<String>,
        /// The signed checkpoint the proof leads to.
        checkpoint: String,
    },
    /// The tree of `old_size` records is a prefix of the one `checkpoint` signs.
    Consistency {
        /// The older tree's size.
        old_size: u64,
        /// Hex root of the older tree.
        old_root: String,
        /// The newer tree's size.
        new_size: u64,
        /// Hex proof hashes.
        proof: Vec<String>,
        /// The signed checkpoint of the newer tree.
        checkpoint: String,
    },
}

fn all_leaves(store: &mut dyn AuditStore, upto: u64) -> Result<Vec<Hash>, AuditError> {
    let mut leaves = Vec::with_capacity(upto as usize);
    let mut bad = None;
    store.scan(1, &mut |row| {
        if row.seq > upto {
            return false;
        }
        match <Hash>::try_from(row.hash.as_slice()) {
            Ok(h) if row.seq == leaves.len() as u64 + 1 => {
                leaves.push(h);
                true
            }
            _ => {
                bad = Some(row.seq);
                false
            }
        }
    })?;
    if let Some(seq) = bad.or((leaves.len() as u64 != upto).then_some(leaves.len() as u64 + 1)) {
        return Err(AuditError::Record {
            seq,
            detail: "missing or malformed; run `mcpguard audit-verify`".into(),
        });
    }
    Ok(leaves)
}

fn newest(store: &mut dyn AuditStore) -> Result<StoredCheckpoint, AuditError> {
    store.checkpoints()?.pop().ok_or_else(|| AuditError::Store {
        location: store.location(),
        detail: "the log has no signed checkpoint yet (the gateway writes one every `audit.checkpoint_interval_seconds` and on shutdown)".into(),
    })
}

/// The inclusion proof of record `seq` in the newest checkpoint.
pub fn inclusion(store: &mut dyn AuditStore, seq: u64) -> Result<Proof, AuditError> {
    let cp = newest(store)?;
    if seq == 0 || seq > cp.size {
        return Err(AuditError::Record {
            seq,
            detail: format!(
                "not covered by the newest checkpoint (records 1..{}); wait for the next checkpoint",
                cp.size
            ),
        });
    }
    let leaves = all_leaves(store, cp.size)?;
    let mut record = None;
    store.scan(seq, &mut |row| {
        record = Some(row.data);
        false
    })?;
    let path = merkle::inclusion_proof(&leaves, (seq - 1) as usize).unwrap_or_default();
    Ok(Proof::Inclusion {
        seq,
        record: record.unwrap_or_default(),
        leaf_hash: hex::encode(leaves[(seq - 1) as usize]),
        tree_size: cp.size,
        proof: path.iter().map(hex::encode).collect(),
        checkpoint: cp.note,
    })
}

/// The consistency proof from the tree of `old_size` records to the newest checkpoint.
pub fn consistency(store: &mut dyn AuditStore, old_size: u64) -> Result<Proof, AuditError> {
    let cp = newest(store)?;
    if old_size == 0 || old_size > cp.size {
        return Err(AuditError::Record {
            seq: old_size,
            detail: format!("the old size must be between 1 and {}", cp.size),
        });
    }
    let leaves = all_leaves(store, cp.size)?;
    let path = merkle::consistency_proof(&leaves, old_size as usize).unwrap_or_default();
    Ok(Proof::Consistency {
        old_size,
        old_root: hex::encode(merkle::root(&leaves[..old_size as usize])),
        new_size: cp.size,
        proof: path.iter().map(hex::encode).collect(),
        checkpoint: cp.note,
    })
}

fn hashes(list: &[String]) -> Result<Vec<Hash>, String> {
    list.iter()
        .map(|h| {
            hex::decode(h)
                .ok()
                .and_then(|b| b.try_into().ok())
                .ok_or_else(|| format!("`{h}` is not a 32-byte hex hash"))
        })
        .collect()
}

fn hash(h: &str) -> Result<Hash, String> {
    hashes(&[h.to_string()]).map(|v| v[0])
}

/// Checks a proof with the public key. For a consistency proof, `old_checkpoint` (a
/// signed note a witness kept) pins the old tree: its size and root must be the proof's.
/// Returns the checkpoint the proof leads to.
pub fn check(
    proof: &Proof,
    verifier: &NoteVerifier,
    old_checkpoint: Option<&str>,
) -> Result<Checkpoint, String> {
    match proof {
        Proof::Inclusion {
            seq,
            record,
            leaf_hash,
            tree_size,
            proof,
            checkpoint,
        } => {
            let cp = verifier.verify(checkpoint).map_err(|e| e.to_string())?;
            if cp.size != *tree_size {
                return Err(format!(
                    "the checkpoint signs size {} but the proof is for {tree_size}",
                    cp.size
                ));
            }
            let leaf = hash(leaf_hash)?;
            if merkle::leaf_hash(record.as_bytes()) != leaf {
                return Err("the record does not hash to the proof's leaf".into());
            }
            if *seq == 0
                || !merkle::verify_inclusion(seq - 1, cp.size, &leaf, &hashes(proof)?, &cp.root)
            {
                return Err(format!(
                    "record {seq} is not in the signed tree of size {}",
                    cp.size
                ));
            }
            Ok(cp)
        }
        Proof::Consistency {
            old_size,
            old_root,
            new_size,
            proof,
            checkpoint,
        } => {
            let cp = verifier.verify(checkpoint).map_err(|e| e.to_string())?;
            if cp.size != *new_size {
                return Err(format!(
                    "the checkpoint signs size {} but the proof is for {new_size}",
                    cp.size
                ));
            }
            let old = hash(old_root)?;
            if let Some(note) = old_checkpoint {
                let kept = verifier
                    .verify(note)
                    .map_err(|e| format!("the old checkpoint: {e}"))?;
                if kept.size != *old_size || kept.root != old {
                    return Err(format!(
                        "the old checkpoint (size {}) is not the tree the proof starts from (size {old_size})",
                        kept.size
                    ));
                }
                if kept.origin != cp.origin {
                    return Err(format!(
                        "the checkpoints are of different logs (`{}` and `{}`)",
                        kept.origin, cp.origin
                    ));
                }
            }
            if !merkle::verify_consistency(*old_size, cp.size, &old, &cp.root, &hashes(proof)?) {
                return Err(format!(
                    "the log of size {} is not an extension of the tree of size {old_size}: it was rewritten",
                    cp.size
                ));
            }
            Ok(cp)
        }
    }
}
