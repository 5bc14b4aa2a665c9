//! The `mcpguard` binary: CLI, configuration loading and wiring.

mod audit_cmd;
mod cli;
mod config_load;
mod detect_cmd;
mod guard_setup;
mod init;
mod keys_cmd;
mod policy_cmd;
mod sandbox_cmd;
mod table;
mod telemetry;
mod trace_cmd;

use std::io::Write;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use clap::{CommandFactory, Parser};
use cli::{Cli, Command, ShowFormat};
use config_load::Overrides;
use mcpguard_gateway::config::{Transport, UpstreamConfig};
use mcpguard_gateway::gateway::Agents;
use mcpguard_gateway::sandboxing::SandboxHub;
use mcpguard_gateway::{Config, Gateway};

fn main() -> std::process::ExitCode {
    // The sandbox helper must start before anything else (it forks; no thread may exist).
    if std::env::args_os()
        .nth(1)
        .is_some_and(|a| a == mcpguard_sandbox::native::HELPER_ARG)
    {
        mcpguard_sandbox::native::helper_main();
    }
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mcpguard: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Init(args) => init::run(&args.dir, args.force),
        Command::ConfigShow(args) => config_show(cli.config.as_deref(), args.format),
        Command::Completions { shell } => {
            clap_complete::generate(
                shell,
                &mut Cli::command(),
                "mcpguard",
                &mut std::io::stdout(),
            );
            Ok(())
        }
        Command::ConfigSchema => {
            let schema = schemars::schema_for!(Config);
            println!("{}", serde_json::to_string_pretty(&schema)?);
            Ok(())
        }
        Command::ValidatePolicy(args) => policy_cmd::validate(&args),
        Command::Policy(cli::PolicyCommand::Test(args)) => policy_cmd::test(&args),
        Command::Detect(args) => detect_cmd::run(&args),
        Command::Keys(command) => {
            let config = quiet_config(cli.config.as_deref())?;
            match command {
                cli::KeysCommand::Create(args) => keys_cmd::create(&config, &args),
                cli::KeysCommand::List(args) => keys_cmd::list(&config, args.file.as_deref()),
                cli::KeysCommand::Revoke(args) => keys_cmd::revoke(&config, &args),
            }
        }
        Command::Keygen(args) => audit_cmd::keygen(&args),
        Command::AuditVerify(args) => {
            let config = quiet_config(cli.config.as_deref())?;
            exit_unless(audit_cmd::verify(&config, &args)?)
        }
        Command::AuditProof(args) => audit_cmd::proof(&quiet_config(cli.config.as_deref())?, &args),
        Command::AuditCheckProof(args) => {
            let config = quiet_config(cli.config.as_deref())?;
            exit_unless(audit_cmd::check_proof(&config, &args)?)
        }
        Command::AuditCheckpoint(args) => {
            audit_cmd::checkpoint(&quiet_config(cli.config.as_deref())?, &args)
        }
        Command::AuditQuery(args) => audit_cmd::query(&quiet_config(cli.config.as_deref())?, &args),
        Command::AuditExport(args) => {
            audit_cmd::export(&quiet_config(cli.config.as_deref())?, &args)
        }
        Command::TraceList(args) => trace_cmd::list(&quiet_config(cli.config.as_deref())?, &args),
        Command::TraceExport(args) => {
            trace_cmd::export(&quiet_config(cli.config.as_deref())?, &args)
        }
        Command::SandboxCheck => {
            let config = quiet_config(cli.config.as_deref())?;
            exit_unless(sandbox_cmd::check(&config)?)
        }
        Command::TraceVerify(args) => {
            let config = quiet_config(cli.config.as_deref())?;
            exit_unless(trace_cmd::verify(&config, &args)?)
        }
        Command::Replay(args) => {
            let config = quiet_config(cli.config.as_deref())?;
            let code = trace_cmd::replay(&config, cli.config.as_deref(), &args)?;
            let _ = std::io::stdout().flush();
            std::process::exit(code)
        }
        Command::Man => {
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            Ok(())
        }
        Command::Serve(args) => {
            let mut overrides = Overrides::default();
            if let Some(host) = args.host {
                overrides.set("proxy.host", host);
            }
            if let Some(port) = args.port {
                overrides.set("proxy.port", port);
            }
            if let Some(level) = args.log_level {
                overrides.set("observability.log_level", level);
            }
            let loaded = config_load::load(cli.config.as_deref(), overrides)?;
            let telemetry = telemetry::init(&loaded.config)?;
            let served = serve(loaded.config);
            telemetry.shutdown();
            served
        }
        Command::Stdio(args) => {
            let mut overrides = Overrides::default();
            if let Some(level) = args.log_level {
                overrides.set("observability.log_level", level);
            }
            let mut loaded = config_load::load(cli.config.as_deref(), overrides)?;
            if let Some((program, rest)) = args.command.split_first() {
                loaded.config.upstreams.insert(
                    "server".into(),
                    UpstreamConfig {
                        transport: Transport::Stdio,
                        command: Some(program.clone()),
                        args: rest.to_vec(),
                        prefix: Some(String::new()),
                        ..UpstreamConfig::default()
                    },
                );
            }
            let telemetry = telemetry::init(&loaded.config)?;
            let served = runtime(&loaded.config)?.block_on(stdio(loaded.config));
            telemetry.shutdown();
            served
        }
    }
}

