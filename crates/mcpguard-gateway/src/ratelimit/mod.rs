//! Rate limiting: per-identity, per-identity-and-tool and global token buckets, checked
//! at the end of the pre-execution phase — after policy, so a call the policy denies
//! costs nothing — in memory or in Redis (shared by replicas).
//!
//! Callers are keyed by identity when they authenticated, otherwise (anonymous, or
//! authentication off) by their address: never one bucket shared by everybody.

pub mod bucket;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mcpguard_protocol::{Kind, Message, RpcError, codes, mcp};
use serde::{Deserialize, Serialize};

use crate::auth::AuthMethod;
use crate::pipeline::{CallContext, Flow, Plugin};
use bucket::{Limit, Take};
use store::{BucketStore, MemoryStore, RedisStore};

/// `rate_limits:`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RateLimitConfig {
    /// Check the limits below.
    pub enabled: bool,
    /// `memory` (this process) or `redis` (shared by replicas).
    pub backend: RateLimitBackend,
    /// Each caller: every request but `initialize`, `server/discover` and `ping`.
    pub per_identity: Option<LimitConfig>,
    /// Each caller and tool: `tools/call`.
    pub per_tool: Option<LimitConfig>,
    /// Everybody together.
    pub global: Option<LimitConfig>,
    /// The most buckets kept in memory (least recently used are forgotten).
    pub max_tracked: usize,
    /// The Redis backend.
    pub redis: RedisConfig,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            enabled: false,
            backend: RateLimitBackend::Memory,
            per_identity: None,
            per_tool: None,
            global: None,
            max_tracked: 100_000,
            redis: RedisConfig::default(),
        }
    }
}

/// Where buckets live.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum RateLimitBackend {
    /// In this process.
    #[default]
    Memory,
    /// In Redis, shared by every replica.
    Redis,
}

/// One limit.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitConfig {
    /// Calls per second, sustained.
    pub rate: f64,
    /// Calls allowed at once after a quiet spell (default: `rate`, at least 1).
    #[serde(default)]
    pub burst: Option<f64>,
}

impl LimitConfig {
    fn limit(&self) -> Limit {
        Limit {
            rate: self.rate,
            burst: self.burst.unwrap_or(self.rate).max(1.0),
        }
    }
}

/// The Redis backend.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RedisConfig {
    /// The server.
    pub url: String,
    /// Prefix of the keys.
    pub key_prefix: String,
    /// How long one check may take, in milliseconds.
    pub timeout_ms: u64,
    /// When Redis cannot answer: `deny` (fail closed, the default) or `allow`.
    pub on_error: OnError,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "mcpguard:rl:".into(),
            timeout_ms: 200,
            on_error: OnError::Deny,
        }
    }
}

/// What to do when the store cannot decide.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Refuse the call (fail closed).
    #[default]
    Deny,
    /// Let it through (and log).
    Allow,
}

impl RateLimitConfig {
    /// What is wrong with this section, as `(key, message)` pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        for (name, limit) in [
            ("per_identity", &self.per_identity),
            ("per_tool", &self.per_tool),
            ("global", &self.global),
        ] {
            if let Some(limit) = limit {
                if !limit.rate.is_finite() || limit.rate <= 0.0 {
                    problems.push((
                        format!("rate_limits.{name}.rate"),
                        "must be a number of calls per second above 0".into(),
                    ));
                }
                if limit.burst.is_some_and(|b| !b.is_finite() || b < 1.0) {
                    problems.push((
                        format!("rate_limits.{name}.burst"),
                        "must be at least 1".into(),
                    ));
                }
            }
        }
        if self.enabled
            && self.per_identity.is_none()
            && self.per_tool.is_none()
            && self.global.is_none()
        {
            problems.push((
                "rate_limits".into(),
                "enabled, but no limit is set: give per_identity, per_tool or global a `rate`"
                    .into(),
            ));
        }
        problems
    }
}

/// Which bucket refused.
const KINDS: [&str; 3] = ["global", "per_identity", "per_tool"];

/// The rate-limit plugin.
pub struct RateLimiter {
    store: Arc<dyn BucketStore>,
    config: RateLimitConfig,
}

impl RateLimiter {
    /// The limiter `config` describes.
    pub fn new(config: &RateLimitConfig) -> Result<RateLimiter, String> {
        let store: Arc<dyn BucketStore> = match config.backend {
            RateLimitBackend::Memory => Arc::new(MemoryStore::new(config.max_tracked)),
            RateLimitBackend::Redis => Arc::new(RedisStore::new(
                &config.redis.url,
                &config.redis.key_prefix,
                Duration::from_millis(config.redis.timeout_ms.max(1)),
            )?),
        };
        Ok(RateLimiter::with_store(config, store))
    }

