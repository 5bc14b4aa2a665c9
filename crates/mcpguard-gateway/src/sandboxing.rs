//! The gateway's sandboxes: the configured backends, the specs built from profiles, and
//! which calls run in a sandbox (the built-in `mcpguard.run_code` tool and the code tools
//! of `sandbox.code_tools`).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use mcpguard_sandbox::docker::{DockerOptions, DockerSandbox};
use mcpguard_sandbox::firecracker::FirecrackerSandbox;
use mcpguard_sandbox::microsandbox::MicrosandboxSandbox;
use mcpguard_sandbox::native::{HelperCommand, NativeOptions, NativeSandbox};
use mcpguard_sandbox::{Availability, Limits, Mount, Network, Sandbox, Spec};

use crate::config::{
    CodeLanguage, SandboxBackend, SandboxConfig, SandboxNetwork, SandboxProfile, UpstreamConfig,
};

/// The exposed name of the built-in code runner.
pub const RUN_CODE_TOOL: &str = "mcpguard.run_code";

/// The server name policies and audit events use for the gateway's own tools.
pub const GATEWAY_SERVER: &str = "mcpguard";

/// A confined upstream's sandbox and what it runs.
pub type Confinement = (Arc<dyn Sandbox>, Spec);

/// The configured backends and profiles.
pub struct SandboxHub {
    config: SandboxConfig,
    backends: BTreeMap<SandboxBackend, Arc<dyn Sandbox>>,
}

impl std::fmt::Debug for SandboxHub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SandboxHub")
            .field("backends", &self.backends.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// One code run the gateway will do in a sandbox.
#[derive(Clone)]
pub struct CodeJob {
    /// The backend.
    pub sandbox: Arc<dyn Sandbox>,
    /// The profile's name.
    pub profile: String,
    /// What to run.
    pub spec: Spec,
    /// The code (the interpreter's stdin).
    pub code: String,
    /// The language.
    pub language: CodeLanguage,
}

impl std::fmt::Debug for CodeJob {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CodeJob")
            .field("backend", &self.sandbox.name())
            .field("profile", &self.profile)
            .field("spec", &self.spec)
            .field("language", &self.language)
            .finish_non_exhaustive()
    }
}

impl SandboxHub {
    /// Sets up the backends `config` uses (native always; the others when they are the
    /// default backend); `helper` starts the native backend's helper process (the running
    /// `mcpguard` binary). What each backend found is logged.
    pub async fn new(config: &SandboxConfig, helper: HelperCommand) -> SandboxHub {
        let mut options = NativeOptions::new(helper);
        options.host_ids = config.native_host_ids;
        let mut backends: BTreeMap<SandboxBackend, Arc<dyn Sandbox>> = BTreeMap::new();
        backends.insert(
            SandboxBackend::Native,
            Arc::new(NativeSandbox::new(options)),
        );
        #[cfg(feature = "wasm")]
        if config.backend == SandboxBackend::Wasm {
            let wasm =
                mcpguard_sandbox::wasm::WasmSandbox::new(mcpguard_sandbox::wasm::WasmOptions {
                    quickjs: config.wasm.quickjs.clone(),
                });
            backends.insert(SandboxBackend::Wasm, Arc::new(wasm));
        }
        if config.backend == SandboxBackend::Docker {
            let docker = DockerSandbox::connect(DockerOptions {
                socket: config.docker.socket.clone(),
                image: config.docker.image.clone(),
                user: config.docker.user.clone(),
            })
            .await;
            backends.insert(SandboxBackend::Docker, Arc::new(docker));
        }
        if config.backend == SandboxBackend::Firecracker {
            let firecracker = FirecrackerSandbox::new(config.firecracker.options());
            backends.insert(SandboxBackend::Firecracker, Arc::new(firecracker));
        }
        if config.backend == SandboxBackend::Microsandbox {
            let options = config.microsandbox.options();
            // `msb doctor` is a process run: keep it off the async workers.
            let microsandbox =
                tokio::task::spawn_blocking(move || MicrosandboxSandbox::new(options)).await;
            if let Ok(microsandbox) = microsandbox {
                backends.insert(SandboxBackend::Microsandbox, Arc::new(microsandbox));
            }
        }
        for sandbox in backends.values() {
            log_availability(sandbox.as_ref());
        }
        SandboxHub {
            config: config.clone(),
            backends,
        }
    }
}

