//! Signed checkpoints in the C2SP `tlog-checkpoint` format, as C2SP `signed-note`s with
//! an Ed25519 key.
//!
//! ```text
//! <origin>\n<tree size>\n<base64 root hash>\n
//! \n
//! — <key name> <base64(key id ‖ signature)>\n
//! ```
//!
//! The key id is the first four bytes of SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key);
//! 0x01 is the signed-note algorithm byte for Ed25519. A verifier key is written
//! `<name>+<hex key id>+<base64(0x01 ‖ public key)>`. Pure: no I/O.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ed25519_dalek::{Signature, Signer, SigningKey, Verifier, VerifyingKey};
use sha2::{Digest, Sha256};

use crate::merkle::Hash;

/// The signed-note algorithm byte for Ed25519.
const ED25519: u8 = 0x01;

/// What a checkpoint commits to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    /// The log's name (first line); unique per log.
    pub origin: String,
    /// How many entries the tree holds.
    pub size: u64,
    /// The RFC 6962 root over them.
    pub root: Hash,
}

/// Why a note is not a valid checkpoint of ours.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NoteError {
    /// The text is not laid out as a signed note with a checkpoint body.
    #[error("malformed checkpoint: {0}")]
    Malformed(String),
    /// No signature line of the expected key.
    #[error("the checkpoint carries no signature by key `{0}`")]
    NotSignedBy(String),
    /// A signature line of the expected key that does not verify.
    #[error(
        "the checkpoint's signature by key `{0}` does not verify (edited, or signed by another key)"
    )]
    BadSignature(String),
    /// A verifier key string that cannot be read.
    #[error("bad verifier key: {0}")]
    BadKey(String),
}

impl Checkpoint {
    /// The note body: origin, size and base64 root, each on its own line.
    pub fn body(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            B64.encode(self.root)
        )
    }

    fn parse_body(body: &str) -> Result<Checkpoint, NoteError> {
        let mut lines = body.split('\n');
        let origin = lines.next().filter(|l| !l.is_empty());
        let size = lines.next();
        let root = lines.next();
        let (Some(origin), Some(size), Some(root)) = (origin, size, root) else {
            return Err(NoteError::Malformed(
                "the body needs three lines: origin, size, root".into(),
            ));
        };
        let size: u64 = size
            .parse()
            .map_err(|_| NoteError::Malformed(format!("tree size `{size}` is not a number")))?;
        let root: Hash = B64
            .decode(root)
            .ok()
            .and_then(|r| r.try_into().ok())
            .ok_or_else(|| {
                NoteError::Malformed("the root hash is not 32 bytes of base64".into())
            })?;
        Ok(Checkpoint {
            origin: origin.to_string(),
            size,
            root,
        })
    }
}

fn key_id(name: &str, public: &VerifyingKey) -> [u8; 4] {
    let mut h = Sha256::new();
    h.update(name.as_bytes());
    h.update(b"\n");
    h.update([ED25519]);
    h.update(public.as_bytes());
    let d = h.finalize();
    [d[0], d[1], d[2], d[3]]
}

fn check_name(name: &str) -> Result<(), NoteError> {
    if name.is_empty() || name.chars().any(|c| c.is_whitespace() || c == '+') {
        return Err(NoteError::BadKey(format!(
            "key name `{name}` must be non-empty, without spaces or `+`"
        )));
    }
    Ok(())
}

/// Signs checkpoints.
pub struct NoteSigner {
    name: String,
    id: [u8; 4],
    key: SigningKey,
}

impl NoteSigner {
    /// A signer with key `name` (no spaces or `+`).
    pub fn new(name: &str, key: SigningKey) -> Result<NoteSigner, NoteError> {
        check_name(name)?;
        Ok(NoteSigner {
            name: name.to_string(),
            id: key_id(name, &key.verifying_key()),
            key,
        })
    }

    /// The matching verifier.
    pub fn verifier(&self) -> NoteVerifier {
        NoteVerifier {
            name: self.name.clone(),
            id: self.id,
            key: self.key.verifying_key(),
        }
    }

    /// The signed note for `checkpoint`.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        let body = checkpoint.body();
        let signature = self.key.sign(body.as_bytes());
        let mut blob = Vec::with_capacity(68);
        blob.extend_from_slice(&self.id);
        blob.extend_from_slice(&signature.to_bytes());
        format!("{body}\n\u{2014} {} {}\n", self.name, B64.encode(blob))
    }
}

/// Checks checkpoints signed by one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteVerifier {
    name: String,
    id: [u8; 4],
    key: VerifyingKey,
}

impl NoteVerifier {
    /// A verifier for key `name` with `key`.
    pub fn new(name: &str, key: VerifyingKey) -> Result<NoteVerifier, NoteError> {
        check_name(name)?;
        Ok(NoteVerifier {
            name: name.to_string(),
            id: key_id(name, &key),
            key,
        })
    }

