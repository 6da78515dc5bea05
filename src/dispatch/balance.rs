//! Balancers: which lane a new call goes to. One rule for every runtime,
//! written against [`Lanes`], what a runtime tells of its lanes (how many,
//! idle or not, usable or not, calls in flight).
//!
//! [`Balancer`] names the built-in strategies, [`Balance`] is a user's own;
//! [`Spread`] is what the engine holds: the strategy and the round-robin
//! count the built-in ones share.

use std::{cell::Cell, fmt, sync::Arc};

use crate::{
    runtime::Lanes,
    sync::{AtomicUsize, Ordering},
    transport::ring::CachePadded,
};

/// How a pool picks the lane (worker) each new call goes to, set with
/// [`PoolBuilder::balancer`](crate::PoolBuilder::balancer) or
/// [`ProcessPoolBuilder::balancer`](crate::ProcessPoolBuilder::balancer).
/// The same strategies serve thread and process pools.
///
/// Every strategy skips lanes that cannot take calls (a process lane whose
/// workers kept dying at start-up); when no lane can, the call goes to one
/// anyway and fails there. What a strategy reads of a lane (idle, calls in
/// flight) is a snapshot that other callers change at the same time: two
/// callers at the same instant may both pick the same lane.
///
/// The default is [`LeastLoaded`](Self::LeastLoaded). While some lane is
/// idle it picks what [`FirstIdle`](Self::FirstIdle) picks (the first idle
/// lane: an idle lane is one with no call in flight), so a trickle of
/// calls keeps one worker hot; when every lane is busy it sends the call
/// to the shortest queue instead of the next lane in turn. Under
/// saturation first-idle's round-robin lets the queues drift apart: with
/// 4 callers keeping 32 calls of 1–5 ms in flight on 2 lanes, the two
/// queues differed by 10 calls on average (up to 18) under `FirstIdle`,
/// and by 1 to 2 (up to 8) under `LeastLoaded`, and a call waits behind
/// its queue while the other lane runs dry. It reads no shared counter.
///
/// A balancer picks the lane a call is queued on. On a thread pool with
/// [work stealing](crate::PoolBuilder::work_stealing) (the default), an
/// idle worker may still take a queued call from a busy lane, so
/// [`LaneStats::completed`](crate::LaneStats::completed) counts where calls
/// ran, not where the balancer put them; a pool that must keep each
/// call on its lane turns stealing off.
///
/// ```
/// use knitting::{Balancer, Pool};
///
/// #[knitting::task]
/// fn double(v: u32) -> u32 { v * 2 }
///
/// let pool = Pool::builder().threads(2).balancer(Balancer::LeastLoaded).build()?;
/// assert_eq!(pool.call(double, 21).wait()?, 42);
/// # Ok::<(), knitting::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Balancer {
    /// Each lane in turn, whatever its load.
    ///
    /// ```
    /// let pool = knitting::Pool::builder()
    ///     .threads(2)
    ///     .balancer(knitting::Balancer::RoundRobin)
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    RoundRobin,
    /// The first idle lane in lane order (nothing queued or running), else
    /// each lane in turn (the rule of knitting before balancers were
    /// chosen).
    ///
    /// A trickle of calls keeps one worker hot and lets the others park
    /// (on a machine with fewer free cores than workers, idle spinners slow
    /// the busy one down). When no lane is idle it spreads calls evenly
    /// whatever the queues hold, so under saturation one queue can grow
    /// while another runs dry.
    ///
    /// ```
    /// let pool = knitting::Pool::builder()
    ///     .threads(2)
    ///     .balancer(knitting::Balancer::FirstIdle)
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    FirstIdle,
    /// A lane drawn at random (a per-thread xorshift generator: no lock,
    /// no shared counter).
    ///
    /// ```
    /// let pool = knitting::Pool::builder()
    ///     .threads(2)
    ///     .balancer(knitting::Balancer::Random)
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    Random,
    /// The first idle lane in lane order, else a lane drawn at random.
    ///
    /// ```
    /// let pool = knitting::Pool::builder()
    ///     .threads(2)
    ///     .balancer(knitting::Balancer::FirstIdleOrRandom)
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    FirstIdleOrRandom,
    /// The lane with the fewest calls in flight (queued or running); of
    /// lanes with as few, the first in lane order. An idle lane has none,
    /// so a trickle of calls goes where [`FirstIdle`](Self::FirstIdle)
    /// would send it; under saturation new calls go to the shortest queue,
    /// and the queues stay even. It reads every lane's count when no lane
    /// is idle. The default.
    ///
    /// ```
    /// let pool = knitting::Pool::builder()
    ///     .threads(2)
    ///     .balancer(knitting::Balancer::LeastLoaded)
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    #[default]
    LeastLoaded,
}