/// The configuration for an offline command (no logging set up).
fn quiet_config(path: Option<&std::path::Path>) -> anyhow::Result<Config> {
    Ok(config_load::load(path, Overrides::default())?.config)
}

/// Ends the process with status 1 when `ok` is false (after output was written).
fn exit_unless(ok: bool) -> anyhow::Result<()> {
    if !ok {
        let _ = std::io::stdout().flush();
        std::process::exit(1);
    }
    Ok(())
}

fn runtime(config: &Config) -> anyhow::Result<tokio::runtime::Runtime> {
    let mut builder = if config.proxy.worker_threads == 1 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        tokio::runtime::Builder::new_multi_thread()
    };
    if config.proxy.worker_threads > 1 {
        builder.worker_threads(config.proxy.worker_threads);
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Runs `mcpguard serve`: one current-thread runtime per worker thread, each accepting on
/// the same listening socket and serving its connections start to finish, so a call never
/// moves between threads (hand-offs between threads cost more than the gateway's own work
/// on a small machine; see BENCHMARKS.md). The main thread runs the upstreams and signals.
fn serve(config: Config) -> anyhow::Result<()> {
    if config.upstreams.values().all(|u| !u.enabled) {
        tracing::warn!("no upstreams are configured: every call will fail (see `mcpguard init`)");
    }
    let address = format!("{}:{}", config.proxy.host, config.proxy.port);
    let listener = match std::net::TcpListener::bind(&address) {
        Ok(listener) => listener,
        Err(e) if e.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "cannot listen on {address}: the port is already in use; choose another with --port or `proxy.port`"
        ),
        Err(e) => bail!("cannot listen on {address}: {e}"),
    };
    listener.set_nonblocking(true)?;
    let local = listener.local_addr()?;
    let threads = match config.proxy.worker_threads {
        0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
        n => n,
    };
    let grace = Duration::from_secs_f64(config.proxy.shutdown_grace_seconds);
    let main = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let audit = audit_cmd::start(&config)?;
    let gateway = main.block_on(async {
        let (plugins, sandboxes) = plugins(&config, audit.as_ref()).await?;
        Gateway::start(config, plugins, Agents::Many, sandboxes).map_err(|e| anyhow::anyhow!(e))
    })?;
    tracing::info!(
        plugins = ?gateway.plugin_names(),
        threads,
        "mcpguard {} listening on http://{local}/mcp",
        env!("CARGO_PKG_VERSION")
    );
    let mut workers = Vec::with_capacity(threads);
    for n in 0..threads {
        let listener = listener
            .try_clone()
            .context("cannot share the listening socket")?;
        let gateway = gateway.clone();
        let worker = std::thread::Builder::new()
            .name(format!("mcpguard-http-{n}"))
            .spawn(move || -> anyhow::Result<()> {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .context("cannot start a worker runtime")?;
                runtime.block_on(async move {
                    let listener = tokio::net::TcpListener::from_std(listener)?;
                    mcpguard_gateway::server::http::serve(listener, gateway).await?;
                    anyhow::Ok(())
                })
            })
            .context("cannot start a worker thread")?;
        workers.push(worker);
    }
    drop(listener);
    // A line on stdout for scripts that start the gateway on port 0.
    println!("listening on http://{local}/mcp");
    let _ = std::io::stdout().flush();
    main.block_on(async {
        wait_for_signal().await;
        tracing::info!(grace_seconds = grace.as_secs_f64(), "shutting down");
        gateway.shutdown(grace).await;
    });
    for worker in workers {
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("an http worker ended with an error: {e}"),
            Err(_) => tracing::warn!("an http worker panicked"),
        }
    }
    close_audit(audit.as_deref());
    tracing::info!("stopped");
    Ok(())
}

/// The gateway's plugins, in no particular order (priorities order them).
type Plugins = Vec<Arc<dyn mcpguard_gateway::pipeline::Plugin>>;

