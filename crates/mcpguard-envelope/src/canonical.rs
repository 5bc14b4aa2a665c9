//! RFC 8785 (JCS) canonical JSON and SHA-256 digests of it.

use sha2::{Digest, Sha256};

use crate::EnvelopeError;

/// The RFC 8785 canonical form of `json` (keys sorted by UTF-16 code units, numbers in
/// their shortest ECMAScript form, no whitespace).
pub fn canonicalize(json: &str) -> Result<String, EnvelopeError> {
    let value: serde_json::Value =
        serde_json::from_str(json).map_err(|e| EnvelopeError::Json(format!("not JSON: {e}")))?;
    serde_json_canonicalizer::to_string(&value)
        .map_err(|e| EnvelopeError::Json(format!("cannot canonicalize: {e}")))
}

/// Hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Hex SHA-256 of the canonical form of `json`.
pub fn canonical_digest(json: &str) -> Result<String, EnvelopeError> {
    Ok(sha256_hex(canonicalize(json)?.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_whitespace_and_number_forms_do_not_change_the_digest() {
        let a =
            canonicalize(r#"{"b": 1.0, "a": [1e2, "x"], "c": {"z": null, "y": true}}"#).unwrap();
        assert_eq!(a, r#"{"a":[100,"x"],"b":1,"c":{"y":true,"z":null}}"#);
        assert_eq!(
            canonical_digest(r#"{"a":[100,"x"],"b":1,"c":{"y":true,"z":null}}"#).unwrap(),
            canonical_digest(r#"{ "c":{"z":null,"y":true}, "b":1, "a":[1E2,"x"] }"#).unwrap()
        );
        assert!(canonicalize("{oops").is_err());
    }

    #[test]
    fn rfc8785_sorts_keys_by_utf16_code_units() {
        // From RFC 8785 §3.2.3: "\u20ac" (€) sorts after "\r" and before "\ud83d\ude00".
        let c = canonicalize(r#"{"\u20ac":1,"\r":2,"\ud83d\ude00":3,"1":4}"#).unwrap();
        assert_eq!(c, "{\"\\r\":2,\"1\":4,\"\u{20ac}\":1,\"\u{1f600}\":3}");
    }
}