/// A lane-choosing strategy of one's own, for
/// [`PoolBuilder::balancer_with`](crate::PoolBuilder::balancer_with) and
/// [`ProcessPoolBuilder::balancer_with`](crate::ProcessPoolBuilder::balancer_with).
///
/// [`pick`](Self::pick) runs on the caller's thread for every call, before
/// the call is queued: keep it cheap, and do not block. It returns a lane
/// index; an index past the last lane is taken modulo the number of lanes
/// (it never panics the pool). A lane that cannot take calls
/// ([`LaneLoad::usable`] false) fails the calls sent to it. A panic in
/// `pick` reaches the caller of [`Pool::call`](crate::Pool::call); the
/// pool is left as it was. On a pool of one lane, `pick` is not called.
///
/// Closures `Fn(&LaneLoads<'_>) -> usize` are balancers too.
///
/// ```
/// use knitting::{Balance, LaneLoads, Pool};
///
/// #[knitting::task]
/// fn double(v: u32) -> u32 { v * 2 }
///
/// /// Keeps lane 0 free for something else while other lanes can work.
/// struct SpareFirst;
///
/// impl Balance for SpareFirst {
///     fn pick(&self, lanes: &LaneLoads<'_>) -> usize {
///         lanes
///             .iter()
///             .skip(1)
///             .filter(|lane| lane.usable)
///             .min_by_key(|lane| lane.in_flight)
///             .map_or(0, |lane| lane.index)
///     }
/// }
///
/// let pool = Pool::builder()
///     .threads(3)
///     .balancer_with(SpareFirst)
///     .work_stealing(false)
///     .build()?;
/// assert_eq!(pool.call(double, 21).wait()?, 42);
/// assert_eq!(pool.stats().lanes[0].completed, 0);
/// # Ok::<(), knitting::Error>(())
/// ```
pub trait Balance: Send + Sync + 'static {
    /// The lane the next call goes to, from `0` to `lanes.len() - 1`.
    fn pick(&self, lanes: &LaneLoads<'_>) -> usize;
}

impl<F> Balance for F
where
    F: Fn(&LaneLoads<'_>) -> usize + Send + Sync + 'static,
{
    fn pick(&self, lanes: &LaneLoads<'_>) -> usize {
        self(lanes)
    }
}

/// The lanes of a pool as a [`Balance`] sees them. Nothing is copied up
/// front: each [`get`](Self::get) reads that lane's counters then, so a
/// balancer pays only for what it reads (and reading twice may give two
/// answers: other callers and the workers change the counts meanwhile).
///
/// ```
/// use knitting::{LaneLoads, Pool};
///
/// let last = |lanes: &LaneLoads<'_>| lanes.len() - 1;
/// let pool = Pool::builder().threads(2).balancer_with(last).build()?;
/// # Ok::<(), knitting::Error>(())
/// ```
#[derive(Clone, Copy)]
pub struct LaneLoads<'a> {
    lanes: Source<'a>,
}

