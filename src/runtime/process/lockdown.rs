//! What a worker process does to itself once it is set up, before its
//! first task: its resource limits (and the permissions it locks itself
//! down to).

/// Sets the pool's resource limits on this process. CPU time gets a hard
/// limit one second above the soft one: `SIGXCPU` at the soft limit says
/// why the worker stops (the kernel kills at the hard one).
pub(super) fn set_limits(limits: super::handover::Limits) -> Result<(), String> {
    use rustix::process::{setrlimit, Resource, Rlimit};
    let set = |resource, name: &str, soft: u64, hard: u64| {
        setrlimit(
            resource,
            Rlimit {
                current: Some(soft),
                maximum: Some(hard),
            },
        )
        .map_err(|e| format!("could not set its {name} limit to {soft}: {e}"))
    };
    if let Some(bytes) = limits.memory {
        set(Resource::As, "memory", bytes, bytes)?;
    }
    if let Some(seconds) = limits.cpu_seconds {
        set(
            Resource::Cpu,
            "CPU time",
            seconds,
            seconds.saturating_add(1),
        )?;
    }
    if let Some(count) = limits.open_files {
        set(Resource::Nofile, "open files", count, count)?;
    }
    Ok(())
}

/// Files every strict worker may read: what a program needs to run
/// (shared libraries, their configuration, time zone and locale data, the
/// devices a runtime opens) and its own process's view of itself.
const SYSTEM_READ: &[&str] = &[
    "/usr",
    "/lib",
    "/lib64",
    "/lib32",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/dev/null",
    "/dev/zero",
    "/dev/urandom",
    "/dev/random",
    "/proc/self",
    "/sys/devices/system/cpu",
];

/// Files every strict worker may write: the null device.
const SYSTEM_WRITE: &[&str] = &["/dev/null"];

/// Locks this process down to `sandbox`: Landlock for the file system and
/// TCP, then a seccomp filter for everything else (see `Permissions`).
/// Fails when the kernel cannot enforce it all, unless best effort was
/// asked for.
pub(super) fn lock_down(sandbox: &super::handover::Sandbox) -> Result<(), String> {
    landlock(sandbox)?;
    seccomp(sandbox)
}

fn landlock(sandbox: &super::handover::Sandbox) -> Result<(), String> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, Ruleset,
        RulesetAttr, RulesetCreatedAttr, RulesetStatus, ABI,
    };
    // V4 is the first with TCP rules.
    let abi = ABI::V4;
    let level = if sandbox.best_effort {
        CompatLevel::BestEffort
    } else {
        CompatLevel::HardRequirement
    };
    let exe = std::env::current_exe().map_err(|e| format!("cannot find its executable: {e}"))?;
    let read: Vec<std::path::PathBuf> = SYSTEM_READ
        .iter()
        .map(std::path::PathBuf::from)
        .chain(std::iter::once(exe))
        .chain(sandbox.read.iter().cloned())
        .collect();
    let write: Vec<std::path::PathBuf> = SYSTEM_WRITE
        .iter()
        .map(std::path::PathBuf::from)
        .chain(sandbox.write.iter().cloned())
        .collect();
    let why = |e: landlock::RulesetError| {
        format!("Landlock cannot enforce the permissions here: {e} (a kernel with Landlock ABI 4, Linux 6.7, is needed; or use Permissions::best_effort)")
    };
    let mut ruleset = Ruleset::default()
        .set_compatibility(level)
        .handle_access(AccessFs::from_all(abi))
        .map_err(why)?;
    if !sandbox.net {
        ruleset = ruleset
            .handle_access(AccessNet::from_all(abi))
            .map_err(why)?;
    }
    let status = ruleset
        .create()
        .map_err(why)?
        .add_rules(path_beneath_rules(&read, AccessFs::from_read(abi)))
        .map_err(why)?
        .add_rules(path_beneath_rules(&write, AccessFs::from_all(abi)))
        .map_err(why)?
        .restrict_self()
        .map_err(why)?;
    if status.ruleset != RulesetStatus::FullyEnforced && !sandbox.best_effort {
        return Err(format!(
            "Landlock enforces the permissions only partly here ({:?})",
            status.ruleset
        ));
    }
    Ok(())
}

