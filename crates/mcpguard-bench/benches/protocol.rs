//! The per-message work at the trust boundary: strict parsing (duplicate-key check plus
//! envelope), id remapping, and routing lookups.
//!
//! Run: `cargo bench -p mcpguard-bench --bench protocol`.

#![allow(clippy::unwrap_used, reason = "benchmark setup")]

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mcpguard_protocol::{Message, json, mcp};
use std::hint::black_box;

fn protocol(c: &mut Criterion) {
    let call = br#"{"jsonrpc":"2.0","id":42,"method":"tools/call","params":{"name":"fs__read_file","arguments":{"path":"/srv/data/report.txt","encoding":"utf-8","limit":4096},"_meta":{"progressToken":"p-42","io.modelcontextprotocol/protocolVersion":"2026-07-28","io.modelcontextprotocol/clientCapabilities":{"elicitation":{}}}}}"#.to_vec();
    let mut group = c.benchmark_group("message");
    group.throughput(Throughput::Bytes(call.len() as u64));
    group.bench_function("parse_tools_call", |b| {
        b.iter(|| Message::parse(black_box(call.clone())).unwrap())
    });
    let message = Message::parse(call.clone()).unwrap();
    group.bench_function("remap_id", |b| {
        b.iter(|| black_box(&message).with_id("1234567"))
    });
    group.bench_function("target_name", |b| {
        b.iter(|| mcp::target_name("tools/call", black_box(&message).params()).unwrap())
    });
    group.finish();

    let mut big = String::from(r#"{"jsonrpc":"2.0","id":1,"result":{"content":["#);
    for i in 0..1000 {
        if i > 0 {
            big.push(',');
        }
        big.push_str(&format!(
            r#"{{"type":"text","text":"line {i} of a long tool result with some words in it"}}"#
        ));
    }
    big.push_str("]}}");
    let mut group = c.benchmark_group("validate");
    group.throughput(Throughput::Bytes(big.len() as u64));
    group.bench_function("strict_json_65kb_result", |b| {
        b.iter(|| json::validate_strict(black_box(big.as_bytes())).unwrap())
    });
    group.finish();
}

criterion_group!(benches, protocol);
criterion_main!(benches);
