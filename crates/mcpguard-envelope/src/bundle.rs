//! Sigstore bundle v0.3 (`application/vnd.dev.sigstore.bundle.v0.3+json`) holding a DSSE
//! envelope signed with a plain key: verification material is a public-key hint, with no
//! transparency-log entries or timestamps (verify with thresholds at 0).

use serde::{Deserialize, Serialize};

use crate::EnvelopeError;
use crate::dsse::{Envelope, IN_TOTO};
use crate::sign::{PublicKey, SigningKey};
use crate::statement::{PREDICATE_TYPE, STATEMENT_TYPE, Statement};

/// The bundle media type.
pub const MEDIA_TYPE: &str = "application/vnd.dev.sigstore.bundle.v0.3+json";

/// A public-key hint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicKeyHint {
    /// The key id.
    pub hint: String,
}

/// Timestamps (none).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct TimestampData {
    /// RFC 3161 timestamps.
    #[serde(default)]
    pub rfc3161_timestamps: Vec<serde_json::Value>,
}

/// How to check the signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VerificationMaterial {
    /// The key hint.
    pub public_key: PublicKeyHint,
    /// Transparency-log entries (none).
    #[serde(default)]
    pub tlog_entries: Vec<serde_json::Value>,
    /// Timestamps (none).
    #[serde(default)]
    pub timestamp_verification_data: TimestampData,
}

/// A Sigstore bundle v0.3 with a DSSE envelope.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Bundle {
    /// [`MEDIA_TYPE`].
    pub media_type: String,
    /// The key hint.
    pub verification_material: VerificationMaterial,
    /// The signed statement.
    pub dsse_envelope: Envelope,
}

impl Bundle {
    /// Signs `statement` with `key`.
    pub fn sign(statement: &Statement, key: &SigningKey) -> Result<Bundle, EnvelopeError> {
        let body = serde_json::to_vec(statement).map_err(|e| EnvelopeError::Json(e.to_string()))?;
        Ok(Bundle {
            media_type: MEDIA_TYPE.into(),
            verification_material: VerificationMaterial {
                public_key: PublicKeyHint {
                    hint: key.public().key_id(),
                },
                tlog_entries: Vec::new(),
                timestamp_verification_data: TimestampData::default(),
            },
            dsse_envelope: Envelope::sign(IN_TOTO, &body, key),
        })
    }

    /// Reads a bundle from JSON.
    pub fn from_json(json: &str) -> Result<Bundle, EnvelopeError> {
        let bundle: Bundle = serde_json::from_str(json)
            .map_err(|e| EnvelopeError::Invalid(format!("not a Sigstore bundle: {e}")))?;
        if bundle.media_type != MEDIA_TYPE {
            return Err(EnvelopeError::Invalid(format!(
                "media type `{}` is not {MEDIA_TYPE}",
                bundle.media_type
            )));
        }
        Ok(bundle)
    }

    /// Checks the signature with `key` and returns the statement it signs.
    pub fn verify(&self, key: &PublicKey) -> Result<Statement, EnvelopeError> {
        if self.verification_material.public_key.hint != key.key_id() {
            return Err(EnvelopeError::Invalid(format!(
                "the bundle names key {} but the given key is {}",
                self.verification_material.public_key.hint,
                key.key_id()
            )));
        }
        if self.dsse_envelope.payload_type != IN_TOTO {
            return Err(EnvelopeError::Invalid(format!(
                "payload type `{}` is not {IN_TOTO}",
                self.dsse_envelope.payload_type
            )));
        }
        let body = self.dsse_envelope.verify(key)?;
        let statement: Statement = serde_json::from_slice(&body).map_err(|e| {
            EnvelopeError::Invalid(format!("the payload is not our statement: {e}"))
        })?;
        if statement.statement_type != STATEMENT_TYPE || statement.predicate_type != PREDICATE_TYPE
        {
            return Err(EnvelopeError::Invalid(
                "not an MCPGuard execution statement".into(),
            ));
        }
        Ok(statement)
    }

    /// The bundle as JSON.
    pub fn to_json(&self) -> Result<String, EnvelopeError> {
        serde_json::to_string(self).map_err(|e| EnvelopeError::Json(e.to_string()))
    }
}
