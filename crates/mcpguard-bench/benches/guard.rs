//! The guard's per-call work: detector scans of tool arguments (1, 4 and 64 KB, with and
//! without findings), detector throughput on plain text and on a mixed JSON corpus of
//! tool results, and policy evaluation with 10, 100 and 1000 rules.
//!
//! Run: `cargo bench -p mcpguard-bench --bench guard`.

#![allow(clippy::unwrap_used, reason = "benchmark setup")]

use std::collections::BTreeSet;
use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use mcpguard_bench::guard_inputs::{arguments, mixed_corpus, policy_of, read_file_call};
use mcpguard_detect::{Detector, DigestKey, Limits};
use mcpguard_policy::{Action, SessionFacts};

fn with_secret(size: usize) -> String {
    let mut v: serde_json::Value = serde_json::from_str(&arguments(size)).unwrap();
    let key = ["AKIA", "Q3ZRT7WX2YUV4ABC"].concat();
    v["content"] = format!("{} aws_access_key_id={key}", v["content"].as_str().unwrap()).into();
    v.to_string()
}

fn detect(c: &mut Criterion) {
    let detector = Detector::new(DigestKey::new([3; 32]), Limits::default()).unwrap();
    let mut group = c.benchmark_group("detect_arguments");
    for size in [1024, 4096, 65536] {
        let clean = arguments(size);
        let dirty = with_secret(size);
        group.throughput(Throughput::Bytes(clean.len() as u64));
        group.bench_with_input(BenchmarkId::new("clean", size), &clean, |b, json| {
            b.iter(|| detector.scan_json(black_box(json)).unwrap())
        });
        group.bench_with_input(BenchmarkId::new("one_secret", size), &dirty, |b, json| {
            b.iter(|| detector.scan_json(black_box(json)).unwrap())
        });
    }
    group.finish();

    let prose = {
        let mut v: serde_json::Value = serde_json::from_str(&arguments(1 << 20)).unwrap();
        v["content"].take().as_str().unwrap().to_string()
    };
    let mut group = c.benchmark_group("detect_text");
    group.throughput(Throughput::Bytes(prose.len() as u64));
    group.sample_size(20);
    group.bench_function("1mb_without_findings", |b| {
        b.iter(|| detector.scan_text(black_box(&prose)).unwrap())
    });
    group.finish();

    let corpus = mixed_corpus(1 << 20, 7);
    assert!(detector.scan_json(&corpus).unwrap().is_empty());
    let mut group = c.benchmark_group("detect_json");
    group.throughput(Throughput::Bytes(corpus.len() as u64));
    group.sample_size(20);
    group.bench_function("1mb_mixed_corpus_without_findings", |b| {
        b.iter(|| detector.scan_json(black_box(&corpus)).unwrap())
    });
    group.finish();
}

fn policy(c: &mut Criterion) {
    let mut group = c.benchmark_group("policy_evaluate");
    let labels: BTreeSet<String> = ["pii".to_string(), "pii.email".to_string()].into();
    let args = serde_json::json!({"path": "/srv/data/x.txt"});
    let session = SessionFacts::default();
    for n in [10, 100, 1000] {
        let policy = policy_of(n).unwrap();
        group.bench_with_input(BenchmarkId::from_parameter(n), &policy, |b, policy| {
            b.iter(|| {
                let decision =
                    policy.evaluate(black_box(&read_file_call(&args, &labels, &session)));
                assert_eq!(decision.action, Action::Allow);
                decision
            })
        });
    }
    group.finish();
}

criterion_group!(benches, detect, policy);
criterion_main!(benches);
