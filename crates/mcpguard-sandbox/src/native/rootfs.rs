//! The sandbox's root: a fresh tmpfs holding read-only bind mounts of the system
//! directories and of the spec's mounts, the work directory (read-write), a private
//! `/tmp`, a minimal `/dev`, a new `/proc` and a synthesized `/etc/passwd`. Nothing else
//! of the host is visible: no `/root`, no `/home`, no `/etc/shadow`, no `/sys`.
//!
//! The init opens every mount source while it still has the helper's user (before it
//! becomes the sandbox's root), so that paths the sandbox's own user could not traverse
//! can still be shown, and bind-mounts them from `/proc/self/fd` once the host's `/tmp`
//! is hidden.

use std::fs;
use std::io::ErrorKind;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};

use nix::fcntl::{OFlag, open};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sys::stat::Mode;
use nix::sys::statvfs::{FsFlags, statvfs};

use super::wire::HelperSpec;
use crate::WORKDIR;

/// Where the new root is assembled (in the sandbox's own mount namespace, so the host's
/// `/tmp` is untouched). Sources are already open, so hiding the host's `/tmp` is fine.
const NEW_ROOT: &str = "/tmp";

/// The devices every sandbox gets.
const DEVICES: [&str; 5] = ["null", "zero", "full", "random", "urandom"];

/// What a mount shows.
pub(crate) enum Source {
    /// A directory, opened `O_PATH`.
    Dir(OwnedFd),
    /// A file, opened `O_PATH`.
    File(OwnedFd),
    /// A symbolic link, recreated as is (`/bin -> usr/bin` on merged-/usr systems).
    Symlink(PathBuf),
}

/// One mount, opened.
pub(crate) struct Prepared {
    /// The path inside.
    pub target: PathBuf,
    /// What to show there.
    pub source: Source,
    /// Read-write.
    pub writable: bool,
}

/// Opens every mount source of `spec` (in the init, before it changes its user).
pub(crate) fn prepare(spec: &HelperSpec) -> Result<Vec<Prepared>, String> {
    let mut prepared = Vec::new();
    let workdir = spec
        .workdir
        .iter()
        .map(|source| (source, Path::new(WORKDIR), true, false));
    let mounts = spec
        .mounts
        .iter()
        .map(|m| (&m.source, m.target.as_path(), m.writable, m.optional));
    // The work directory first: mounts beneath it (a repository under /work) go on top.
    for (source, target, writable, optional) in workdir.chain(mounts) {
        let meta = match fs::symlink_metadata(source) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound && optional => continue,
            Err(e) => {
                return Err(format!("mount source `{}`: {e}", source.display()));
            }
        };
        let source = if meta.is_symlink() && optional {
            let link = fs::read_link(source)
                .map_err(|e| format!("reading the link `{}`: {e}", source.display()))?;
            Source::Symlink(link)
        } else {
            let fd = open(source, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty())
                .map_err(|e| format!("opening mount source `{}`: {e}", source.display()))?;
            if fs::metadata(source).map(|m| m.is_dir()).unwrap_or(false) {
                Source::Dir(fd)
            } else {
                Source::File(fd)
            }
        };
        prepared.push(Prepared {
            target: target.to_path_buf(),
            source,
            writable,
        });
    }
    Ok(prepared)
}

fn inside(root: &Path, path: &Path) -> PathBuf {
    root.join(path.strip_prefix("/").unwrap_or(path))
}

fn mkdir_all(path: &Path) -> Result<(), String> {
    fs::create_dir_all(path).map_err(|e| format!("creating `{}`: {e}", path.display()))
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        mkdir_all(parent)?;
    }
    fs::write(path, text).map_err(|e| format!("writing `{}`: {e}", path.display()))
}

fn tmpfs(target: &Path, options: &str, extra: MsFlags) -> Result<(), String> {
    mkdir_all(target)?;
    mount(
        Some("tmpfs"),
        target,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | extra,
        Some(options),
    )
    .map_err(|e| format!("mounting a tmpfs at `{}`: {e}", target.display()))
}

/// Bind-mounts `fd` at `target`, then remounts it read-only (unless `writable`), nosuid
/// and (unless `device`) nodev, keeping the flags the kernel locks on the source mount.
fn bind(fd: &OwnedFd, target: &Path, writable: bool, device: bool) -> Result<(), String> {
    let source = format!("/proc/self/fd/{}", fd.as_raw_fd());
    mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND | MsFlags::MS_REC,
        None::<&str>,
    )
    .map_err(|e| format!("bind-mounting at `{}`: {e}", target.display()))?;
    let current = statvfs(target)
        .map_err(|e| format!("statvfs `{}`: {e}", target.display()))?
        .flags();
    let mut flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_NOSUID;
    for (has, keep) in [
        (FsFlags::ST_RDONLY, MsFlags::MS_RDONLY),
        (FsFlags::ST_NODEV, MsFlags::MS_NODEV),
        (FsFlags::ST_NOEXEC, MsFlags::MS_NOEXEC),
        (FsFlags::ST_NOATIME, MsFlags::MS_NOATIME),
        (FsFlags::ST_NODIRATIME, MsFlags::MS_NODIRATIME),
        (FsFlags::ST_RELATIME, MsFlags::MS_RELATIME),
    ] {
        if current.contains(has) {
            flags |= keep;
        }
    }
    if !writable {
        flags |= MsFlags::MS_RDONLY;
    }
    if !device {
        flags |= MsFlags::MS_NODEV;
    }
    mount(None::<&str>, target, None::<&str>, flags, None::<&str>)
        .map_err(|e| format!("remounting `{}` with {flags:?}: {e}", target.display()))?;
    // The remount changed the top mount only: file systems mounted beneath the host path
    // (a separate /usr/local, say) would keep their own flags. Make the whole tree
    // read-only, nosuid (and nodev) at once.
    let mut attributes = libc::MOUNT_ATTR_NOSUID;
    if !writable {
        attributes |= libc::MOUNT_ATTR_RDONLY;
    }
    if !device {
        attributes |= libc::MOUNT_ATTR_NODEV;
    }
    set_recursively(target, attributes)
}

