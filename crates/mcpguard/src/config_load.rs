//! Loading the configuration in layers: defaults → YAML file → environment
//! (`MCPGUARD_SECTION__KEY`) → command-line flags, keeping where each value came from.
//!
//! The YAML file is first read strictly on its own (unknown keys, wrong types, duplicate
//! keys are errors with `file:line:col`), then merged with the other layers by figment.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized};
use figment::value::{Dict, Value};
use mcpguard_gateway::Config;
use serde_saphyr::figment::Yaml;

/// The default location of the configuration file.
pub const DEFAULT_PATH: &str = ".mcpguard/config.yaml";

/// Largest configuration file accepted.
const MAX_CONFIG_BYTES: u64 = 4 * 1024 * 1024;

/// A loaded configuration and its layers.
pub struct Loaded {
    /// The effective configuration.
    pub config: Config,
    /// The merged layers, for provenance.
    pub figment: Figment,
    /// The file that was read, if any.
    pub path: Option<PathBuf>,
}

/// A configuration error at a place in a file.
#[derive(Debug)]
pub struct FileError {
    /// The file.
    pub path: PathBuf,
    /// 1-based line, when known.
    pub line: Option<u64>,
    /// 1-based column, when known.
    pub column: Option<u64>,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.path.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for FileError {}

/// Parses configuration YAML strictly, with positions in errors.
pub fn parse_yaml(path: &Path, text: &str) -> Result<Config, FileError> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::Error,
    };
    if text.trim().is_empty() {
        return Ok(Config::default());
    }
    serde_saphyr::from_str_with_options::<Config>(text, options).map_err(|error| {
        let location = error.location();
        FileError {
            path: path.to_path_buf(),
            line: location.map(|l| l.line()),
            column: location.map(|l| l.column()),
            message: clean_message(&error.to_string()),
        }
    })
}

/// serde-saphyr's message, without the position it already appends (we print our own).
fn clean_message(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    let first = match first.rfind(" at line ") {
        Some(at) => &first[..at],
        None => first,
    };
    let first = first.strip_prefix("error: ").unwrap_or(first);
    let mut text = first.to_string();
    if text.contains("unknown field") {
        text.push_str(" (check the spelling; `mcpguard init` writes a commented example)");
    }
    text
}

/// Command-line overrides, as a partial config tree.
#[derive(Debug, Default)]
pub struct Overrides {
    entries: Vec<(String, Value)>,
}

impl Overrides {
    /// Sets dotted `key` to `value`.
    pub fn set(&mut self, key: &str, value: impl Into<Value>) {
        self.entries.push((key.to_string(), value.into()));
    }

    fn into_dict(self) -> Dict {
        let mut root = Dict::new();
        for (key, value) in self.entries {
            insert_path(&mut root, &key, value);
        }
        root
    }
}

fn insert_path(dict: &mut Dict, key: &str, value: Value) {
    match key.split_once('.') {
        Some((head, rest)) => {
            let entry = dict
                .entry(head.to_string())
                .or_insert_with(|| Value::from(Dict::new()));
            if let Value::Dict(_, inner) = entry {
                insert_path(inner, rest, value);
            }
        }
        None => {
            dict.insert(key.to_string(), value);
        }
    }
}

