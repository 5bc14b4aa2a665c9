//! `mcpguard sandbox-check`: what each sandbox backend finds on this machine, with a real
//! trial run where the backend can run.

use std::io::Write;
use std::time::Instant;

use mcpguard_gateway::Config;
use mcpguard_gateway::config::SandboxBackend;
use mcpguard_sandbox::docker::{DockerOptions, DockerSandbox};
use mcpguard_sandbox::firecracker::FirecrackerSandbox;
use mcpguard_sandbox::microsandbox::MicrosandboxSandbox;
use mcpguard_sandbox::native::{HelperCommand, NativeOptions, NativeSandbox};
use mcpguard_sandbox::{Availability, Sandbox, Spec};

/// One backend's line.
struct Row {
    backend: SandboxBackend,
    ready: bool,
    state: String,
    notes: Vec<String>,
}

/// Probes `sandbox` (and runs `spec` in it when it is ready).
async fn row(backend: SandboxBackend, sandbox: &dyn Sandbox, spec: Option<Spec>) -> Row {
    match sandbox.availability() {
        Availability::Unavailable { reason } => Row {
            backend,
            ready: false,
            state: "unavailable".into(),
            notes: vec![reason.clone()],
        },
        Availability::Ready { notes } => {
            let mut notes = notes.clone();
            let mut ready = true;
            if let Some(spec) = spec {
                let started = Instant::now();
                match sandbox.run(&spec, b"").await {
                    Ok(outcome) if outcome.success() => notes.push(format!(
                        "trial run of `{}`: ok in {} ms",
                        spec.program,
                        started.elapsed().as_millis()
                    )),
                    Ok(outcome) => {
                        ready = false;
                        notes.push(format!(
                            "trial run of `{}` failed: {}, stopped: {}, stderr: {}",
                            spec.program,
                            outcome.exit,
                            outcome.stopped.as_str(),
                            outcome.stderr.text().trim()
                        ));
                    }
                    Err(e) => {
                        ready = false;
                        notes.push(format!("trial run failed: {e}"));
                    }
                }
            }
            Row {
                backend,
                ready,
                state: if ready { "ready" } else { "failing" }.into(),
                notes,
            }
        }
    }
}

/// Prints the table; true when the configured backend (`sandbox.backend`) is ready.
pub fn check(config: &Config) -> anyhow::Result<bool> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let rows = runtime.block_on(rows(config))?;
    let table: Vec<[String; 3]> = rows
        .iter()
        .map(|r| {
            let marker = if r.backend == config.sandbox.backend {
                " (configured)"
            } else {
                ""
            };
            [
                format!("{}{marker}", r.backend.as_str()),
                r.state.clone(),
                r.notes.join("; "),
            ]
        })
        .collect();
    let mut out = std::io::stdout().lock();
    crate::table::write_table(&mut out, ["BACKEND", "STATE", "WHAT IT FOUND"], &table)?;
    out.flush()?;
    Ok(rows
        .iter()
        .any(|r| r.backend == config.sandbox.backend && r.ready))
}

async fn rows(config: &Config) -> anyhow::Result<Vec<Row>> {
    let trivial = |program: &str| Spec {
        program: program.into(),
        ..Spec::default()
    };
    let mut options = NativeOptions::new(HelperCommand::current_exe()?);
    options.host_ids = config.sandbox.native_host_ids;
    let native = NativeSandbox::new(options);
    let mut rows = vec![row(SandboxBackend::Native, &native, Some(trivial("true"))).await];
    let docker = DockerSandbox::connect(DockerOptions {
        socket: config.sandbox.docker.socket.clone(),
        image: config.sandbox.docker.image.clone(),
        user: config.sandbox.docker.user.clone(),
    })
    .await;
    rows.push(row(SandboxBackend::Docker, &docker, Some(trivial("true"))).await);
    rows.push(wasm_row(config).await);
    let firecracker = FirecrackerSandbox::new(config.sandbox.firecracker.options());
    rows.push(
        row(
            SandboxBackend::Firecracker,
            &firecracker,
            Some(trivial("true")),
        )
        .await,
    );
    let options = config.sandbox.microsandbox.options();
    let microsandbox =
        tokio::task::spawn_blocking(move || MicrosandboxSandbox::new(options)).await?;
    rows.push(
        row(
            SandboxBackend::Microsandbox,
            &microsandbox,
            Some(trivial("true")),
        )
        .await,
    );
    Ok(rows)
}

#[cfg(feature = "wasm")]
async fn wasm_row(config: &Config) -> Row {
    let wasm = mcpguard_sandbox::wasm::WasmSandbox::new(mcpguard_sandbox::wasm::WasmOptions {
        quickjs: config.sandbox.wasm.quickjs.clone(),
    });
    let module = Spec {
        program: mcpguard_sandbox::wasm::WASM_STDIN.into(),
        ..Spec::default()
    };
    let mut row = row(SandboxBackend::Wasm, &wasm, None).await;
    if row.ready {
        let started = Instant::now();
        match wasm
            .run(&module, b"(module (func (export \"_start\")))")
            .await
        {
            Ok(outcome) if outcome.success() => row.notes.push(format!(
                "trial run of an empty module: ok in {} ms",
                started.elapsed().as_millis()
            )),
            Ok(_) | Err(_) => {
                row.ready = false;
                row.state = "failing".into();
                row.notes.push("trial run of an empty module failed".into());
            }
        }
    }
    row
}

#[cfg(not(feature = "wasm"))]
async fn wasm_row(_config: &Config) -> Row {
    Row {
        backend: SandboxBackend::Wasm,
        ready: false,
        state: "not built".into(),
        notes: vec!["this mcpguard was built without the `wasm` feature".into()],
    }
}
