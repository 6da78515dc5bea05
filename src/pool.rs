//! `Pool`: where calls are made, and how a pool shuts down.

use std::{
    fmt,
    sync::{Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::{
    call::{
        cell::{CallKey, CallRef, JobRef},
        Call,
    },
    countdown::Countdown,
    sync::{AtomicBool, AtomicUsize, Ordering},
    transport::{ring::CachePadded, wake::Notified},
    worker::thread::{run_worker, Exit, Lane, SlotId, SpinPolicy},
    Error, PoolBuilder, Task,
};

/// A pool of worker threads that runs [tasks](macro@crate::task).
///
/// Build one with [`Pool::builder`], make calls with [`Pool::call`].
/// `Pool` is `Send + Sync`: share it by reference (or in an `Arc`) between
/// threads and async tasks.
///
/// ```
/// #[knitting::task]
/// fn square(v: i64) -> i64 { v * v }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(2).build()?;
/// assert_eq!(pool.call(square, 7).wait()?, 49);
/// # Ok(()) }
/// ```
///
/// # Shutting down
///
/// - Dropping the pool starts a shutdown and returns at once: calls already
///   made still run to their end (their handles resolve), new ones cannot
///   be made, and the worker threads exit when their queues are empty.
/// - [`shutdown`](Self::shutdown) does the same and waits for the workers.
/// - [`shutdown_timeout`](Self::shutdown_timeout) waits at most a given time,
///   then fails every call still queued or running with a
///   [`Closed`](crate::ErrorKind::Closed) error.
///
/// After a shutdown began, [`call`](Self::call) returns a handle that fails at
/// once with a `Closed` error.
pub struct Pool {
    shared: Arc<Shared>,
}

pub(crate) struct Shared {
    lanes: Box<[Lane]>,
    /// Set once, when shutdown begins.
    closed: AtomicBool,
    /// Set once, when a shutdown stops waiting and fails what is left.
    abandoned: AtomicBool,
    next_lane: CachePadded<AtomicUsize>,
    /// One per lane: a retired thread hands its count to its replacement.
    live_workers: Countdown,
    spin: SpinPolicy,
    thread_name: String,
    hard_timeout: Option<Duration>,
    /// Worker threads by lane and slot; a shutdown joins the current ones
    /// (a retired thread may still be running its task).
    threads: Mutex<Vec<(usize, SlotId, JoinHandle<()>)>>,
}

impl Pool {
    /// A builder to configure a pool.
    ///
    /// ```
    /// let pool = knitting::Pool::builder().threads(4).build().unwrap();
    /// assert_eq!(pool.threads(), 4);
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    pub(crate) fn start(builder: &PoolBuilder) -> Result<Self, Error> {
        crate::task::check_unique_ids()?;
        crate::worker::panics::install_hook();
        let threads = builder.thread_count();
        let shared = Arc::new(Shared {
            lanes: (0..threads)
                .map(|_| Lane::new(builder.queue_capacity))
                .collect(),
            closed: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            next_lane: CachePadded(AtomicUsize::new(0)),
            live_workers: Countdown::new(threads),
            spin: SpinPolicy {
                budget: builder.spin_budget,
            },
            thread_name: builder.thread_name.clone(),
            hard_timeout: builder.hard_timeout,
            threads: Mutex::new(Vec::with_capacity(threads)),
        });
        for index in 0..threads {
            if let Err(err) = Shared::spawn_worker(&shared, index) {
                // Wind down the workers already started before failing.
                shared.live_workers.set(index);
                shared.close();
                return Err(Error::build(format!(
                    "could not start worker thread {index}: {err}"
                )));
            }
        }
        Ok(Self { shared })
    }

    /// Calls `task` with `args` on a worker and returns the call's handle.
    ///
    /// `args` is the task's parameter, a tuple of its parameters when it has
    /// several, or `()` when it has none; the compiler checks it against the
    /// task's signature. The arguments are *moved* to the worker: nothing is
    /// serialized or copied.
    ///
    /// Never blocks: the call is queued on the first idle lane (or, when
    /// every lane is busy, on the next one in round-robin order) and runs
    /// whether or not the handle is awaited. See [`Call`] for how to get the
    /// result and what dropping the handle does.
    ///
    /// ```
    /// #[knitting::task]
    /// fn greet(name: String, excited: bool) -> String {
    ///     format!("hello {name}{}", if excited { "!" } else { "" })
    /// }
    ///
    /// # fn main() -> Result<(), knitting::Error> {
    /// let pool = knitting::Pool::builder().threads(1).build()?;
    /// let call = pool.call(greet, ("knitting".to_string(), true));
    /// assert_eq!(call.wait()?, "hello knitting!");
    /// # Ok(()) }
    /// ```
    ///
    /// A call made after shutdown began fails at once:
    ///
    /// ```
    /// # #[knitting::task] fn noop() {}
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// pool.shutdown();
    /// assert!(pool.call(noop, ()).wait().unwrap_err().is_closed());
    /// ```
    #[inline]
    pub fn call<T: Task>(&self, task: T, args: T::Args) -> Call<T::Output> {
        let shared = &*self.shared;
        // Acquire: pairs with `close`; a fast path, the check after the push
        // below is the one that matters.
        if shared.closed.load(Ordering::Acquire) {
            return Call::failed(Error::closed().with_task(task.info().name()));
        }
        let timeout = task.info().timeout();
        let (call, job) = CallRef::new(task, args);
        let lane = shared.pick_lane();
        lane.push(job);
        if lane.wake.notify() == Notified::Exited {
            // Shutdown raced with this call and the lane's worker is gone:
            // fail the call unless the worker claimed it on its way out.
            call.fail_queued(Error::closed());
        }
        let call = Call::pending(call, shared.id());
        match timeout {
            Some(timeout) => call.timeout(timeout),
            None => call,
        }
    }

    /// The number of worker threads.
    ///
    /// ```
    /// let pool = knitting::Pool::builder().threads(3).build().unwrap();
    /// assert_eq!(pool.threads(), 3);
    /// ```
    pub fn threads(&self) -> usize {
        self.shared.lanes.len()
    }

    /// A snapshot of per-lane counters.
    ///
    /// ```
    /// # #[knitting::task] fn noop() {}
    /// let pool = knitting::Pool::builder().threads(2).build().unwrap();
    /// pool.call(noop, ()).wait().unwrap();
    /// let stats = pool.stats();
    /// assert_eq!(stats.lanes.len(), 2);
    /// assert_eq!(stats.lanes.iter().map(|l| l.completed).sum::<usize>(), 1);
    /// ```
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            lanes: self
                .shared
                .lanes
                .iter()
                .map(|lane| LaneStats {
                    in_flight: lane.in_flight(),
                    completed: lane.completed(),
                    pid: None,
                    restarts: lane.retired(),
                })
                .collect(),
            closed: self.shared.closed.load(Ordering::Relaxed),
        }
    }

    /// True once a shutdown began.
    ///
    /// ```
    /// let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// assert!(!pool.is_closed());
    /// pool.shutdown();
    /// assert!(pool.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }

    /// Shuts the pool down and waits: calls already made run to their end,
    /// new calls fail with a [`Closed`](crate::ErrorKind::Closed) error, and
    /// the worker threads are joined.
    ///
    /// Calling it again (or after [`shutdown_timeout`](Self::shutdown_timeout))
    /// waits again and returns. Do not call it from a task running on the
    /// same pool: the worker would wait for itself.
    ///
    /// ```
    /// #[knitting::task]
    /// fn slow(v: u32) -> u32 { std::thread::sleep(std::time::Duration::from_millis(20)); v }
    ///
    /// let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// let call = pool.call(slow, 1);
    /// pool.shutdown();
    /// assert_eq!(call.wait().unwrap(), 1); // it was finished, not dropped
    /// ```
    pub fn shutdown(&self) {
        self.shared.close();
        self.shared.live_workers.wait(None);
        self.join_threads();
    }

    /// Shuts the pool down, waits at most `timeout` for calls in flight,
    /// then fails what is left with a [`Closed`](crate::ErrorKind::Closed)
    /// error.
    ///
    /// Returns `Ok(())` when every call finished in time, or an error of
    /// kind [`Timeout`](crate::ErrorKind::Timeout) that says how many calls
    /// were failed. A worker thread stuck in a long task cannot be stopped
    /// (no thread can be killed safely): it is left to finish on its own and
    /// its result is discarded.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[knitting::task]
    /// fn nap(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
    ///
    /// let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// let long = pool.call(nap, 2_000);
    /// let err = pool.shutdown_timeout(Duration::from_millis(50)).unwrap_err();
    /// assert!(err.is_timeout());
    /// assert!(long.wait().unwrap_err().is_closed());
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.shared.close();
        let deadline = Instant::now().checked_add(timeout);
        if self.shared.live_workers.wait(deadline) {
            self.join_threads();
            return Ok(());
        }
        // SeqCst: see `Lane::run`.
        self.shared.abandoned.store(true, Ordering::SeqCst);
        let failed: usize = self
            .shared
            .lanes
            .iter()
            .map(|lane| lane.fail_all(Error::closed))
            .sum();
        Err(Error::shutdown_timeout(timeout, failed))
    }

    fn join_threads(&self) {
        let handles = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for (lane, slot, handle) in handles {
            // A retired thread may still run its task: it is left alone
            // (detached), as documented for hard time limits.
            if self.shared.lanes[lane].is_current(slot) {
                // A worker thread never unwinds (runtime code aborts
                // instead), so a join error carries nothing worth reporting.
                let _ = handle.join();
            }
        }
    }
}