/// Logs what a backend found at start-up.
fn log_availability(sandbox: &dyn Sandbox) {
    match sandbox.availability() {
        Availability::Ready { notes } => {
            tracing::info!(
                backend = sandbox.name(),
                notes = notes.join("; ").as_str(),
                "sandbox ready"
            );
        }
        Availability::Unavailable { reason } => {
            tracing::warn!(backend = sandbox.name(), %reason, "sandbox unavailable: calls that need it are denied");
        }
    }
}

impl SandboxHub {
    /// The backend `kind` (default: the configured one), if it can run here.
    pub fn backend(&self, kind: Option<SandboxBackend>) -> Result<Arc<dyn Sandbox>, String> {
        let kind = kind.unwrap_or(self.config.backend);
        if let Some(message) = kind.unbuilt() {
            return Err(message);
        }
        let sandbox = self
            .backends
            .get(&kind)
            .ok_or_else(|| format!("the `{}` sandbox backend is not set up", kind.as_str()))?;
        match sandbox.availability() {
            Availability::Ready { .. } => Ok(sandbox.clone()),
            Availability::Unavailable { reason } => Err(format!(
                "the `{}` sandbox backend cannot run on this machine: {reason}",
                kind.as_str()
            )),
        }
    }

    /// A spec for `program` under the profile `profile`.
    pub fn spec(
        &self,
        profile: &str,
        program: &str,
        args: &[String],
        env: BTreeMap<String, String>,
    ) -> Result<Spec, String> {
        let profile = self
            .config
            .profile(profile)
            .ok_or_else(|| format!("there is no sandbox profile `{profile}`"))?;
        Ok(spec_of(&profile, program, args, env))
    }

    /// The sandbox and spec that confine the stdio upstream `name`, when it has one.
    pub fn confinement(
        &self,
        upstream: &UpstreamConfig,
        env: BTreeMap<String, String>,
    ) -> Result<Option<Confinement>, String> {
        let Some(settings) = &upstream.sandbox else {
            return Ok(None);
        };
        let sandbox = self.backend(settings.backend)?;
        let mut spec = self.spec(
            &settings.profile,
            upstream.command.as_deref().unwrap_or_default(),
            &upstream.args,
            env,
        )?;
        spec.workdir = upstream.cwd.clone();
        Ok(Some((sandbox, spec)))
    }

    /// The built-in `mcpguard.run_code` tool's definition, when it is enabled.
    pub fn run_code_tool(&self) -> Option<serde_json::Value> {
        let run_code = &self.config.run_code;
        if !run_code.enabled {
            return None;
        }
        let languages: Vec<&str> = run_code.languages.iter().map(|l| l.as_str()).collect();
        let profile = self.config.profile(&run_code.profile).unwrap_or_default();
        Some(serde_json::json!({
            "name": RUN_CODE_TOOL,
            "title": "Run code in a sandbox",
            "description": format!(
                "Runs a program in an isolated sandbox ({}, no access to the host's \
                 files, {} s and {} MiB at most) and returns its output. The code is the \
                 program's source; it reads nothing from stdin. Languages: {}.",
                match profile.network {
                    SandboxNetwork::Egress => format!(
                        "network only to {} through the HTTPS proxy in HTTPS_PROXY",
                        profile.egress.join(", ")
                    ),
                    _ => "no network".to_string(),
                },
                profile.wall_time_seconds,
                profile.memory_mb,
                languages.join(", ")
            ),
            "inputSchema": {
                "type": "object",
                "properties": {
                    "language": {"type": "string", "enum": languages},
                    "code": {"type": "string", "description": "The program's source."}
                },
                "required": ["language", "code"],
                "additionalProperties": false
            },
            "outputSchema": {
                "type": "object",
                "properties": {
                    "exit_code": {"type": ["integer", "null"]},
                    "signal": {"type": ["integer", "null"]},
                    "stopped": {"type": "string", "enum": ["exited", "wall_time", "cpu_time", "memory", "output"]},
                    "stdout": {"type": "string"},
                    "stderr": {"type": "string"},
                    "truncated": {"type": "boolean"},
                    "wall_ms": {"type": "number"},
                    "cpu_ms": {"type": ["number", "null"]},
                    "memory_peak_bytes": {"type": ["integer", "null"]},
                    "backend": {"type": "string"}
                },
                "required": ["exit_code", "signal", "stopped", "stdout", "stderr", "truncated", "wall_ms", "backend"]
            },
            "annotations": {"openWorldHint": false, "destructiveHint": false}
        }))
    }

