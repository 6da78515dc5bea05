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
    /// Calls the lane's worker took from another lane's queue and ran
    /// (thread pools with [work stealing](crate::PoolBuilder::work_stealing);
    /// always 0 on process pools).
    pub stolen: usize,
}
