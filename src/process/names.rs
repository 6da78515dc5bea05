//! Names of POSIX shared memory objects (named mode), and the sweep that
//! removes objects left behind by a host that was killed.
//!
//! A name is `/knitting-<host pid>-<lane>-<counter>-<nonce>`. The worker
//! unlinks the name as soon as it has opened the object and the host
//! unlinks it again once the worker is ready, so a name lives only while a
//! worker starts. A host killed in that window leaves one behind; the next
//! named pool on the machine removes every `knitting-<pid>-*` object whose
//! pid no longer runs.

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
    format!("/{PREFIX}{}-{lane}-{n}-{nonce:08x}", std::process::id())
}

/// The host pid in an object name made by [`fresh`].
fn host_pid(file_name: &str) -> Option<i32> {
    file_name
        .strip_prefix(PREFIX)?
        .split('-')
        .next()?
        .parse()
        .ok()
}

/// Removes objects whose host is gone. Returns how many.
pub(crate) fn sweep_stale() -> usize {
    let Ok(entries) = std::fs::read_dir(SHM_DIR) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(pid) = host_pid(name) else { continue };
        if pid == std::process::id() as i32 || host_alive(pid) {
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
        .filter(|n| host_pid(n) == Some(pid as i32))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_carry_the_host_pid() {
        let name = fresh(3);
        assert!(name.starts_with('/'));
        assert_eq!(host_pid(&name[1..]), Some(std::process::id() as i32));
        assert_eq!(host_pid("knitting-x-1"), None);
        assert_eq!(host_pid("other-12-1"), None);
    }
}
