//! The balancer option of both builders: which lane each new call goes to
//! (the strategies themselves are in `dispatch::balance`).

use std::sync::Arc;

use crate::{dispatch::balance::Strategy, Balance, Balancer, PoolBuilder, ProcessPoolBuilder};

impl PoolBuilder {
    /// How each new call picks its lane (worker thread): one of the
    /// built-in [`Balancer`]s. Carried over by
    /// [`processes`](Self::processes).
    ///
    /// The default value is [`Balancer::LeastLoaded`]: the first idle lane,
    /// else the lane with the fewest calls in flight, which keeps the
    /// queues of a saturated pool even (see [`Balancer`] for why it is the
    /// default).
    ///
    /// ```
    /// use knitting::{Balancer, Pool};
    ///
    /// #[knitting::task]
    /// fn square(v: u64) -> u64 { v * v }
    ///
    /// let pool = Pool::builder().threads(2).balancer(Balancer::RoundRobin).build()?;
    /// let calls: Vec<_> = (0..8).map(|v| pool.call(square, v)).collect();
    /// let squares: Vec<u64> = calls.into_iter().map(|c| c.wait()).collect::<Result<_, _>>()?;
    /// assert_eq!(squares, [0, 1, 4, 9, 16, 25, 36, 49]);
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn balancer(mut self, balancer: Balancer) -> Self {
        self.balance = Strategy::Builtin(balancer);
        self
    }

    /// How each new call picks its lane: a strategy of one's own, which
    /// sees every lane's load (see [`Balance`]; an index past the last lane
    /// is taken modulo the number of lanes). Replaces any
    /// [`balancer`](Self::balancer). Carried over by
    /// [`processes`](Self::processes).
    ///
    /// The default value is [`Balancer::LeastLoaded`].
    ///
    /// ```
    /// use knitting::{LaneLoads, Pool};
    ///
    /// #[knitting::task]
    /// fn square(v: u64) -> u64 { v * v }
    ///
    /// // Every call on the last lane (and no idle worker taking it from
    /// // there: see `work_stealing`).
    /// let last = |lanes: &LaneLoads<'_>| lanes.len() - 1;
    /// let pool = Pool::builder()
    ///     .threads(3)
    ///     .balancer_with(last)
    ///     .work_stealing(false)
    ///     .build()?;
    /// for v in 0..4 {
    ///     assert_eq!(pool.call(square, v).wait()?, v * v);
    /// }
    /// assert_eq!(pool.stats().lanes[2].completed, 4);
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn balancer_with(mut self, balancer: impl Balance) -> Self {
        self.balance = Strategy::Custom(Arc::new(balancer));
        self
    }
}

impl ProcessPoolBuilder {
    /// How each new call picks its lane (worker process): one of the
    /// built-in [`Balancer`]s, as for
    /// [`PoolBuilder::balancer`](crate::PoolBuilder::balancer). A lane whose
    /// workers kept dying at start-up is skipped.
    ///
    /// The default value is [`Balancer::LeastLoaded`], or what the
    /// [`PoolBuilder`](crate::PoolBuilder) was given.
    ///
    /// ```
    /// use knitting::{Balancer, Pool};
    ///
    /// #[knitting::task]
    /// fn square(v: u64) -> u64 { v * v }
    ///
    /// knitting::init(); // first thing in main
    /// let pool = Pool::builder().processes(2).balancer(Balancer::FirstIdle).build()?;
    /// assert_eq!(pool.call(square, 7).wait()?, 49);
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn balancer(mut self, balancer: Balancer) -> Self {
        self.balance = Strategy::Builtin(balancer);
        self
    }

    /// How each new call picks its lane: a strategy of one's own, as for
    /// [`PoolBuilder::balancer_with`](crate::PoolBuilder::balancer_with).
    ///
    /// The default value is [`Balancer::LeastLoaded`], or what the
    /// [`PoolBuilder`](crate::PoolBuilder) was given.
    ///
    /// ```
    /// use knitting::{LaneLoads, Pool};
    ///
    /// #[knitting::task]
    /// fn square(v: u64) -> u64 { v * v }
    ///
    /// knitting::init();
    /// let first = |_: &LaneLoads<'_>| 0;
    /// let pool = Pool::builder().processes(2).balancer_with(first).build()?;
    /// assert_eq!(pool.call(square, 7).wait()?, 49);
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn balancer_with(mut self, balancer: impl Balance) -> Self {
        self.balance = Strategy::Custom(Arc::new(balancer));
        self
    }
}