/// Where a [`LaneLoads`] reads its lanes.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// A pool's lanes, read as a balancer asks.
    Live(&'a dyn Lanes),
    /// Fixed loads given by a user ([`LaneLoads::from_slice`]).
    Fixed(&'a [LaneLoad]),
}

impl<'a> LaneLoads<'a> {
    fn new(lanes: &'a dyn Lanes) -> Self {
        Self {
            lanes: Source::Live(lanes),
        }
    }

    /// Lanes with fixed loads, to test a [`Balance`] of your own without a
    /// pool: lane `i` is `loads[i]` (its [`index`](LaneLoad::index) is
    /// taken as `i`, whatever it says). An empty slice is one idle lane,
    /// as no pool has fewer.
    ///
    /// ```
    /// use knitting::{Balance, LaneLoad, LaneLoads};
    ///
    /// struct Emptiest;
    ///
    /// impl Balance for Emptiest {
    ///     fn pick(&self, lanes: &LaneLoads<'_>) -> usize {
    ///         lanes.iter().min_by_key(|l| l.in_flight).map_or(0, |l| l.index)
    ///     }
    /// }
    ///
    /// let loads = [LaneLoad::new(3), LaneLoad::new(1), LaneLoad::new(2)];
    /// assert_eq!(Emptiest.pick(&LaneLoads::from_slice(&loads)), 1);
    /// ```
    pub fn from_slice(loads: &'a [LaneLoad]) -> Self {
        const ONE_IDLE: &[LaneLoad] = &[LaneLoad::new(0)];
        Self {
            lanes: Source::Fixed(if loads.is_empty() { ONE_IDLE } else { loads }),
        }
    }

    /// How many lanes the pool has (one per worker, at least one).
    ///
    /// ```
    /// # use knitting::LaneLoads;
    /// let last = |lanes: &LaneLoads<'_>| lanes.len() - 1;
    /// # let pool = knitting::Pool::builder().threads(2).balancer_with(last).build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn len(&self) -> usize {
        match self.lanes {
            Source::Live(lanes) => lanes.count(),
            Source::Fixed(loads) => loads.len(),
        }
    }

    /// Never true (a pool has at least one lane); here because
    /// [`len`](Self::len) is.
    ///
    /// ```
    /// # use knitting::LaneLoads;
    /// let first = |lanes: &LaneLoads<'_>| { assert!(!lanes.is_empty()); 0 };
    /// # let pool = knitting::Pool::builder().threads(2).balancer_with(first).build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Lane `index` now, or `None` past the last lane.
    ///
    /// ```
    /// # use knitting::LaneLoads;
    /// // Lane 1 while it has fewer than 4 calls, else lane 0.
    /// let prefer_one = |lanes: &LaneLoads<'_>| match lanes.get(1) {
    ///     Some(lane) if lane.in_flight < 4 => 1,
    ///     _ => 0,
    /// };
    /// # let pool = knitting::Pool::builder().threads(2).balancer_with(prefer_one).build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn get(&self, index: usize) -> Option<LaneLoad> {
        (index < self.len()).then(|| self.read(index))
    }

    fn read(&self, index: usize) -> LaneLoad {
        match self.lanes {
            Source::Live(lanes) => LaneLoad {
                index,
                in_flight: lanes.in_flight(index),
                idle: lanes.is_idle(index),
                usable: lanes.is_usable(index),
            },
            Source::Fixed(loads) => LaneLoad {
                index,
                ..loads[index]
            },
        }
    }

    /// Every lane in lane order (or backwards: it is double-ended), each
    /// read as the iterator reaches it.
    ///
    /// ```
    /// # use knitting::LaneLoads;
    /// let emptiest = |lanes: &LaneLoads<'_>| {
    ///     lanes.iter().min_by_key(|lane| lane.in_flight).map_or(0, |lane| lane.index)
    /// };
    /// # let pool = knitting::Pool::builder().threads(2).balancer_with(emptiest).build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = LaneLoad> + ExactSizeIterator + 'a {
        let this = *self;
        (0..this.len()).map(move |i| this.read(i))
    }
}

impl fmt::Debug for LaneLoads<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

/// One lane, as a [`Balance`] sees it when it reads it
/// ([`LaneLoads::get`]).
///
/// ```
/// # use knitting::LaneLoads;
/// let idle_or_first = |lanes: &LaneLoads<'_>| {
///     lanes.iter().find(|l| l.idle && l.usable).map_or(0, |l| l.index)
/// };
/// # let pool = knitting::Pool::builder().threads(2).balancer_with(idle_or_first).build()?;
/// # Ok::<(), knitting::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaneLoad {
    /// The lane's index, as in [`PoolStats::lanes`](crate::PoolStats::lanes).
    pub index: usize,
    /// Calls queued or running on the lane (as
    /// [`LaneStats::in_flight`](crate::LaneStats::in_flight)).
    pub in_flight: usize,
    /// Nothing queued or running on the lane.
    pub idle: bool,
    /// The lane takes calls (false for a process lane that gave up: its
    /// workers kept dying at start-up).
    pub usable: bool,
}

impl LaneLoad {
    /// A usable lane with `in_flight` calls (idle when that is 0), for
    /// [`LaneLoads::from_slice`]; its index is its place in the slice.
    ///
    /// ```
    /// let lane = knitting::LaneLoad::new(0);
    /// assert!(lane.idle && lane.usable);
    /// ```
    pub const fn new(in_flight: usize) -> Self {
        Self {
            index: 0,
            in_flight,
            idle: in_flight == 0,
            usable: true,
        }
    }

