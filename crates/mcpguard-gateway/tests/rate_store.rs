//! One suite for every rate-limit store: the same behaviour in memory and in a real
//! Redis (127.0.0.1:6379, keys under a prefix of the test's own).

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::sync::Arc;
use std::time::Duration;

use mcpguard_gateway::ratelimit::bucket::{Limit, Take};
use mcpguard_gateway::ratelimit::store::{BucketStore, MemoryStore, RedisStore};

const ONE_PER_SECOND_BURST_2: Limit = Limit {
    rate: 1.0,
    burst: 2.0,
};

fn redis() -> Arc<dyn BucketStore> {
    let prefix = format!("mcpguard-test:{}:", uuid::Uuid::new_v4().simple());
    Arc::new(RedisStore::new("redis://127.0.0.1:6379", &prefix, Duration::from_secs(2)).unwrap())
}

fn memory() -> Arc<dyn BucketStore> {
    Arc::new(MemoryStore::new(1000))
}

macro_rules! store_suite {
    ($name:ident, $store:expr) => {
        mod $name {
            use super::*;

            #[tokio::test]
            async fn a_burst_is_allowed_then_calls_wait_for_the_rate() {
                let store = $store;
                let key = [("i:alice".to_string(), ONE_PER_SECOND_BURST_2)];
                assert_eq!(
                    store.take(&key).await.unwrap(),
                    Take::Allowed { remaining: 1 }
                );
                assert_eq!(
                    store.take(&key).await.unwrap(),
                    Take::Allowed { remaining: 0 }
                );
                let Take::Limited {
                    index,
                    retry_after_ms,
                } = store.take(&key).await.unwrap()
                else {
                    panic!("the third call in a burst of two was allowed");
                };
                assert_eq!(index, 0);
                assert!((1..=1000).contains(&retry_after_ms), "{retry_after_ms}");
                tokio::time::sleep(Duration::from_millis(retry_after_ms + 20)).await;
                assert!(matches!(
                    store.take(&key).await.unwrap(),
                    Take::Allowed { .. }
                ));
            }

            #[tokio::test]
            async fn a_refused_call_consumes_nothing_and_keys_are_independent() {
                let store = $store;
                let wide = Limit {
                    rate: 100.0,
                    burst: 3.0,
                };
                let narrow = Limit {
                    rate: 0.01,
                    burst: 1.0,
                };
                let both = [
                    ("g".to_string(), wide),
                    ("t:alice\u{1f}echo".to_string(), narrow),
                ];
                assert!(matches!(
                    store.take(&both).await.unwrap(),
                    Take::Allowed { .. }
                ));
                for _ in 0..5 {
                    assert!(matches!(
                        store.take(&both).await.unwrap(),
                        Take::Limited { index: 1, .. }
                    ));
                }
                // The global bucket paid for one call only (refills aside): at least one
                // of its three tokens is left after this one.
                let global = [("g".to_string(), wide)];
                assert!(matches!(
                    store.take(&global).await.unwrap(),
                    Take::Allowed { remaining: 1.. }
                ));
                // Another caller's bucket is full.
                let bob = [("t:bob\u{1f}echo".to_string(), narrow)];
                assert!(matches!(
                    store.take(&bob).await.unwrap(),
                    Take::Allowed { .. }
                ));
            }
        }
    };
}

store_suite!(memory_store, memory());
store_suite!(redis_store, redis());

#[tokio::test]
async fn a_redis_that_does_not_answer_is_an_error_not_an_allowance() {
    let store = RedisStore::new(
        "redis://127.0.0.1:1",
        "mcpguard-test:",
        Duration::from_millis(300),
    )
    .unwrap();
    let error = store
        .take(&[("g".to_string(), ONE_PER_SECOND_BURST_2)])
        .await
        .unwrap_err();
    assert!(error.to_string().contains("unavailable"), "{error}");
}

#[tokio::test]
async fn memory_is_bounded_by_forgetting_the_least_recently_used() {
    let store = MemoryStore::new(100);
    for caller in 0..1000 {
        let key = [(format!("i:{caller}"), ONE_PER_SECOND_BURST_2)];
        store.take(&key).await.unwrap();
    }
    assert_eq!(store.len(), 100);
}
