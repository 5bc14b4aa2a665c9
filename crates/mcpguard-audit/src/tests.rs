//! The store conformance suite (every backend passes the same tests) and tamper tests.

use std::path::Path;
use std::sync::Arc;

use ed25519_dalek::SigningKey;

use crate::event::{AuditEvent, DecisionRecord, Outcome};
use crate::proof;
use crate::record::Record;
use crate::sqlite::{Durability, SqliteStore};
use crate::store::{AuditStore, Filter};
use crate::verify::{Problem, verify};
use crate::writer::{AuditWriter, WriterConfig};
use crate::{NoteSigner, NoteVerifier};

fn signer() -> NoteSigner {
    NoteSigner::new("mcpguard.test/audit", SigningKey::from_bytes(&[9; 32])).unwrap()
}

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        event_id: format!("ev-{i}"),
        time_unix_us: 1_795_000_000_000_000 + i as i64,
        time: crate::event::format_time(1_795_000_000_000_000 + i as i64),
        method: "tools/call".into(),
        tool: Some(
            if i.is_multiple_of(2) {
                "read_file"
            } else {
                "fetch"
            }
            .into(),
        ),
        upstream: Some("fs".into()),
        session: Some(format!("s{}", i % 3)),
        outcome: if i.is_multiple_of(5) {
            Outcome::Denied
        } else {
            Outcome::Allowed
        },
        decision: Some(DecisionRecord {
            action: if i.is_multiple_of(5) { "deny" } else { "allow" }.into(),
            rule: i.is_multiple_of(5).then(|| "ASI02-001".to_string()),
            owasp_asi: if i.is_multiple_of(5) {
                vec!["ASI02".into()]
            } else {
                vec![]
            },
            reason: "test".into(),
            ..DecisionRecord::default()
        }),
        labels: if i.is_multiple_of(7) {
            vec!["aws_access_key".into()]
        } else {
            vec![]
        },
        era: "handshake".into(),
        ..AuditEvent::default()
    }
}

fn config() -> WriterConfig {
    WriterConfig {
        max_batch: 64,
        checkpoint_interval: std::time::Duration::from_secs(3600),
        origin: "mcpguard.test/audit".into(),
    }
}

