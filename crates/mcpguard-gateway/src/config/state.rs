//! Where a gateway keeps the state its replicas must share.

use serde::{Deserialize, Serialize};

/// Where sessions, taint ledgers and tool pins live.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema, Default)]
#[serde(default, deny_unknown_fields)]
pub struct StateConfig {
    /// `memory` (this process only: the embedded default) or `redis` (shared by every
    /// replica, so that any replica serves any request of a session).
    pub backend: StateBackend,
    /// The Redis server, for `backend: redis`.
    pub redis: StateRedisConfig,
}

/// Where shared state lives.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StateBackend {
    /// In this process.
    #[default]
    Memory,
    /// In Redis, shared by replicas.
    Redis,
}

/// The Redis that replicas share.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct StateRedisConfig {
    /// The server, e.g. `redis://127.0.0.1:6379/0`.
    pub url: String,
    /// Prefix of every key (replicas of one deployment use the same one).
    pub key_prefix: String,
    /// How long one round trip may take, in milliseconds; beyond it the call is refused
    /// (fail closed).
    pub timeout_ms: u64,
}

impl Default for StateRedisConfig {
    fn default() -> Self {
        StateRedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "mcpguard:".into(),
            timeout_ms: 500,
        }
    }
}
