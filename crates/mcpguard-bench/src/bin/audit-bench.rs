//! Audit log costs: append throughput and per-append latency with group commit (both
//! durabilities, 1 to 64 concurrent writers), the digest of a call's arguments, opening a
//! big log, `audit-verify` of it, and export speed.
//!
//! Run: `cargo run --release -p mcpguard-bench --bin audit-bench [VERIFY_EVENTS]`
//! (default 1,000,000).

use std::sync::Arc;
use std::time::{Duration, Instant};

use mcpguard_audit::export::{Exporter, Format};
use mcpguard_audit::{
    AuditEvent, AuditWriter, DecisionRecord, Durability, Filter, FindingRecord, NoteSigner,
    Outcome, SqliteStore, WriterConfig, keys, verify,
};

fn event(i: u64) -> AuditEvent {
    AuditEvent {
        event_id: format!("01a20fbc-6e93-7343-a323-{i:012}"),
        time: "2026-11-24T22:45:37.041000Z".into(),
        time_unix_us: 1_795_560_337_041_000 + i as i64,
        session: Some("fceb2aa2".into()),
        client: Some("claude-code/2.1.0".into()),
        client_address: Some("127.0.0.1:51234".into()),
        era: "handshake".into(),
        upstream: Some("fs".into()),
        method: "tools/call".into(),
        tool: Some("fs__read_text_file".into()),
        request_id: Some(i.to_string()),
        outcome: Outcome::Allowed,
        decision: Some(DecisionRecord {
            action: "allow".into(),
            rule: Some("ALLOW-001".into()),
            owasp_asi: vec!["ASI02".into()],
            owasp_mcp: vec![],
            reason: "Read-only tools".into(),
            modifiers: vec!["audit:ASI10-001".into()],
        }),
        labels: vec!["secret".into(), "secret.aws_access_key".into()],
        result_findings: vec![FindingRecord {
            kind: "secret.aws_access_key".into(),
            detector: "aws_access_key".into(),
            location: "$.content[0].text".into(),
            encoding: None,
            digest: "hmac-sha256:eeb924d3bcd727faf789b6315d1cab41".into(),
        }],
        arguments_digest: Some(
            "sha256:e3e79939edf3be233b40ed3ecb7985068f981ae2e2117a9ca30b4e2c47c8d37e".into(),
        ),
        result_digest: Some(
            "sha256:ca579fd555da0ed49e5287f4df8eabcc73dce228b969ebc937890b4e886b741d".into(),
        ),
        latency_us: 1234,
        answered_by: Some("forward".into()),
        ..AuditEvent::default()
    }
}

/// One key for the whole run (a log opens only with the key that signed it).
fn signer() -> NoteSigner {
    static KEY: std::sync::OnceLock<ed25519_dalek::SigningKey> = std::sync::OnceLock::new();
    let key = KEY.get_or_init(keys::generate).clone();
    NoteSigner::new("bench/audit", key).unwrap_or_else(|e| panic_exit(&e))
}

fn panic_exit(e: &dyn std::fmt::Display) -> ! {
    eprintln!("audit-bench: {e}");
    std::process::exit(2)
}

fn pct(sorted: &[u64], q: f64) -> f64 {
    sorted[((sorted.len() as f64 * q) as usize).min(sorted.len() - 1)] as f64 / 1000.0
}

fn open(path: &std::path::Path, durability: Durability, batch: usize) -> AuditWriter {
    let store = SqliteStore::open(path, durability).unwrap_or_else(|e| panic_exit(&e));
    AuditWriter::start(
        Box::new(store),
        signer(),
        WriterConfig {
            max_batch: batch,
            checkpoint_interval: Duration::from_secs(3600),
            origin: "bench/audit".into(),
        },
    )
    .unwrap_or_else(|e| panic_exit(&e))
    .0
}

fn appends(durability: Durability, writers: usize, per_writer: u64) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic_exit(&e));
    let writer = Arc::new(open(&dir.path().join("audit.db"), durability, 1024));
    let started = Instant::now();
    let threads: Vec<_> = (0..writers)
        .map(|t| {
            let writer = writer.clone();
            std::thread::spawn(move || {
                let mut latencies = Vec::with_capacity(per_writer as usize);
                for i in 0..per_writer {
                    let at = Instant::now();
                    if writer
                        .append_blocking(event(t as u64 * per_writer + i))
                        .is_err()
                    {
                        break;
                    }
                    latencies.push(at.elapsed().as_nanos() as u64);
                }
                latencies
            })
        })
        .collect();
    let mut latencies: Vec<u64> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap_or_default())
        .collect();
    let elapsed = started.elapsed();
    let _ = writer.close_blocking();
    latencies.sort_unstable();
    println!(
        "| {:?} | {writers} | {} | {:.0} | {:.0} | {:.0} |",
        durability,
        latencies.len(),
        latencies.len() as f64 / elapsed.as_secs_f64(),
        pct(&latencies, 0.50),
        pct(&latencies, 0.99),
    );
}