/// Writes `n` events through a writer from 4 threads and closes it (final checkpoint).
fn fill(store: Box<dyn AuditStore>, n: u64) -> Vec<u64> {
    let (writer, state) = AuditWriter::start(store, signer(), config()).unwrap();
    let base = state.size;
    let writer = Arc::new(writer);
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let w = writer.clone();
            std::thread::spawn(move || {
                (0..n)
                    .filter(|i| i % 4 == t)
                    .map(|i| w.append_blocking(event(base + i)).unwrap())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    writer.close_blocking().unwrap();
    seqs.sort_unstable();
    seqs
}

/// What every backend must do.
fn conformance(open: &dyn Fn() -> Box<dyn AuditStore>) {
    let seqs = fill(open(), 300);
    assert_eq!(
        seqs,
        (1..=300).collect::<Vec<_>>(),
        "every append got its own seq"
    );
    let mut store = open();
    assert_eq!(store.head().unwrap().size, 300);
    let report = verify(store.as_mut(), &signer().verifier(), &mut |_| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.events, 300);
    assert_eq!(report.checkpoints_verified, 1);
    assert_eq!(report.newest_checkpoint.as_ref().unwrap().root, report.root);

    // Reopening continues the chain and the tree; the new checkpoint is consistent with
    // the old one.
    let seqs = fill(open(), 45);
    assert_eq!(seqs, (301..=345).collect::<Vec<_>>());
    let mut store = open();
    let report = verify(store.as_mut(), &signer().verifier(), &mut |_| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.checkpoints_verified, 2);
    let old_note = store.checkpoints().unwrap()[0].note.clone();
    let p = proof::consistency(store.as_mut(), 300).unwrap();
    let cp = proof::check(&p, &signer().verifier(), Some(&old_note)).unwrap();
    assert_eq!(cp.size, 345);
    let p = proof::inclusion(store.as_mut(), 17).unwrap();
    proof::check(&p, &signer().verifier(), None).unwrap();
    let other = NoteSigner::new("mcpguard.test/audit", SigningKey::from_bytes(&[1; 32])).unwrap();
    assert!(
        proof::check(&p, &other.verifier(), None).is_err(),
        "another key"
    );
    let report = verify(store.as_mut(), &other.verifier(), &mut |_| {}).unwrap();
    assert!(
        report
            .problems
            .iter()
            .all(|p| matches!(p, Problem::BadCheckpoint { .. }))
            && report.problems.len() == 2,
        "{:?}",
        report.problems
    );

    // Queries filter by the same rules on every backend. Threads interleave, so which
    // seq holds which event varies: compare with a full scan filtered by hand.
    let mut all: Vec<Record> = Vec::new();
    crate::query(store.as_mut(), &Filter::default(), &mut |_, r: &Record| {
        all.push(Record {
            schema: r.schema,
            seq: r.seq,
            prev: r.prev.clone(),
            event: r.event.clone(),
        });
        true
    })
    .unwrap();
    assert_eq!(all.len(), 345);
    let mut denied = Vec::new();
    let filter = Filter {
        action: Some("denied".into()),
        tool: Some("read_file".into()),
        ..Filter::default()
    };
    crate::query(store.as_mut(), &filter, &mut |_, r: &Record| {
        denied.push(r.seq);
        true
    })
    .unwrap();
    let expected: Vec<u64> = all
        .iter()
        .filter(|r| {
            r.event.outcome == Outcome::Denied && r.event.tool.as_deref() == Some("read_file")
        })
        .map(|r| r.seq)
        .collect();
    assert_eq!(denied.len(), 35, "events 0, 10, 20, ... 340");
    assert_eq!(denied, expected);
    let mut newest = Vec::new();
    let filter = Filter {
        owasp_asi: Some("asi02".into()),
        newest_first: true,
        limit: Some(3),
        ..Filter::default()
    };
    crate::query(store.as_mut(), &filter, &mut |_, r: &Record| {
        newest.push(r.seq);
        true
    })
    .unwrap();
    let mut expected: Vec<u64> = all
        .iter()
        .filter(|r| r.event.outcome == Outcome::Denied)
        .map(|r| r.seq)
        .collect();
    expected.reverse();
    expected.truncate(3);
    assert_eq!(newest, expected);

    // Traces are stored beside their event, in the same transaction.
    let trace = |id: &str, payloads| crate::Trace {
        id: id.into(),
        seq: 0,
        time_unix_us: 5,
        tool: Some("read_file".into()),
        upstream: Some("fs".into()),
        bundle: "{}".into(),
        payloads,
    };
    let appended = store
        .append(&[
            crate::Entry {
                event: event(1000),
                trace: Some(trace(
                    "env-a",
                    crate::Payloads::Plain {
                        request: b"{}".to_vec(),
                        result: b"[]".to_vec(),
                    },
                )),
            },
            crate::Entry {
                event: event(1001),
                trace: None,
            },
            crate::Entry {
                event: event(1002),
                trace: Some(trace("env-b", crate::Payloads::Dropped)),
            },
        ])
        .unwrap();
    assert_eq!(
        appended.iter().map(|a| a.seq).collect::<Vec<_>>(),
        vec![346, 347, 348]
    );
    let a = store.trace("env-a").unwrap().unwrap();
    assert_eq!(a.seq, 346);
    assert_eq!(
        a.payloads,
        crate::Payloads::Plain {
            request: b"{}".to_vec(),
            result: b"[]".to_vec()
        }
    );
    assert_eq!(
        store.trace("env-b").unwrap().unwrap().payloads,
        crate::Payloads::Dropped
    );
    assert!(store.trace("nope").unwrap().is_none());
    let listed: Vec<String> = store
        .traces(Some("read_file"), 10)
        .unwrap()
        .into_iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(listed, vec!["env-b", "env-a"]);
    assert!(store.traces(Some("other"), 10).unwrap().is_empty());
    // A trace id is used once: a second append with it fails as a whole.
    let before = store.head().unwrap();
    assert!(
        store
            .append(&[crate::Entry {
                event: event(1003),
                trace: Some(trace("env-a", crate::Payloads::Dropped))
            }])
            .is_err()
    );
    assert_eq!(
        store.head().unwrap(),
        before,
        "nothing of the failed batch was kept"
    );

    // Any text an agent can send is stored (NUL too), and found by the filters, which
    // read the hash-covered record.
    let mut odd = event(2000);
    odd.tool = Some("nul\u{0}tool".into());
    let appended = store
        .append(&[crate::Entry {
            event: odd,
            trace: None,
        }])
        .unwrap();
    let mut found = Vec::new();
    let filter = Filter {
        tool: Some("nul\u{0}tool".into()),
        ..Filter::default()
    };
    crate::query(store.as_mut(), &filter, &mut |_, r: &Record| {
        found.push(r.seq);
        true
    })
    .unwrap();
    assert_eq!(found, vec![appended[0].seq]);
}

#[test]
fn sqlite_passes_the_store_conformance_suite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    conformance(&|| Box::new(SqliteStore::open(&path, Durability::Full).unwrap()));
}

fn sql(path: &Path, statements: &str) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(statements).unwrap();
}

