//! RFC 6962 (Certificate Transparency) Merkle tree hashing, proofs and their checks.
//!
//! Leaf hash = SHA-256(0x00 ‖ data), node hash = SHA-256(0x01 ‖ left ‖ right); the tree
//! over `n` leaves splits at the largest power of two smaller than `n` (RFC 6962 §2.1).
//! Proof checks follow RFC 9162 §2.1.3.2 and §2.1.4.2. Pure: no I/O.

use sha2::{Digest, Sha256};

/// A SHA-256 hash.
pub type Hash = [u8; 32];

/// SHA-256(0x00 ‖ data): the hash of one log entry.
pub fn leaf_hash(data: &[u8]) -> Hash {
    let mut h = Sha256::new();
    h.update([0u8]);
    h.update(data);
    h.finalize().into()
}

/// SHA-256(0x01 ‖ left ‖ right): the hash of an inner node.
pub fn node_hash(left: &Hash, right: &Hash) -> Hash {
    let mut h = Sha256::new();
    h.update([1u8]);
    h.update(left);
    h.update(right);
    h.finalize().into()
}

/// The root of the empty tree: SHA-256 of nothing.
pub fn empty_root() -> Hash {
    Sha256::digest([]).into()
}

/// The largest power of two strictly smaller than `n` (`n` ≥ 2).
fn split(n: usize) -> usize {
    let mut k = 1;
    while k << 1 < n {
        k <<= 1;
    }
    k
}

/// The root over `leaves` (leaf hashes).
pub fn root(leaves: &[Hash]) -> Hash {
    let mut frontier = Frontier::default();
    for leaf in leaves {
        frontier.push(*leaf);
    }
    frontier.root()
}

/// The audit path of leaf `index` in the tree over `leaves`, from the leaf up
/// (RFC 6962 §2.1.1). `None` when `index` is out of range.
pub fn inclusion_proof(leaves: &[Hash], index: usize) -> Option<Vec<Hash>> {
    if index >= leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    path(leaves, index, &mut proof);
    Some(proof)
}

fn path(leaves: &[Hash], index: usize, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if n <= 1 {
        return;
    }
    let k = split(n);
    if index < k {
        path(&leaves[..k], index, out);
        out.push(root(&leaves[k..]));
    } else {
        path(&leaves[k..], index - k, out);
        out.push(root(&leaves[..k]));
    }
}

/// The proof that the tree over the first `old_size` leaves is a prefix of the tree over
/// `leaves` (RFC 6962 §2.1.2). `None` when `old_size` is 0 or beyond the tree; empty
/// when the sizes are equal.
pub fn consistency_proof(leaves: &[Hash], old_size: usize) -> Option<Vec<Hash>> {
    if old_size == 0 || old_size > leaves.len() {
        return None;
    }
    let mut proof = Vec::new();
    if old_size < leaves.len() {
        subproof(old_size, leaves, true, &mut proof);
    }
    Some(proof)
}

fn subproof(m: usize, leaves: &[Hash], whole: bool, out: &mut Vec<Hash>) {
    let n = leaves.len();
    if m == n {
        if !whole {
            out.push(root(leaves));
        }
        return;
    }
    let k = split(n);
    if m <= k {
        subproof(m, &leaves[..k], whole, out);
        out.push(root(&leaves[k..]));
    } else {
        subproof(m - k, &leaves[k..], false, out);
        out.push(root(&leaves[..k]));
    }
}

/// Whether `proof` shows leaf `index` (hash `leaf`) in the tree of `size` leaves with
/// `root` (RFC 9162 §2.1.3.2).
pub fn verify_inclusion(index: u64, size: u64, leaf: &Hash, proof: &[Hash], root: &Hash) -> bool {
    if index >= size {
        return false;
    }
    let (mut f, mut s) = (index, size - 1);
    let mut r = *leaf;
    for p in proof {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            r = node_hash(p, &r);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            r = node_hash(&r, p);
        }
        f >>= 1;
        s >>= 1;
    }
    s == 0 && r == *root
}

/// Whether `proof` shows that the tree of `old_size` leaves with `old_root` is a prefix
/// of the tree of `new_size` leaves with `new_root` (RFC 9162 §2.1.4.2). An empty old
/// tree is a prefix of every tree.
pub fn verify_consistency(
    old_size: u64,
    new_size: u64,
    old_root: &Hash,
    new_root: &Hash,
    proof: &[Hash],
) -> bool {
    if old_size > new_size {
        return false;
    }
    if old_size == 0 {
        return proof.is_empty();
    }
    if old_size == new_size {
        return proof.is_empty() && old_root == new_root;
    }
    let mut path: Vec<Hash> = Vec::with_capacity(proof.len() + 1);
    if old_size.is_power_of_two() {
        path.push(*old_root);
    }
    path.extend_from_slice(proof);
    let Some((first, rest)) = path.split_first() else {
        return false;
    };
    let (mut f, mut s) = (old_size - 1, new_size - 1);
    while f & 1 == 1 {
        f >>= 1;
        s >>= 1;
    }
    let (mut fr, mut sr) = (*first, *first);
    for c in rest {
        if s == 0 {
            return false;
        }
        if f & 1 == 1 || f == s {
            fr = node_hash(c, &fr);
            sr = node_hash(c, &sr);
            if f & 1 == 0 {
                while f & 1 == 0 && f != 0 {
                    f >>= 1;
                    s >>= 1;
                }
            }
        } else {
            sr = node_hash(&sr, c);
        }
        f >>= 1;
        s >>= 1;
    }
    fr == *old_root && sr == *new_root && s == 0
}

