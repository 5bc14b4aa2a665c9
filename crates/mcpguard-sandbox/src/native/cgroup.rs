//! cgroup limits for native sandboxes: memory and process count for everything in one
//! sandbox together. cgroup v2 where its memory and pids controllers are available, v1
//! (separate `memory` and `pids` hierarchies) where not. Each sandbox gets its own
//! directories, nested under the gateway's own cgroups so that the gateway's limits still
//! bound them, and removed when it ends.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::wire::CgroupDir;

const ROOT: &str = "/sys/fs/cgroup";

/// Where this machine's cgroups let us put sandboxes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Layout {
    /// cgroup v1: one directory in the memory hierarchy and one in the pids hierarchy.
    V1 {
        /// The gateway's memory cgroup directory.
        memory: PathBuf,
        /// The gateway's pids cgroup directory.
        pids: PathBuf,
        /// `memory.memsw.limit_in_bytes` exists (swap is accounted).
        swap_accounting: bool,
    },
    /// cgroup v2: one directory under a parent with memory and pids enabled.
    V2 {
        /// The parent of the sandboxes' directories.
        parent: PathBuf,
    },
}

impl Layout {
    /// Finds a usable layout, checking that a sandbox directory can be created. The error
    /// says why not.
    pub fn detect() -> Result<Layout, String> {
        let own = fs::read_to_string("/proc/self/cgroup")
            .map_err(|e| format!("cannot read /proc/self/cgroup: {e}"))?;
        let layout = match v2_parent()? {
            Some(parent) => Layout::V2 { parent },
            None => {
                let memory = v1_dir(&own, "memory")?;
                let pids = v1_dir(&own, "pids")?;
                let swap_accounting = memory.join("memory.memsw.limit_in_bytes").exists();
                Layout::V1 {
                    memory,
                    pids,
                    swap_accounting,
                }
            }
        };
        let probe = layout.plan(&format!("probe-{}", std::process::id()), 1 << 30, 16);
        for dir in &probe {
            fs::create_dir(&dir.path)
                .map_err(|e| format!("cannot create `{}`: {e}", dir.path.display()))?;
            let removed = fs::remove_dir(&dir.path);
            if let Err(e) = removed {
                return Err(format!("cannot remove `{}`: {e}", dir.path.display()));
            }
        }
        Ok(layout)
    }

    /// The directories (with their settings) for one sandbox.
    pub fn plan(&self, id: &str, memory_bytes: u64, processes: u32) -> Vec<CgroupDir> {
        let name = format!("mcpguard-sandbox-{id}");
        match self {
            Layout::V1 {
                memory,
                pids,
                swap_accounting,
            } => {
                let mut memory_settings = vec![(
                    "memory.limit_in_bytes".to_string(),
                    memory_bytes.to_string(),
                )];
                if *swap_accounting {
                    memory_settings.push((
                        "memory.memsw.limit_in_bytes".to_string(),
                        memory_bytes.to_string(),
                    ));
                }
                vec![
                    CgroupDir {
                        path: memory.join(&name),
                        settings: memory_settings,
                        version: 1,
                    },
                    CgroupDir {
                        path: pids.join(&name),
                        settings: vec![("pids.max".to_string(), processes.to_string())],
                        version: 1,
                    },
                ]
            }
            Layout::V2 { parent } => vec![CgroupDir {
                path: parent.join(&name),
                settings: vec![
                    ("memory.max".to_string(), memory_bytes.to_string()),
                    ("memory.swap.max".to_string(), "0".to_string()),
                    ("pids.max".to_string(), processes.to_string()),
                ],
                version: 2,
            }],
        }
    }

    /// A short description for availability notes.
    pub fn describe(&self) -> String {
        match self {
            Layout::V1 { memory, pids, .. } => format!(
                "cgroup v1 (memory under {}, pids under {})",
                memory.display(),
                pids.display()
            ),
            Layout::V2 { parent } => format!("cgroup v2 under {}", parent.display()),
        }
    }
}

/// The v2 parent directory, when the unified hierarchy has memory and pids controllers.
fn v2_parent() -> Result<Option<PathBuf>, String> {
    let root = Path::new(ROOT);
    let Ok(controllers) = fs::read_to_string(root.join("cgroup.controllers")) else {
        return Ok(None);
    };
    let has = |c: &str| controllers.split_whitespace().any(|x| x == c);
    if !(has("memory") && has("pids")) {
        return Ok(None);
    }
    // The root cgroup may hold processes and still delegate controllers; a child of it
    // dedicated to sandboxes holds none, so it may delegate them further.
    let parent = root.join("mcpguard-sandboxes");
    enable(root)?;
    match fs::create_dir(&parent) {
        Ok(()) => {}
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(format!("cannot create `{}`: {e}", parent.display())),
    }
    enable(&parent)?;
    Ok(Some(parent))
}

fn enable(dir: &Path) -> Result<(), String> {
    let file = dir.join("cgroup.subtree_control");
    fs::write(&file, "+memory +pids")
        .map_err(|e| format!("cannot enable memory and pids in `{}`: {e}", file.display()))
}

