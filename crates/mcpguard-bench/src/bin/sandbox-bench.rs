//! `sandbox-bench HELPER [RUNS]`: cold start and run of a trivial program (`/bin/true`) in
//! the native sandbox, RUNS times (default 200) after 10 warm-up runs, against spawning the
//! same program directly. HELPER is the `mcpguard` binary (started as
//! `mcpguard __sandbox-helper`). Prints a markdown table of p50/p90/p99/mean in ms.

use std::time::{Duration, Instant};

use mcpguard_sandbox::native::{HELPER_ARG, HelperCommand, NativeOptions, NativeSandbox};
use mcpguard_sandbox::{Availability, Sandbox, Spec};

fn summary(mut samples: Vec<Duration>) -> [f64; 4] {
    samples.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    let at = |q: f64| ms(samples[((samples.len() - 1) as f64 * q).round() as usize]);
    let mean = samples.iter().map(|d| ms(*d)).sum::<f64>() / samples.len() as f64;
    [at(0.5), at(0.9), at(0.99), mean]
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let helper = args.next().ok_or("usage: sandbox-bench HELPER [RUNS]")?;
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(200);
    let sandbox = NativeSandbox::new(NativeOptions::new(HelperCommand {
        program: helper.into(),
        args: vec![HELPER_ARG.into()],
    }));
    if let Availability::Unavailable { reason } = sandbox.availability() {
        return Err(format!("the native sandbox cannot run here: {reason}"));
    }
    let spec = Spec {
        program: "/bin/true".into(),
        ..Spec::default()
    };
    let mut sandboxed = Vec::new();
    let mut direct = Vec::new();
    for i in 0..runs + 10 {
        let started = Instant::now();
        let outcome = sandbox.run(&spec, b"").await.map_err(|e| e.to_string())?;
        let took = started.elapsed();
        if !outcome.success() {
            return Err(format!("/bin/true failed in the sandbox: {outcome:?}"));
        }
        let started = Instant::now();
        let status = tokio::process::Command::new("/bin/true")
            .status()
            .await
            .map_err(|e| e.to_string())?;
        let plain = started.elapsed();
        if !status.success() {
            return Err("/bin/true failed".into());
        }
        if i >= 10 {
            sandboxed.push(took);
            direct.push(plain);
        }
    }
    println!("{runs} runs of /bin/true each way (after 10 warm-up runs), alternating\n");
    println!("| how | p50 ms | p90 ms | p99 ms | mean ms |");
    println!("|---|---|---|---|---|");
    for (name, samples) in [
        ("spawned directly", direct),
        (
            "native sandbox (namespaces, root, Landlock, seccomp, cgroups)",
            sandboxed,
        ),
    ] {
        let [p50, p90, p99, mean] = summary(samples);
        println!("| {name} | {p50:.2} | {p90:.2} | {p99:.2} | {mean:.2} |");
    }
    Ok(())
}
