//! API keys: how they look, how they are stored (only a SHA-256 digest), and how a
//! presented key is checked (in constant time). Pure: the clock and the randomness are
//! passed in.
//!
//! A key is `mcpg_<id>_<secret>`: a 12-hex-digit id (not secret: it names the key in
//! lists, logs and audit events) and 32 random bytes, base64url without padding. It is
//! shown once, when it is created; the keys file keeps the id, the SHA-256 of the whole
//! key, the identity and roles it stands for, and its dates.

use std::collections::HashMap;

use base64::Engine as _;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// What every key starts with (so secret scanners and people can tell one).
pub const PREFIX: &str = "mcpg_";

const ID_LEN: usize = 12;
const SECRET_LEN: usize = 43;

/// One stored key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyRecord {
    /// The key's id (the 12 hex digits after `mcpg_`).
    pub id: String,
    /// SHA-256 of the whole key, lowercase hex.
    pub sha256: String,
    /// The identity the key authenticates.
    pub identity: String,
    /// The identity's roles (for policy rules' `roles`).
    #[serde(default)]
    pub roles: Vec<String>,
    /// A note for people.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// When it was made (Unix seconds).
    pub created: u64,
    /// When it stops working (Unix seconds), if ever.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<u64>,
    /// When it was revoked (Unix seconds).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked: Option<u64>,
}

/// A keys file: `version: 1` and the keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysFile {
    /// The format's version (1).
    #[serde(default = "version_one")]
    pub version: u32,
    /// The keys, revoked ones included (so a revocation is remembered).
    #[serde(default)]
    pub keys: Vec<KeyRecord>,
}

fn version_one() -> u32 {
    1
}

/// Why a presented key was refused. The texts never include the key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// It is not shaped like an MCPGuard key.
    #[error("the credential is not an MCPGuard API key (mcpg_<id>_<secret>)")]
    Malformed,
    /// No key has its id, or its secret is wrong.
    #[error("unknown or wrong API key")]
    Unknown,
    /// The key was revoked.
    #[error("the API key was revoked")]
    Revoked,
    /// The key has expired.
    #[error("the API key has expired")]
    Expired,
}

/// A freshly made key: the secret text (shown once) and what is stored.
pub struct NewKey {
    /// The key to give to the agent. Never stored.
    pub key: String,
    /// What the keys file keeps.
    pub record: KeyRecord,
}

/// The lowercase hex SHA-256 of `key`.
pub fn digest(key: &str) -> String {
    hex::encode(Sha256::digest(key.as_bytes()))
}

/// Makes a key for `identity` from 38 random bytes (6 for the id, 32 for the secret).
pub fn generate(
    random: &[u8; 38],
    identity: &str,
    roles: Vec<String>,
    description: Option<String>,
    now: u64,
    expires: Option<u64>,
) -> NewKey {
    let id = hex::encode(&random[..6]);
    let secret = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&random[6..]);
    let key = format!("{PREFIX}{id}_{secret}");
    NewKey {
        record: KeyRecord {
            id,
            sha256: digest(&key),
            identity: identity.to_string(),
            roles,
            description,
            created: now,
            expires,
            revoked: None,
        },
        key,
    }
}

/// The id of a presented key, if it is shaped like one.
pub fn id_of(presented: &str) -> Option<&str> {
    let rest = presented.strip_prefix(PREFIX)?;
    let (id, secret) = (rest.get(..ID_LEN)?, rest.get(ID_LEN..)?);
    let secret = secret.strip_prefix('_')?;
    let shaped = id
        .bytes()
        .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        && secret.len() == SECRET_LEN
        && secret
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    shaped.then_some(id)
}

/// The keys in force, by id.
#[derive(Debug, Clone, Default)]
pub struct KeyStore {
    by_id: HashMap<String, KeyRecord>,
}

impl KeyStore {
    /// A store of `records` (a later record with the same id wins).
    pub fn new(records: impl IntoIterator<Item = KeyRecord>) -> KeyStore {
        KeyStore {
            by_id: records.into_iter().map(|r| (r.id.clone(), r)).collect(),
        }
    }

    /// How many keys (revoked and expired included).
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// True when there is no key at all.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// How many keys can still be used at `now`.
    pub fn usable(&self, now: u64) -> usize {
        self.by_id
            .values()
            .filter(|r| r.revoked.is_none() && r.expires.is_none_or(|e| e > now))
            .count()
    }

    /// Checks `presented` at `now`: the record of the key, or why not. The digest is
    /// compared in constant time.
    pub fn verify(&self, presented: &str, now: u64) -> Result<&KeyRecord, KeyError> {
        let id = id_of(presented).ok_or(KeyError::Malformed)?;
        let record = self.by_id.get(id).ok_or(KeyError::Unknown)?;
        let presented = Sha256::digest(presented.as_bytes());
        let stored = hex::decode(&record.sha256).unwrap_or_default();
        if stored.len() != presented.len() || !bool::from(presented.as_slice().ct_eq(&stored)) {
            return Err(KeyError::Unknown);
        }
        if record.revoked.is_some() {
            return Err(KeyError::Revoked);
        }
        if record.expires.is_some_and(|e| e <= now) {
            return Err(KeyError::Expired);
        }
        Ok(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(seed: u8, expires: Option<u64>) -> NewKey {
        generate(
            &[seed; 38],
            "alice",
            vec!["dev".into()],
            None,
            1_000,
            expires,
        )
    }

    #[test]
    fn a_key_verifies_and_only_its_digest_is_stored() {
        let new = key(7, None);
        assert!(new.key.starts_with("mcpg_070707070707_"));
        assert_eq!(id_of(&new.key), Some("070707070707"));
        let stored = serde_json::to_string(&new.record).unwrap();
        assert!(
            !stored.contains(&new.key[18..]),
            "the secret is stored: {stored}"
        );
        let store = KeyStore::new([new.record.clone()]);
        let record = store.verify(&new.key, 2_000).unwrap();
        assert_eq!(record.identity, "alice");
        assert_eq!(record.roles, ["dev"]);
    }

    #[test]
    fn wrong_revoked_expired_and_malformed_keys_are_refused() {
        let good = key(1, Some(5_000));
        let mut revoked = key(2, None);
        revoked.record.revoked = Some(1_500);
        let store = KeyStore::new([good.record.clone(), revoked.record.clone()]);
        // One character of the secret changed.
        let mut wrong = good.key.clone();
        let last = wrong.pop().unwrap();
        wrong.push(if last == 'A' { 'B' } else { 'A' });
        assert_eq!(store.verify(&wrong, 2_000), Err(KeyError::Unknown));
        assert_eq!(
            store.verify(&key(3, None).key, 2_000),
            Err(KeyError::Unknown)
        );
        assert_eq!(store.verify(&revoked.key, 2_000), Err(KeyError::Revoked));
        assert_eq!(store.verify(&good.key, 5_000), Err(KeyError::Expired));
        for malformed in ["", "Bearer x", "mcpg_", "mcpg_0707_abc", "sk-ant-xyz"] {
            assert_eq!(store.verify(malformed, 0), Err(KeyError::Malformed));
        }
        assert_eq!(store.usable(2_000), 1);
        assert_eq!(store.usable(6_000), 0);
        // The messages never carry the key.
        for error in [KeyError::Unknown, KeyError::Revoked, KeyError::Expired] {
            assert!(!error.to_string().contains("mcpg_0"));
        }
    }
}
