//! Who is calling: authentication of HTTP callers (the access phase's first step).
//!
//! Credentials come in `Authorization: Bearer <credential>` (or `X-API-Key`). API keys
//! ([`api_keys`]) are checked against the configured keys, inline or in a keys file that
//! is reloaded when it changes (so `mcpguard keys revoke` takes effect without a
//! restart). A caller without credentials is refused, unless `auth.anonymous` lets it in
//! as the identity `anonymous`; a caller with wrong credentials is always refused.

pub mod api_keys;
pub mod jwt;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use arc_swap::ArcSwap;
use http::HeaderMap;
use parking_lot::Mutex;

use crate::config::AuthConfig;
use api_keys::{KeyError, KeyRecord, KeyStore, KeysFile};
use jwt::{JwtError, JwtVerifier};

/// The identity anonymous callers get.
pub const ANONYMOUS: &str = "anonymous";

/// How a caller proved who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// An MCPGuard API key.
    ApiKey,
    /// A JWT from the authorization server.
    Jwt,
    /// Nothing: `auth.anonymous` let it in.
    Anonymous,
}

impl AuthMethod {
    /// The name in logs and audit events.
    pub fn as_str(self) -> &'static str {
        match self {
            AuthMethod::ApiKey => "api_key",
            AuthMethod::Jwt => "jwt",
            AuthMethod::Anonymous => "anonymous",
        }
    }
}

/// An authenticated caller.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// Its name (what policy rules' `identities` match).
    pub name: String,
    /// Its roles (what policy rules' `roles` match).
    pub roles: Vec<String>,
    /// How it authenticated.
    pub method: AuthMethod,
    /// The credential's id (an API key's id, a token's `jti`), never the credential.
    pub credential: Option<String>,
    /// The token's scopes (JWT callers).
    pub scopes: Vec<String>,
}

/// Why a caller was refused (HTTP 401). The text never holds the credential.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    /// No credential was sent and anonymous access is off.
    #[error("authentication required: send `Authorization: Bearer <API key>`")]
    Missing,
    /// The `Authorization` header is not a bearer credential.
    #[error("the Authorization header must be `Bearer <credential>`")]
    Scheme,
    /// The credential was refused.
    #[error("{0}")]
    Key(#[from] KeyError),
    /// The token was refused.
    #[error("{0}")]
    Jwt(#[from] JwtError),
    /// A JWT came but none are accepted.
    #[error("JWT bearer tokens are not accepted here (auth.jwt is not configured); use an API key")]
    NoJwt,
}

impl AuthError {
    /// The `error` of the `WWW-Authenticate` challenge (RFC 6750).
    pub fn challenge_error(&self) -> Option<&'static str> {
        match self {
            AuthError::Missing => None,
            AuthError::Scheme => Some("invalid_request"),
            AuthError::Key(_) | AuthError::Jwt(_) | AuthError::NoJwt => Some("invalid_token"),
        }
    }
}

/// The configured authentication.
pub struct Authenticator {
    enabled: bool,
    anonymous: bool,
    jwt: Option<JwtVerifier>,
    scopes: Vec<(globset::GlobSet, Option<globset::GlobSet>, Vec<String>)>,
    resource: Option<String>,
    authorization_servers: Vec<String>,
    inline: Vec<KeyRecord>,
    file: Option<PathBuf>,
    store: ArcSwap<KeyStore>,
    file_seen: Mutex<Option<(SystemTime, u64)>>,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("enabled", &self.enabled)
            .field("anonymous", &self.anonymous)
            .field("keys", &self.store.load().len())
            .finish()
    }
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Reads a keys file.
pub fn read_keys_file(path: &Path) -> Result<KeysFile, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("reading the keys file {}: {e}", path.display()))?;
    let file: KeysFile = serde_saphyr::from_str(&text)
        .map_err(|e| format!("the keys file {}: {e}", path.display()))?;
    if file.version != 1 {
        return Err(format!(
            "the keys file {} has version {}; this mcpguard reads version 1",
            path.display(),
            file.version
        ));
    }
    Ok(file)
}

