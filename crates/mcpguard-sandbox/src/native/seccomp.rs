//! The seccomp filters every native sandbox runs under. A deny list (the program keeps
//! the ordinary system calls it needs) of calls that reach the kernel's most exposed
//! surfaces or could undo the sandbox: mounting, namespaces, tracing other processes,
//! BPF, keyrings, loading kernel code, io_uring, clocks, swap, reboot, and the terminal
//! ioctls that inject input (TIOCSTI, TIOCLINUX). They fail with
//! `EPERM`. `clone3` fails with `ENOSYS` (its flags cannot be inspected, and C libraries
//! then fall back to `clone`, whose namespace flags are refused).

use std::collections::BTreeMap;

use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

/// The compiled filters, applied in order.
pub(crate) struct Filters {
    programs: Vec<BpfProgram>,
}

/// System calls refused outright.
const DENIED: &[(&str, libc::c_long)] = &[
    ("mount", libc::SYS_mount),
    ("umount2", libc::SYS_umount2),
    ("pivot_root", libc::SYS_pivot_root),
    ("chroot", libc::SYS_chroot),
    ("unshare", libc::SYS_unshare),
    ("setns", libc::SYS_setns),
    ("ptrace", libc::SYS_ptrace),
    ("process_vm_readv", libc::SYS_process_vm_readv),
    ("process_vm_writev", libc::SYS_process_vm_writev),
    ("bpf", libc::SYS_bpf),
    ("perf_event_open", libc::SYS_perf_event_open),
    ("keyctl", libc::SYS_keyctl),
    ("add_key", libc::SYS_add_key),
    ("request_key", libc::SYS_request_key),
    ("kexec_load", libc::SYS_kexec_load),
    ("kexec_file_load", libc::SYS_kexec_file_load),
    ("init_module", libc::SYS_init_module),
    ("finit_module", libc::SYS_finit_module),
    ("delete_module", libc::SYS_delete_module),
    ("swapon", libc::SYS_swapon),
    ("swapoff", libc::SYS_swapoff),
    ("reboot", libc::SYS_reboot),
    ("syslog", libc::SYS_syslog),
    ("acct", libc::SYS_acct),
    ("settimeofday", libc::SYS_settimeofday),
    ("clock_settime", libc::SYS_clock_settime),
    ("clock_adjtime", libc::SYS_clock_adjtime),
    ("adjtimex", libc::SYS_adjtimex),
    ("quotactl", libc::SYS_quotactl),
    ("open_by_handle_at", libc::SYS_open_by_handle_at),
    ("name_to_handle_at", libc::SYS_name_to_handle_at),
    ("fanotify_init", libc::SYS_fanotify_init),
    ("userfaultfd", libc::SYS_userfaultfd),
    ("io_uring_setup", libc::SYS_io_uring_setup),
    ("io_uring_enter", libc::SYS_io_uring_enter),
    ("io_uring_register", libc::SYS_io_uring_register),
    ("open_tree", libc::SYS_open_tree),
    ("move_mount", libc::SYS_move_mount),
    ("fsopen", libc::SYS_fsopen),
    ("fsconfig", libc::SYS_fsconfig),
    ("fsmount", libc::SYS_fsmount),
    ("fspick", libc::SYS_fspick),
    ("mount_setattr", libc::SYS_mount_setattr),
    ("vhangup", libc::SYS_vhangup),
    #[cfg(target_arch = "x86_64")]
    ("iopl", libc::SYS_iopl),
    #[cfg(target_arch = "x86_64")]
    ("ioperm", libc::SYS_ioperm),
    #[cfg(target_arch = "x86_64")]
    ("uselib", libc::SYS_uselib),
];

/// Namespace flags `clone` may not carry.
const NAMESPACE_FLAGS: [libc::c_int; 7] = [
    libc::CLONE_NEWUSER,
    libc::CLONE_NEWNS,
    libc::CLONE_NEWPID,
    libc::CLONE_NEWNET,
    libc::CLONE_NEWIPC,
    libc::CLONE_NEWUTS,
    libc::CLONE_NEWCGROUP,
];

/// Compiles the filters (in the helper, before any namespace exists).
pub(crate) fn build() -> Result<Filters, String> {
    let arch: TargetArch = std::env::consts::ARCH
        .try_into()
        .map_err(|e| format!("seccomp does not support this architecture: {e:?}"))?;
    let mut denied: BTreeMap<i64, Vec<SeccompRule>> = DENIED
        .iter()
        .map(|(_, number)| (*number, Vec::new()))
        .collect();
    let clone_rules = NAMESPACE_FLAGS
        .iter()
        .map(|flag| {
            let condition = SeccompCondition::new(
                0,
                SeccompCmpArgLen::Qword,
                SeccompCmpOp::MaskedEq(*flag as u64),
                *flag as u64,
            )
            .map_err(|e| format!("seccomp condition: {e}"))?;
            SeccompRule::new(vec![condition]).map_err(|e| format!("seccomp rule: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    denied.insert(libc::SYS_clone, clone_rules);
    // Injecting input into a terminal (TIOCSTI) or poking the console (TIOCLINUX).
    let ioctl_rules: Vec<SeccompRule> = [libc::TIOCSTI, libc::TIOCLINUX]
        .iter()
        .map(|request| {
            let condition =
                SeccompCondition::new(1, SeccompCmpArgLen::Dword, SeccompCmpOp::Eq, *request)
                    .map_err(|e| format!("seccomp condition: {e}"))?;
            SeccompRule::new(vec![condition]).map_err(|e| format!("seccomp rule: {e}"))
        })
        .collect::<Result<Vec<_>, String>>()?;
    denied.insert(libc::SYS_ioctl, ioctl_rules);
    let eperm = SeccompFilter::new(
        denied,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    let enosys = SeccompFilter::new(
        BTreeMap::from([(libc::SYS_clone3, Vec::new())]),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
        arch,
    )
    .map_err(|e| format!("seccomp filter: {e}"))?;
    let programs = [eperm, enosys]
        .into_iter()
        .map(|filter| BpfProgram::try_from(filter).map_err(|e| format!("seccomp compile: {e}")))
        .collect::<Result<_, _>>()?;
    Ok(Filters { programs })
}

impl Filters {
    /// Installs the filters on the calling thread (no new privileges must be set).
    pub(crate) fn apply(&self) -> Result<(), String> {
        for program in &self.programs {
            seccompiler::apply_filter(program).map_err(|e| format!("seccomp: {e}"))?;
        }
        Ok(())
    }
}
