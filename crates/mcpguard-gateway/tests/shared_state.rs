//! The state replicas share, against the real Redis of the machine (127.0.0.1:6379, keys
//! under a prefix of the test's own): sessions, taint state, tool pins and flags.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::collections::BTreeSet;
use std::time::Duration;

use mcpguard_detect::{Provenance, SharedEntry};
use mcpguard_gateway::config::StateRedisConfig;
use mcpguard_gateway::shared::{SessionRecord, SharedState};

fn state() -> SharedState {
    state_at("redis://127.0.0.1:6379", 2000)
}

fn state_at(url: &str, timeout_ms: u64) -> SharedState {
    let config = StateRedisConfig {
        url: url.into(),
        key_prefix: format!("mcpguard-test:{}:", uuid::Uuid::new_v4().simple()),
        timeout_ms,
    };
    SharedState::new(&config, Duration::from_secs(60)).unwrap()
}

fn entry(mac_byte: u8) -> SharedEntry {
    SharedEntry {
        kind: "secret.aws_access_key".into(),
        label: "secret".into(),
        len: 20,
        rolling: u64::from(mac_byte) * 7919,
        mac: format!("{mac_byte:02x}").repeat(16),
        source: Provenance {
            tool: "read_file".into(),
            server: "fs".into(),
            call: "1".into(),
        },
    }
}

#[tokio::test]
async fn taint_sync_counts_calls_and_hands_each_entry_over_once() {
    let shared = state();
    let first = shared
        .sync_taint("session:x", Some("read_file"), "")
        .await
        .unwrap();
    assert_eq!(first.calls, 0, "the facts are those before this call");
    assert!(first.tools.is_empty());
    assert!(first.recent_calls >= 1);
    assert!(!first.untrusted);
    assert!(first.entries.is_empty());

    shared
        .record_taint("session:x", true, &[entry(1), entry(2)], 16)
        .await
        .unwrap();
    let second = shared
        .sync_taint("session:x", Some("http_post"), &first.cursor)
        .await
        .unwrap();
    assert_eq!(second.calls, 1);
    assert_eq!(second.tools, ["read_file"]);
    assert!(second.untrusted);
    assert_eq!(second.entries, [entry(1), entry(2)]);
    assert!(second.recent_calls >= 2);

    // From its cursor, nothing new; from the start, everything again.
    let third = shared
        .sync_taint("session:x", None, &second.cursor)
        .await
        .unwrap();
    assert!(third.entries.is_empty());
    assert_eq!(third.calls, 2);
    let fresh = shared.sync_taint("session:x", None, "").await.unwrap();
    assert_eq!(fresh.entries.len(), 2);

    // Recording a value again moves it to the newest place, once.
    shared
        .record_taint("session:x", false, &[entry(1), entry(1)], 16)
        .await
        .unwrap();
    let again = shared
        .sync_taint("session:x", None, &fresh.cursor)
        .await
        .unwrap();
    assert_eq!(again.entries, [entry(1)]);
    let all = shared.sync_taint("session:x", None, "").await.unwrap();
    assert_eq!(all.entries, [entry(2), entry(1)], "one place per value");

    // Another caller's state is its own.
    let other = shared.sync_taint("session:y", None, "").await.unwrap();
    assert_eq!((other.calls, other.untrusted), (0, false));
    assert!(other.entries.is_empty());

    // Ending the session forgets its taint.
    shared.end_session("x").await.unwrap();
    let after = shared.sync_taint("session:x", None, "").await.unwrap();
    assert_eq!(after.calls, 0);
    assert!(after.entries.is_empty());
}

#[tokio::test]
async fn the_ledger_keeps_only_the_newest_values_and_repeats_push_none_out() {
    let shared = state();
    let entries: Vec<SharedEntry> = (1..=10).map(entry).collect();
    shared
        .record_taint("session:z", false, &entries, 2)
        .await
        .unwrap();
    let sync = shared.sync_taint("session:z", None, "").await.unwrap();
    // Twice the capacity (each value may carry a separator-free twin).
    assert_eq!(sync.entries, entries[6..]);
    // One value read a thousand times does not push the others out.
    for _ in 0..5 {
        shared
            .record_taint("session:z", false, &vec![entry(10); 200], 2)
            .await
            .unwrap();
    }
    let sync = shared.sync_taint("session:z", None, "").await.unwrap();
    assert_eq!(sync.entries.len(), 4);
    assert!(sync.entries.contains(&entry(7)), "{:?}", sync.entries);
}

