//! The jailer's command line (Firecracker's `docs/jailer.md`): it makes a chroot at
//! `<chroot-base-dir>/<exec-file name>/<id>/root`, puts the VMM in cgroups, a new PID
//! namespace (and optionally a network namespace), drops to `uid:gid` and execs the VMM
//! with the arguments after `--`. Paths given to the VMM's API are then inside the
//! chroot.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Which cgroup hierarchy the jailer writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    /// Per-controller hierarchies (`memory.limit_in_bytes`, `pids.max`).
    V1,
    /// The unified hierarchy (`memory.max`, `pids.max`).
    V2,
}

/// Everything the jailer is told.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jailer {
    /// The jailer program.
    pub program: PathBuf,
    /// The VM's id (letters, digits and `-`, at most 64).
    pub id: String,
    /// The Firecracker binary it execs (its file name must contain `firecracker`).
    pub exec_file: PathBuf,
    /// The user the VMM runs as.
    pub uid: u32,
    /// The group the VMM runs as.
    pub gid: u32,
    /// Where chroots are made.
    pub chroot_base_dir: PathBuf,
    /// The cgroup hierarchy.
    pub cgroup_version: CgroupVersion,
    /// The VM's memory limit for its cgroup (guest memory plus the VMM's overhead).
    pub memory_limit_bytes: u64,
    /// The most threads the VMM may have.
    pub pids_limit: u32,
    /// A network namespace to join (none: the VMM has no network to offer anyway).
    pub netns: Option<PathBuf>,
}

/// The API socket's path inside the chroot.
pub const API_SOCKET: &str = "/run/firecracker.socket";

impl Jailer {
    /// Whether `id` is one the jailer accepts.
    pub fn valid_id(id: &str) -> bool {
        !id.is_empty()
            && id.len() <= 64
            && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    }

    /// The exec file's name (the chroot's middle component).
    fn exec_name(&self) -> String {
        self.exec_file.file_name().map_or_else(
            || "firecracker".into(),
            |n| n.to_string_lossy().into_owned(),
        )
    }

    /// The jail's directory: `<base>/<exec name>/<id>`; it is removed after the run.
    pub fn jail_dir(&self) -> PathBuf {
        self.chroot_base_dir.join(self.exec_name()).join(&self.id)
    }

    /// The chroot: `<jail dir>/root`.
    pub fn chroot(&self) -> PathBuf {
        self.jail_dir().join("root")
    }

    /// A path inside the chroot, as the host sees it.
    pub fn host_path(&self, inside: &str) -> PathBuf {
        self.chroot().join(inside.trim_start_matches('/'))
    }

    /// The file where the jailer leaves the VMM's PID (it forks into a new PID
    /// namespace, so its own child is not the VMM).
    pub fn pid_file(&self) -> PathBuf {
        self.chroot().join(format!("{}.pid", self.exec_name()))
    }

    /// The cgroups the jailer makes for this VM (to remove after it).
    pub fn cgroup_dirs(&self, root: &Path) -> Vec<PathBuf> {
        let name = self.exec_name();
        match self.cgroup_version {
            CgroupVersion::V1 => ["memory", "pids"]
                .iter()
                .map(|controller| root.join(controller).join(&name).join(&self.id))
                .collect(),
            CgroupVersion::V2 => vec![root.join(&name).join(&self.id)],
        }
    }

    /// The jailer's arguments, then `--` and Firecracker's own.
    pub fn args(&self) -> Vec<OsString> {
        let (version, memory_file) = match self.cgroup_version {
            CgroupVersion::V1 => ("1", "memory.limit_in_bytes"),
            CgroupVersion::V2 => ("2", "memory.max"),
        };
        let mut args: Vec<OsString> = vec![
            "--id".into(),
            self.id.clone().into(),
            "--exec-file".into(),
            self.exec_file.clone().into(),
            "--uid".into(),
            self.uid.to_string().into(),
            "--gid".into(),
            self.gid.to_string().into(),
            "--chroot-base-dir".into(),
            self.chroot_base_dir.clone().into(),
            "--cgroup-version".into(),
            version.into(),
            "--cgroup".into(),
            format!("{memory_file}={}", self.memory_limit_bytes).into(),
            "--cgroup".into(),
            format!("pids.max={}", self.pids_limit).into(),
            "--resource-limit".into(),
            "no-file=1024".into(),
            "--new-pid-ns".into(),
        ];
        if let Some(netns) = &self.netns {
            args.push("--netns".into());
            args.push(netns.clone().into());
        }
        args.extend([
            "--".into(),
            "--api-sock".into(),
            API_SOCKET.into(),
            "--id".into(),
            self.id.clone().into(),
        ]);
        args
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jailer(version: CgroupVersion) -> Jailer {
        Jailer {
            program: "/usr/bin/jailer".into(),
            id: "0b9d5c1e-run".into(),
            exec_file: "/usr/bin/firecracker".into(),
            uid: 65534,
            gid: 65534,
            chroot_base_dir: "/srv/jailer".into(),
            cgroup_version: version,
            memory_limit_bytes: 300 << 20,
            pids_limit: 32,
            netns: None,
        }
    }

    #[test]
    fn the_command_line_follows_the_jailer_documentation() {
        let args: Vec<String> = jailer(CgroupVersion::V1)
            .args()
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args.join(" "),
            "--id 0b9d5c1e-run --exec-file /usr/bin/firecracker --uid 65534 --gid 65534 \
             --chroot-base-dir /srv/jailer --cgroup-version 1 \
             --cgroup memory.limit_in_bytes=314572800 --cgroup pids.max=32 \
             --resource-limit no-file=1024 --new-pid-ns \
             -- --api-sock /run/firecracker.socket --id 0b9d5c1e-run"
        );
        let v2: Vec<String> = Jailer {
            netns: Some("/var/run/netns/vm".into()),
            ..jailer(CgroupVersion::V2)
        }
        .args()
        .into_iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
        assert!(
            v2.join(" ")
                .contains("--cgroup-version 2 --cgroup memory.max=314572800")
        );
        assert!(v2.join(" ").contains("--netns /var/run/netns/vm --"));
    }

    #[test]
    fn paths_inside_the_jail_are_where_the_jailer_puts_them() {
        let j = jailer(CgroupVersion::V1);
        assert_eq!(
            j.chroot(),
            Path::new("/srv/jailer/firecracker/0b9d5c1e-run/root")
        );
        assert_eq!(
            j.host_path(API_SOCKET),
            Path::new("/srv/jailer/firecracker/0b9d5c1e-run/root/run/firecracker.socket")
        );
        assert_eq!(
            j.pid_file(),
            Path::new("/srv/jailer/firecracker/0b9d5c1e-run/root/firecracker.pid")
        );
        assert_eq!(
            j.cgroup_dirs(Path::new("/sys/fs/cgroup")),
            [
                Path::new("/sys/fs/cgroup/memory/firecracker/0b9d5c1e-run"),
                Path::new("/sys/fs/cgroup/pids/firecracker/0b9d5c1e-run")
            ]
        );
        assert!(Jailer::valid_id("abc-123"));
        assert!(!Jailer::valid_id("a/b"));
        assert!(!Jailer::valid_id(&"a".repeat(65)));
        assert!(!Jailer::valid_id(""));
    }
}