/// The system calls a strict worker may not make, with why; each fails
/// with `EPERM`. Everything else is allowed: a task may use any other
/// part of the system its files allow.
fn denied(sandbox: &super::handover::Sandbox) -> Vec<(i64, &'static str)> {
    let mut calls = vec![
        (
            libc::SYS_ptrace,
            "tracing another process reads and writes its memory",
        ),
        (libc::SYS_process_vm_readv, "reads another process's memory"),
        (
            libc::SYS_process_vm_writev,
            "writes another process's memory",
        ),
        (
            libc::SYS_tkill,
            "signals a thread of any process (tgkill names the process)",
        ),
        (libc::SYS_pidfd_send_signal, "signals another process"),
        (
            libc::SYS_pidfd_getfd,
            "takes a descriptor from another process",
        ),
        (libc::SYS_mount, "changes the file system view"),
        (libc::SYS_umount2, "changes the file system view"),
        (libc::SYS_pivot_root, "changes the file system view"),
        (libc::SYS_unshare, "makes new namespaces"),
        (libc::SYS_setns, "enters other namespaces"),
        (libc::SYS_bpf, "loads kernel programs"),
        (
            libc::SYS_perf_event_open,
            "observes other processes and the kernel",
        ),
        (libc::SYS_io_uring_setup, "would run I/O past this filter"),
        (libc::SYS_userfaultfd, "a common kernel exploit primitive"),
        (libc::SYS_keyctl, "reaches kernel keyrings"),
        (libc::SYS_add_key, "reaches kernel keyrings"),
        (libc::SYS_request_key, "reaches kernel keyrings"),
        (libc::SYS_kexec_load, "replaces the kernel"),
        (libc::SYS_init_module, "loads kernel modules"),
        (libc::SYS_finit_module, "loads kernel modules"),
        (libc::SYS_delete_module, "unloads kernel modules"),
        (libc::SYS_reboot, "reboots the machine"),
        (libc::SYS_swapon, "changes swap"),
        (libc::SYS_swapoff, "changes swap"),
    ];
    if !sandbox.exec {
        calls.push((libc::SYS_execve, "runs another program"));
        calls.push((libc::SYS_execveat, "runs another program"));
    }
    calls
}

fn seccomp(sandbox: &super::handover::Sandbox) -> Result<(), String> {
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    fn fail(e: impl std::fmt::Display) -> String {
        format!("cannot build its seccomp filter: {e}")
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(fail)?;
    let mut rules: std::collections::BTreeMap<i64, Vec<SeccompRule>> = denied(sandbox)
        .into_iter()
        .map(|(call, _why)| (call, Vec::new()))
        .collect();
    let when = |arg, op, value| {
        SeccompCondition::new(arg, SeccompCmpArgLen::Dword, op, value)
            .and_then(|c| SeccompRule::new(vec![c]))
            .map_err(fail)
    };
    if !sandbox.net {
        // Sockets of every family but AF_UNIX (the runtime's own).
        rules.insert(
            libc::SYS_socket,
            vec![when(0, SeccompCmpOp::Ne, libc::AF_UNIX as u64)?],
        );
    }
    // Signals to another process (its own, `abort` and `raise` included,
    // still go). A pid of 0 or below names a process group.
    let me = u64::from(std::process::id());
    rules.insert(libc::SYS_kill, vec![when(0, SeccompCmpOp::Ne, me)?]);
    rules.insert(libc::SYS_tgkill, vec![when(0, SeccompCmpOp::Ne, me)?]);
    let filter = SeccompFilter::new(
        rules,
        SeccompAction::Allow,
        SeccompAction::Errno(libc::EPERM as u32),
        arch,
    )
    .map_err(fail)?;
    let program: BpfProgram = filter.try_into().map_err(fail)?;
    // Every thread (the heartbeat's too), and `no_new_privs` first.
    seccompiler::apply_filter_all_threads(&program)
        .map_err(|e| format!("cannot apply its seccomp filter: {e}"))
}