    /// Reads `<name>+<hex key id>+<base64(0x01 ‖ public key)>`.
    pub fn parse(vkey: &str) -> Result<NoteVerifier, NoteError> {
        let mut parts = vkey.trim().splitn(3, '+');
        let (Some(name), Some(id), Some(key)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(NoteError::BadKey(
                "expected `<name>+<hex key id>+<base64 key>`".into(),
            ));
        };
        let raw = B64
            .decode(key)
            .map_err(|_| NoteError::BadKey("the key is not base64".into()))?;
        let Some((&ED25519, public)) = raw.split_first() else {
            return Err(NoteError::BadKey(
                "only Ed25519 keys (algorithm 0x01) are supported".into(),
            ));
        };
        let public: [u8; 32] = public
            .try_into()
            .map_err(|_| NoteError::BadKey("an Ed25519 key is 32 bytes".into()))?;
        let key = VerifyingKey::from_bytes(&public)
            .map_err(|_| NoteError::BadKey("not a valid Ed25519 public key".into()))?;
        let verifier = NoteVerifier::new(name, key)?;
        if hex::encode(verifier.id) != id.to_ascii_lowercase() {
            return Err(NoteError::BadKey(format!(
                "key id `{id}` does not match the name and key (expected {})",
                hex::encode(verifier.id)
            )));
        }
        Ok(verifier)
    }

    /// The verifier key string, for witnesses.
    pub fn encode(&self) -> String {
        let mut raw = vec![ED25519];
        raw.extend_from_slice(self.key.as_bytes());
        format!("{}+{}+{}", self.name, hex::encode(self.id), B64.encode(raw))
    }

    /// The key name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks `note` and returns the checkpoint it signs.
    pub fn verify(&self, note: &str) -> Result<Checkpoint, NoteError> {
        let Some(split) = note.find("\n\n") else {
            return Err(NoteError::Malformed(
                "no blank line between the body and the signatures".into(),
            ));
        };
        let (body, signatures) = (&note[..split + 1], &note[split + 2..]);
        let checkpoint = Checkpoint::parse_body(body)?;
        let mut seen = false;
        for line in signatures.lines() {
            let Some(rest) = line.strip_prefix("\u{2014} ") else {
                return Err(NoteError::Malformed(format!(
                    "signature line `{line}` does not start with an em dash"
                )));
            };
            let Some((name, blob)) = rest.split_once(' ') else {
                return Err(NoteError::Malformed(format!(
                    "signature line `{line}` has no signature"
                )));
            };
            if name != self.name {
                continue;
            }
            let Ok(blob) = B64.decode(blob) else {
                return Err(NoteError::Malformed("a signature is not base64".into()));
            };
            if blob.len() != 68 || blob[..4] != self.id {
                continue;
            }
            seen = true;
            let Ok(signature) = Signature::from_slice(&blob[4..]) else {
                return Err(NoteError::BadSignature(self.name.clone()));
            };
            if self.key.verify(body.as_bytes(), &signature).is_ok() {
                return Ok(checkpoint);
            }
        }
        if seen {
            Err(NoteError::BadSignature(self.name.clone()))
        } else {
            Err(NoteError::NotSignedBy(self.name.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn signer(seed: u8) -> NoteSigner {
        NoteSigner::new("mcpguard.test/audit", SigningKey::from_bytes(&[seed; 32])).unwrap()
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            origin: "mcpguard.test/audit".into(),
            size: 42,
            root: crate::merkle::leaf_hash(b"x"),
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_and_round_trips_the_key() {
        let s = signer(7);
        let note = s.sign(&checkpoint());
        assert!(note.starts_with("mcpguard.test/audit\n42\n"), "{note}");
        assert!(note.contains("\n\n\u{2014} mcpguard.test/audit "), "{note}");
        assert_eq!(s.verifier().verify(&note).unwrap(), checkpoint());
        let parsed = NoteVerifier::parse(&s.verifier().encode()).unwrap();
        assert_eq!(parsed, s.verifier());
    }

    #[test]
    fn an_edited_size_or_another_key_fails() {
        let s = signer(7);
        let note = s.sign(&checkpoint()).replacen("\n42\n", "\n43\n", 1);
        assert_eq!(
            s.verifier().verify(&note),
            Err(NoteError::BadSignature("mcpguard.test/audit".into()))
        );
        let other = signer(8).sign(&checkpoint());
        assert_eq!(
            s.verifier().verify(&other),
            Err(NoteError::NotSignedBy("mcpguard.test/audit".into()))
        );
        assert!(matches!(
            s.verifier().verify("garbage"),
            Err(NoteError::Malformed(_))
        ));
    }

    #[test]
    fn a_verifier_key_with_a_wrong_id_is_refused() {
        let s = signer(7);
        let encoded = s.verifier().encode();
        let mut parts: Vec<&str> = encoded.split('+').collect();
        parts[1] = "00000000";
        assert!(NoteVerifier::parse(&parts.join("+")).is_err());
    }
}