fn tampered(statements: &str) -> Vec<Problem> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    fill(
        Box::new(SqliteStore::open(&path, Durability::Process).unwrap()),
        50,
    );
    sql(
        &path,
        &format!(
            "DROP TRIGGER audit_events_no_update; DROP TRIGGER audit_events_no_delete; DROP TRIGGER audit_checkpoints_no_delete; {statements}"
        ),
    );
    let mut store = SqliteStore::open_read_only(&path).unwrap();
    verify(&mut store, &signer().verifier(), &mut |_| {})
        .unwrap()
        .problems
}

#[test]
fn the_store_refuses_update_and_delete() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    fill(
        Box::new(SqliteStore::open(&path, Durability::Process).unwrap()),
        3,
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    for statement in [
        "UPDATE audit_events SET data = 'x' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 3",
        "DELETE FROM audit_checkpoints",
    ] {
        let err = conn.execute(statement, []).unwrap_err();
        assert!(
            err.to_string().contains("append-only"),
            "{statement}: {err}"
        );
    }
}

#[test]
fn verify_names_the_record_that_was_edited_deleted_reordered_or_truncated() {
    let edited = tampered(
        "UPDATE audit_events SET data = replace(data, '\"reason\":\"test\"', '\"reason\":\"tset\"') WHERE seq = 12",
    );
    assert_eq!(edited[0].kind(), "edited", "{edited:?}");
    assert_eq!(edited[0].seq(), Some(12));

    // Edited with the stored hash recomputed: caught by the next record's link.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    fill(
        Box::new(SqliteStore::open(&path, Durability::Process).unwrap()),
        20,
    );
    let conn = rusqlite::Connection::open(&path).unwrap();
    let data: String = conn
        .query_row("SELECT data FROM audit_events WHERE seq = 5", [], |r| {
            r.get(0)
        })
        .unwrap();
    let forged = data.replace("\"reason\":\"test\"", "\"reason\":\"nothing to see\"");
    assert_ne!(forged, data);
    conn.execute_batch("DROP TRIGGER audit_events_no_update")
        .unwrap();
    conn.execute(
        "UPDATE audit_events SET data = ?1, hash = ?2 WHERE seq = 5",
        rusqlite::params![forged, &crate::merkle::leaf_hash(forged.as_bytes())[..]],
    )
    .unwrap();
    let mut store = SqliteStore::open_read_only(&path).unwrap();
    let problems = verify(&mut store, &signer().verifier(), &mut |_| {})
        .unwrap()
        .problems;
    assert_eq!(
        (problems[0].kind(), problems[0].seq()),
        ("edited", Some(5)),
        "{problems:?}"
    );

    let deleted = tampered("DELETE FROM audit_events WHERE seq IN (20, 21)");
    assert_eq!(
        deleted[0],
        Problem::Deleted {
            first_missing: 20,
            next_present: 22
        }
    );
    assert_eq!(deleted[0].to_string(), "records 20..21 were deleted");

    let reordered = tampered(
        "UPDATE audit_events SET seq = -1 WHERE seq = 30; UPDATE audit_events SET seq = 30 WHERE seq = 31; UPDATE audit_events SET seq = 31 WHERE seq = -1;",
    );
    assert_eq!(reordered[0], Problem::Reordered { seq: 30, holds: 31 });

    let truncated = tampered("DELETE FROM audit_events WHERE seq > 45");
    assert_eq!(
        truncated[0],
        Problem::Truncated {
            log_size: 45,
            checkpoint_size: 50
        }
    );
    assert_eq!(truncated[0].seq(), Some(46));
}

#[test]
fn the_writer_refuses_a_log_that_does_not_match_its_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    fill(
        Box::new(SqliteStore::open(&path, Durability::Process).unwrap()),
        10,
    );
    sql(
        &path,
        "DROP TRIGGER audit_events_no_delete; DELETE FROM audit_events WHERE seq > 8",
    );
    let err = AuditWriter::start(
        Box::new(SqliteStore::open(&path, Durability::Process).unwrap()),
        signer(),
        config(),
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        err.contains("truncated") && err.contains("audit-verify"),
        "{err}"
    );
}

