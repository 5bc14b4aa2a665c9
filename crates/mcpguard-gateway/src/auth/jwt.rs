//! JWT bearer tokens from an OAuth 2.1 authorization server: signatures (RS256, ES256,
//! EdDSA) checked against the server's JWKS (a file, or a URL fetched, cached and
//! refreshed), then issuer, audience (the gateway's own resource URI, RFC 8707), expiry
//! and not-before; claims mapped to the identity, its roles and its scopes.

use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

/// `auth.jwt`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct JwtConfig {
    /// The authorization server's JWKS as a file (relative to the configuration file).
    pub jwks_file: Option<PathBuf>,
    /// ...or as a URL (fetched at start, refreshed every `refresh_seconds`, and again
    /// when a token names an unknown key, at most every 10 seconds).
    pub jwks_url: Option<String>,
    /// The `iss` tokens must carry (required).
    pub issuer: String,
    /// The `aud` tokens must carry (default: `auth.resource`).
    pub audience: Option<String>,
    /// Accepted algorithms (default RS256, ES256, EdDSA; HMAC is never accepted).
    pub algorithms: Vec<String>,
    /// The claim that names the identity.
    pub identity_claim: String,
    /// The claim holding roles (an array, or a space-separated string).
    pub roles_claim: String,
    /// The claim holding scopes (`scope`, space-separated, or `scp`, an array).
    pub scopes_claim: String,
    /// Clock skew allowed on `exp` and `nbf`, in seconds.
    pub leeway_seconds: u64,
    /// How often a JWKS URL is fetched again, in seconds.
    pub refresh_seconds: u64,
}

impl Default for JwtConfig {
    fn default() -> Self {
        JwtConfig {
            jwks_file: None,
            jwks_url: None,
            issuer: String::new(),
            audience: None,
            algorithms: vec!["RS256".into(), "ES256".into(), "EdDSA".into()],
            identity_claim: "sub".into(),
            roles_claim: "roles".into(),
            scopes_claim: "scope".into(),
            leeway_seconds: 30,
            refresh_seconds: 300,
        }
    }
}

/// What a verified token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// The identity claim.
    pub identity: String,
    /// The roles claim.
    pub roles: Vec<String>,
    /// The scopes claim.
    pub scopes: Vec<String>,
    /// The token's `jti`, or its key id (never the token).
    pub id: Option<String>,
}

/// Why a token was refused. The texts never hold the token.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// Not a JWT, or one that cannot be decoded.
    #[error("the bearer token is not a valid JWT")]
    Malformed,
    /// Its algorithm is not accepted.
    #[error("the token's algorithm is not accepted")]
    Algorithm,
    /// No key of the JWKS has its `kid`.
    #[error("the token is signed with a key the authorization server does not list")]
    UnknownKey,
    /// The JWKS could not be loaded.
    #[error("the authorization server's keys are not available: {0}")]
    NoKeys(String),
    /// Bad signature.
    #[error("the token's signature is invalid")]
    Signature,
    /// Expired.
    #[error("the token has expired")]
    Expired,
    /// Not valid yet.
    #[error("the token is not valid yet")]
    NotYet,
    /// Wrong issuer.
    #[error("the token was issued by another authorization server")]
    Issuer,
    /// Wrong audience.
    #[error("the token is meant for another resource (its audience is not this gateway)")]
    Audience,
    /// A required claim is missing or malformed.
    #[error("the token's `{0}` claim is missing or malformed")]
    Claim(String),
}

fn map_error(error: &jsonwebtoken::errors::Error) -> JwtError {
    use jsonwebtoken::errors::ErrorKind;
    match error.kind() {
        ErrorKind::InvalidSignature => JwtError::Signature,
        ErrorKind::ExpiredSignature => JwtError::Expired,
        ErrorKind::ImmatureSignature => JwtError::NotYet,
        ErrorKind::InvalidIssuer => JwtError::Issuer,
        ErrorKind::InvalidAudience => JwtError::Audience,
        ErrorKind::InvalidAlgorithm | ErrorKind::InvalidAlgorithmName => JwtError::Algorithm,
        ErrorKind::MissingRequiredClaim(claim) | ErrorKind::InvalidClaimFormat(claim) => {
            JwtError::Claim(claim.clone())
        }
        _ => JwtError::Malformed,
    }
}

/// Where the keys come from.
#[derive(Debug, Clone)]
enum Source {
    File(PathBuf),
    Url(String),
}

