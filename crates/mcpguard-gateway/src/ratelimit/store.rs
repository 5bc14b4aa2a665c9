//! Where buckets live: in this process (an LRU-bounded map) or in Redis (one atomic
//! script per call, so limits hold across replicas). Both pass the same tests.

use std::num::NonZeroUsize;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use parking_lot::Mutex;

use super::bucket::{Bucket, Limit, Take, take};

/// Why the store could not decide.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the rate-limit store is unavailable: {0}")]
pub struct StoreError(pub String);

/// A place that keeps buckets.
#[async_trait]
pub trait BucketStore: Send + Sync {
    /// Takes one token from each bucket named in `keys`, or none.
    async fn take(&self, keys: &[(String, Limit)]) -> Result<Take, StoreError>;
}

/// Buckets in memory, at most `capacity` of them (the least recently used go first: a
/// forgotten bucket comes back full, which only ever favours a caller idle that long).
pub struct MemoryStore {
    buckets: Mutex<lru::LruCache<String, Bucket>>,
    clock: fn() -> u64,
}

fn wall_clock_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl MemoryStore {
    /// A store of at most `capacity` buckets, on the system clock.
    pub fn new(capacity: usize) -> MemoryStore {
        MemoryStore::with_clock(capacity, wall_clock_ms)
    }

    /// A store on `clock` (milliseconds), for tests.
    pub fn with_clock(capacity: usize, clock: fn() -> u64) -> MemoryStore {
        MemoryStore {
            buckets: Mutex::new(lru::LruCache::new(
                NonZeroUsize::new(capacity.max(1)).unwrap_or(NonZeroUsize::MIN),
            )),
            clock,
        }
    }

    /// How many buckets it holds.
    pub fn len(&self) -> usize {
        self.buckets.lock().len()
    }

    /// True when it holds none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl BucketStore for MemoryStore {
    async fn take(&self, keys: &[(String, Limit)]) -> Result<Take, StoreError> {
        let now = (self.clock)();
        let mut buckets = self.buckets.lock();
        let mut states: Vec<(Option<Bucket>, Limit)> = keys
            .iter()
            .map(|(key, limit)| (buckets.get(key).copied(), *limit))
            .collect();
        let outcome = take(&mut states, now);
        if matches!(outcome, Take::Allowed { .. }) {
            for ((key, _), (state, _)) in keys.iter().zip(states) {
                if let Some(state) = state {
                    buckets.put(key.clone(), state);
                }
            }
        }
        Ok(outcome)
    }
}

/// The bucket arithmetic of [`take`] as one Redis script: Redis's own clock (`TIME`), so
/// replicas with skewed clocks agree; all keys or none.
const SCRIPT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local levels = {}
local limited, retry = 0, 0
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local v = redis.call('HMGET', KEYS[i], 't', 'u')
  local tokens, updated = tonumber(v[1]), tonumber(v[2])
  if tokens == nil or updated == nil then tokens, updated = burst, now end
  local level = math.min(burst, tokens + math.max(0, now - updated) * rate)
  levels[i] = level
  if level < 1 then
    local wait = math.max(1, math.ceil((1 - level) / rate))
    if wait > retry then retry, limited = wait, i end
  end
end
if limited > 0 then return {0, retry, limited - 1} end
local remaining = -1
for i = 1, #KEYS do
  local rate = tonumber(ARGV[2 * i - 1])
  local burst = tonumber(ARGV[2 * i])
  local left = levels[i] - 1
  redis.call('HSET', KEYS[i], 't', tostring(left), 'u', tostring(now))
  redis.call('PEXPIRE', KEYS[i], math.ceil(burst / rate) + 1000)
  local whole = math.floor(math.max(0, left))
  if remaining < 0 or whole < remaining then remaining = whole end
end
return {1, remaining, 0}
";

/// Buckets in Redis.
pub struct RedisStore {
    link: crate::redis_link::RedisLink,
    script: redis::Script,
    prefix: String,
}

impl RedisStore {
    /// A store on the Redis at `url` (connected on first use, reconnected when lost);
    /// keys start with `prefix`; each call gives up after `timeout`.
    pub fn new(url: &str, prefix: &str, timeout: Duration) -> Result<RedisStore, String> {
        Ok(RedisStore {
            link: crate::redis_link::RedisLink::new(url, timeout)?,
            script: redis::Script::new(SCRIPT),
            prefix: prefix.to_string(),
        })
    }
}

#[async_trait]
impl BucketStore for RedisStore {
    async fn take(&self, keys: &[(String, Limit)]) -> Result<Take, StoreError> {
        let mut invocation = self.script.prepare_invoke();
        for (key, limit) in keys {
            invocation
                .key(format!("{}{key}", self.prefix))
                .arg(limit.per_ms())
                .arg(limit.burst);
        }
        let answer: Vec<i64> = self
            .link
            .invoke(&invocation, "the rate-limit script")
            .await
            .map_err(StoreError)?;
        match answer.as_slice() {
            [1, remaining, _] => Ok(Take::Allowed {
                remaining: (*remaining).max(0) as u64,
            }),
            [0, retry, index] => Ok(Take::Limited {
                index: (*index).max(0) as usize,
                retry_after_ms: (*retry).max(1) as u64,
            }),
            other => Err(StoreError(format!(
                "the rate-limit script answered {other:?}"
            ))),
        }
    }
}
