//! `tools/call` of an echo tool over Streamable HTTP, directly against the fast echo
//! upstream and through an in-process gateway, one client at a time.
//!
//! Run: `cargo bench -p mcpguard-bench --bench proxy`.

#![allow(clippy::unwrap_used, clippy::expect_used, reason = "benchmark setup")]

use criterion::{Criterion, criterion_group, criterion_main};
use mcpguard_bench::load::{Client, Era};
use mcpguard_gateway::config::{Config, Transport, UpstreamConfig};

fn proxy(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (direct_url, gateway_url) = runtime.block_on(async {
        let echo = mcpguard_bench::echo::spawn(0).await.unwrap();
        let direct_url = format!("http://{echo}/mcp");
        let mut config = Config::default();
        config.upstreams.insert(
            "echo".into(),
            UpstreamConfig {
                transport: Transport::Http,
                url: Some(direct_url.clone()),
                prefix: Some(String::new()),
                ..UpstreamConfig::default()
            },
        );
        let gateway = mcpguard_gateway::Gateway::start(
            config,
            Vec::new(),
            mcpguard_gateway::gateway::Agents::Many,
            None,
        )
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let gateway_url = format!("http://{}/mcp", listener.local_addr().unwrap());
        tokio::spawn(mcpguard_gateway::server::http::serve(listener, gateway));
        (direct_url, gateway_url)
    });
    for era in [Era::Stateless, Era::Handshake] {
        let name = match era {
            Era::Stateless => "2026-07-28",
            Era::Handshake => "2025-11-25",
        };
        let mut group = c.benchmark_group(format!("tools_call_echo/{name}"));
        for (label, url) in [("direct", &direct_url), ("gateway", &gateway_url)] {
            let client = runtime.block_on(Client::connect(url, era)).unwrap();
            let mut id = 0u64;
            group.bench_function(label, |b| {
                b.iter(|| {
                    id += 1;
                    runtime.block_on(client.call(id)).unwrap();
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, proxy);
criterion_main!(benches);
