//! Snapshots of a pool's counters.

/// A snapshot of a pool's counters, from [`Pool::stats`](crate::Pool::stats).
///
/// ```
/// let pool = knitting::Pool::builder().threads(1).build().unwrap();
/// let stats = pool.stats();
/// assert_eq!(stats.lanes[0].in_flight, 0);
/// assert!(!stats.closed);
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct PoolStats {
    /// One entry per lane (worker), in lane order.
    pub lanes: Vec<LaneStats>,
    /// True once a shutdown began.
    pub closed: bool,
    /// Calls run on their caller's thread: the inline lane (see
    /// [`Call`](crate::Call#the-inline-lane)).
    pub inlined: usize,
    /// The latency of the pool's calls so far, in nanoseconds, from
    /// `pool.call(..)` to the moment the handle took the outcome (so as the
    /// caller saw it: queueing included), for a pool built with
    /// `latency_histogram(true)`; two significant digits (1 %), up to an
    /// hour. Calls whose handles were dropped or detached do not count.
    ///
    /// ```
    /// # #[knitting::task] fn noop() {}
    /// let pool = knitting::Pool::builder().threads(1).latency_histogram(true).build().unwrap();
    /// for _ in 0..100 { pool.call(noop, ()).wait().unwrap(); }
    /// let latency = pool.stats().latency.expect("recorded");
    /// assert_eq!(latency.len(), 100);
    /// println!("p99 {} ns", latency.value_at_quantile(0.99));
    /// ```
    pub latency: Option<hdrhistogram::Histogram<u64>>,
}

/// Counters of one lane, in [`PoolStats`].
///
/// ```
/// let pool = knitting::Pool::builder().threads(1).build().unwrap();
/// assert_eq!(pool.stats().lanes[0].completed, 0);
/// ```
#[derive(Clone, Copy, Debug)]
#[non_exhaustive]
pub struct LaneStats {
    /// Calls queued or running on the lane.
    pub in_flight: usize,
    /// Of those, the calls waiting for the worker (not running yet).
    pub queued: usize,
    /// Calls the lane's worker finished, those it took from other lanes
    /// ([`stolen`](Self::stolen)) included: a call counts on the lane that
    /// ran it, not the one it was queued on.
    pub completed: usize,
    /// The pid of the lane's worker process (process pools only; `None`
    /// while a worker is being replaced).
    pub pid: Option<u32>,
    /// How many times the lane's worker was replaced: a worker process
    /// that died or was killed, or a worker thread retired by a hard time
    /// limit.
    pub restarts: usize,
    /// What the kernel enforces of the pool's
    /// [`Permissions`](crate::Permissions) for the lane's worker (process
    /// pools with restricted permissions only; see
    /// [`best_effort`](crate::Permissions::best_effort)).
    pub sandbox: Option<crate::Enforcement>,
    /// How and when the lane's worker last went, if it ever did (a worker
    /// process that died or was killed, a worker thread retired by a hard
    /// time limit).
    pub last_crash: Option<Crash>,
    /// Calls the lane's worker took from another lane's queue and ran
    /// (thread pools with [work stealing](crate::PoolBuilder::work_stealing);
    /// always 0 on process pools).
    pub stolen: usize,
    /// How long the lane's workers have spent running calls, over the
    /// pool's life (replaced workers included). Divide its growth by the
    /// time between two snapshots for the lane's utilisation.
    ///
    /// A thread lane counts from the moment its worker finds work to the
    /// moment its queues run dry (back-to-back calls make one period). A
    /// process lane reads what its worker process reports, clamped to the
    /// worker's lifetime: a worker cannot make it say more than that.
    ///
    /// ```
    /// # #[knitting::task] fn spin(ms: u64) { let t = std::time::Instant::now(); while t.elapsed().as_millis() < u128::from(ms) {} }
    /// use std::time::Duration;
    ///
    /// let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// pool.call(spin, 20).wait().unwrap();
    /// assert!(pool.stats().lanes[0].busy >= Duration::from_millis(20));
    /// ```
    pub busy: std::time::Duration,
}

/// How and when a worker went, in [`LaneStats::last_crash`].
///
/// ```
/// knitting::init();
/// #[knitting::task]
/// fn abort() { std::process::abort() }
///
/// let pool = knitting::Pool::builder().processes(1).build()?;
/// pool.call(abort, ()).wait().unwrap_err();
/// let last = pool.stats().lanes[0].last_crash.expect("the worker crashed");
/// assert_eq!(last.how, knitting::CrashKind::Signal(6));
/// assert!(last.to_string().contains("SIGABRT"));
/// # Ok::<(), knitting::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Crash {
    /// When the host noticed.
    pub at: std::time::SystemTime,
    /// How the worker went.
    pub how: CrashKind,
}

/// How a worker went (see [`Crash`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum CrashKind {
    /// A worker process was killed by this signal (`SIGSEGV`, `SIGABRT`,
    /// `SIGKILL`, `SIGXCPU`, ...).
    Signal(i32),
    /// A worker process exited with this code (`std::process::exit` in a
    /// task).
    Exit(i32),
    /// A worker process broke the shared-memory protocol and was killed.
    Protocol,
    /// A call ran past its hard time limit: its worker process was killed,
    /// or its worker thread retired.
    HardTimeout,
    /// A worker process showed no sign of life and was killed.
    Unresponsive,
}

impl Crash {
    pub(crate) fn now(how: CrashKind) -> Self {
        Self {
            at: std::time::SystemTime::now(),
            how,
        }
    }
}

impl std::fmt::Display for CrashKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Signal(signal) => match crate::error::signals::signal_name(*signal) {
                Some(name) => write!(f, "killed by signal {signal} ({name})"),
                None => write!(f, "killed by signal {signal}"),
            },
            Self::Exit(code) => write!(f, "exited with code {code}"),
            Self::Protocol => f.write_str("broke the shared-memory protocol"),
            Self::HardTimeout => f.write_str("ran past a hard time limit"),
            Self::Unresponsive => f.write_str("showed no sign of life"),
        }
    }
}

impl std::fmt::Display for Crash {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ago = self.at.elapsed().unwrap_or_default();
        write!(f, "{} ({:.1} s ago)", self.how, ago.as_secs_f64())
    }
}