#[test]
fn a_file_that_is_not_a_database_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    std::fs::write(&path, vec![0x5a; 8192]).unwrap();
    let err = SqliteStore::open(&path, Durability::Full)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("not a database") && err.contains("move it aside"),
        "{err}"
    );
    let err = SqliteStore::open_read_only(&dir.path().join("missing.db"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("no such file"), "{err}");
}

#[test]
fn a_failing_store_fails_every_append_of_the_batch_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = SqliteStore::open(&path, Durability::Process).unwrap();
    let (writer, _) = AuditWriter::start(Box::new(store), signer(), config()).unwrap();
    assert_eq!(writer.append_blocking(event(0)).unwrap(), 1);
    // Another connection holds the write lock: SQLite answers BUSY after its timeout.
    let blocker = rusqlite::Connection::open(&path).unwrap();
    blocker
        .execute_batch("PRAGMA busy_timeout=0; BEGIN IMMEDIATE;")
        .unwrap();
    let conn_timeout = std::time::Instant::now();
    let err = writer.append_blocking(event(1)).unwrap_err().to_string();
    assert!(
        conn_timeout.elapsed() >= std::time::Duration::from_secs(4),
        "waited for the lock"
    );
    assert!(err.contains("locked") || err.contains("busy"), "{err}");
    assert!(!writer.healthy());
    assert!(writer.last_error().is_some());
    blocker.execute_batch("ROLLBACK").unwrap();
    assert_eq!(
        writer.append_blocking(event(2)).unwrap(),
        2,
        "no gap after a failure"
    );
    assert!(writer.healthy());
    writer.close_blocking().unwrap();
    let mut store = SqliteStore::open_read_only(&path).unwrap();
    assert!(
        verify(
            &mut store,
            &NoteVerifier::parse(&signer().verifier().encode()).unwrap(),
            &mut |_| {}
        )
        .unwrap()
        .problems
        .is_empty()
    );
}

/// The PostgreSQL server of the test machine (`.ci/run` starts it when it is down).
fn pg_url() -> String {
    std::env::var("MCPGUARD_TEST_POSTGRES")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// A fresh schema, dropped when the guard goes.
struct PgSchema(String);

impl PgSchema {
    fn new() -> PgSchema {
        PgSchema(format!("audit_test_{:016x}", rand::random::<u64>()))
    }
    fn open(&self) -> crate::PostgresStore {
        crate::PostgresStore::open(&pg_url(), &self.0).unwrap()
    }
    fn sql(&self, statements: &str) -> Result<(), postgres::Error> {
        let mut client = postgres::Client::connect(&pg_url(), postgres::NoTls).unwrap();
        client.batch_execute(&format!("SET search_path TO {}; {statements}", self.0))
    }
}

impl Drop for PgSchema {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&pg_url(), postgres::NoTls) {
            let _ = client.batch_execute(&format!("DROP SCHEMA IF EXISTS {} CASCADE", self.0));
        }
    }
}

#[test]
fn postgres_passes_the_store_conformance_suite() {
    let schema = PgSchema::new();
    conformance(&|| Box::new(schema.open()));
}

#[test]
fn postgres_refuses_edits_and_verify_names_a_forced_one() {
    let schema = PgSchema::new();
    fill(Box::new(schema.open()), 20);
    for statement in [
        "UPDATE audit_events SET data = 'x' WHERE seq = 2",
        "DELETE FROM audit_events WHERE seq = 3",
        "TRUNCATE audit_events",
        "DELETE FROM audit_checkpoints",
    ] {
        let err = schema.sql(statement).unwrap_err();
        let db = err
            .as_db_error()
            .map(|d| d.message().to_string())
            .unwrap_or_default();
        assert!(db.contains("append-only"), "{statement}: {err}");
    }
    schema
        .sql("ALTER TABLE audit_events DISABLE TRIGGER USER; UPDATE audit_events SET data = replace(data, '\"reason\":\"test\"', '\"reason\":\"tset\"') WHERE seq = 9")
        .unwrap();
    let problems = verify(&mut schema.open(), &signer().verifier(), &mut |_| {})
        .unwrap()
        .problems;
    assert_eq!(
        (problems[0].kind(), problems[0].seq()),
        ("edited", Some(9)),
        "{problems:?}"
    );
}

