//! `sandbox-bench HELPER [RUNS] [QUICKJS] [DOCKER_SOCKET]`: cold start and run of a trivial
//! program (`/bin/true`) in the native sandbox, RUNS times (default 200) after 10 warm-up
//! runs, against spawning the same program directly; with the `wasm` feature, a trivial
//! precompiled WASI module and (given QuickJS-NG's reactor module) a JavaScript one-liner
//! in the wasm sandbox; given a Docker engine's socket (with the image
//! `mcpguard-sandbox:busybox`), `true` in a container, RUNS / 10 times. HELPER is the `mcpguard` binary (started as
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

/// `true` in a container through the Docker Engine API (create, attach, start, wait,
/// inspect, remove).
async fn docker(socket: &str, runs: usize) -> Result<(String, Vec<Duration>), String> {
    use mcpguard_sandbox::docker::{DockerOptions, DockerSandbox};
    let sandbox = DockerSandbox::connect(DockerOptions {
        socket: socket.into(),
        ..DockerOptions::new()
    })
    .await;
    if let Availability::Unavailable { reason } = sandbox.availability() {
        return Err(format!("the docker sandbox cannot run: {reason}"));
    }
    let spec = Spec {
        program: "true".into(),
        ..Spec::default()
    };
    let mut samples = Vec::new();
    for i in 0..runs + 2 {
        let started = Instant::now();
        let outcome = sandbox.run(&spec, b"").await.map_err(|e| e.to_string())?;
        if !outcome.success() {
            return Err(format!("`true` failed in docker: {outcome:?}"));
        }
        if i >= 2 {
            samples.push(started.elapsed());
        }
    }
    Ok((
        format!("`true` in a docker container ({runs} runs after 2 warm-up runs)"),
        samples,
    ))
}

#[cfg(feature = "wasm")]
mod wasm {
    use std::time::{Duration, Instant};

    use mcpguard_sandbox::wasm::{JAVASCRIPT, WasmOptions, WasmSandbox};
    use mcpguard_sandbox::{Sandbox, Spec};

    /// A WASI command that writes `ok` and returns.
    const WAT: &str = r#"(module
      (import "wasi_snapshot_preview1" "fd_write" (func $w (param i32 i32 i32 i32) (result i32)))
      (memory (export "memory") 1) (data (i32.const 16) "ok\n")
      (func (export "_start") (i32.store (i32.const 0) (i32.const 16)) (i32.store (i32.const 4) (i32.const 3))
        (drop (call $w (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))))"#;

    async fn time(
        sandbox: &WasmSandbox,
        spec: &Spec,
        stdin: &[u8],
        runs: usize,
    ) -> Result<Vec<Duration>, String> {
        let mut samples = Vec::new();
        for i in 0..runs + 10 {
            let started = Instant::now();
            let outcome = sandbox.run(spec, stdin).await.map_err(|e| e.to_string())?;
            if !outcome.success() {
                return Err(format!("the wasm run failed: {outcome:?}"));
            }
            if i >= 10 {
                samples.push(started.elapsed());
            }
        }
        Ok(samples)
    }

    /// Rows for the module and, when QuickJS is given, JavaScript.
    pub async fn measure(
        runs: usize,
        quickjs: Option<String>,
    ) -> Result<Vec<(String, Vec<Duration>)>, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let module = dir.path().join("ok.wat");
        std::fs::write(&module, WAT).map_err(|e| e.to_string())?;
        let with_js = quickjs.is_some();
        let sandbox = WasmSandbox::new(WasmOptions {
            quickjs: quickjs.map(Into::into),
        });
        let spec = Spec {
            program: module.display().to_string(),
            ..Spec::default()
        };
        let mut rows = vec![(
            "a precompiled WASI module in the wasm sandbox (compiled once, cached)".to_string(),
            time(&sandbox, &spec, b"", runs).await?,
        )];
        if with_js {
            let js = Spec {
                program: JAVASCRIPT.into(),
                args: vec!["-".into()],
                ..Spec::default()
            };
            rows.push((
                "`print(1 + 1)` on QuickJS-NG in the wasm sandbox (module cached)".to_string(),
                time(&sandbox, &js, b"print(1 + 1)", runs).await?,
            ));
        }
        Ok(rows)
    }
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let helper = args.next().ok_or("usage: sandbox-bench HELPER [RUNS]")?;
    let runs: usize = args.next().and_then(|r| r.parse().ok()).unwrap_or(200);
    let quickjs = args.next().filter(|q| !q.is_empty());
    let docker_socket = args.next();
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
    let mut rows = vec![
        ("`/bin/true` spawned directly".to_string(), direct),
        (
            "`/bin/true` in the native sandbox (namespaces, root, Landlock, seccomp, cgroups)"
                .to_string(),
            sandboxed,
        ),
    ];
    #[cfg(feature = "wasm")]
    rows.extend(wasm::measure(runs, quickjs).await?);
    if let Some(socket) = docker_socket {
        rows.push(docker(&socket, (runs / 10).max(5)).await?);
    }
    #[cfg(not(feature = "wasm"))]
    let _ = quickjs;
    println!("{runs} runs each (after 10 warm-up runs)\n");
    println!("| what | p50 ms | p90 ms | p99 ms | mean ms |");
    println!("|---|---|---|---|---|");
    for (name, samples) in rows {
        let [p50, p90, p99, mean] = summary(samples);
        println!("| {name} | {p50:.2} | {p90:.2} | {p99:.2} | {mean:.2} |");
    }
    Ok(())
}
