//! What this machine offers the microVM backends (Firecracker and microsandbox): whether
//! their programs are installed and what kind of KVM the kernel has, so they can say
//! exactly why they cannot run here.

use std::path::{Path, PathBuf};

/// A program on `PATH`, if it is there.
pub fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|dir| dir.join(name))
            .find(|candidate| candidate.is_file())
    })
}

/// What the kernel's KVM is: absent, not accessible, software (PVM), or hardware.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kvm {
    /// No `/dev/kvm`.
    Absent,
    /// `/dev/kvm` exists but cannot be opened for reading and writing.
    Inaccessible(String),
    /// KVM by PVM (`kvm_pvm`): guests run, but stock guest kernels run far slower.
    Pvm,
    /// KVM on hardware virtualisation.
    Hardware,
}

impl Kvm {
    /// Finds out, from `/dev/kvm` and `/sys/module`.
    pub fn detect() -> Kvm {
        Kvm::detect_device(Path::new("/dev/kvm"))
    }

    /// Finds out for `device` (normally `/dev/kvm`).
    pub fn detect_device(device: &Path) -> Kvm {
        Kvm::detect_at(device, Path::new("/sys/module"))
    }

    fn detect_at(device: &Path, modules: &Path) -> Kvm {
        if !device.exists() {
            return Kvm::Absent;
        }
        if let Err(e) = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(device)
        {
            return Kvm::Inaccessible(e.to_string());
        }
        if modules.join("kvm_pvm").exists() {
            Kvm::Pvm
        } else {
            Kvm::Hardware
        }
    }

    /// One line for `sandbox-check`.
    pub fn describe(&self) -> String {
        match self {
            Kvm::Absent => "no /dev/kvm".into(),
            Kvm::Inaccessible(e) => format!("/dev/kvm cannot be opened ({e})"),
            Kvm::Pvm => "/dev/kvm is PVM (software; stock guest kernels run ~1500x slower)".into(),
            Kvm::Hardware => "/dev/kvm (hardware virtualisation)".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kvm_kinds_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let device = dir.path().join("kvm");
        let modules = dir.path().join("module");
        std::fs::create_dir(&modules).unwrap();
        assert_eq!(Kvm::detect_at(&device, &modules), Kvm::Absent);
        std::fs::write(&device, "").unwrap();
        assert_eq!(Kvm::detect_at(&device, &modules), Kvm::Hardware);
        std::fs::create_dir(modules.join("kvm_pvm")).unwrap();
        assert_eq!(Kvm::detect_at(&device, &modules), Kvm::Pvm);
        assert!(Kvm::Pvm.describe().contains("PVM"));
    }

    #[test]
    fn programs_are_found_on_path() {
        assert!(on_path("sh").is_some());
        assert!(on_path("no-such-program-xyz").is_none());
    }
}