    /// Whether calls to `tool` (as agents see it) can run in a sandbox.
    pub fn runs_code(&self, tool: &str) -> bool {
        (tool == RUN_CODE_TOOL && self.config.run_code.enabled)
            || self.config.code_tools.contains_key(tool)
    }

    /// The job for a call to `tool` with `arguments`: `None` when the tool does not run
    /// code; an error (for the agent) when the call is malformed or the sandbox cannot
    /// run.
    pub fn job(
        &self,
        tool: &str,
        arguments: &serde_json::Value,
    ) -> Option<Result<CodeJob, String>> {
        if tool == RUN_CODE_TOOL && self.config.run_code.enabled {
            return Some(self.run_code_job(arguments));
        }
        let code_tool = self.config.code_tools.get(tool)?;
        Some((|| {
            let code = arguments
                .pointer(&code_tool.code)
                .and_then(serde_json::Value::as_str)
                .ok_or_else(|| {
                    format!(
                        "`{tool}` runs code from `{}` of its arguments, and there is no string there",
                        code_tool.code
                    )
                })?;
            self.job_for(code_tool.language, &code_tool.profile, code)
        })())
    }

    fn run_code_job(&self, arguments: &serde_json::Value) -> Result<CodeJob, String> {
        let allowed: Vec<&str> = self
            .config
            .run_code
            .languages
            .iter()
            .map(|l| l.as_str())
            .collect();
        let language = arguments
            .get("language")
            .and_then(serde_json::Value::as_str)
            .ok_or("`language` is required (a string)")?;
        let language = self
            .config
            .run_code
            .languages
            .iter()
            .copied()
            .find(|l| l.as_str() == language)
            .ok_or_else(|| {
                format!(
                    "`{language}` is not a language this gateway runs; it runs {}",
                    allowed.join(", ")
                )
            })?;
        let code = arguments
            .get("code")
            .and_then(serde_json::Value::as_str)
            .ok_or("`code` is required (a string)")?;
        self.job_for(language, &self.config.run_code.profile.clone(), code)
    }

    fn job_for(
        &self,
        language: CodeLanguage,
        profile: &str,
        code: &str,
    ) -> Result<CodeJob, String> {
        let sandbox = self.backend(None)?;
        let (program, args) = language.interpreter(self.config.backend).ok_or_else(|| {
            format!(
                "the `{}` sandbox backend cannot run {} (native and docker run python, shell and javascript; wasm runs javascript and wasm)",
                self.config.backend.as_str(),
                language.as_str()
            )
        })?;
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env = BTreeMap::from([
            (
                "PATH".to_string(),
                "/usr/local/bin:/usr/bin:/bin".to_string(),
            ),
            ("HOME".to_string(), mcpguard_sandbox::WORKDIR.to_string()),
            ("LANG".to_string(), "C.UTF-8".to_string()),
        ]);
        Ok(CodeJob {
            sandbox,
            profile: profile.to_string(),
            spec: self.spec(profile, program, &args, env)?,
            code: code.to_string(),
            language,
        })
    }
}