/// The configured plugins (the guard when a policy is configured, the sandbox runner when
/// sandboxes are, the rate limiter and the audit log when on) and the sandboxes.
async fn plugins(
    config: &Config,
    audit: Option<&Arc<mcpguard_audit::AuditWriter>>,
) -> anyhow::Result<(Plugins, Option<Arc<SandboxHub>>)> {
    let sandboxes = sandbox_hub(config).await?;
    let mut plugins = guard_setup::plugins(config, sandboxes.as_ref())?;
    if let Some(hub) = &sandboxes {
        plugins.push(Arc::new(
            mcpguard_gateway::pipeline::sandbox::SandboxRunner::new(hub.clone()),
        ));
    }
    if config.rate_limits.enabled {
        let limiter = mcpguard_gateway::ratelimit::RateLimiter::new(&config.rate_limits)
            .map_err(|e| anyhow::anyhow!("rate_limits: {e}"))?;
        plugins.push(Arc::new(limiter));
    }
    if let Some(writer) = audit {
        let mut plugin = mcpguard_gateway::pipeline::audit::AuditLog::new(
            writer.clone(),
            config.audit.fail_open,
        );
        if let Some(maker) = audit_cmd::envelope_maker(config)? {
            plugin = plugin.with_envelopes(maker);
        }
        let confined = config
            .upstreams
            .iter()
            .filter(|(_, u)| u.enabled)
            .filter_map(|(name, u)| {
                let sandbox = u.sandbox.as_ref()?;
                let backend = sandbox.backend.unwrap_or(config.sandbox.backend);
                Some((
                    name.clone(),
                    (backend.as_str().to_string(), sandbox.profile.clone()),
                ))
            })
            .collect();
        plugin = plugin.with_confined(confined);
        plugins.push(Arc::new(plugin));
    }
    Ok((plugins, sandboxes))
}

/// The sandboxes, when anything in the configuration uses one.
async fn sandbox_hub(config: &Config) -> anyhow::Result<Option<Arc<SandboxHub>>> {
    let needed = config.sandbox.run_code.enabled
        || !config.sandbox.code_tools.is_empty()
        || config
            .upstreams
            .values()
            .any(|u| u.enabled && u.sandbox.is_some());
    if !needed {
        return Ok(None);
    }
    let helper = mcpguard_sandbox::native::HelperCommand::current_exe()?;
    Ok(Some(Arc::new(
        SandboxHub::new(&config.sandbox, helper).await,
    )))
}

/// Signs the final checkpoint and stops the audit writer.
fn close_audit(audit: Option<&mcpguard_audit::AuditWriter>) {
    if let Some(writer) = audit {
        match writer.close_blocking() {
            Ok(size) => tracing::info!(records = size, "audit log closed with a signed checkpoint"),
            Err(e) => tracing::error!("the audit log could not write its final checkpoint: {e}"),
        }
    }
}

async fn stdio(config: Config) -> anyhow::Result<()> {
    if config.upstreams.is_empty() {
        bail!(
            "no upstreams: configure some, or wrap one server with `mcpguard stdio -- <command>`"
        );
    }
    let grace = Duration::from_secs_f64(config.proxy.shutdown_grace_seconds);
    let audit = audit_cmd::start(&config)?;
    let (plugins, sandboxes) = plugins(&config, audit.as_ref()).await?;
    let gateway =
        Gateway::start(config, plugins, Agents::One, sandboxes).map_err(|e| anyhow::anyhow!(e))?;
    let served = {
        let gateway: Arc<Gateway> = gateway.clone();
        tokio::spawn(async move {
            mcpguard_gateway::server::stdio::serve(gateway, tokio::io::stdin(), tokio::io::stdout())
                .await
        })
    };
    tokio::select! {
        result = served => {
            if let Ok(Err(e)) = result {
                tracing::warn!("stdio ended with an error: {e}");
            }
        }
        _ = wait_for_signal() => {}
    }
    gateway.shutdown(grace).await;
    if let Some(writer) = &audit {
        match writer.close().await {
            Ok(size) => tracing::info!(records = size, "audit log closed with a signed checkpoint"),
            Err(e) => tracing::error!("the audit log could not write its final checkpoint: {e}"),
        }
    }
    Ok(())
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

fn config_show(path: Option<&std::path::Path>, format: ShowFormat) -> anyhow::Result<()> {
    let loaded = config_load::load(path, Overrides::default())?;
    let leaves = config_load::leaves(&loaded);
    match format {
        ShowFormat::Text => {
            match &loaded.path {
                Some(path) => println!("# configuration file: {}", path.display()),
                None => println!("# no configuration file (defaults and environment only)"),
            }
            let width = leaves
                .iter()
                .map(|(k, v, _)| k.len() + v.to_string().len())
                .max()
                .unwrap_or(0);
            for (key, value, source) in leaves {
                let line = format!("{key} = {value}");
                println!("{line:<width$}  # {source}", width = width + 3);
            }
        }
        ShowFormat::Json => {
            let mut map = serde_json::Map::new();
            for (key, value, source) in leaves {
                map.insert(key, serde_json::json!({"value": value, "source": source}));
            }
            println!("{}", serde_json::to_string_pretty(&map)?);
        }
    }
    Ok(())
}