/// Verifies tokens of one authorization server.
pub struct JwtVerifier {
    validation: Validation,
    source: Source,
    keys: ArcSwap<JwkSet>,
    config: JwtConfig,
    last_fetch: Mutex<Option<Instant>>,
    http: reqwest::Client,
    /// Tokens verified already (by SHA-256), with their expiry and the key set they were
    /// verified against: a repeated token skips the signature check until it expires or
    /// the keys change.
    verified: Mutex<lru::LruCache<[u8; 32], CachedToken>>,
    /// Bumped whenever the keys are replaced.
    generation: std::sync::atomic::AtomicU64,
}

/// Most verified tokens remembered.
const VERIFIED_CACHE: usize = 10_000;

struct CachedToken {
    verified: Verified,
    /// `exp`, in seconds since the epoch.
    expires: u64,
    /// `nbf`, in seconds since the epoch (0 when absent).
    not_before: u64,
    generation: u64,
}

fn now_seconds() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl std::fmt::Debug for JwtVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtVerifier")
            .field("source", &self.source)
            .field("keys", &self.keys.load().keys.len())
            .finish_non_exhaustive()
    }
}

/// How soon after a fetch an unknown key may trigger another.
const REFETCH_AFTER: Duration = Duration::from_secs(10);

/// Parses a JWKS document.
pub fn parse_jwks(text: &str) -> Result<JwkSet, String> {
    serde_json::from_str(text).map_err(|e| format!("not a JWKS document: {e}"))
}

