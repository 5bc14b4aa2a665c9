//! The state replicas share, against the real Redis of the machine (127.0.0.1:6379, keys
//! under a prefix of the test's own): sessions, taint state, tool pins and flags.

#![allow(clippy::unwrap_used, clippy::panic, reason = "tests")]

use std::collections::BTreeSet;
use std::time::Duration;

use mcpguard_detect::{Label, Provenance, SharedEntry};
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
        label: Label::Secret,
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

const MINUTE: u64 = 60_000;

#[tokio::test]
async fn a_session_saved_by_one_replica_is_found_by_another_until_it_ends() {
    let one = state();
    let record = SessionRecord {
        protocol_version: "2025-11-25".into(),
        initialize_params: r#"{"capabilities":{}}"#.into(),
        owner: Some("alice".into()),
    };
    one.save_session("s1", &record).await.unwrap();
    assert_eq!(one.load_session("s1").await.unwrap(), Some(record));
    assert_eq!(one.load_session("s2").await.unwrap(), None);
    assert!(one.end_session("s1").await.unwrap());
    assert_eq!(one.load_session("s1").await.unwrap(), None);
    assert!(!one.end_session("s1").await.unwrap());
}

#[tokio::test]
async fn taint_sync_counts_calls_and_hands_each_entry_over_once() {
    let shared = state();
    let now = 100 * MINUTE + 30_000;
    let first = shared
        .sync_taint("session:x", Some("read_file"), "", now)
        .await
        .unwrap();
    assert_eq!(first.calls, 0, "the facts are those before this call");
    assert!(first.tools.is_empty());
    assert_eq!(first.recent_calls, 1);
    assert!(!first.untrusted);
    assert!(first.entries.is_empty());

    shared
        .record_taint("session:x", true, &[entry(1), entry(2)], 16)
        .await
        .unwrap();
    let second = shared
        .sync_taint("session:x", Some("http_post"), &first.cursor, now + 1000)
        .await
        .unwrap();
    assert_eq!(second.calls, 1);
    assert_eq!(second.tools, ["read_file"]);
    assert!(second.untrusted);
    assert_eq!(second.entries, [entry(1), entry(2)]);
    assert_eq!(second.recent_calls, 2);

    // From its cursor, nothing new; from the start, everything again.
    let third = shared
        .sync_taint("session:x", None, &second.cursor, now + 2000)
        .await
        .unwrap();
    assert!(third.entries.is_empty());
    assert_eq!(third.calls, 2);
    let fresh = shared
        .sync_taint("session:x", None, "", now + 3000)
        .await
        .unwrap();
    assert_eq!(fresh.entries.len(), 2);

    // Another caller's state is its own.
    let other = shared.sync_taint("session:y", None, "", now).await.unwrap();
    assert_eq!((other.calls, other.untrusted), (0, false));
    assert!(other.entries.is_empty());

    // Half a minute into the next minute, last minute's calls count half.
    let later = shared
        .sync_taint("session:x", None, &fresh.cursor, now + MINUTE)
        .await
        .unwrap();
    assert_eq!(later.recent_calls, 1 + 4 / 2);

    // Ending the session forgets its taint.
    shared.end_session("x").await.unwrap();
    let after = shared.sync_taint("session:x", None, "", now).await.unwrap();
    assert_eq!(after.calls, 0);
    assert!(after.entries.is_empty());
}

#[tokio::test]
async fn the_ledger_keeps_only_the_newest_entries() {
    let shared = state();
    let entries: Vec<SharedEntry> = (1..=10).map(entry).collect();
    shared
        .record_taint("session:z", false, &entries, 2)
        .await
        .unwrap();
    let sync = shared.sync_taint("session:z", None, "", 0).await.unwrap();
    // Twice the capacity (each value may carry a separator-free twin).
    assert_eq!(sync.entries, entries[6..]);
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
        .sync_taint("session:p", Some("fs__read"), "", 0)
        .await
        .unwrap();
    assert_eq!(sync.tool_flags.len(), 2, "a call sees the tool's flags");
}

#[tokio::test]
async fn a_dead_redis_is_an_error_not_an_answer() {
    let dead = state_at("redis://127.0.0.1:1", 300);
    assert!(dead.load_session("s").await.is_err());
    assert!(dead.sync_taint("session:s", None, "", 0).await.is_err());
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