/// The right edge of a growing tree: the roots of its perfect subtrees, largest first.
/// Appending is O(log n) amortised O(1); the root is O(log n). Enough to sign
/// checkpoints without keeping every leaf in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Frontier {
    nodes: Vec<Hash>,
    size: u64,
    last: Option<Hash>,
}

impl Frontier {
    /// Appends one leaf hash.
    pub fn push(&mut self, leaf: Hash) {
        self.last = Some(leaf);
        let mut h = leaf;
        let mut size = self.size;
        while size & 1 == 1 {
            if let Some(left) = self.nodes.pop() {
                h = node_hash(&left, &h);
            }
            size >>= 1;
        }
        self.nodes.push(h);
        self.size += 1;
    }

    /// How many leaves the tree has.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The newest leaf hash, if any.
    pub fn last_leaf(&self) -> Option<Hash> {
        self.last
    }

    /// The tree's root (RFC 6962 MTH).
    pub fn root(&self) -> Hash {
        let mut nodes = self.nodes.iter().rev();
        let Some(last) = nodes.next() else {
            return empty_root();
        };
        nodes.fold(*last, |right, left| node_hash(left, &right))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The tree of RFC 6962 §2.1.3, straight from the definition.
    fn reference_root(leaves: &[Hash]) -> Hash {
        match leaves.len() {
            0 => empty_root(),
            1 => leaves[0],
            n => {
                let k = split(n);
                node_hash(&reference_root(&leaves[..k]), &reference_root(&leaves[k..]))
            }
        }
    }

    fn leaves(n: usize) -> Vec<Hash> {
        (0..n)
            .map(|i| leaf_hash(format!("entry {i}").as_bytes()))
            .collect()
    }

    #[test]
    fn known_answers_from_the_certificate_transparency_test_vectors() {
        // The empty tree and the one-leaf tree over the empty string.
        assert_eq!(
            hex::encode(empty_root()),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            hex::encode(leaf_hash(b"")),
            "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"
        );
        // The eight-leaf tree of the CT reference implementation's tests.
        let inputs: [&[u8]; 8] = [
            b"",
            b"\x00",
            b"\x10",
            b"\x20\x21",
            b"\x30\x31",
            b"\x40\x41\x42\x43",
            b"\x50\x51\x52\x53\x54\x55\x56\x57",
            b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
        ];
        let l: Vec<Hash> = inputs.iter().map(|d| leaf_hash(d)).collect();
        assert_eq!(
            hex::encode(root(&l)),
            "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"
        );
        assert_eq!(
            hex::encode(root(&l[..3])),
            "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"
        );
    }

    #[test]
    fn the_frontier_matches_the_definition() {
        for n in 0..70 {
            let l = leaves(n);
            assert_eq!(root(&l), reference_root(&l), "size {n}");
        }
    }

    proptest! {
        #[test]
        fn every_inclusion_proof_checks_and_a_wrong_one_does_not(n in 1usize..200, pick in 0usize..200) {
            let l = leaves(n);
            let i = pick % n;
            let r = root(&l);
            let proof = inclusion_proof(&l, i).unwrap();
            prop_assert!(verify_inclusion(i as u64, n as u64, &l[i], &proof, &r));
            let other = leaf_hash(b"not in the log");
            prop_assert!(!verify_inclusion(i as u64, n as u64, &other, &proof, &r));
            if n > 1 {
                prop_assert!(!verify_inclusion(((i + 1) % n) as u64, n as u64, &l[i], &proof, &r));
            }
        }

        #[test]
        fn every_consistency_proof_checks_and_a_forked_log_fails(n in 1usize..200, m in 1usize..200) {
            let l = leaves(n);
            let m = 1 + (m - 1) % n;
            let proof = consistency_proof(&l, m).unwrap();
            let (old, new) = (root(&l[..m]), root(&l));
            prop_assert!(verify_consistency(m as u64, n as u64, &old, &new, &proof));
            // A log that rewrote an old entry is not consistent with the old checkpoint.
            let mut forked = l.clone();
            forked[0] = leaf_hash(b"rewritten");
            let forked_root = root(&forked);
            let forked_proof = consistency_proof(&forked, m).unwrap();
            prop_assert!(!verify_consistency(m as u64, n as u64, &old, &forked_root, &forked_proof));
        }
    }
}