impl JwtVerifier {
    /// A verifier for `config`, with `resource` as the default audience. A JWKS file is
    /// read now; a URL is fetched by [`Self::refresh`].
    pub fn new(config: &JwtConfig, resource: Option<&str>) -> Result<JwtVerifier, String> {
        if config.issuer.trim().is_empty() {
            return Err("auth.jwt.issuer is required (the `iss` of accepted tokens)".into());
        }
        let audience = config
            .audience
            .as_deref()
            .or(resource)
            .ok_or("auth.jwt needs an audience: set auth.resource (the gateway's resource URI) or auth.jwt.audience")?;
        let mut algorithms = Vec::new();
        for name in &config.algorithms {
            let algorithm = Algorithm::from_str(name)
                .map_err(|_| format!("auth.jwt.algorithms: unknown algorithm `{name}`"))?;
            if matches!(
                algorithm,
                Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512
            ) {
                return Err(format!(
                    "auth.jwt.algorithms: `{name}` (a shared secret) is not accepted; use RS256, ES256 or EdDSA"
                ));
            }
            algorithms.push(algorithm);
        }
        if algorithms.is_empty() {
            return Err("auth.jwt.algorithms: name at least one (RS256, ES256, EdDSA)".into());
        }
        let mut validation = Validation::new(algorithms[0]);
        validation.algorithms = algorithms;
        validation.set_issuer(&[config.issuer.as_str()]);
        validation.set_audience(&[audience]);
        validation.set_required_spec_claims(&["exp", "iss", "aud"]);
        validation.validate_nbf = true;
        validation.leeway = config.leeway_seconds;
        let source = match (&config.jwks_file, &config.jwks_url) {
            (Some(file), None) => Source::File(file.clone()),
            (None, Some(url)) => Source::Url(url.clone()),
            _ => {
                return Err(
                    "auth.jwt needs exactly one of jwks_file and jwks_url (where the authorization server's keys are)"
                        .into(),
                );
            }
        };
        let keys = match &source {
            Source::File(path) => {
                let text = std::fs::read_to_string(path)
                    .map_err(|e| format!("reading the JWKS {}: {e}", path.display()))?;
                parse_jwks(&text).map_err(|e| format!("{}: {e}", path.display()))?
            }
            Source::Url(_) => JwkSet { keys: Vec::new() },
        };
        // reqwest is built without a default TLS provider: install ring's (once).
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(10))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("an HTTP client for the JWKS: {e}"))?;
        Ok(JwtVerifier {
            validation,
            source,
            keys: ArcSwap::from_pointee(keys),
            config: config.clone(),
            last_fetch: Mutex::new(None),
            http,
            verified: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(VERIFIED_CACHE).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            generation: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// How often the keys are fetched again (URL sources).
    pub fn refresh_interval(&self) -> Option<Duration> {
        matches!(self.source, Source::Url(_))
            .then(|| Duration::from_secs(self.config.refresh_seconds.max(10)))
    }

    /// Fetches the JWKS URL (or rereads the file) and swaps the keys in; the old keys
    /// stay when it fails.
    pub async fn refresh(&self) -> Result<usize, String> {
        *self.last_fetch.lock() = Some(Instant::now());
        let text = match &self.source {
            Source::File(path) => tokio::fs::read_to_string(path)
                .await
                .map_err(|e| format!("reading {}: {e}", path.display()))?,
            Source::Url(url) => {
                let response = self
                    .http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| format!("fetching {url}: {e}"))?;
                if !response.status().is_success() {
                    return Err(format!("fetching {url}: HTTP {}", response.status()));
                }
                response
                    .text()
                    .await
                    .map_err(|e| format!("reading {url}: {e}"))?
            }
        };
        let keys = parse_jwks(&text)?;
        let count = keys.keys.len();
        self.keys.store(Arc::new(keys));
        self.generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Ok(count)
    }

    /// Verifies `token`; an unknown key id makes it fetch the keys again first (at most
    /// every 10 seconds), so a rotated key is picked up without waiting.
    pub async fn verify(&self, token: &str) -> Result<Verified, JwtError> {
        use sha2::Digest as _;
        let digest: [u8; 32] = sha2::Sha256::digest(token.as_bytes()).into();
        let generation = self.generation.load(std::sync::atomic::Ordering::SeqCst);
        {
            let mut cache = self.verified.lock();
            if let Some(hit) = cache.get(&digest) {
                let now = now_seconds();
                if hit.generation == generation && now < hit.expires && now >= hit.not_before {
                    return Ok(hit.verified.clone());
                }
                cache.pop(&digest);
            }
        }
        let (verified, expires, not_before) = self.verify_signature(token).await?;
        if let Some(expires) = expires {
            self.verified.lock().put(
                digest,
                CachedToken {
                    verified: verified.clone(),
                    expires,
                    not_before,
                    generation,
                },
            );
        }
        Ok(verified)
    }

    /// Verifies the signature and claims; also answers `exp` and `nbf` (0 when absent).
    async fn verify_signature(
        &self,
        token: &str,
    ) -> Result<(Verified, Option<u64>, u64), JwtError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| JwtError::Malformed)?;
        if !self.validation.algorithms.contains(&header.alg) {
            return Err(JwtError::Algorithm);
        }
        let mut key = self.key_for(header.kid.as_deref(), header.alg);
        if key.is_none() {
            let recent = self
                .last_fetch
                .lock()
                .is_some_and(|t| t.elapsed() < REFETCH_AFTER);
            if !recent {
                if let Err(e) = self.refresh().await {
                    tracing::warn!(error = %e, "refreshing the JWKS failed");
                    if self.keys.load().keys.is_empty() {
                        return Err(JwtError::NoKeys(e));
                    }
                }
                key = self.key_for(header.kid.as_deref(), header.alg);
            }
        }
        let key = key.ok_or(JwtError::UnknownKey)?;
        // The library wants every listed algorithm to fit the key: list only the token's
        // (already checked against the accepted ones, and against the key's type).
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let data = jsonwebtoken::decode::<serde_json::Map<String, serde_json::Value>>(
            token,
            &key,
            &validation,
        )
        .map_err(|e| map_error(&e))?;
        let claims = data.claims;
        let expires = claims.get("exp").and_then(serde_json::Value::as_u64);
        let not_before = claims
            .get("nbf")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let identity = claims
            .get(&self.config.identity_claim)
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| JwtError::Claim(self.config.identity_claim.clone()))?
            .to_string();
        let verified = Verified {
            identity,
            roles: strings(claims.get(&self.config.roles_claim)),
            scopes: strings(
                claims
                    .get(&self.config.scopes_claim)
                    .or_else(|| claims.get("scp")),
            ),
            id: claims
                .get("jti")
                .and_then(|v| v.as_str())
                .map(str::to_string)
                .or(header.kid),
        };
        Ok((verified, expires, not_before))
    }

    /// The key for `kid` (or, without a `kid`, the only key of a fitting type).
    fn key_for(&self, kid: Option<&str>, algorithm: Algorithm) -> Option<DecodingKey> {
        let keys = self.keys.load();
        let jwk = match kid {
            Some(kid) => keys.find(kid),
            None => {
                let fitting: Vec<_> = keys.keys.iter().filter(|k| fits(k, algorithm)).collect();
                (fitting.len() == 1).then(|| fitting[0])
            }
        }?;
        if !fits(jwk, algorithm) {
            return None;
        }
        DecodingKey::from_jwk(jwk).ok()
    }
}

/// Whether a key can verify `algorithm` (no algorithm confusion).
fn fits(jwk: &jsonwebtoken::jwk::Jwk, algorithm: Algorithm) -> bool {
    use jsonwebtoken::jwk::AlgorithmParameters as P;
    matches!(
        (&jwk.algorithm, algorithm),
        (
            P::RSA(_),
            Algorithm::RS256
                | Algorithm::RS384
                | Algorithm::RS512
                | Algorithm::PS256
                | Algorithm::PS384
                | Algorithm::PS512
        ) | (P::EllipticCurve(_), Algorithm::ES256 | Algorithm::ES384)
            | (P::OctetKeyPair(_), Algorithm::EdDSA)
    )
}