    /// The same lane, marked as one that takes no calls now (a process
    /// lane that gave up).
    ///
    /// ```
    /// let lane = knitting::LaneLoad::new(0).unusable();
    /// assert!(!lane.usable);
    /// ```
    #[must_use]
    pub const fn unusable(self) -> Self {
        Self {
            usable: false,
            ..self
        }
    }
}

/// A pool's balancer as its builder holds it.
#[derive(Clone)]
pub(crate) enum Strategy {
    Builtin(Balancer),
    Custom(Arc<dyn Balance>),
}

impl Default for Strategy {
    fn default() -> Self {
        Self::Builtin(Balancer::default())
    }
}

impl fmt::Debug for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Builtin(b) => b.fmt(f),
            Self::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

/// The lane choice of one pool: its strategy and a round-robin count.
#[derive(Debug)]
pub(crate) struct Spread {
    next: CachePadded<AtomicUsize>,
    strategy: Strategy,
}

impl Spread {
    pub(crate) fn new(strategy: Strategy) -> Self {
        Self {
            next: CachePadded(AtomicUsize::new(0)),
            strategy,
        }
    }

    /// The lane a call goes to (below `lanes.count()`).
    #[inline]
    pub(crate) fn pick(&self, lanes: &impl Lanes) -> usize {
        let n = lanes.count();
        if n == 1 {
            return 0;
        }
        self.pick_among(lanes, n)
    }

    /// [`pick`](Self::pick) among `n > 1` lanes: out of line, so that the
    /// call path of a pool inlines only the one-lane test.
    #[inline(never)]
    fn pick_among(&self, lanes: &impl Lanes, n: usize) -> usize {
        let balancer = match &self.strategy {
            Strategy::Builtin(balancer) => *balancer,
            Strategy::Custom(custom) => return custom.pick(&LaneLoads::new(lanes)) % n,
        };
        match balancer {
            Balancer::RoundRobin => self.round_robin(lanes, n),
            Balancer::FirstIdle => {
                first_idle(lanes, n).unwrap_or_else(|| self.round_robin(lanes, n))
            }
            Balancer::Random => random(lanes, n),
            Balancer::FirstIdleOrRandom => first_idle(lanes, n).unwrap_or_else(|| random(lanes, n)),
            Balancer::LeastLoaded => {
                least_loaded(lanes, n).unwrap_or_else(|| self.round_robin(lanes, n))
            }
        }
    }

    /// The next usable lane in round-robin order, else the count's lane.
    fn round_robin(&self, lanes: &impl Lanes, n: usize) -> usize {
        // Relaxed: only spreads calls; no data hangs on the counter.
        let start = self.next.0.fetch_add(1, Ordering::Relaxed);
        usable_from(lanes, n, start)
    }
}

/// The first usable lane at or after `start` (wrapping), else `start`'s.
fn usable_from(lanes: &impl Lanes, n: usize, start: usize) -> usize {
    (0..n)
        .map(|k| (start % n + k) % n)
        .find(|&i| lanes.is_usable(i))
        .unwrap_or(start % n)
}

fn first_idle(lanes: &impl Lanes, n: usize) -> Option<usize> {
    (0..n).find(|&i| lanes.is_idle(i) && lanes.is_usable(i))
}

fn random(lanes: &impl Lanes, n: usize) -> usize {
    usable_from(lanes, n, random_below(n))
}

/// The usable lane with the fewest calls in flight, the first of equals;
/// stops at the first empty one.
fn least_loaded(lanes: &impl Lanes, n: usize) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for i in 0..n {
        if !lanes.is_usable(i) {
            continue;
        }
        let load = lanes.in_flight(i);
        if load == 0 {
            return Some(i);
        }
        if best.is_none_or(|(least, _)| load < least) {
            best = Some((load, i));
        }
    }
    best.map(|(_, i)| i)
}

/// A number below `n`, from this thread's xorshift64 generator (Marsaglia,
/// "Xorshift RNGs", 2003), seeded once per thread from std's random hasher
/// keys.
fn random_below(n: usize) -> usize {
    thread_local! {
        static STATE: Cell<u64> = const { Cell::new(0) };
    }
    STATE.with(|state| {
        let mut x = state.get();
        if x == 0 {
            use std::hash::{BuildHasher, RandomState};
            x = RandomState::new().hash_one(std::thread::current().id()) | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        // The high bits, scaled (Lemire): no division, no modulo bias worth
        // the name for lane counts.
        ((u128::from(x) * n as u128) >> 64) as usize
    })
}

#[cfg(all(test, not(knitting_loom)))]
mod tests;
