//! Wiring the guard: read the policy files, compile them, build the detector, and keep
//! the policy fresh when its files change.

use mcpguard_gateway::shared::SharedState;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context;
use arc_swap::ArcSwap;
use mcpguard_detect::{Detector, DigestKey, Limits};
use mcpguard_gateway::Config;
use mcpguard_gateway::config::DefaultAction;
use mcpguard_gateway::pipeline::Plugin;
use mcpguard_gateway::pipeline::guard::Guard;
use mcpguard_policy::{Action, Policy, PolicyError};

/// Largest policy file accepted.
const MAX_POLICY_BYTES: u64 = 4 * 1024 * 1024;

/// The policy files behind `paths`: files as given, directories for their `*.yaml` and
/// `*.yml` files (sorted, not recursive).
pub fn policy_files(paths: &[PathBuf]) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let mut found: Vec<PathBuf> = std::fs::read_dir(path)
                .with_context(|| format!("cannot list `{}`", path.display()))?
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
                .collect();
            found.sort();
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// Reads policy files into `(name, text)` pairs.
pub fn read_policy_files(files: &[PathBuf]) -> anyhow::Result<Vec<(String, String)>> {
    files
        .iter()
        .map(|file| {
            let meta = std::fs::metadata(file).with_context(|| {
                format!(
                    "cannot read policy file `{}` (check `policy.policy_paths`)",
                    file.display()
                )
            })?;
            if meta.len() > MAX_POLICY_BYTES {
                anyhow::bail!(
                    "policy file `{}` is {} bytes, over the {MAX_POLICY_BYTES}-byte limit",
                    file.display(),
                    meta.len()
                );
            }
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("cannot read policy file `{}`", file.display()))?;
            Ok((file.display().to_string(), text))
        })
        .collect()
}

/// All errors, one per line.
pub fn render_errors(errors: &[PolicyError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

/// The configured default as a policy action.
pub fn default_action(config: &Config) -> Action {
    match config.policy.default_action {
        DefaultAction::Deny => Action::Deny,
        DefaultAction::Allow => Action::Allow,
    }
}

/// Reads and compiles the policy files.
pub fn load_policy(files: &[PathBuf], fallback: Action) -> anyhow::Result<Policy> {
    let sources = read_policy_files(files)?;
    mcpguard_policy::compile(&sources, fallback)
        .map_err(|errors| anyhow::anyhow!("the policy has errors:\n{}", render_errors(&errors)))
}

/// A detector with a fresh random digest key (digests correlate within one run).
pub fn detector(limits: Limits) -> anyhow::Result<Detector> {
    let key: [u8; 32] = rand::random();
    Detector::new(DigestKey::new(key), limits).map_err(|e| anyhow::anyhow!("{e}"))
}

/// A detector keyed by the file at `path` (32 bytes, base64), so that digests of one
/// value stay the same across restarts and replicas; a random key without one.
pub fn keyed_detector(limits: Limits, path: Option<&std::path::Path>) -> anyhow::Result<Detector> {
    let Some(path) = path else {
        tracing::info!("no `taint.digest_key`: finding digests correlate within this run only");
        return detector(limits);
    };
    use anyhow::Context as _;
    use base64::Engine as _;
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "cannot read `taint.digest_key` `{}`; make one with `mcpguard keygen --digest-key`",
            path.display()
        )
    })?;
    let key: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("`{}` must hold 32 bytes as base64", path.display()))?;
    Detector::new(DigestKey::new(key), limits).map_err(|e| anyhow::anyhow!("{e}"))
}

/// The guard plugin for `config`, or none when no policy is configured.
pub fn plugins(
    config: &Config,
    sandboxes: Option<&Arc<mcpguard_gateway::sandboxing::SandboxHub>>,
) -> anyhow::Result<Vec<Arc<dyn Plugin>>> {
    if config.policy.policy_paths.is_empty() {
        tracing::warn!(
            "no policy configured (`policy.policy_paths` is empty): calls are forwarded without judgement"
        );
        return Ok(Vec::new());
    }
    let files = policy_files(&config.policy.policy_paths)?;
    if files.is_empty() {
        anyhow::bail!(
            "`policy.policy_paths` names no policy file (directories are searched for *.yaml)"
        );
    }
    let fallback = default_action(config);
    let policy = load_policy(&files, fallback)?;
    tracing::info!(
        files = files.len(),
        rules = policy.rules().len(),
        default_action = policy.default_action().as_str(),
        "policy loaded"
    );
    let policy = Arc::new(ArcSwap::from_pointee(policy));
    let limits = Limits {
        max_bytes: config.taint.max_scan_bytes,
        max_depth: config.taint.max_depth,
        ..Limits::default()
    };
    let mut guard = Guard::new(
        policy.clone(),
        Arc::new(keyed_detector(limits, config.taint.digest_key.as_deref())?),
        config.taint.clone(),
        config.policy.denial,
    )
    .map_err(|e| anyhow::anyhow!(e))?
    .with_shared(SharedState::from_config(config).map_err(|e| anyhow::anyhow!(e))?);
    if let Some(hub) = sandboxes {
        guard = guard.with_sandboxes(hub.clone());
    }
    if config.policy.reload {
        watch(
            config.policy.policy_paths.clone(),
            fallback,
            policy,
            Duration::from_secs_f64(config.policy.reload_interval_seconds.max(0.1)),
        );
    }
    Ok(vec![Arc::new(guard)])
}

fn stamps(files: &[PathBuf]) -> Vec<(PathBuf, Option<SystemTime>, u64)> {
    files
        .iter()
        .map(|f| {
            let meta = std::fs::metadata(f).ok();
            (
                f.clone(),
                meta.as_ref().and_then(|m| m.modified().ok()),
                meta.map_or(0, |m| m.len()),
            )
        })
        .collect()
}

/// Polls the policy files; a changed set is compiled and swapped in whole, a broken one
/// is rejected loudly and the policy in force stays.
fn watch(paths: Vec<PathBuf>, fallback: Action, policy: Arc<ArcSwap<Policy>>, every: Duration) {
    let spawned = std::thread::Builder::new()
        .name("policy-reload".into())
        .spawn(move || {
            let mut last = policy_files(&paths).map(|f| stamps(&f)).unwrap_or_default();
            loop {
                std::thread::sleep(every);
                let Ok(files) = policy_files(&paths) else {
                    continue;
                };
                let now = stamps(&files);
                if now == last {
                    continue;
                }
                last = now;
                match load_policy(&files, fallback) {
                    Ok(new) => {
                        tracing::info!(
                            files = files.len(),
                            rules = new.rules().len(),
                            "policy reloaded"
                        );
                        policy.store(Arc::new(new));
                    }
                    Err(e) => tracing::error!(
                        "policy change REJECTED, the previous policy stays in force: {e:#}"
                    ),
                }
            }
        });
    if let Err(e) = spawned {
        tracing::error!("cannot start the policy reloader: {e}");
    }
}

/// True when `path` looks like a policy test fixture (has a top-level `tests:`).
pub fn is_fixture(path: &Path) -> bool {
    std::fs::read_to_string(path).is_ok_and(|t| t.lines().any(|l| l.starts_with("tests:")))
}