/// A claim as a list of strings: an array of strings, or a space-separated string.
fn strings(value: Option<&serde_json::Value>) -> Vec<String> {
    match value {
        Some(serde_json::Value::String(text)) => {
            text.split_whitespace().map(str::to_string).collect()
        }
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .filter_map(|v| v.as_str())
            .map(str::to_string)
            .collect(),
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_mistakes_are_named() {
        let base = JwtConfig {
            issuer: "https://as.example".into(),
            jwks_url: Some("https://as.example/jwks".into()),
            ..JwtConfig::default()
        };
        assert!(JwtVerifier::new(&base, Some("https://gw.example/mcp")).is_ok());
        let error = JwtVerifier::new(&base, None).unwrap_err();
        assert!(error.contains("audience"), "{error}");
        let hmac = JwtConfig {
            algorithms: vec!["HS256".into()],
            ..base.clone()
        };
        assert!(
            JwtVerifier::new(&hmac, Some("x"))
                .unwrap_err()
                .contains("shared secret")
        );
        let both = JwtConfig {
            jwks_file: Some("jwks.json".into()),
            ..base.clone()
        };
        assert!(
            JwtVerifier::new(&both, Some("x"))
                .unwrap_err()
                .contains("exactly one")
        );
        let no_issuer = JwtConfig {
            issuer: String::new(),
            ..base
        };
        assert!(
            JwtVerifier::new(&no_issuer, Some("x"))
                .unwrap_err()
                .contains("issuer")
        );
    }

    /// The Ed25519 key of RFC 8037, appendix A.1 (a published test key).
    const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
    const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

    fn jwks(x: &str) -> String {
        format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"k1","alg":"EdDSA"}}]}}"#
        )
    }

    fn signed(claims: &serde_json::Value) -> String {
        use base64::Engine as _;
        let seed = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(RFC8037_D)
            .unwrap_or_default();
        // PKCS#8 v1 wrapping of an Ed25519 seed (RFC 8410).
        let mut der = vec![
            0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
            0x04, 0x20,
        ];
        der.extend_from_slice(&seed);
        let mut header = jsonwebtoken::Header::new(Algorithm::EdDSA);
        header.kid = Some("k1".into());
        jsonwebtoken::encode(
            &header,
            claims,
            &jsonwebtoken::EncodingKey::from_ed_der(&der),
        )
        .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_verified_token_is_remembered_until_the_keys_change() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("jwks.json");
        std::fs::write(&file, jwks(RFC8037_X)).unwrap();
        let config = JwtConfig {
            issuer: "https://as.test".into(),
            jwks_file: Some(file.clone()),
            ..JwtConfig::default()
        };
        let verifier = JwtVerifier::new(&config, Some("https://gw.test/mcp")).unwrap();
        verifier.refresh().await.unwrap();
        let now = now_seconds();
        let token = signed(&serde_json::json!({
            "sub": "alice", "iss": "https://as.test", "aud": "https://gw.test/mcp", "exp": now + 600,
        }));
        assert_eq!(verifier.verify(&token).await.unwrap().identity, "alice");
        // Without its key the token still passes: it was verified, and the keys are the
        // same generation (the swap below bypasses `refresh` on purpose).
        verifier
            .keys
            .store(Arc::new(parse_jwks(r#"{"keys":[]}"#).unwrap()));
        assert_eq!(verifier.verify(&token).await.unwrap().identity, "alice");
        // Replacing the keys forgets every verified token: now it is checked again.
        std::fs::write(&file, jwks("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")).unwrap();
        verifier.refresh().await.unwrap();
        assert!(verifier.verify(&token).await.is_err());
        // An expired token is never served from memory.
        std::fs::write(&file, jwks(RFC8037_X)).unwrap();
        verifier.refresh().await.unwrap();
        let old = signed(&serde_json::json!({
            "sub": "bob", "iss": "https://as.test", "aud": "https://gw.test/mcp", "exp": now - 120,
        }));
        assert_eq!(verifier.verify(&old).await, Err(JwtError::Expired));
    }

    #[test]
    fn claims_become_lists_either_way() {
        assert_eq!(strings(Some(&serde_json::json!("a b  c"))), ["a", "b", "c"]);
        assert_eq!(strings(Some(&serde_json::json!(["x", 1, "y"]))), ["x", "y"]);
        assert!(strings(Some(&serde_json::json!(7))).is_empty());
    }
}
