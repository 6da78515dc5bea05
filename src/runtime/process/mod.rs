//! The process runtime: the same calls, run in child processes that share
//! one mapping each with the host. Linux only; elsewhere [`Runtime`] has
//! no value and building one fails with a clear error.
//!
//! - `shm`: the mapping's layout and the raw byte access (the unsafe part);
//! - `bell`: the doorbell protocol (who sleeps, who rings), shared with
//!   the loom models;
//! - `futex`: shared (cross-process) futex waits and wakes;
//! - `arena`: where the next payload goes in a circular arena, and the
//!   check that a peer's unread payloads do not overlap;
//! - `channel`: the slot ring of requests and of responses, one producer
//!   and one consumer each, written once for host and worker;
//! - `check`: the host's checks of worker-written words (pure functions);
//! - `courier`: shared buffers' descriptors, sent to a worker over its socket;
//! - `handover`: what a worker is told on its command line;
//! - `link`: the host's side of one worker's mapping (send, take);
//! - `host`: a process lane: its reactor, the rule for a worker that goes,
//!   the liveness rule;
//! - `spawn`: starting, watching and stopping worker processes;
//! - `runtime`: the lanes of one pool, started and stopped together;
//! - `stream`: stream items, worker to host, and the credit that bounds them;
//! - `worker`: the worker process's loop;
//! - `names`: named shared-memory objects and their clean-up.

#[cfg(target_os = "linux")]
pub(crate) mod arena;
#[cfg(target_os = "linux")]
pub(crate) mod bell;
#[cfg(target_os = "linux")]
pub(crate) mod channel;
#[cfg(target_os = "linux")]
pub(crate) mod check;
#[cfg(target_os = "linux")]
pub(crate) mod courier;
#[cfg(target_os = "linux")]
pub(crate) mod forward;
#[cfg(target_os = "linux")]
pub(crate) mod futex;
#[cfg(all(
    target_os = "linux",
    not(knitting_loom),
    any(test, feature = "fuzzing")
))]
#[cfg_attr(not(feature = "fuzzing"), allow(unreachable_pub))]
pub mod fuzz;
#[cfg(target_os = "linux")]
pub(crate) mod handover;
#[cfg(target_os = "linux")]
pub(crate) mod host;
#[cfg(target_os = "linux")]
pub(crate) mod link;
#[cfg(target_os = "linux")]
pub(crate) mod lockdown;
#[cfg(target_os = "linux")]
pub(crate) mod names;
#[cfg(target_os = "linux")]
pub(crate) mod stream;
#[cfg(target_os = "linux")]
pub(crate) mod syscalls;
#[cfg(target_os = "linux")]
mod runtime;
#[cfg(target_os = "linux")]
pub(crate) mod shm;
#[cfg(target_os = "linux")]
pub(crate) mod spawn;
#[cfg(not(target_os = "linux"))]
mod unsupported;
#[cfg(target_os = "linux")]
pub(crate) mod worker;

use std::{ffi::OsString, path::PathBuf, time::Duration};

#[cfg(target_os = "linux")]
pub(crate) use self::runtime::Runtime;
#[cfg(not(target_os = "linux"))]
pub(crate) use self::unsupported::Runtime;

/// What a process runtime is built from (see
/// [`ProcessPoolBuilder`](crate::ProcessPoolBuilder) for each option).
#[derive(Clone, Debug)]
pub(crate) struct Options {
    pub(crate) processes: usize,
    pub(crate) exe: Option<PathBuf>,
    pub(crate) prefix: Vec<OsString>,
    pub(crate) named: bool,
    pub(crate) slots: usize,
    pub(crate) arena: usize,
    pub(crate) max_payload: Option<usize>,
    pub(crate) spin: Duration,
    pub(crate) start_timeout: Duration,
    pub(crate) hard_timeout: Option<Duration>,
    pub(crate) liveness: Duration,
    /// Per-worker resource limits (`setrlimit`).
    pub(crate) limits: crate::runtime::limits::ResourceLimits,
    pub(crate) boot: Option<crate::task::bootstrap::Boot>,
    /// What the workers' tasks may do.
    pub(crate) permissions: crate::runtime::permissions::Permissions,
    pub(crate) diagnostics: crate::Diagnostics,
    /// Async calls each worker runs at once, at most.
    pub(crate) async_concurrency: usize,
    /// Stream items a worker may send ahead of its reader.
    pub(crate) stream_bound: usize,
}

/// In a process started as a worker: serves calls and exits, never
/// returns. Elsewhere: returns at once.
pub(crate) fn enter_if_worker() {
    #[cfg(target_os = "linux")]
    worker::enter_if_worker();
}

/// The names of this process's POSIX shared memory objects that exist now
/// (named mode), for leak checks in tests.
#[doc(hidden)]
pub fn shared_memory_objects_of(pid: u32) -> Vec<String> {
    #[cfg(target_os = "linux")]
    return names::of_pid(pid);
    #[cfg(not(target_os = "linux"))]
    {
        let _ = pid;
        Vec::new()
    }
}