/// The spec of `program` under `profile`; the profile's environment comes after `env`.
fn spec_of(
    profile: &SandboxProfile,
    program: &str,
    args: &[String],
    mut env: BTreeMap<String, String>,
) -> Spec {
    env.extend(profile.env.clone());
    Spec {
        program: program.to_string(),
        args: args.to_vec(),
        env,
        workdir: None,
        mounts: profile
            .mounts
            .iter()
            .map(|m| Mount {
                source: m.source.clone(),
                target: m.target.clone(),
                writable: m.writable,
            })
            .collect(),
        network: match profile.network {
            SandboxNetwork::None => Network::None,
            SandboxNetwork::Loopback => Network::Loopback,
            SandboxNetwork::Egress => Network::Egress,
        },
        // Checked when the configuration was loaded; a rule that fails here allows nothing.
        egress: mcpguard_sandbox::egress::EgressPolicy::parse(&profile.egress).unwrap_or_default(),
        limits: Limits {
            wall_time: seconds(profile.wall_time_seconds),
            cpu_time: seconds(profile.cpu_time_seconds),
            memory_bytes: profile.memory_mb.saturating_mul(1 << 20),
            processes: profile.processes,
            output_bytes: profile.output_kb.saturating_mul(1 << 10),
            file_size_bytes: profile.file_size_mb.saturating_mul(1 << 20),
            tmp_bytes: profile.tmp_mb.saturating_mul(1 << 20),
        },
    }
}

fn seconds(value: f64) -> Duration {
    Duration::try_from_secs_f64(value).unwrap_or(Duration::from_secs(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CodeToolConfig, DEFAULT_PROFILE, RunCodeConfig};

    fn hub(config: SandboxConfig) -> SandboxHub {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        runtime.block_on(SandboxHub::new(
            &config,
            HelperCommand {
                program: "/nonexistent/helper".into(),
                args: Vec::new(),
            },
        ))
    }

    #[test]
    fn profiles_become_limits() {
        let mut config = SandboxConfig::default();
        config.profiles.insert(
            "tight".into(),
            SandboxProfile {
                memory_mb: 32,
                wall_time_seconds: 2.5,
                network: SandboxNetwork::Loopback,
                ..SandboxProfile::default()
            },
        );
        let spec = hub(config)
            .spec("tight", "python3", &[], BTreeMap::new())
            .unwrap();
        assert_eq!(spec.limits.memory_bytes, 32 << 20);
        assert_eq!(spec.limits.wall_time, Duration::from_millis(2500));
        assert_eq!(spec.network, Network::Loopback);
    }

    #[test]
    fn code_jobs_say_what_is_wrong() {
        let config = SandboxConfig {
            run_code: RunCodeConfig {
                enabled: true,
                ..RunCodeConfig::default()
            },
            code_tools: BTreeMap::from([(
                "exec__python".to_string(),
                CodeToolConfig {
                    language: CodeLanguage::Python,
                    code: "/source".into(),
                    profile: DEFAULT_PROFILE.into(),
                },
            )]),
            ..SandboxConfig::default()
        };
        let hub = hub(config);
        assert!(hub.runs_code(RUN_CODE_TOOL) && hub.runs_code("exec__python"));
        assert!(!hub.runs_code("other"));
        assert!(hub.job("other", &serde_json::json!({})).is_none());
        let error =
            |tool: &str, args: serde_json::Value| hub.job(tool, &args).unwrap().unwrap_err();
        assert!(
            error(RUN_CODE_TOOL, serde_json::json!({"code": "1"}))
                .contains("`language` is required")
        );
        assert!(
            error(
                RUN_CODE_TOOL,
                serde_json::json!({"language": "cobol", "code": "x"})
            )
            .contains("runs python, shell")
        );
        assert!(error("exec__python", serde_json::json!({"code": "x"})).contains("`/source`"));
        // The helper does not exist, so the backend is unavailable: said, not run.
        let unavailable = error(
            RUN_CODE_TOOL,
            serde_json::json!({"language": "python", "code": "1"}),
        );
        assert!(
            unavailable.contains("cannot run on this machine"),
            "{unavailable}"
        );
    }
}
