//! Per-call latency of the guard's argument scan, as percentiles: scans realistic tool
//! arguments of 1, 4 and 64 KB many times and prints p50/p99/p99.9 per size, plus policy
//! evaluation at 10/100/1000 rules. Criterion gives means; the target is on p99.
//!
//! Run: `cargo run --release -p mcpguard-bench --bin scan-latency [ITERATIONS] [SIZES]`,
//! where SIZES is a comma-separated list of argument sizes in bytes (default
//! `1024,4096,65536`); with SIZES given, the policy part is skipped (for profiling one
//! size alone).

use std::collections::BTreeSet;
use std::time::Instant;

use mcpguard_bench::guard_inputs::{arguments, mixed_corpus, policy_of, read_file_call};
use mcpguard_detect::{Detector, DigestKey, Limits};
use mcpguard_policy::{Action, SessionFacts};

fn percentiles(mut samples: Vec<u64>) -> (f64, f64, f64) {
    samples.sort_unstable();
    let at = |q: f64| {
        samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)] as f64 / 1000.0
    };
    (at(0.50), at(0.99), at(0.999))
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let iterations: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let sizes: Option<Vec<usize>> = std::env::args()
        .nth(2)
        .map(|list| list.split(',').map(str::parse).collect())
        .transpose()?;
    let detector = Detector::new(DigestKey::new([3; 32]), Limits::default())?;
    println!("| argument size | scans | p50 µs | p99 µs | p99.9 µs | MB/s at p50 |");
    println!("|---|---|---|---|---|---|");
    for &size in sizes.as_deref().unwrap_or(&[1024, 4096, 65536]) {
        let json = arguments(size);
        let n = if size > 10_000 {
            iterations / 10
        } else {
            iterations
        };
        for _ in 0..n / 10 {
            detector.scan_json(&json)?;
        }
        let mut samples = Vec::with_capacity(n);
        for _ in 0..n {
            let start = Instant::now();
            let findings = detector.scan_json(&json)?;
            samples.push(start.elapsed().as_nanos() as u64);
            assert!(findings.is_empty());
        }
        let (p50, p99, p999) = percentiles(samples);
        println!(
            "| {} B | {n} | {p50:.1} | {p99:.1} | {p999:.1} | {:.0} |",
            json.len(),
            json.len() as f64 / p50
        );
    }
    let corpus = mixed_corpus(1 << 20, 7);
    let findings = detector.scan_json(&corpus)?;
    if !findings.is_empty() {
        let types: Vec<&str> = findings.iter().map(|f| f.kind).collect();
        return Err(format!("the mixed corpus should hold no findings, found {types:?}").into());
    }
    let rounds = (iterations / 1000).max(5);
    let mut samples = Vec::with_capacity(rounds);
    for _ in 0..rounds {
        let start = Instant::now();
        detector.scan_json(&corpus)?;
        samples.push(start.elapsed().as_nanos() as u64);
    }
    let (p50, _, _) = percentiles(samples);
    println!();
    println!("| mixed JSON corpus without findings | scans | p50 ms | MB/s at p50 |");
    println!("|---|---|---|---|");
    println!(
        "| {} B | {rounds} | {:.2} | {:.0} |",
        corpus.len(),
        p50 / 1000.0,
        corpus.len() as f64 / p50
    );
    if sizes.is_some() {
        return Ok(());
    }
    println!();
    println!("| rules | evaluations | p50 µs | p99 µs |");
    println!("|---|---|---|---|");
    let labels: BTreeSet<String> = ["pii".to_string(), "pii.email".to_string()].into();
    let args = serde_json::json!({"path": "/srv/data/x.txt"});
    let session = SessionFacts::default();
    for n in [10, 100, 1000] {
        let policy = policy_of(n).map_err(|e| format!("{e:?}"))?;
        let count = iterations * 5;
        let mut samples = Vec::with_capacity(count);
        for _ in 0..count {
            let start = Instant::now();
            let decision = policy.evaluate(&read_file_call(&args, &labels, &session));
            samples.push(start.elapsed().as_nanos() as u64);
            assert_eq!(decision.action, Action::Allow);
        }
        let (p50, p99, _) = percentiles(samples);
        println!("| {n} | {count} | {p50:.2} | {p99:.2} |");
    }
    Ok(())
}