fn file_state(path: &Path) -> Option<(SystemTime, u64)> {
    let metadata = std::fs::metadata(path).ok()?;
    Some((metadata.modified().ok()?, metadata.len()))
}

impl Authenticator {
    /// Authentication as configured; an error when it is enabled without any way to
    /// authenticate (no usable key and no anonymous access), or the keys file is bad.
    pub fn new(config: &AuthConfig) -> Result<Authenticator, String> {
        let jwt = match &config.jwt {
            Some(jwt) => Some(JwtVerifier::new(jwt, config.resource.as_deref())?),
            None => None,
        };
        let mut scopes = Vec::new();
        for (i, rule) in config.scopes.iter().enumerate() {
            let set = |globs: &[String]| -> Result<globset::GlobSet, String> {
                let mut builder = globset::GlobSetBuilder::new();
                for glob in globs {
                    builder.add(
                        globset::Glob::new(glob)
                            .map_err(|e| format!("auth.scopes[{i}]: `{glob}`: {e}"))?,
                    );
                }
                builder
                    .build()
                    .map_err(|e| format!("auth.scopes[{i}]: {e}"))
            };
            let tools = if rule.tools.is_empty() {
                None
            } else {
                Some(set(&rule.tools)?)
            };
            scopes.push((set(&rule.methods)?, tools, rule.scopes.clone()));
        }
        let authenticator = Authenticator {
            enabled: config.enabled,
            anonymous: config.anonymous,
            jwt,
            scopes,
            resource: config.resource.clone(),
            authorization_servers: config.authorization_servers.clone(),
            inline: config.api_keys.clone(),
            file: config.api_keys_file.clone(),
            store: ArcSwap::from_pointee(KeyStore::default()),
            file_seen: Mutex::new(None),
        };
        authenticator.load()?;
        let usable = authenticator.store.load().usable(now());
        if config.enabled && !config.anonymous && usable == 0 && authenticator.jwt.is_none() {
            return Err(
                "auth is enabled but no credential can be used (no API key that is neither revoked nor expired, no auth.jwt): create one with `mcpguard keys create --identity NAME`, or allow unauthenticated callers with `auth.anonymous: true`"
                    .into(),
            );
        }
        Ok(authenticator)
    }

    /// Authentication is off: every caller is let in without an identity.
    pub fn disabled() -> Authenticator {
        Authenticator {
            enabled: false,
            anonymous: false,
            jwt: None,
            scopes: Vec::new(),
            resource: None,
            authorization_servers: Vec::new(),
            inline: Vec::new(),
            file: None,
            store: ArcSwap::from_pointee(KeyStore::default()),
            file_seen: Mutex::new(None),
        }
    }

    /// True when callers must authenticate.
    pub fn enabled(&self) -> bool {
        self.enabled
    }

    fn load(&self) -> Result<(), String> {
        let mut records = self.inline.clone();
        if let Some(path) = &self.file {
            let seen = file_state(path);
            records.extend(read_keys_file(path)?.keys);
            *self.file_seen.lock() = seen;
        }
        self.store.store(Arc::new(KeyStore::new(records)));
        Ok(())
    }

    /// Reloads the keys file when it changed; a bad file leaves the old keys in force.
    /// Returns whether keys were reloaded.
    pub fn reload_if_changed(&self) -> bool {
        let Some(path) = &self.file else {
            return false;
        };
        let current = file_state(path);
        if current == *self.file_seen.lock() {
            return false;
        }
        match self.load() {
            Ok(()) => {
                tracing::info!(file = %path.display(), keys = self.store.load().len(), "API keys reloaded");
                true
            }
            Err(error) => {
                // Do not retry the same broken file every second.
                *self.file_seen.lock() = current;
                tracing::error!(%error, "the keys file changed but cannot be read: the previous keys stay in force");
                false
            }
        }
    }

