//! What this machine offers the backends that are not built yet (Firecracker and
//! microsandbox microVMs): whether their programs are installed and what kind of KVM the
//! kernel has, so `mcpguard sandbox-check` can say exactly why they cannot run here.

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
        Kvm::detect_at(Path::new("/dev/kvm"), Path::new("/sys/module"))
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

/// What `sandbox-check` says about a microVM backend: its programs and KVM.
pub fn microvm_notes(programs: &[&str], kvm: &Kvm) -> Vec<String> {
    let mut notes: Vec<String> = programs
        .iter()
        .map(|program| match on_path(program) {
            Some(path) => format!("`{program}` at {}", path.display()),
            None => format!("no `{program}` on PATH"),
        })
        .collect();
    notes.push(kvm.describe());
    notes
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
        let notes = microvm_notes(&["no-such-program-xyz"], &Kvm::Absent);
        assert_eq!(notes, ["no `no-such-program-xyz` on PATH", "no /dev/kvm"]);
    }
}