#[tokio::test]
async fn a_session_lookup_keeps_its_taint_state_alive() {
    let prefix = format!("mcpguard-test:{}:", uuid::Uuid::new_v4().simple());
    let shared = SharedState::new(
        &StateRedisConfig {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: prefix.clone(),
            timeout_ms: 2000,
        },
        Duration::from_secs(60),
    )
    .unwrap();
    let record = SessionRecord {
        protocol_version: "2025-11-25".into(),
        initialize_params: "{}".into(),
        owner: None,
    };
    shared.save_session("t", &record).await.unwrap();
    let caller = mcpguard_gateway::shared::session_caller("t");
    shared
        .record_taint(&caller, true, &[entry(3)], 16)
        .await
        .unwrap();
    // Let the taint keys be about to expire, as when a session only lists and pings...
    let client = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut redis = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}taint:*"))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(keys.len() >= 3, "{keys:?}");
    for key in &keys {
        let _: i64 = redis::cmd("PEXPIRE")
            .arg(key)
            .arg(1000)
            .query_async(&mut redis)
            .await
            .unwrap();
    }
    // ...then a lookup gives them the session's time to live again.
    assert!(shared.load_session("t").await.unwrap().is_some());
    for key in &keys {
        let left: i64 = redis::cmd("PTTL")
            .arg(key)
            .query_async(&mut redis)
            .await
            .unwrap();
        assert!(left > 30_000, "{key}: {left} ms left");
    }
    let sync = shared.sync_taint(&caller, None, "").await.unwrap();
    assert!(sync.untrusted);
    assert_eq!(sync.entries, [entry(3)]);
}

#[tokio::test]
async fn the_first_pin_wins_and_flags_accumulate_across_replicas() {
    let one = state();
    let v1 = [1u8; 32];
    let v2 = [2u8; 32];
    let pinned = one
        .pin_tools(&[("fs/read".into(), v1), ("fs/write".into(), v2)])
        .await
        .unwrap();
    assert_eq!(pinned, [v1, v2]);
    // A later definition does not move the pin: the caller sees the change.
    let pinned = one.pin_tools(&[("fs/read".into(), v2)]).await.unwrap();
    assert_eq!(pinned, [v1]);

    let rug: BTreeSet<String> = ["rug_pull".to_string()].into();
    let poison: BTreeSet<String> = ["tool_poisoning".to_string()].into();
    assert_eq!(one.flag_tool("fs__read", &rug).await.unwrap(), rug);
    let all = one.flag_tool("fs__read", &poison).await.unwrap();
    assert_eq!(all.len(), 2);
    let sync = one
        .sync_taint("session:p", Some("fs__read"), "")
        .await
        .unwrap();
    assert_eq!(sync.tool_flags.len(), 2, "a call sees the tool's flags");
}

#[tokio::test]
async fn a_dead_redis_is_an_error_not_an_answer() {
    let dead = state_at("redis://127.0.0.1:1", 300);
    assert!(dead.load_session("s").await.is_err());
    assert!(dead.sync_taint("session:s", None, "").await.is_err());
    assert!(dead.pin_tools(&[("a/b".into(), [0; 32])]).await.is_err());
}

#[tokio::test]
async fn a_retry_for_a_replica_that_is_gone_fails_at_once() {
    let shared = state();
    let retry = mcpguard_protocol::Message::request(
        "5",
        "tools/call",
        Some(r#"{"name":"ask","requestState":"mcpguard-parked.nobody.x"}"#),
    );
    let started = std::time::Instant::now();
    let answer = shared.resume_elsewhere("nobody", &retry).await;
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(answer.id(), Some("5"));
    let error = answer.error().unwrap();
    assert!(error.contains("invalid_request_state"), "{error}");
    assert!(error.contains("gone"), "{error}");
}
