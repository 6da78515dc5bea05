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