    /// The limiter on `store`.
    pub fn with_store(config: &RateLimitConfig, store: Arc<dyn BucketStore>) -> RateLimiter {
        RateLimiter {
            store,
            config: config.clone(),
        }
    }

    /// The buckets a call with `method` (and `tool`) by `caller` draws on, with the kind
    /// of each (an index into the kinds).
    fn buckets(
        &self,
        caller: &str,
        method: &str,
        tool: Option<&str>,
    ) -> Vec<(String, Limit, usize)> {
        let mut buckets = Vec::with_capacity(3);
        if let Some(global) = &self.config.global {
            buckets.push(("g".to_string(), global.limit(), 0));
        }
        if let Some(limit) = &self.config.per_identity {
            buckets.push((format!("i:{caller}"), limit.limit(), 1));
        }
        if let (Some(limit), Some(tool), true) = (
            &self.config.per_tool,
            tool,
            method == mcp::method::TOOLS_CALL,
        ) {
            buckets.push((format!("t:{caller}\u{1f}{tool}"), limit.limit(), 2));
        }
        buckets
    }
}

/// Whose bucket a call draws on: its identity when it authenticated, else its address.
pub fn caller_key(ctx: &CallContext) -> String {
    match &ctx.caller.identity {
        Some(identity) if identity.method != AuthMethod::Anonymous => {
            format!("id:{}", identity.name)
        }
        _ => match ctx.caller.remote {
            Some(address) => format!("addr:{}", address.ip()),
            None => "local".to_string(),
        },
    }
}

/// The error a limited call gets: JSON-RPC `-32058` with when to retry.
pub fn limited_error(kind: &str, retry_after_ms: u64, limit: &Limit) -> RpcError {
    let mut error = RpcError::new(
        codes::RATE_LIMITED,
        format!(
            "rate limit `{kind}` exceeded ({} calls per second, burst {}); retry after {retry_after_ms} ms",
            limit.rate, limit.burst
        ),
    );
    error.data = Some(serde_json::json!({
        "limit": kind,
        "retry_after_ms": retry_after_ms,
        "rate": limit.rate,
        "burst": limit.burst,
    }));
    error
}

#[async_trait]
impl Plugin for RateLimiter {
    fn name(&self) -> &'static str {
        "rate_limit"
    }

    /// After the guard (1000): a call the policy denies never reaches a bucket.
    fn priority(&self) -> i32 {
        900
    }

    async fn pre_execution(&self, ctx: &mut CallContext) -> Flow {
        if ctx.request.kind() != Kind::Request {
            return Flow::Continue;
        }
        let method = ctx.method().to_string();
        if matches!(
            method.as_str(),
            mcp::method::INITIALIZE | mcp::method::PING | "server/discover"
        ) {
            return Flow::Continue;
        }
        let tool = ctx.request.param_str("name").map(|n| n.into_owned());
        let caller = caller_key(ctx);
        let buckets = self.buckets(&caller, &method, tool.as_deref());
        if buckets.is_empty() {
            return Flow::Continue;
        }
        let keys: Vec<(String, Limit)> = buckets.iter().map(|(k, l, _)| (k.clone(), *l)).collect();
        match self.store.take(&keys).await {
            Ok(Take::Allowed { .. }) => Flow::Continue,
            Ok(Take::Limited {
                index,
                retry_after_ms,
            }) => {
                let (_, limit, kind) = &buckets[index.min(buckets.len() - 1)];
                tracing::info!(caller = %caller, method = %method, limit = KINDS[*kind], retry_after_ms, "rate limited");
                let error = limited_error(KINDS[*kind], retry_after_ms, limit);
                Flow::Respond(Message::error_response(ctx.request.id(), &error))
            }
            Err(e) => match self.config.redis.on_error {
                OnError::Allow => {
                    tracing::warn!(error = %e, "rate limits not checked (on_error: allow)");
                    Flow::Continue
                }
                OnError::Deny => {
                    tracing::error!(error = %e, "call refused: the rate limiter cannot decide (on_error: deny)");
                    let error = RpcError::new(
                        codes::DENIED,
                        "the rate limiter cannot decide right now, so the call is refused (fail closed); the gateway's log says why",
                    );
                    Flow::Respond(Message::error_response(ctx.request.id(), &error))
                }
            },
        }
    }
}