fn main() {
    let big: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let record_len = mcpguard_audit::record::encode(1, &[0; 32], &event(1))
        .map(|(d, _)| d.len())
        .unwrap_or(0);
    println!("event record: {record_len} bytes\n");
    println!(
        "| durability | concurrent writers | events | events/s | append p50 µs | append p99 µs |"
    );
    println!("|---|---|---|---|---|---|");
    for durability in [Durability::Full, Durability::Process] {
        for (writers, per) in [(1, 2_000), (16, 2_000), (64, 1_000)] {
            appends(durability, writers, per);
        }
    }

    // A big log, written as fast as the writer goes (64 writers, process durability).
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic_exit(&e));
    let path = dir.path().join("big.db");
    let started = Instant::now();
    {
        let writer = Arc::new(open(&path, Durability::Process, 4096));
        let per = big / 64;
        let threads: Vec<_> = (0..64u64)
            .map(|t| {
                let writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..per {
                        let _ = writer.append_blocking(event(t * per + i));
                    }
                })
            })
            .collect();
        for t in threads {
            let _ = t.join();
        }
        let _ = writer.close_blocking();
    }
    let written = started.elapsed();
    let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
    println!(
        "\nbig log: {} events written in {:.1?} ({:.0} events/s), {:.0} MiB",
        big / 64 * 64,
        written,
        (big / 64 * 64) as f64 / written.as_secs_f64(),
        size as f64 / (1 << 20) as f64
    );
    let started = Instant::now();
    let writer = open(&path, Durability::Process, 4096);
    println!(
        "open (rebuild the Merkle frontier, check the checkpoint): {:.2?}",
        started.elapsed()
    );
    let _ = writer.close_blocking();
    let mut store = SqliteStore::open_read_only(&path).unwrap_or_else(|e| panic_exit(&e));
    let verifier = signer().verifier();
    let started = Instant::now();
    let report =
        verify::verify(&mut store, &verifier, &mut |_| {}).unwrap_or_else(|e| panic_exit(&e));
    println!(
        "audit-verify: {} records in {:.2?} (chain + tree recomputed, {} checkpoint(s) checked, {} problem(s))",
        report.events,
        started.elapsed(),
        report.checkpoints_verified,
        report.problems.len()
    );
    for (name, format) in [
        ("jsonl", Format::Jsonl),
        ("cef", Format::Cef),
        ("ocsf", Format::Ocsf),
        ("csv", Format::Csv),
    ] {
        let started = Instant::now();
        let mut exporter =
            Exporter::new(format, std::io::sink(), "bench").unwrap_or_else(|e| panic_exit(&e));
        let n = mcpguard_audit::query(&mut store, &Filter::default(), &mut |data, r| {
            exporter.write(data, r).is_ok()
        })
        .unwrap_or_else(|e| panic_exit(&e));
        let t = started.elapsed();
        println!(
            "export {name}: {n} events in {t:.2?} ({:.0} events/s)",
            n as f64 / t.as_secs_f64()
        );
    }
    let s = signer();
    let started = Instant::now();
    let cp = mcpguard_audit::Checkpoint {
        origin: "bench/audit".into(),
        size: 1,
        root: [7; 32],
    };
    for _ in 0..1000 {
        std::hint::black_box(s.sign(&cp));
    }
    println!(
        "signing a checkpoint (Ed25519): {:.1} µs",
        started.elapsed().as_secs_f64() * 1000.0
    );
    envelopes();
}

/// One execution envelope as the log phase makes it: canonicalise a request and a 4 KB
/// result, digest both, build the statement, sign it (DSSE) and package the bundle.
fn envelopes() {
    use mcpguard_envelope::canonical::{canonicalize, sha256_hex};
    use mcpguard_envelope::{Algorithm, Bundle, ExecutionPredicate, SigningKey, Statement};
    let text = "quarterly numbers: 42, revenue up. ".repeat(110);
    let result = format!(r#"{{"content":[{{"type":"text","text":"{text}"}}],"isError":false}}"#);
    let request = r#"{"method":"tools/call","params":{"name":"fs__read_text_file","arguments":{"path":"/srv/reports/q3.txt"}}}"#;
    println!(
        "\n| envelope key | result bytes | envelopes | µs per envelope (canonicalise + digest + sign + bundle) |"
    );
    println!("|---|---|---|---|");
    for algorithm in [Algorithm::Ed25519, Algorithm::EcdsaP256] {
        let key = SigningKey::generate(algorithm);
        let n = 2000;
        let started = Instant::now();
        for i in 0..n {
            let req = canonicalize(request).unwrap_or_default();
            let res = canonicalize(&result).unwrap_or_default();
            let statement = Statement::new(
                &sha256_hex(req.as_bytes()),
                &sha256_hex(res.as_bytes()),
                ExecutionPredicate {
                    envelope_id: format!("env-{i}"),
                    tool: "fs__read_text_file".into(),
                    ..ExecutionPredicate::default()
                },
            );
            let bundle = Bundle::sign(&statement, &key).and_then(|b| b.to_json());
            std::hint::black_box(bundle.ok());
        }
        println!(
            "| {} | {} | {n} | {:.1} |",
            algorithm.as_str(),
            result.len(),
            started.elapsed().as_secs_f64() * 1e6 / n as f64
        );
    }
}