impl Shared {
    /// Starts a worker thread for lane `index`, with a fresh slot.
    fn spawn_worker(shared: &Arc<Self>, index: usize) -> std::io::Result<()> {
        let slot = shared.lanes[index].new_slot();
        let worker_shared = Arc::clone(shared);
        let handle = std::thread::Builder::new()
            .name(format!("{}-{index}", shared.thread_name))
            .spawn(move || {
                let shared = worker_shared;
                let on_start = |job: &JobRef| shared.arm_hard_limit(index, slot, job);
                let exit = run_worker(
                    &shared.lanes[index],
                    slot,
                    shared.id(),
                    &shared.closed,
                    &shared.abandoned,
                    shared.spin,
                    &on_start,
                );
                // A retired thread's count went to its replacement.
                if exit == Exit::Done {
                    shared.live_workers.count_down();
                }
            })?;
        shared
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((index, slot, handle));
        Ok(())
    }

    /// As a call starts on lane `index` (thread of `slot`): if it has a hard
    /// time limit, ask the timer to retire the thread when it passes.
    /// Returns the timer entry, for the lane to cancel when the call
    /// returns.
    fn arm_hard_limit(
        self: &Arc<Self>,
        index: usize,
        slot: SlotId,
        job: &JobRef,
    ) -> Option<crate::timer::Key> {
        let limit = job.hard_timeout().or(self.hard_timeout)?;
        let shared = Arc::clone(self);
        let call = job.key();
        Some(crate::timer::schedule(
            crate::clock::nanos_after(limit),
            crate::timer::Action::HardLimit(Box::new(move || {
                shared.retire(index, slot, call, limit);
            })),
        ))
    }

