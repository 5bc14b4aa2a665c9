//! DSSE (Dead Simple Signing Envelope) v1: the signature covers the pre-authentication
//! encoding `"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::{Deserialize, Serialize};

use crate::EnvelopeError;
use crate::sign::{PublicKey, SigningKey};

/// The in-toto payload type.
pub const IN_TOTO: &str = "application/vnd.in-toto+json";

/// The pre-authentication encoding of `body` with `payload_type`.
pub fn pae(payload_type: &str, body: &[u8]) -> Vec<u8> {
    let mut out = format!(
        "DSSEv1 {} {payload_type} {} ",
        payload_type.len(),
        body.len()
    )
    .into_bytes();
    out.extend_from_slice(body);
    out
}

/// One signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// Base64 signature.
    pub sig: String,
    /// Which key (hex SHA-256 of its SubjectPublicKeyInfo).
    #[serde(default)]
    pub keyid: String,
}

/// A DSSE envelope (the JSON form Sigstore bundles carry).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Envelope {
    /// Base64 payload.
    pub payload: String,
    /// What the payload is.
    pub payload_type: String,
    /// Signatures over the PAE.
    pub signatures: Vec<Signature>,
}

impl Envelope {
    /// Signs `body` of `payload_type` with `key`.
    pub fn sign(payload_type: &str, body: &[u8], key: &SigningKey) -> Envelope {
        let signature = key.sign(&pae(payload_type, body));
        Envelope {
            payload: B64.encode(body),
            payload_type: payload_type.to_string(),
            signatures: vec![Signature {
                sig: B64.encode(signature),
                keyid: key.public().key_id(),
            }],
        }
    }

    /// Checks that a signature by `key` covers the payload; returns the payload bytes.
    pub fn verify(&self, key: &PublicKey) -> Result<Vec<u8>, EnvelopeError> {
        let body = B64
            .decode(&self.payload)
            .map_err(|_| EnvelopeError::Invalid("the DSSE payload is not base64".into()))?;
        let message = pae(&self.payload_type, &body);
        let good = self.signatures.iter().any(|s| {
            B64.decode(&s.sig)
                .is_ok_and(|sig| key.verify(&message, &sig))
        });
        if good {
            Ok(body)
        } else {
            Err(EnvelopeError::Invalid(format!(
                "no signature by key {} verifies (the envelope was changed, or signed by another key)",
                key.key_id()
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sign::Algorithm;

    #[test]
    fn pae_matches_the_dsse_spec_example() {
        // The DSSE protocol document's example: type "http://example.com/HelloWorld",
        // body "hello world".
        assert_eq!(
            pae("http://example.com/HelloWorld", b"hello world"),
            b"DSSEv1 29 http://example.com/HelloWorld 11 hello world".to_vec()
        );
    }

    #[test]
    fn a_changed_payload_or_type_fails() {
        let key = SigningKey::generate(Algorithm::Ed25519);
        let env = Envelope::sign(IN_TOTO, b"{\"a\":1}", &key);
        assert_eq!(env.verify(&key.public()).unwrap(), b"{\"a\":1}");
        let mut changed = env.clone();
        changed.payload = B64.encode(b"{\"a\":2}");
        assert!(changed.verify(&key.public()).is_err());
        let mut retyped = env.clone();
        retyped.payload_type = "text/plain".into();
        assert!(retyped.verify(&key.public()).is_err());
    }
}
