//! Envelope signing keys: Ed25519 or ECDSA P-256 (SHA-256), PKCS#8 PEM private keys and
//! SubjectPublicKeyInfo PEM public keys. The key id is the hex SHA-256 of the public
//! key's DER, used as the DSSE `keyid` and the Sigstore bundle's public-key hint.

use ed25519_dalek::pkcs8::{
    DecodePrivateKey as _, DecodePublicKey as _, EncodePrivateKey as _, EncodePublicKey as _,
};
use ed25519_dalek::{Signer as _, Verifier as _};
use p256::pkcs8::LineEnding;

use crate::EnvelopeError;
use crate::canonical::sha256_hex;

/// The signature algorithms envelopes can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Algorithm {
    /// Ed25519 (RFC 8032).
    Ed25519,
    /// ECDSA over P-256 with SHA-256, DER-encoded signatures.
    EcdsaP256,
}

impl Algorithm {
    /// `ed25519` or `ecdsa-p256`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Ed25519 => "ed25519",
            Algorithm::EcdsaP256 => "ecdsa-p256",
        }
    }
}

/// A private key that signs envelopes.
#[derive(Clone)]
pub enum SigningKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::SigningKey),
    /// ECDSA P-256.
    EcdsaP256(p256::ecdsa::SigningKey),
}

/// A public key that checks envelopes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    /// Ed25519.
    Ed25519(ed25519_dalek::VerifyingKey),
    /// ECDSA P-256.
    EcdsaP256(p256::ecdsa::VerifyingKey),
}

impl SigningKey {
    /// A fresh key.
    pub fn generate(algorithm: Algorithm) -> SigningKey {
        match algorithm {
            Algorithm::Ed25519 => {
                SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&rand::random()))
            }
            Algorithm::EcdsaP256 => loop {
                // Almost every 32-byte string is a valid scalar; retry the rare rest.
                if let Ok(k) =
                    p256::ecdsa::SigningKey::from_bytes(&rand::random::<[u8; 32]>().into())
                {
                    break SigningKey::EcdsaP256(k);
                }
            },
        }
    }

    /// Reads a PKCS#8 PEM private key of either algorithm.
    pub fn from_pem(pem: &str) -> Result<SigningKey, EnvelopeError> {
        if let Ok(k) = ed25519_dalek::SigningKey::from_pkcs8_pem(pem) {
            return Ok(SigningKey::Ed25519(k));
        }
        p256::ecdsa::SigningKey::from_pkcs8_pem(pem)
            .map(SigningKey::EcdsaP256)
            .map_err(|_| {
                EnvelopeError::Key("not an Ed25519 or ECDSA P-256 PKCS#8 PEM private key".into())
            })
    }

    /// The PKCS#8 PEM form.
    pub fn to_pem(&self) -> Result<String, EnvelopeError> {
        let pem = match self {
            SigningKey::Ed25519(k) => k.to_pkcs8_pem(LineEnding::LF).map(|p| p.to_string()),
            SigningKey::EcdsaP256(k) => k.to_pkcs8_pem(LineEnding::LF).map(|p| p.to_string()),
        };
        pem.map_err(|e| EnvelopeError::Key(e.to_string()))
    }

    /// The algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self {
            SigningKey::Ed25519(_) => Algorithm::Ed25519,
            SigningKey::EcdsaP256(_) => Algorithm::EcdsaP256,
        }
    }

    /// The public half.
    pub fn public(&self) -> PublicKey {
        match self {
            SigningKey::Ed25519(k) => PublicKey::Ed25519(k.verifying_key()),
            SigningKey::EcdsaP256(k) => PublicKey::EcdsaP256(*k.verifying_key()),
        }
    }

    /// Signs `message` (Ed25519: the message itself; ECDSA: its SHA-256), returning the
    /// raw Ed25519 or DER ECDSA signature.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match self {
            SigningKey::Ed25519(k) => k.sign(message).to_bytes().to_vec(),
            SigningKey::EcdsaP256(k) => {
                let signature: p256::ecdsa::Signature = k.sign(message);
                signature.to_der().as_bytes().to_vec()
            }
        }
    }
}

impl PublicKey {
    /// Reads a SubjectPublicKeyInfo PEM public key (or the public half of a private key).
    pub fn from_pem(pem: &str) -> Result<PublicKey, EnvelopeError> {
        if let Ok(k) = ed25519_dalek::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::Ed25519(k));
        }
        if let Ok(k) = p256::ecdsa::VerifyingKey::from_public_key_pem(pem) {
            return Ok(PublicKey::EcdsaP256(k));
        }
        SigningKey::from_pem(pem)
            .map(|k| k.public())
            .map_err(|_| EnvelopeError::Key("not an Ed25519 or ECDSA P-256 public key PEM".into()))
    }

    /// The SubjectPublicKeyInfo PEM form.
    pub fn to_pem(&self) -> Result<String, EnvelopeError> {
        match self {
            PublicKey::Ed25519(k) => k.to_public_key_pem(LineEnding::LF),
            PublicKey::EcdsaP256(k) => k.to_public_key_pem(LineEnding::LF),
        }
        .map_err(|e| EnvelopeError::Key(e.to_string()))
    }

    /// Hex SHA-256 of the SubjectPublicKeyInfo DER.
    pub fn key_id(&self) -> String {
        let der = match self {
            PublicKey::Ed25519(k) => k.to_public_key_der().map(|d| d.as_bytes().to_vec()),
            PublicKey::EcdsaP256(k) => k.to_public_key_der().map(|d| d.as_bytes().to_vec()),
        };
        sha256_hex(&der.unwrap_or_default())
    }

    /// Whether `signature` signs `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match self {
            PublicKey::Ed25519(k) => ed25519_dalek::Signature::from_slice(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
            PublicKey::EcdsaP256(k) => p256::ecdsa::Signature::from_der(signature)
                .is_ok_and(|s| k.verify(message, &s).is_ok()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_algorithms_sign_verify_and_round_trip_through_pem() {
        for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
            let key = SigningKey::generate(algorithm);
            let again = SigningKey::from_pem(&key.to_pem().unwrap()).unwrap();
            assert_eq!(again.algorithm(), algorithm);
            let public = PublicKey::from_pem(&key.public().to_pem().unwrap()).unwrap();
            assert_eq!(public, key.public());
            assert_eq!(public.key_id().len(), 64);
            let sig = again.sign(b"message");
            assert!(public.verify(b"message", &sig), "{algorithm:?}");
            assert!(!public.verify(b"massage", &sig), "{algorithm:?}");
            let other = SigningKey::generate(algorithm).public();
            assert!(!other.verify(b"message", &sig));
        }
    }
}
