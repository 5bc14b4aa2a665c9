//! The access phase's cost per call: authenticating an API key and a JWT (EdDSA, ES256 is
//! similar in kind), and taking rate-limit tokens in memory and in a real Redis
//! (127.0.0.1:6379). The async calls run with `block_on` on a current-thread runtime,
//! which adds well under a microsecond.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use std::time::Duration;

use base64::Engine as _;
use criterion::{Criterion, criterion_group, criterion_main};
use ed25519_dalek::SigningKey;
use mcpguard_gateway::auth::Authenticator;
use mcpguard_gateway::auth::api_keys;
use mcpguard_gateway::auth::jwt::JwtConfig;
use mcpguard_gateway::config::AuthConfig;
use mcpguard_gateway::ratelimit::bucket::Limit;
use mcpguard_gateway::ratelimit::store::{BucketStore, MemoryStore, RedisStore};

fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn headers(token: &str) -> http::HeaderMap {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::AUTHORIZATION,
        format!("Bearer {token}").parse().unwrap(),
    );
    headers
}

fn bench_auth(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // 1000 keys in the store, one presented.
    let mut records = Vec::new();
    let mut presented = String::new();
    for i in 0..1000u32 {
        let mut random = [0u8; 38];
        random[..4].copy_from_slice(&i.to_be_bytes());
        let key = api_keys::generate(&random, "bench", vec!["dev".into()], None, now(), None);
        if i == 500 {
            presented = key.key.clone();
        }
        records.push(key.record);
    }
    let keys = Authenticator::new(&AuthConfig {
        enabled: true,
        api_keys: records,
        ..AuthConfig::default()
    })
    .unwrap();
    let api_key_headers = headers(&presented);
    c.bench_function("auth/api_key", |b| {
        b.iter(|| {
            runtime
                .block_on(keys.authenticate(&api_key_headers))
                .unwrap()
        })
    });

    // An Ed25519 issuer: its JWKS in a file, a token signed with its key.
    let seed = [7u8; 32];
    let signing = SigningKey::from_bytes(&seed);
    let x =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signing.verifying_key().to_bytes());
    let dir = tempfile::tempdir().unwrap();
    let jwks = dir.path().join("jwks.json");
    std::fs::write(
        &jwks,
        format!(
            r#"{{"keys":[{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"k1","alg":"EdDSA"}}]}}"#
        ),
    )
    .unwrap();
    let mut der = hex_prefix();
    der.extend_from_slice(&seed);
    let encoding = jsonwebtoken::EncodingKey::from_ed_der(&der);
    let mut header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA);
    header.kid = Some("k1".into());
    let claims = serde_json::json!({
        "sub": "alice", "iss": "https://as.test", "aud": "https://gw.test/mcp",
        "exp": now() + 3600, "roles": ["dev"], "scope": "tools:echo",
    });
    let token = jsonwebtoken::encode(&header, &claims, &encoding).unwrap();
    let jwt = Authenticator::new(&AuthConfig {
        enabled: true,
        resource: Some("https://gw.test/mcp".into()),
        jwt: Some(JwtConfig {
            jwks_file: Some(jwks),
            issuer: "https://as.test".into(),
            ..JwtConfig::default()
        }),
        ..AuthConfig::default()
    })
    .unwrap();
    let jwt_headers = headers(&token);
    assert_eq!(
        runtime
            .block_on(jwt.authenticate(&jwt_headers))
            .unwrap()
            .unwrap()
            .name,
        "alice"
    );
    // The same token again: verified once, then served from the verifier's memory.
    c.bench_function("auth/jwt_eddsa", |b| {
        b.iter(|| runtime.block_on(jwt.authenticate(&jwt_headers)).unwrap())
    });
    // A different token every time (twice as many as the verifier remembers): every call
    // checks a signature.
    let fresh: Vec<_> = (0..20_000)
        .map(|n| {
            let mut claims = claims.clone();
            claims["jti"] = serde_json::json!(n);
            headers(&jsonwebtoken::encode(&header, &claims, &encoding).unwrap())
        })
        .collect();
    let mut next = fresh.iter().cycle();
    c.bench_function("auth/jwt_eddsa_uncached", |b| {
        b.iter(|| {
            let headers = next.next().unwrap();
            runtime.block_on(jwt.authenticate(headers)).unwrap()
        })
    });
}

/// The PKCS#8 v1 prefix of an Ed25519 private key (RFC 8410), before its 32-byte seed.
fn hex_prefix() -> Vec<u8> {
    vec![
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ]
}

fn bench_rate_limits(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Generous limits: every take succeeds, so the full write path is measured.
    let limit = Limit {
        rate: 1e9,
        burst: 1e9,
    };
    let keys = vec![
        ("g".to_string(), limit),
        ("i:id:alice".to_string(), limit),
        ("t:id:alice\u{1f}echo".to_string(), limit),
    ];
    let memory = MemoryStore::new(100_000);
    c.bench_function("ratelimit/memory_3_buckets", |b| {
        b.iter(|| runtime.block_on(memory.take(&keys)).unwrap())
    });
    let redis = RedisStore::new(
        "redis://127.0.0.1:6379",
        &format!("mcpguard-bench:{}:", std::process::id()),
        Duration::from_secs(2),
    )
    .unwrap();
    if runtime.block_on(redis.take(&keys)).is_ok() {
        c.bench_function("ratelimit/redis_3_buckets", |b| {
            b.iter(|| runtime.block_on(redis.take(&keys)).unwrap())
        });
    } else {
        eprintln!("no Redis at 127.0.0.1:6379: the Redis rate limiter is not measured");
    }
}

criterion_group!(benches, bench_auth, bench_rate_limits);
criterion_main!(benches);