/// Two writers (replicas, or a gateway and a `replay`) appending to one log at once.
fn two_writers(open: &dyn Fn() -> Box<dyn AuditStore>) {
    let start = || Arc::new(AuditWriter::start(open(), signer(), config()).unwrap().0);
    let replicas = [start(), start()];
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let w = replicas[(t % 2) as usize].clone();
            std::thread::spawn(move || {
                (0..100)
                    .map(|i| w.append_blocking(event(t * 1000 + i)).unwrap())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    for r in &replicas {
        r.close_blocking().unwrap();
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=800).collect::<Vec<_>>(), "no gap, no duplicate");
    let mut store = open();
    let report = verify(store.as_mut(), &signer().verifier(), &mut |_| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
    assert_eq!(report.events, 800);
    // Both writers signed the same tree: the final checkpoints agree on the root.
    assert_eq!(report.newest_checkpoint.unwrap().size, 800);
    assert!(report.checkpoints_verified >= 1);
}

#[test]
fn two_replicas_writing_at_once_make_one_chain_without_gaps_or_forks() {
    let schema = PgSchema::new();
    two_writers(&|| Box::new(schema.open()));
}

#[test]
fn two_writers_on_one_sqlite_file_make_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    two_writers(&|| Box::new(SqliteStore::open(&path, Durability::Process).unwrap()));
}

#[test]
fn a_writer_refuses_to_sign_records_that_do_not_chain_onto_its_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = SqliteStore::open(&path, Durability::Process).unwrap();
    let (writer, _) = AuditWriter::start(Box::new(store), signer(), config()).unwrap();
    writer.append_blocking(event(1)).unwrap();
    // Someone with the file appends a record that does not link to record 1.
    let forged = format!(
        "{{\"schema\":1,\"seq\":2,\"prev\":\"{}\",\"event\":{{}}}}",
        "00".repeat(32)
    );
    sql(
        &path,
        &format!(
            "INSERT INTO audit_events(seq, hash, data, time_us, outcome) VALUES (2, x'{}', '{}', 0, 'allowed')",
            hex::encode(crate::merkle::leaf_hash(forged.as_bytes())),
            forged
        ),
    );
    // The next commit lands after it (its caller's event is stored), finds the foreign
    // record, and from then on the writer refuses to go on.
    assert_eq!(writer.append_blocking(event(3)).unwrap(), 3);
    assert!(!writer.healthy());
    assert!(writer.last_error().unwrap().contains("does not chain"));
    let err = writer.append_blocking(event(4)).unwrap_err().to_string();
    assert!(err.contains("does not chain"), "{err}");
    assert!(
        writer.checkpoint_blocking().is_err(),
        "never signs the forged record"
    );
}

#[test]
fn many_callers_with_small_batches_all_get_their_event_committed() {
    // Small batches make leaders hand queued events to the background thread often: no
    // caller may be left waiting, and the log stays one gapless chain.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    let store = SqliteStore::open(&path, Durability::Process).unwrap();
    let config = WriterConfig {
        max_batch: 3,
        ..config()
    };
    let writer = Arc::new(
        AuditWriter::start(Box::new(store), signer(), config)
            .unwrap()
            .0,
    );
    let threads: Vec<_> = (0..16u64)
        .map(|t| {
            let w = writer.clone();
            std::thread::spawn(move || {
                (0..200)
                    .map(|i| w.append_blocking(event(t * 1000 + i)).unwrap())
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut seqs: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=3200).collect::<Vec<_>>());
    assert_eq!(writer.close_blocking().unwrap(), 3200);
    assert!(writer.append_blocking(event(0)).is_err(), "closed");
    let mut store = SqliteStore::open_read_only(&path).unwrap();
    let report = verify(&mut store, &signer().verifier(), &mut |_| {}).unwrap();
    assert!(report.problems.is_empty(), "{:?}", report.problems);
}

#[test]
fn an_edited_side_column_cannot_hide_a_record_from_a_query() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("audit.db");
    fill(
        Box::new(SqliteStore::open(&path, Durability::Process).unwrap()),
        10,
    );
    sql(
        &path,
        "DROP TRIGGER audit_events_no_update; UPDATE audit_events SET tool = 'innocent', time_us = 0, outcome = 'allowed', rule = NULL",
    );
    let mut store = SqliteStore::open_read_only(&path).unwrap();
    let filter = Filter {
        tool: Some("read_file".into()),
        since_us: Some(1_795_000_000_000_000),
        ..Filter::default()
    };
    let found = crate::query(&mut store, &filter, &mut |_, _: &Record| true).unwrap();
    assert_eq!(found, 5, "events 0, 2, 4, 6, 8 are read_file calls");
}