/// The gateway's own directory in a v1 hierarchy.
fn v1_dir(own: &str, controller: &str) -> Result<PathBuf, String> {
    let path = own
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ':');
            let (_, controllers, path) = (parts.next()?, parts.next()?, parts.next()?);
            controllers
                .split(',')
                .any(|c| c == controller)
                .then_some(path)
        })
        .next()
        .ok_or_else(|| format!("no {controller} cgroup controller is mounted"))?;
    let dir = Path::new(ROOT)
        .join(controller)
        .join(path.trim_start_matches('/'));
    if !dir.is_dir() {
        return Err(format!(
            "the {controller} cgroup `{}` is not visible (is /sys/fs/cgroup/{controller} mounted?)",
            dir.display()
        ));
    }
    Ok(dir)
}

/// Creates `dirs`, writes their settings and moves the calling process into them.
pub fn enter(dirs: &[CgroupDir]) -> Result<(), String> {
    let pid = std::process::id().to_string();
    for dir in dirs {
        fs::create_dir(&dir.path)
            .map_err(|e| format!("cannot create cgroup `{}`: {e}", dir.path.display()))?;
        for (file, value) in &dir.settings {
            let path = dir.path.join(file);
            fs::write(&path, value)
                .map_err(|e| format!("cannot write {value} to `{}`: {e}", path.display()))?;
        }
        let procs = dir.path.join("cgroup.procs");
        fs::write(&procs, &pid)
            .map_err(|e| format!("cannot join cgroup `{}`: {e}", dir.path.display()))?;
    }
    Ok(())
}

/// What the sandbox's cgroups saw.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Peak memory in bytes.
    pub memory_peak: Option<u64>,
    /// The OOM killer fired.
    pub oom_killed: bool,
    /// A fork failed on pids.max.
    pub process_limit_hit: bool,
}

/// Reads the counters of `dirs`.
pub fn stats(dirs: &[CgroupDir]) -> Stats {
    let mut stats = Stats::default();
    for dir in dirs {
        let read = |file: &str| fs::read_to_string(dir.path.join(file)).ok();
        let peak_file = if dir.version == 1 {
            "memory.max_usage_in_bytes"
        } else {
            "memory.peak"
        };
        if let Some(peak) = read(peak_file).and_then(|s| s.trim().parse().ok()) {
            stats.memory_peak = Some(peak);
        }
        let events_file = if dir.version == 1 {
            "memory.oom_control"
        } else {
            "memory.events"
        };
        if read(events_file).is_some_and(|s| counter(&s, "oom_kill") > 0) {
            stats.oom_killed = true;
        }
        if read("pids.events").is_some_and(|s| counter(&s, "max") > 0) {
            stats.process_limit_hit = true;
        }
    }
    stats
}

/// The value of `key N` in a flat keyed cgroup file.
fn counter(text: &str, key: &str) -> u64 {
    text.lines()
        .filter_map(|line| line.split_once(' '))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.trim().parse().ok())
        .unwrap_or(0)
}

/// Moves the calling process back to each directory's parent (if it is inside), kills
/// anything left inside and removes the directories. Best effort: returns what failed.
pub fn remove(dirs: &[CgroupDir]) -> Vec<String> {
    let pid = std::process::id().to_string();
    let mut failures = Vec::new();
    for dir in dirs {
        let procs = fs::read_to_string(dir.path.join("cgroup.procs")).unwrap_or_default();
        if let Some(parent) = dir.path.parent()
            && procs.lines().any(|p| p.trim() == pid)
        {
            let _ = fs::write(parent.join("cgroup.procs"), &pid);
        }
        for _ in 0..50 {
            match fs::remove_dir(&dir.path) {
                Ok(()) => break,
                Err(e) if e.kind() == ErrorKind::NotFound => break,
                Err(_) => {
                    kill_all(&dir.path);
                    std::thread::sleep(std::time::Duration::from_millis(10));
                }
            }
        }
        if dir.path.exists() {
            failures.push(format!(
                "cgroup `{}` could not be removed",
                dir.path.display()
            ));
        }
    }
    failures
}

fn kill_all(dir: &Path) {
    let procs = fs::read_to_string(dir.join("cgroup.procs")).unwrap_or_default();
    let own = std::process::id();
    for pid in procs.lines().filter_map(|p| p.trim().parse::<i32>().ok()) {
        if pid as u32 != own {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_are_read_by_key() {
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 2\n";
        assert_eq!(counter(text, "oom_kill"), 2);
        assert_eq!(counter(text, "under_oom"), 0);
        assert_eq!(counter("max 0\n", "max"), 0);
        assert_eq!(counter("max 7\n", "max"), 7);
    }

    #[test]
    fn v1_directory_is_found_by_controller() {
        let own = "9:name=systemd:/\n8:pids:/a\n4:memory:/process_api/x\n0::/\n";
        let err = v1_dir(own, "hugetlb").unwrap_err();
        assert!(err.contains("no hugetlb cgroup"), "{err}");
    }

    #[test]
    fn v1_plan_names_limits_in_both_hierarchies() {
        let layout = Layout::V1 {
            memory: "/m".into(),
            pids: "/p".into(),
            swap_accounting: false,
        };
        let plan = layout.plan("abc", 1000, 7);
        assert_eq!(plan.len(), 2);
        assert_eq!(plan[0].path, Path::new("/m/mcpguard-sandbox-abc"));
        assert_eq!(
            plan[0].settings,
            vec![("memory.limit_in_bytes".to_string(), "1000".to_string())]
        );
        assert_eq!(
            plan[1].settings,
            vec![("pids.max".to_string(), "7".to_string())]
        );
    }
}