/// Loads the configuration: `explicit` path (must exist) or the default path (optional).
pub fn load(explicit: Option<&Path>, overrides: Overrides) -> anyhow::Result<Loaded> {
    let path = match explicit {
        Some(path) => {
            if !path.exists() {
                bail!(
                    "the configuration file `{}` does not exist (create one with `mcpguard init`)",
                    path.display()
                );
            }
            Some(path.to_path_buf())
        }
        None => Some(PathBuf::from(DEFAULT_PATH)).filter(|p| p.exists()),
    };
    let mut figment = Figment::from(Serialized::defaults(Config::default()));
    if let Some(path) = &path {
        let size = std::fs::metadata(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?
            .len();
        if size > MAX_CONFIG_BYTES {
            bail!(
                "{}: the file is {size} bytes; a configuration may hold at most {MAX_CONFIG_BYTES}",
                path.display()
            );
        }
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read `{}`", path.display()))?;
        parse_yaml(path, &text)?;
        if !text.trim().is_empty() {
            figment = figment.merge(Yaml::file_exact(path));
        }
    }
    figment = figment
        .merge(environment())
        .merge(Serialized::globals(overrides.into_dict()));
    let config: Config = figment.extract().map_err(|error| {
        let errors: Vec<String> = error
            .into_iter()
            .map(|e| describe_figment_error(&e))
            .collect();
        anyhow::anyhow!("invalid configuration:\n  {}", errors.join("\n  "))
    })?;
    let problems = config.check();
    if !problems.is_empty() {
        let lines: Vec<String> = problems
            .iter()
            .map(|p| {
                let source = source_of(&figment, &p.key).unwrap_or_else(|| "configuration".into());
                format!("{} ({source}): {}", p.key, p.message)
            })
            .collect();
        bail!("invalid configuration:\n  {}", lines.join("\n  "));
    }
    let mut config = config;
    // Policy paths written in the file are relative to the file, like an include.
    if let Some(base) = path.as_deref().and_then(Path::parent) {
        for policy in &mut config.policy.policy_paths {
            if policy.is_relative() {
                *policy = base.join(&*policy);
            }
        }
        // So are the audit log and its key.
        if config.audit.path.is_relative() {
            config.audit.path = base.join(&config.audit.path);
        }
        for key in [
            config.audit.signing_key.as_mut(),
            config.envelopes.signing_key.as_mut(),
            config.envelopes.payload_key.as_mut(),
            config.taint.digest_key.as_mut(),
            config.sandbox.wasm.quickjs.as_mut(),
            config.auth.api_keys_file.as_mut(),
            config.auth.jwt.as_mut().and_then(|j| j.jwks_file.as_mut()),
            Some(&mut config.sandbox.firecracker.kernel),
            Some(&mut config.sandbox.firecracker.rootfs),
        ]
        .into_iter()
        .flatten()
        {
            if key.is_relative() {
                *key = base.join(&*key);
            }
        }
    }
    Ok(Loaded {
        config,
        figment,
        path,
    })
}

/// Environment overrides: `MCPGUARD_PROXY__PORT=9000` sets `proxy.port`. Only names with a
/// section (`__`) count, so `MCPGUARD_CONFIG` and the like are not taken for settings.
fn environment() -> Env {
    Env::prefixed("MCPGUARD_")
        .filter(|key| key.as_str().contains("__"))
        .split("__")
}

fn describe_figment_error(error: &figment::Error) -> String {
    let key = error.path.join(".");
    let source = error
        .metadata
        .as_ref()
        .map(|m| match m.source.as_ref() {
            Some(figment::Source::File(path)) => format!("{}", path.display()),
            _ => {
                let keys: Vec<&str> = error.path.iter().map(String::as_str).collect();
                if m.name.contains("environment") {
                    format!("environment variable {}", env_name(&keys))
                } else {
                    m.name.to_string()
                }
            }
        })
        .unwrap_or_default();
    let mut text = String::new();
    if !key.is_empty() {
        text.push_str(&key);
        text.push_str(": ");
    }
    text.push_str(&error.kind.to_string());
    if !source.is_empty() {
        text.push_str(&format!(" (from {source})"));
    }
    text
}

/// The environment variable that sets the setting at `keys`.
fn env_name(keys: &[&str]) -> String {
    let upper: Vec<String> = keys.iter().map(|k| k.to_ascii_uppercase()).collect();
    format!("MCPGUARD_{}", upper.join("__"))
}

/// Upstream headers (`Authorization: …`) and child environments (`API_TOKEN: …`) hold
/// credentials: shown by name and source only.
fn is_secret_key(key: &str) -> bool {
    let parts: Vec<&str> = key.split('.').collect();
    parts.len() >= 4 && parts[0] == "upstreams" && matches!(parts[2], "headers" | "env")
}

/// Where the value at dotted `key` came from, in words.
pub fn source_of(figment: &Figment, key: &str) -> Option<String> {
    let metadata = figment.find_metadata(key)?;
    let keys: Vec<&str> = key.split('.').collect();
    Some(match metadata.source.as_ref() {
        Some(figment::Source::File(path)) => path.display().to_string(),
        _ if metadata.name.contains("environment") => format!("env {}", env_name(&keys)),
        // `Serialized` providers are named after their type: the defaults are a `Config`,
        // the command-line overrides a `Dict`.
        _ if metadata.name.ends_with("Config") => "default".into(),
        _ => "command line".into(),
    })
}

/// Every leaf of the effective configuration: (dotted key, value as JSON, source).
pub fn leaves(loaded: &Loaded) -> Vec<(String, serde_json::Value, String)> {
    let value = serde_json::to_value(&loaded.config).unwrap_or_default();
    let mut out = Vec::new();
    walk(&value, String::new(), &mut |key, value| {
        let source = source_of(&loaded.figment, &key).unwrap_or_else(|| "default".into());
        let value = if is_secret_key(&key) {
            serde_json::Value::from("<redacted>")
        } else {
            value.clone()
        };
        out.push((key, value, source));
    });
    out
}

fn walk(
    value: &serde_json::Value,
    prefix: String,
    visit: &mut dyn FnMut(String, &serde_json::Value),
) {
    match value {
        serde_json::Value::Object(map) if !map.is_empty() => {
            for (key, inner) in map {
                let path = if prefix.is_empty() {
                    key.clone()
                } else {
                    format!("{prefix}.{key}")
                };
                walk(inner, path, visit);
            }
        }
        _ => visit(prefix, value),
    }
}

#[cfg(test)]
mod tests;
