//! Names of POSIX shared memory objects (named mode), and the sweep that
//! removes objects left behind by a host that was killed.
//!
//! A name is `/knitting-<host pid>-<pid namespace>-<lane>-<counter>-<nonce>`.
//! The worker unlinks the name as soon as it has opened the object and the
//! host unlinks it again once the worker is ready, so a name lives only
//! while a worker starts. A host killed in that window leaves one behind;
//! the next named pool on the machine removes every such object whose host
//! pid no longer runs. Only objects made in the sweeper's own pid namespace
//! are judged (the namespace is in the name): a host in another namespace
//! that shares `/dev/shm` (`docker --ipc=host`) has pids this one cannot
//! see, and its objects are left alone.

use std::sync::atomic::{AtomicU64, Ordering};

/// Where Linux shows POSIX shared memory objects.
const SHM_DIR: &str = "/dev/shm";
const PREFIX: &str = "knitting-";

/// A fresh object name for a worker of lane `lane`.
pub(crate) fn fresh(lane: usize) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    // Relaxed: only uniqueness matters.
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nonce = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    format!(
        "/{PREFIX}{}-{}-{lane}-{n}-{nonce:08x}",
        std::process::id(),
        pid_namespace()
    )
}

/// This process's pid namespace, as the inode number of
/// `/proc/self/ns/pid` (0 if unknown).
pub(crate) fn pid_namespace() -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self/ns/pid").map_or(0, |m| m.ino())
}

/// The host pid and pid namespace in an object name made by [`fresh`].
fn owner(file_name: &str) -> Option<(i32, u64)> {
    let mut fields = file_name.strip_prefix(PREFIX)?.split('-');
    let pid = fields.next()?.parse().ok()?;
    let ns = fields.next()?.parse().ok()?;
    Some((pid, ns))
}

/// Removes objects whose host is gone. Returns how many.
pub(crate) fn sweep_stale() -> usize {
    let Ok(entries) = std::fs::read_dir(SHM_DIR) else {
        return 0;
    };
    let mut removed = 0;
    let ours = pid_namespace();
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((pid, ns)) = owner(name) else {
            continue;
        };
        if ns != ours || ours == 0 || pid == std::process::id() as i32 || host_alive(pid) {
            continue;
        }
        if rustix::shm::unlink(format!("/{name}").as_str()).is_ok() {
            removed += 1;
        }
    }
    removed
}

fn host_alive(pid: i32) -> bool {
    let Some(pid) = rustix::process::Pid::from_raw(pid) else {
        return false;
    };
    // ESRCH: no such process. EPERM: it exists (another user's).
    !matches!(
        rustix::process::test_kill_process(pid),
        Err(rustix::io::Errno::SRCH)
    )
}

/// Objects of this process's pools that exist right now (for tests and
/// diagnostics).
pub(crate) fn of_pid(pid: u32) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(SHM_DIR) else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| owner(n).is_some_and(|(p, _)| p == pid as i32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_host_pid() {
        let name = fresh(3);
        assert!(name.starts_with('/'));
        assert_eq!(
            owner(&name[1..]),
            Some((std::process::id() as i32, pid_namespace()))
        );
        assert_eq!(owner("knitting-x-1"), None);
        assert_eq!(owner("knitting-12"), None);
        assert_eq!(owner("other-12-1"), None);
    }
}