/// `mount_setattr(2)` with `AT_RECURSIVE`: sets `attributes` on the mount at `target` and
/// every mount beneath it.
fn set_recursively(target: &Path, attributes: u64) -> Result<(), String> {
    let path = std::ffi::CString::new(target.as_os_str().as_encoded_bytes())
        .map_err(|_| format!("`{}` holds a NUL byte", target.display()))?;
    let attr = libc::mount_attr {
        attr_set: attributes,
        attr_clr: 0,
        propagation: 0,
        userns_fd: 0,
    };
    // SAFETY: mount_setattr(2) reads `path` (a live NUL-terminated string) and `attr` (a
    // live mount_attr whose size is passed) and writes no memory of ours.
    let result = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            libc::AT_FDCWD,
            path.as_ptr(),
            libc::AT_RECURSIVE,
            &attr as *const libc::mount_attr,
            std::mem::size_of::<libc::mount_attr>(),
        )
    };
    if result < 0 {
        return Err(format!(
            "making the mounts beneath `{}` read-only (mount_setattr, Linux 5.12 or later): {}",
            target.display(),
            std::io::Error::last_os_error()
        ));
    }
    Ok(())
}

/// Builds the root and moves into it (in the init, inside the new namespaces).
pub(crate) fn build(spec: &HelperSpec, prepared: &[Prepared]) -> Result<(), String> {
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None::<&str>,
    )
    .map_err(|e| format!("making the mounts private: {e}"))?;
    let root = Path::new(NEW_ROOT);
    tmpfs(root, "mode=0755,size=16m", MsFlags::empty())?;
    let sized = |mode: &str| format!("mode={mode},size={}", spec.limits.tmp_bytes.max(4096));
    if spec.workdir.is_none() {
        tmpfs(
            &inside(root, Path::new(WORKDIR)),
            &sized("0755"),
            MsFlags::empty(),
        )?;
    }
    tmpfs(&root.join("tmp"), &sized("1777"), MsFlags::empty())?;
    // Mounts go on top of the private /work and /tmp (a host directory under /tmp shows).
    for mount in prepared {
        let target = inside(root, &mount.target);
        match &mount.source {
            Source::Symlink(link) => {
                if let Some(parent) = target.parent() {
                    mkdir_all(parent)?;
                }
                std::os::unix::fs::symlink(link, &target)
                    .map_err(|e| format!("creating the link `{}`: {e}", target.display()))?;
            }
            Source::Dir(fd) => {
                mkdir_all(&target)?;
                bind(fd, &target, mount.writable, false)?;
            }
            Source::File(fd) => {
                write_file(&target, "")?;
                bind(fd, &target, mount.writable, false)?;
            }
        }
    }
    let proc = root.join("proc");
    mkdir_all(&proc)?;
    mount(
        Some("proc"),
        &proc,
        Some("proc"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        None::<&str>,
    )
    .map_err(|e| format!("mounting /proc: {e}"))?;
    build_dev(&root.join("dev"), spec)?;
    build_etc(&root.join("etc"))?;
    enter(root)
}

fn build_dev(dev: &Path, spec: &HelperSpec) -> Result<(), String> {
    tmpfs(dev, "mode=0755,size=64k", MsFlags::MS_NOEXEC)?;
    for name in DEVICES {
        let target = dev.join(name);
        write_file(&target, "")?;
        let host = open(
            Path::new("/dev").join(name).as_path(),
            OFlag::O_PATH | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| format!("opening /dev/{name}: {e}"))?;
        bind(&host, &target, true, true)?;
    }
    for (link, to) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ] {
        std::os::unix::fs::symlink(to, dev.join(link))
            .map_err(|e| format!("creating /dev/{link}: {e}"))?;
    }
    let shm = format!("mode=1777,size={}", spec.limits.tmp_bytes.max(4096));
    tmpfs(&dev.join("shm"), &shm, MsFlags::MS_NOEXEC)
}

fn build_etc(etc: &Path) -> Result<(), String> {
    for (name, text) in [
        (
            "passwd",
            "root:x:0:0:sandbox:/work:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n",
        ),
        ("group", "root:x:0:\nnogroup:x:65534:\n"),
        ("hostname", "mcpguard-sandbox\n"),
        (
            "hosts",
            "127.0.0.1 localhost mcpguard-sandbox\n::1 localhost\n",
        ),
    ] {
        let path = etc.join(name);
        if !path.exists() {
            write_file(&path, text)?;
        }
    }
    Ok(())
}

/// Makes `root` the root directory, drops the host's, and makes the root read-only.
fn enter(root: &Path) -> Result<(), String> {
    nix::unistd::chdir(root).map_err(|e| format!("chdir to the new root: {e}"))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detaching the host's root: {e}"))?;
    nix::unistd::chdir("/").map_err(|e| format!("chdir /: {e}"))?;
    mount(
        None::<&str>,
        "/",
        None::<&str>,
        MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV,
        None::<&str>,
    )
    .map_err(|e| format!("making the root read-only: {e}"))
}
