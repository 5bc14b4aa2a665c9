//! The gateway's Ed25519 signing key: PKCS#8 PEM on disk (mode 0600), the public half as
//! SubjectPublicKeyInfo PEM for verifiers.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use ed25519_dalek::pkcs8::spki::der::pem::LineEnding;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey, EncodePrivateKey, EncodePublicKey};
use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::AuditError;

/// A fresh key from the thread's CSPRNG (ChaCha seeded by the operating system).
pub fn generate() -> SigningKey {
    SigningKey::from_bytes(&rand::random::<[u8; 32]>())
}

/// Reads a PKCS#8 PEM private key.
pub fn load_signing_key(path: &Path) -> Result<SigningKey, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuditError::Key {
        path: path.display().to_string(),
        detail: format!("cannot read it: {e}; create one with `mcpguard keygen`"),
    })?;
    SigningKey::from_pkcs8_pem(&text).map_err(|e| AuditError::Key {
        path: path.display().to_string(),
        detail: format!("not an Ed25519 PKCS#8 PEM private key ({e})"),
    })
}

/// Reads a public key: SubjectPublicKeyInfo PEM, or the private key it belongs to.
pub fn load_verifying_key(path: &Path) -> Result<VerifyingKey, AuditError> {
    let text = std::fs::read_to_string(path).map_err(|e| AuditError::Key {
        path: path.display().to_string(),
        detail: format!("cannot read it: {e}"),
    })?;
    if let Ok(key) = VerifyingKey::from_public_key_pem(&text) {
        return Ok(key);
    }
    SigningKey::from_pkcs8_pem(&text)
        .map(|k| k.verifying_key())
        .map_err(|_| AuditError::Key {
            path: path.display().to_string(),
            detail: "neither an Ed25519 public key PEM nor a PKCS#8 private key PEM".into(),
        })
}

/// Writes `key` to `private` (0600, refusing to overwrite) and its public half to
/// `public`.
pub fn write_key_pair(key: &SigningKey, private: &Path, public: &Path) -> Result<(), AuditError> {
    let err = |path: &Path, detail: String| AuditError::Key {
        path: path.display().to_string(),
        detail,
    };
    let pem = key
        .to_pkcs8_pem(LineEnding::LF)
        .map_err(|e| err(private, e.to_string()))?;
    let public_pem = key
        .verifying_key()
        .to_public_key_pem(LineEnding::LF)
        .map_err(|e| err(public, e.to_string()))?;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(private)
        .map_err(|e| err(private, format!("cannot create it: {e}")))?;
    file.write_all(pem.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| err(private, format!("cannot write it: {e}")))?;
    std::fs::write(public, public_pem).map_err(|e| err(public, format!("cannot write it: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_pair_loads_back_and_is_private() {
        let dir = tempfile::tempdir().unwrap();
        let (private, public) = (dir.path().join("k.pem"), dir.path().join("k.pub"));
        let key = generate();
        write_key_pair(&key, &private, &public).unwrap();
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&private).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            load_signing_key(&private).unwrap().to_bytes(),
            key.to_bytes()
        );
        assert_eq!(load_verifying_key(&public).unwrap(), key.verifying_key());
        assert_eq!(load_verifying_key(&private).unwrap(), key.verifying_key());
        assert!(
            write_key_pair(&key, &private, &public).is_err(),
            "never overwrites"
        );
        assert_ne!(generate().to_bytes(), key.to_bytes());
    }
}