    /// The JWT verifier, when tokens are accepted.
    pub fn jwt(&self) -> Option<&JwtVerifier> {
        self.jwt.as_ref()
    }

    /// The scopes `identity` lacks for `method` on `tool` (empty: it may call). Only JWT
    /// callers are held to scopes.
    pub fn missing_scopes(
        &self,
        identity: &Identity,
        method: &str,
        tool: Option<&str>,
    ) -> Vec<String> {
        if identity.method != AuthMethod::Jwt {
            return Vec::new();
        }
        let mut missing = Vec::new();
        for (methods, tools, scopes) in &self.scopes {
            let applies = methods.is_match(method)
                && match tools {
                    None => true,
                    Some(tools) => tool.is_some_and(|t| tools.is_match(t)),
                };
            if applies {
                for scope in scopes {
                    if !identity.scopes.contains(scope) && !missing.contains(scope) {
                        missing.push(scope.clone());
                    }
                }
            }
        }
        missing
    }

    /// The protected-resource metadata (RFC 9728), when `auth.resource` is set.
    pub fn metadata(&self) -> Option<serde_json::Value> {
        let resource = self.resource.as_ref()?;
        let mut scopes: Vec<&str> = self
            .scopes
            .iter()
            .flat_map(|(_, _, s)| s.iter().map(String::as_str))
            .collect();
        scopes.sort_unstable();
        scopes.dedup();
        Some(serde_json::json!({
            "resource": resource,
            "authorization_servers": self.authorization_servers,
            "bearer_methods_supported": ["header"],
            "scopes_supported": scopes,
            "resource_name": "MCPGuard",
        }))
    }

    /// Where the metadata is served for this resource (RFC 9728 section 3.1: the
    /// well-known path inserted before the resource's path).
    pub fn metadata_url(&self) -> Option<String> {
        let resource = self.resource.as_ref()?;
        let (scheme, rest) = resource.split_once("://")?;
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        Some(format!(
            "{scheme}://{authority}/.well-known/oauth-protected-resource{path}"
        ))
    }