    /// Names this pool while it lives (its address; never 0), for the
    /// worker threads' nested-call rule.
    fn id(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    /// The hard time limit of `call` on lane `index` passed: if the
    /// lane's thread of `slot` still runs it, fail the call, raise its
    /// signal, and give the lane a fresh thread. The runaway thread exits
    /// when its task returns.
    fn retire(self: &Arc<Self>, index: usize, slot: SlotId, call: CallKey, limit: Duration) {
        let lane = &self.lanes[index];
        let Some(job) = lane.retire(slot, call) else {
            return;
        };
        // Fail first, then tell the task: a task that stops at once must
        // not beat the hard limit's error.
        job.fail(Error::hard_timeout(
            limit,
            "a thread cannot be stopped: its lane got a fresh worker thread, and the \
             runaway one is left to finish on its own (its result is dropped)",
        ));
        job.raise();
        drop(job);
        if let Err(err) = Shared::spawn_worker(self, index) {
            // No thread for this lane: fail what waits there, and count the
            // lane's worker as gone so that shutdown does not wait for it.
            lane.fail_all(|| {
                Error::build(format!("could not replace worker thread {index}: {err}"))
            });
            self.live_workers.count_down();
        }
    }

    #[inline]
    fn pick_lane(&self) -> &Lane {
        // Relaxed: only spreads calls; no data hangs on the counter.
        let ticket = || self.next_lane.0.fetch_add(1, Ordering::Relaxed);
        pick_lane(&self.lanes, ticket, |_| true, Lane::is_idle)
    }

    fn close(&self) {
        // SYNC POINT: Release pairs with the workers' Acquire load in
        // `run_worker`.
        self.closed.store(true, Ordering::Release);
        for lane in self.lanes.iter() {
            // A worker that already exited needs no wake-up.
            let _ = lane.wake.notify();
        }
    }
}

/// The lane a call goes to, for threads and processes alike: the first
/// idle lane in index order, else the next usable one in round-robin order
/// (`ticket` hands out the round-robin count), else any.
///
/// First idle rather than plain round-robin: a trickle of calls keeps one
/// worker hot and lets the others park (on a machine with fewer free cores
/// than workers, idle spinners slow the busy one down).
#[inline]
pub(crate) fn pick_lane<L>(
    lanes: &[L],
    ticket: impl FnOnce() -> usize,
    usable: impl Fn(&L) -> bool,
    idle: impl Fn(&L) -> bool,
) -> &L {
    if let [only] = lanes {
        return only;
    }
    if let Some(lane) = lanes.iter().find(|l| idle(l) && usable(l)) {
        return lane;
    }
    let (start, n) = (ticket(), lanes.len());
    (0..n)
        .map(|i| &lanes[(start + i) % n])
        .find(|l| usable(l))
        .unwrap_or(&lanes[start % n])
}

impl Drop for Pool {
    /// Starts a shutdown and returns without waiting; see
    /// [Shutting down](Pool#shutting-down).
    fn drop(&mut self) {
        self.shared.close();
    }
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("threads", &self.threads())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// A snapshot of a pool's counters, from [`Pool::stats`].
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
    /// Calls the lane's worker finished.
    pub completed: usize,
    /// The pid of the lane's worker process (process pools only; `None`
    /// while a worker is being replaced).
    pub pid: Option<u32>,
    /// How many times the lane's worker was replaced: a worker process
    /// that died or was killed, or a worker thread retired by a hard time
    /// limit.
    pub restarts: usize,
}
