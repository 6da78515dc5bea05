//! [`ResourceLimits`]: what each worker process may use.

use std::time::Duration;

/// Resource limits of each worker process of a pool (`setrlimit`): its
/// address space, its CPU time and its open files. Each worker sets them
/// on itself once it is set up, before its first task, so they bound task
/// code and not the runtime's start-up; a replacement worker starts with
/// fresh ones.
///
/// A worker past a limit is replaced like any crashed worker, and the call
/// it was running fails with a [`WorkerDied`](crate::ErrorKind::WorkerDied)
/// error that names the limit where the way the worker died points to it:
///
/// - **memory**: an allocation past the limit fails, and a Rust program
///   aborts on a failed allocation (`SIGABRT`). The worker's lane mapping
///   counts too: about `2 × arena_bytes` (see [`ProcessPool`](crate::ProcessPool)'s
///   memory section), so leave room above it.
/// - **CPU time**: counted over the worker's whole life, not per call; the
///   kernel sends `SIGXCPU` when it runs out. It bounds a worker's total
///   work (a replacement starts at zero); for one call's time use
///   [`hard_timeout`](crate::ProcessPoolBuilder::hard_timeout).
/// - **open files**: opening more fails with an error the task sees
///   (`EMFILE`); the worker goes on.
///
/// Thread workers share the host's process and its limits: these apply to
/// process pools only.
///
/// ```no_run
/// use std::time::Duration;
/// use knitting::ResourceLimits;
///
/// knitting::init();
/// let pool = knitting::Pool::builder()
///     .processes(2)
///     .arena_bytes(4 << 20)
///     .limits(
///         ResourceLimits::new()
///             .memory(512 << 20)
///             .cpu_time(Duration::from_secs(60))
///             .open_files(64),
///     )
///     .build()?;
/// # Ok::<(), knitting::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ResourceLimits {
    pub(crate) memory: Option<u64>,
    pub(crate) cpu_time: Option<Duration>,
    pub(crate) open_files: Option<u64>,
}

impl ResourceLimits {
    /// No limits (the worker keeps the host's).
    pub const fn new() -> Self {
        Self {
            memory: None,
            cpu_time: None,
            open_files: None,
        }
    }

    /// At most `bytes` of address space per worker (`RLIMIT_AS`).
    pub const fn memory(mut self, bytes: u64) -> Self {
        self.memory = Some(bytes);
        self
    }

    /// At most `time` of CPU time over a worker's life (`RLIMIT_CPU`, in
    /// whole seconds, rounded up).
    pub const fn cpu_time(mut self, time: Duration) -> Self {
        self.cpu_time = Some(time);
        self
    }

    /// At most `count` open descriptors per worker (`RLIMIT_NOFILE`),
    /// counting the few the runtime holds.
    pub const fn open_files(mut self, count: u64) -> Self {
        self.open_files = Some(count);
        self
    }
}