    /// Who is calling, from the request's headers: `Ok(None)` when authentication is
    /// off.
    pub async fn authenticate(
        &self,
        headers: &HeaderMap,
    ) -> Result<Option<Arc<Identity>>, AuthError> {
        if !self.enabled {
            return Ok(None);
        }
        let credential = match headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        {
            Some(value) => {
                let (scheme, token) = value.trim().split_once(' ').ok_or(AuthError::Scheme)?;
                if !scheme.eq_ignore_ascii_case("bearer") {
                    return Err(AuthError::Scheme);
                }
                Some(token.trim().to_string())
            }
            None => headers
                .get("x-api-key")
                .and_then(|v| v.to_str().ok())
                .map(|v| v.trim().to_string()),
        };
        let Some(credential) = credential else {
            return if self.anonymous {
                Ok(Some(Arc::new(Identity {
                    name: ANONYMOUS.into(),
                    roles: Vec::new(),
                    method: AuthMethod::Anonymous,
                    credential: None,
                    scopes: Vec::new(),
                })))
            } else {
                Err(AuthError::Missing)
            };
        };
        if !credential.starts_with(api_keys::PREFIX) && credential.matches('.').count() == 2 {
            let jwt = self.jwt.as_ref().ok_or(AuthError::NoJwt)?;
            let verified = jwt.verify(&credential).await?;
            return Ok(Some(Arc::new(Identity {
                name: verified.identity,
                roles: verified.roles,
                method: AuthMethod::Jwt,
                credential: verified.id,
                scopes: verified.scopes,
            })));
        }
        let store = self.store.load();
        let record = store.verify(&credential, now())?;
        Ok(Some(Arc::new(Identity {
            name: record.identity.clone(),
            roles: record.roles.clone(),
            method: AuthMethod::ApiKey,
            credential: Some(record.id.clone()),
            scopes: Vec::new(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(keys: Vec<KeyRecord>, anonymous: bool) -> AuthConfig {
        AuthConfig {
            enabled: true,
            anonymous,
            api_keys: keys,
            ..AuthConfig::default()
        }
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, value.parse().unwrap());
        }
        map
    }

    #[test]
    fn enabled_without_credentials_is_a_startup_error() {
        let error = Authenticator::new(&config(Vec::new(), false)).unwrap_err();
        assert!(error.contains("mcpguard keys create"), "{error}");
        assert!(Authenticator::new(&config(Vec::new(), true)).is_ok());
    }

    #[tokio::test]
    async fn callers_are_identified_by_bearer_or_x_api_key() {
        let new = api_keys::generate(&[9; 38], "ci-bot", vec!["ci".into()], None, now(), None);
        let auth = Authenticator::new(&config(vec![new.record], false)).unwrap();
        let bearer = format!("Bearer {}", new.key);
        for pairs in [
            vec![("authorization", bearer.as_str())],
            vec![("x-api-key", new.key.as_str())],
        ] {
            let identity = auth.authenticate(&headers(&pairs)).await.unwrap().unwrap();
            assert_eq!(identity.name, "ci-bot");
            assert_eq!(identity.roles, ["ci"]);
            assert_eq!(identity.credential.as_deref(), Some("090909090909"));
        }
        assert_eq!(
            auth.authenticate(&headers(&[])).await,
            Err(AuthError::Missing)
        );
        assert_eq!(
            auth.authenticate(&headers(&[("authorization", "Basic dXNlcjpwYXNz")]))
                .await,
            Err(AuthError::Scheme)
        );
        assert_eq!(
            auth.authenticate(&headers(&[("authorization", "Bearer nope")]))
                .await,
            Err(AuthError::Key(KeyError::Malformed))
        );
        // Anonymous access lets the credential-less in, never the wrong credential.
        let open = Authenticator::new(&config(Vec::new(), true)).unwrap();
        let anonymous = open.authenticate(&headers(&[])).await.unwrap().unwrap();
        assert_eq!(anonymous.method, AuthMethod::Anonymous);
        assert!(
            open.authenticate(&headers(&[("authorization", &bearer)]))
                .await
                .is_err()
        );
        // Off: nobody is asked.
        assert_eq!(
            Authenticator::disabled().authenticate(&headers(&[])).await,
            Ok(None)
        );
    }

    #[tokio::test]
    async fn the_keys_file_is_reloaded_when_it_changes_and_a_broken_one_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keys.yaml");
        let first = api_keys::generate(&[1; 38], "a", Vec::new(), None, now(), None);
        let write = |records: &[KeyRecord]| {
            let file = KeysFile {
                version: 1,
                keys: records.to_vec(),
            };
            std::fs::write(&path, serde_json::to_string(&file).unwrap()).unwrap();
        };
        write(std::slice::from_ref(&first.record));
        let auth = Authenticator::new(&AuthConfig {
            api_keys_file: Some(path.clone()),
            ..config(Vec::new(), false)
        })
        .unwrap();
        let bearer = |key: &str| headers(&[("authorization", &format!("Bearer {key}"))]);
        assert!(auth.authenticate(&bearer(&first.key)).await.is_ok());
        let mut revoked = first.record.clone();
        revoked.revoked = Some(now());
        write(&[revoked]);
        assert!(auth.reload_if_changed());
        assert_eq!(
            auth.authenticate(&bearer(&first.key)).await,
            Err(AuthError::Key(KeyError::Revoked))
        );
        std::fs::write(&path, "keys: [oops").unwrap();
        assert!(!auth.reload_if_changed());
        assert_eq!(
            auth.authenticate(&bearer(&first.key)).await,
            Err(AuthError::Key(KeyError::Revoked))
        );
    }
}
