//! `loadgen URL CLIENTS SECONDS [handshake|stateless]`: calls `tools/call echo` from CLIENTS
//! concurrent clients for SECONDS (after a one-second warm-up) and prints one JSON line:
//! calls, errors, calls_per_second, p50_us, p99_us. URL may list several (comma separated,
//! replicas of one gateway): each client's requests take them in turn.

use std::time::Duration;

use mcpguard_bench::load::{Era, run};

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: loadgen URL CLIENTS SECONDS [handshake|stateless]");
        std::process::exit(2);
    }
    let clients: usize = args[2].parse().unwrap_or(1);
    let seconds: f64 = args[3].parse().unwrap_or(5.0);
    let era = match args.get(4).map(String::as_str) {
        Some("handshake") => Era::Handshake,
        _ => Era::Stateless,
    };
    match run(
        &args[1],
        era,
        clients,
        Duration::from_secs(1),
        Duration::from_secs_f64(seconds),
    )
    .await
    {
        Ok(report) => println!(
            "{{\"calls\":{},\"errors\":{},\"calls_per_second\":{:.0},\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
            report.calls,
            report.errors,
            report.rate(),
            report.p50_us,
            report.p99_us
        ),
        Err(e) => {
            eprintln!("loadgen: {e}");
            std::process::exit(1);
        }
    }
}
