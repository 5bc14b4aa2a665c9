//! Keyed fingerprints of sensitive values: an HMAC-SHA256 digest (what logs and the audit
//! log show) and a keyed rolling hash (what lets the taint ledger find the value inside
//! a longer string without keeping the value).

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The Mersenne prime 2^61 − 1, the modulus of the rolling hash.
const MODULUS: u64 = (1 << 61) - 1;

/// The secret key behind digests and fingerprints. Without it, a digest of a short value
/// (an SSN has only 10^9 candidates) cannot be reversed by trying every value.
#[derive(Clone)]
pub struct DigestKey {
    mac: [u8; 32],
    base: u64,
}

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey(..)")
    }
}

impl DigestKey {
    /// A key from 32 secret bytes.
    pub fn new(bytes: [u8; 32]) -> DigestKey {
        let derived = hmac_sha256(&bytes, b"mcpguard rolling-hash base");
        let mut base_bytes = [0u8; 8];
        base_bytes.copy_from_slice(&derived[..8]);
        // A base in [256, MODULUS) so that distinct bytes never collide trivially.
        let base = u64::from_le_bytes(base_bytes) % (MODULUS - 256) + 256;
        DigestKey { mac: bytes, base }
    }
}

fn hmac_sha256(key: &[u8], data: &[u8]) -> [u8; 32] {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(mac) => mac,
        Err(_) => return [0; 32],
    };
    mac.update(data);
    mac.finalize().into_bytes().into()
}

fn mul_mod(a: u64, b: u64) -> u64 {
    ((u128::from(a) * u128::from(b)) % u128::from(MODULUS)) as u64
}

/// A value's fingerprint: length, keyed rolling hash and keyed digest of its canonical
/// form (lower case; separators dropped from numbers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct Fingerprint {
    /// Length of the canonical form, in bytes.
    pub len: u32,
    /// Keyed polynomial hash of the canonical form.
    pub rolling: u64,
    /// First 16 bytes of the HMAC-SHA256 of the canonical form.
    pub mac: [u8; 16],
}

/// Types whose canonical form drops separators (`4111 1111…` = `4111-1111…`).
fn numeric_kind(kind: &str) -> bool {
    matches!(
        kind,
        "pii.ssn" | "pii.credit_card" | "pii.phone" | "pii.iban"
    )
}

/// Separators dropped from numbers.
pub(crate) fn is_separator(b: u8) -> bool {
    matches!(b, b' ' | b'-' | b'.' | b'(' | b')' | b'/' | b'+')
}

/// The canonical form of a value of type `kind`.
pub(crate) fn canonical(kind: &str, value: &str) -> Vec<u8> {
    let lower = value.bytes().map(|b| b.to_ascii_lowercase());
    if numeric_kind(kind) {
        lower.filter(|b| !is_separator(*b)).collect()
    } else {
        lower.collect()
    }
}

/// The fingerprint of `value` with separators dropped, when that differs from its
/// canonical form (types whose canonical form keeps separators).
pub(crate) fn compact(key: &DigestKey, kind: &str, value: &str) -> Option<Fingerprint> {
    if numeric_kind(kind) || !value.bytes().any(is_separator) {
        return None;
    }
    let stripped: Vec<u8> = canonical(kind, value)
        .into_iter()
        .filter(|b| !is_separator(*b))
        .collect();
    Some(Fingerprint::of_canonical(key, &stripped))
}

impl Fingerprint {
    /// The fingerprint of a value found as type `kind`.
    pub fn of_value(key: &DigestKey, kind: &str, value: &str) -> Fingerprint {
        Fingerprint::of_canonical(key, &canonical(kind, value))
    }

    /// The fingerprint of bytes already in canonical form.
    pub fn of_canonical(key: &DigestKey, canonical: &[u8]) -> Fingerprint {
        let rolling = canonical.iter().fold(0u64, |h, &b| {
            (mul_mod(h, key.base) + u64::from(b)) % MODULUS
        });
        let full = hmac_sha256(&key.mac, canonical);
        let mut mac = [0u8; 16];
        mac.copy_from_slice(&full[..16]);
        Fingerprint {
            len: canonical.len() as u32,
            rolling,
            mac,
        }
    }

    /// `hmac-sha256:` and 32 hex digits.
    pub fn digest(&self) -> String {
        let mut out = String::with_capacity(44);
        out.push_str("hmac-sha256:");
        for b in self.mac {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }
}

/// Calls `found(start)` for every window of length `len` of `text` whose rolling hash is
/// in `wanted`.
pub(crate) fn windows(
    key: &DigestKey,
    text: &[u8],
    len: usize,
    wanted: &dyn Fn(u64) -> bool,
    found: &mut dyn FnMut(usize),
) {
    if len == 0 || text.len() < len {
        return;
    }
    // base^(len-1), to remove the byte leaving the window.
    let mut top = 1u64;
    for _ in 1..len {
        top = mul_mod(top, key.base);
    }
    let mut h = 0u64;
    for &b in &text[..len] {
        h = (mul_mod(h, key.base) + u64::from(b)) % MODULUS;
    }
    if wanted(h) {
        found(0);
    }
    for i in len..text.len() {
        let leaving = mul_mod(u64::from(text[i - len]), top);
        h = (h + MODULUS - leaving) % MODULUS;
        h = (mul_mod(h, key.base) + u64::from(text[i])) % MODULUS;
        if wanted(h) {
            found(i + 1 - len);
        }
    }
}
