//! Payloads kept encrypted at rest: ChaCha20-Poly1305 with a 32-byte key, a random nonce
//! per payload, and a label as associated data (the gateway uses `<envelope id>/request`
//! and `<envelope id>/result`, so a sealed payload cannot be moved to another trace or
//! swapped with its partner). Sealed form: nonce (12 bytes) ‖ ciphertext ‖ tag.

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{ChaCha20Poly1305, Nonce};

use crate::EnvelopeError;

/// The payload key.
#[derive(Clone)]
pub struct PayloadKey(ChaCha20Poly1305);

impl PayloadKey {
    /// A fresh random key, returned with its bytes (to store).
    pub fn generate() -> ([u8; 32], PayloadKey) {
        let bytes: [u8; 32] = rand::random();
        (bytes, PayloadKey::from_bytes(&bytes))
    }

    /// The key of `bytes`.
    pub fn from_bytes(bytes: &[u8; 32]) -> PayloadKey {
        PayloadKey(ChaCha20Poly1305::new(bytes.into()))
    }

    /// Reads a key file: 32 bytes as base64 (one line).
    pub fn from_file_text(text: &str) -> Result<PayloadKey, EnvelopeError> {
        use base64::Engine as _;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| <[u8; 32]>::try_from(b).ok())
            .ok_or_else(|| {
                EnvelopeError::Key("a payload key file holds 32 bytes as base64".into())
            })?;
        Ok(PayloadKey::from_bytes(&bytes))
    }

    /// Encrypts `plain` for trace `id`.
    pub fn seal(&self, id: &str, plain: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        let nonce: [u8; 12] = rand::random();
        let mut out = nonce.to_vec();
        let sealed = self
            .0
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: plain,
                    aad: id.as_bytes(),
                },
            )
            .map_err(|_| EnvelopeError::Key("encryption failed".into()))?;
        out.extend_from_slice(&sealed);
        Ok(out)
    }

    /// Decrypts a payload sealed for trace `id`.
    pub fn open(&self, id: &str, sealed: &[u8]) -> Result<Vec<u8>, EnvelopeError> {
        if sealed.len() < 12 + 16 {
            return Err(EnvelopeError::Invalid(
                "the sealed payload is too short".into(),
            ));
        }
        let (nonce, body) = sealed.split_at(12);
        self.0
            .decrypt(Nonce::from_slice(nonce), Payload { msg: body, aad: id.as_bytes() })
            .map_err(|_| {
                EnvelopeError::Invalid(
                    "the payload does not open with this key (another key, or it was altered or moved)".into(),
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_payloads_open_only_with_their_key_and_id() {
        let (_, key) = PayloadKey::generate();
        let sealed = key.seal("env-1", b"{\"secret\":1}").unwrap();
        assert!(!sealed.windows(6).any(|w| w == b"secret"));
        assert_eq!(key.open("env-1", &sealed).unwrap(), b"{\"secret\":1}");
        assert!(
            key.open("env-2", &sealed).is_err(),
            "moved to another trace"
        );
        assert!(
            PayloadKey::generate().1.open("env-1", &sealed).is_err(),
            "another key"
        );
        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(key.open("env-1", &flipped).is_err(), "altered");
    }
}
