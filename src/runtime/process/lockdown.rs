//! What a worker process does to itself once it is set up, before its
//! first task: its resource limits (and the permissions it locks itself
//! down to).

use crate::runtime::permissions::Enforcement;

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

/// Locks this process down to `sandbox`: Landlock for the file system,
/// TCP, abstract `AF_UNIX` sockets and signals, then a seccomp allow-list
/// for the system calls (see `Permissions` and `syscalls`). Fails when
/// the kernel cannot enforce it all, unless best effort was asked for;
/// returns what is enforced.
pub(super) fn lock_down(sandbox: &super::handover::Sandbox) -> Result<Enforcement, String> {
    let mut enforced = landlock(sandbox)?;
    match seccomp(sandbox) {
        Ok(()) => enforced.syscalls = true,
        Err(e) if !sandbox.best_effort => return Err(e),
        Err(_) => {}
    }
    Ok(enforced)
}

fn landlock(sandbox: &super::handover::Sandbox) -> Result<Enforcement, String> {
    use landlock::{
        path_beneath_rules, Access, AccessFs, AccessNet, CompatLevel, Compatible, LandlockStatus,
        Ruleset, RulesetAttr, RulesetCreatedAttr, RulesetStatus, Scope, ABI,
    };
    // V4 is the first with TCP rules: required. V6 adds the scopes
    // (abstract AF_UNIX sockets, signals), which are taken where the
    // kernel has them.
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
        .set_compatibility(CompatLevel::BestEffort)
        .scope(Scope::AbstractUnixSocket | Scope::Signal)
        .map_err(why)?
        .create()
        .map_err(why)?
        .add_rules(path_beneath_rules(&read, AccessFs::from_read(abi)))
        .map_err(why)?
        .add_rules(path_beneath_rules(&write, AccessFs::from_all(abi)))
        .map_err(why)?
        .restrict_self()
        .map_err(why)?;
    let kernel = match status.landlock {
        LandlockStatus::Available { effective_abi, .. } => Some(effective_abi),
        _ => None,
    };
    let has = |wanted: ABI| status.ruleset != RulesetStatus::NotEnforced && kernel >= Some(wanted);
    let enforced = Enforcement {
        files: has(ABI::V4),
        tcp: has(ABI::V4) && !sandbox.net,
        scopes: has(ABI::V6),
        syscalls: false,
    };
    if !sandbox.best_effort && !enforced.files {
        return Err(format!(
            "Landlock enforces the permissions only partly here ({:?})",
            status.ruleset
        ));
    }
    Ok(enforced)
}

/// The seccomp allow-list (see `syscalls`), then a filter that answers
/// `clone3` with `ENOSYS`.
fn seccomp(sandbox: &super::handover::Sandbox) -> Result<(), String> {
    use super::syscalls::{allowed, Rule, CLONE3};
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen as Len, SeccompCmpOp as Op,
        SeccompCondition as Cond, SeccompFilter, SeccompRule, TargetArch,
    };
    fn fail(e: impl std::fmt::Display) -> String {
        format!("cannot build its seccomp filter: {e}")
    }
    let arch = TargetArch::try_from(std::env::consts::ARCH).map_err(fail)?;
    let rule = |conditions: Vec<(u8, Len, Op, u64)>| {
        conditions
            .into_iter()
            .map(|(arg, len, op, value)| Cond::new(arg, len, op, value))
            .collect::<Result<Vec<_>, _>>()
            .and_then(SeccompRule::new)
            .map_err(fail)
    };
    let mut rules = std::collections::BTreeMap::new();
    for call in allowed(sandbox.net, sandbox.exec, std::process::id()) {
        let when = match call.rule {
            Rule::Always => Vec::new(),
            Rule::ArgIs(arg, value) => vec![rule(vec![(arg, Len::Dword, Op::Eq, value)])?],
            Rule::ArgIsNull(arg) => vec![rule(vec![(arg, Len::Qword, Op::Eq, 0)])?],
            Rule::ArgIsZeroOr(arg, value) => vec![
                rule(vec![(arg, Len::Dword, Op::Eq, 0)])?,
                rule(vec![(arg, Len::Dword, Op::Eq, value)])?,
            ],
            Rule::ArgLacks(arg, bits) => {
                vec![rule(vec![(arg, Len::Dword, Op::MaskedEq(bits), 0)])?]
            }
            Rule::ArgIsNeither(arg, a, b) => vec![rule(vec![
                (arg, Len::Dword, Op::Ne, a),
                (arg, Len::Dword, Op::Ne, b),
            ])?],
        };
        rules.insert(call.nr, when);
    }
    // `clone3` passes this filter and is answered by the next one: the
    // one action of each is then certain, whatever the order the kernel
    // weighs equal actions in.
    rules.insert(CLONE3, Vec::new());
    let program = |rules, unmatched, matched| -> Result<BpfProgram, String> {
        SeccompFilter::new(rules, unmatched, matched, arch)
            .map_err(fail)?
            .try_into()
            .map_err(fail)
    };
    let allow_list = program(
        rules,
        SeccompAction::Errno(libc::EPERM as u32),
        SeccompAction::Allow,
    )?;
    let clone3 = program(
        std::iter::once((CLONE3, Vec::new())).collect(),
        SeccompAction::Allow,
        SeccompAction::Errno(libc::ENOSYS as u32),
    )?;
    // Every thread (the heartbeat's too), and `no_new_privs` first.
    for filter in [&allow_list, &clone3] {
        seccompiler::apply_filter_all_threads(filter)
            .map_err(|e| format!("cannot apply its seccomp filter: {e}"))?;
    }
    Ok(())
}
