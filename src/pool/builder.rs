//! `PoolBuilder`: every pool option, with its default.

use std::{num::NonZeroUsize, time::Duration};

use crate::{
    dispatch::{balance::Strategy, Engine},
    runtime::thread,
    task::bootstrap::Boot,
    Bootstrap, Diagnostics, Error, Pool, ProcessPoolBuilder,
};

/// Configures and builds a [`Pool`].
///
/// Every setter documents its default; [`build`](Self::build) starts the
/// workers.
///
/// ```
/// use std::time::Duration;
///
/// let pool = knitting::Pool::builder()
///     .threads(2)
///     .spin_budget(Duration::from_micros(20))
///     .thread_name("image-worker")
///     .build()
///     .unwrap();
/// assert_eq!(pool.threads(), 2);
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `.build()` is called"]
pub struct PoolBuilder {
    threads: Option<usize>,
    queue_capacity: usize,
    spin_budget: Duration,
    thread_name: String,
    hard_timeout: Option<Duration>,
    boot: Option<Result<Boot, String>>,
    inline_threshold: Option<usize>,
    debug: Diagnostics,
    latency: bool,
    work_stealing: bool,
    async_concurrency: usize,
    stream_bound: usize,
    /// Set in `pool/balancing.rs`.
    pub(super) balance: Strategy,
}

/// Async calls a worker runs at once unless the builder says otherwise.
pub(crate) const DEFAULT_ASYNC_CONCURRENCY: usize = crate::exec::DEFAULT_CONCURRENCY;

impl Default for PoolBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl PoolBuilder {
    /// A builder with every option at its default.
    ///
    /// ```
    /// let pool = knitting::PoolBuilder::new().build().unwrap();
    /// assert!(pool.threads() >= 1);
    /// ```
    pub fn new() -> Self {
        Self {
            threads: None,
            queue_capacity: 1024,
            spin_budget: Duration::from_micros(50),
            thread_name: "knitting-worker".to_owned(),
            hard_timeout: None,
            boot: None,
            inline_threshold: None,
            debug: Diagnostics::NONE,
            latency: false,
            work_stealing: true,
            async_concurrency: DEFAULT_ASYNC_CONCURRENCY,
            stream_bound: crate::dispatch::DEFAULT_STREAM_BOUND,
            balance: Strategy::default(),
        }
    }

    /// The number of worker threads.
    ///
    /// The default value is the machine's available parallelism
    /// ([`std::thread::available_parallelism`]), or 1 if it is unknown.
    ///
    /// # Panics
    ///
    /// If `threads` is 0.
    ///
    /// ```
    /// let pool = knitting::Pool::builder().threads(3).build().unwrap();
    /// assert_eq!(pool.threads(), 3);
    /// ```
    #[track_caller]
    pub fn threads(mut self, threads: usize) -> Self {
        assert!(threads > 0, "a pool needs at least one worker thread");
        self.threads = Some(threads);
        self
    }

    /// How many calls each lane queue holds before further calls go to a
    /// (slower, locked) overflow list. Calls are never refused for space.
    ///
    /// The default value is 1024. It is rounded up to a power of two.
    ///
    /// # Panics
    ///
    /// If `capacity` is 0 or larger than 2^20.
    ///
    /// ```
    /// let pool = knitting::Pool::builder().queue_capacity(64).build().unwrap();
    /// # drop(pool);
    /// ```
    #[track_caller]
    pub fn queue_capacity(mut self, capacity: usize) -> Self {
        assert!(
            (1..=1 << 20).contains(&capacity),
            "queue_capacity must be between 1 and 2^20, got {capacity}"
        );
        self.queue_capacity = capacity;
        self
    }

    /// How long an idle worker spins (checking its queue, then yielding)
    /// before it parks. Longer answers bursts faster; shorter burns less CPU
    /// when calls are rare. A parked worker costs no CPU and wakes within
    /// microseconds of a new call.
    ///
    /// The default value is 50 µs.
    ///
    /// ```
    /// use std::time::Duration;
    /// let pool = knitting::Pool::builder().spin_budget(Duration::ZERO).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn spin_budget(mut self, budget: Duration) -> Self {
        self.spin_budget = budget;
        self
    }

    /// The name prefix of worker threads (`<prefix>-<index>`), as shown by
    /// debuggers and panic messages.
    ///
    /// The default value is `"knitting-worker"`.
    ///
    /// ```
    /// #[knitting::task]
    /// fn name() -> String { std::thread::current().name().unwrap().to_owned() }
    ///
    /// let pool = knitting::Pool::builder().threads(1).thread_name("resize").build().unwrap();
    /// assert_eq!(pool.call(name, ()).wait().unwrap(), "resize-0");
    /// ```
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// A hard time limit for every call (a task's own
    /// `#[task(hard_timeout = ..)]` wins), counted from when a worker starts
    /// the call. A call that runs past it fails with a
    /// [`HardTimeout`](crate::ErrorKind::HardTimeout) error.
    ///
    /// A thread cannot be killed safely: on a thread pool the lane gets a
    /// fresh worker thread and goes on with its queue, while the runaway
    /// thread is left to finish its task and then exits; its result is
    /// dropped. Until then it still uses its CPU and memory. On a process
    /// pool ([`processes`](Self::processes)) the worker is killed and
    /// replaced. An `async fn` task's call on either runtime has its future
    /// dropped instead, and its worker goes on. Default: none.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[knitting::task]
    /// fn spin_for(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
    ///
    /// let pool = knitting::Pool::builder()
    ///     .threads(1)
    ///     .hard_timeout(Duration::from_millis(50))
    ///     .build()
    ///     .unwrap();
    /// let err = pool.call(spin_for, 1_000).wait().unwrap_err();
    /// assert_eq!(err.kind(), knitting::ErrorKind::HardTimeout);
    /// pool.call(spin_for, 1).wait().unwrap(); // the lane goes on
    /// ```
    pub fn hard_timeout(mut self, limit: Duration) -> Self {
        self.hard_timeout = Some(limit);
        self
    }

    /// Runs `bootstrap` with `data` in each worker, once, before it takes
    /// calls (see [`#[knitting::bootstrap]`](macro@crate::bootstrap) for
    /// what applies where). On a thread pool each worker thread runs it
    /// (per-thread state: `thread_local!`), and [`build`](Self::build)
    /// waits for all of them; carried over by [`processes`](Self::processes).
    /// The data is encoded once. Default: none.
    ///
    /// ```
    /// use std::cell::Cell;
    /// thread_local! { static GREETING: Cell<&'static str> = const { Cell::new("") }; }
    ///
    /// #[knitting::bootstrap]
    /// fn setup(polite: bool) {
    ///     GREETING.with(|g| g.set(if polite { "good day" } else { "hi" }));
    /// }
    ///
    /// #[knitting::task]
    /// fn greet() -> String { GREETING.with(Cell::get).to_owned() }
    ///
    /// let pool = knitting::Pool::builder().threads(2).bootstrap(setup, true).build()?;
    /// assert_eq!(pool.call(greet, ()).wait()?, "good day");
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn bootstrap<B: Bootstrap>(mut self, bootstrap: B, data: B::Data) -> Self {
        self.boot = Some(Boot::new(bootstrap.info().name(), &data));
        self
    }

    /// Makes a pool of `processes` worker *processes* instead of threads:
    /// see [`ProcessPool`](crate::ProcessPool). The spin budget, the
    /// [`bootstrap`](Self::bootstrap) and the [`balancer`](Self::balancer)
    /// carry over; the other thread options do not apply.
    ///
    /// Process workers need Linux: elsewhere the same code compiles and
    /// [`build`](crate::ProcessPoolBuilder::build) fails with a
    /// [`Startup`](crate::ErrorKind::Startup) error, so a program can fall
    /// back to a thread pool at run time.
    ///
    /// # Panics
    ///
    /// If `processes` is 0.
    ///
    /// ```
    /// knitting::init(); // first thing in main
    /// let pool = knitting::Pool::builder().processes(2).build()?;
    /// assert_eq!(pool.processes(), 2);
    /// # Ok::<(), knitting::Error>(())
    /// ```
    #[track_caller]
    pub fn processes(self, processes: usize) -> ProcessPoolBuilder {
        assert!(processes > 0, "a pool needs at least one worker process");
        ProcessPoolBuilder::new(
            processes,
            self.spin_budget,
            self.hard_timeout,
            self.boot,
            self.balance,
        )
        .debug(self.debug)
        .latency_histogram(self.latency)
        .async_concurrency(self.async_concurrency)
        .stream_bound(self.stream_bound)
    }

    /// The inline lane's threshold: once `calls` calls are queued or
    /// running on the pool's workers, each new call of a thread pool runs
    /// on its caller's thread when the caller waits for it (as a
    /// `#[task(inline)]` task always does; see
    /// [the inline lane](crate::Call#the-inline-lane)). A saturated pool
    /// then grows by the callers' own threads instead of queueing
    /// further. A pool with a [`hard_timeout`](Self::hard_timeout) never
    /// runs calls inline.
    ///
    /// The default value is none: only `#[task(inline)]` tasks run inline.
    ///
    /// # Panics
    ///
    /// If `calls` is 0 (every call would run inline: use
    /// `#[task(inline)]`, or call the function).
    ///
    /// ```
    /// use std::sync::{atomic::{AtomicBool, Ordering}, Mutex};
    ///
    /// static GATE: Mutex<()> = Mutex::new(());
    /// static STARTED: AtomicBool = AtomicBool::new(false);
    ///
    /// /// Holds the worker until the gate opens.
    /// #[knitting::task]
    /// fn gated() {
    ///     STARTED.store(true, Ordering::SeqCst);
    ///     drop(GATE.lock().unwrap());
    /// }
    ///
    /// #[knitting::task]
    /// fn square(v: u64) -> u64 { v * v }
    ///
    /// # fn main() -> Result<(), knitting::Error> {
    /// let pool = knitting::Pool::builder().threads(1).inline_threshold(2).build()?;
    /// let gate = GATE.lock().unwrap();
    /// let first = pool.call(gated, ()); // the worker runs it, and waits
    /// while !STARTED.load(Ordering::SeqCst) { std::thread::yield_now(); }
    /// let second = pool.call(square, 2); // 1 in flight: queued behind it
    /// let third = pool.call(square, 3); // 2 in flight: kept for this thread
    /// assert_eq!(third.wait()?, 9); // runs here while the worker is held
    /// drop(gate);
    /// assert_eq!(second.wait()?, 4);
    /// first.wait()?;
    /// assert_eq!(pool.stats().inlined, 1);
    /// # Ok(()) }
    /// ```
    #[track_caller]
    pub fn inline_threshold(mut self, calls: usize) -> Self {
        assert!(
            calls > 0,
            "an inline threshold of 0 would run every call inline"
        );
        self.inline_threshold = Some(calls);
        self
    }

    /// Which diagnostics the pool emits as `tracing` events (see
    /// [`Diagnostics`]); the `KNITTING_DEBUG` environment variable adds
    /// more. Carries over to [`processes`](Self::processes).
    ///
    /// The default value is none: no events, and no cost beyond a byte
    /// test where each would be.
    ///
    /// ```
    /// use knitting::Diagnostics;
    /// let pool = knitting::Pool::builder().debug(Diagnostics::ALL).build().unwrap();
    /// # drop(pool);
    /// ```
    pub fn debug(mut self, diagnostics: Diagnostics) -> Self {
        self.debug = diagnostics;
        self
    }

    /// Records every call's latency in a histogram, in
    /// [`PoolStats::latency`](crate::PoolStats::latency): from the call to
    /// the moment its handle took the outcome. Costs a clock read at each
    /// end, a small allocation and a lock per call. Carries over to
    /// [`processes`](Self::processes).
    ///
    /// The default value is `false`.
    ///
    /// ```
    /// let pool = knitting::Pool::builder().latency_histogram(true).build().unwrap();
    /// assert_eq!(pool.stats().latency.unwrap().len(), 0);
    /// ```
    pub fn latency_histogram(mut self, on: bool) -> Self {
        self.latency = on;
        self
    }

    /// Whether an idle worker thread takes calls queued on a busy one's
    /// lane, so that one slow call does not hold back the calls queued
    /// behind it while other workers have nothing to do.
    ///
    /// Only calls that have not started move; a stolen call runs exactly as
    /// on its own lane (the same hard time limit, the same nested-call
    /// rule) and counts on the lane that ran it
    /// ([`LaneStats::stolen`](crate::LaneStats::stolen)). Turn it off when a
    /// call must run on the worker thread its lane was given: per-thread
    /// state from a [`bootstrap`](Self::bootstrap) that differs between
    /// workers, or keeping a lane's calls in first-in first-out order on
    /// one thread. An idle worker also looks at the other lanes while it
    /// spins, which costs a little more memory traffic on a busy pool.
    ///
    /// The default value is `true` (a pool of one thread has nobody to
    /// steal from). Process pools do not steal.
    ///
    /// ```
    /// let pool = knitting::Pool::builder().threads(2).work_stealing(false).build()?;
    /// assert_eq!(pool.stats().lanes[1].stolen, 0);
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn work_stealing(mut self, on: bool) -> Self {
        self.work_stealing = on;
        self
    }

    /// How many calls of `async fn` tasks each worker runs at once (at
    /// least 1; the default is 256). Carries over to
    /// [`processes`](Self::processes) (see
    /// [`ProcessPoolBuilder::async_concurrency`](crate::ProcessPoolBuilder::async_concurrency)).
    ///
    /// A worker that starts an async call goes on taking calls while its
    /// future waits (for a timer, I/O, another call), so calls that wait
    /// more than they compute do not hold a thread each. Past this many in
    /// flight, the worker takes no new call until one of them ends; sync
    /// calls are not counted (each holds the worker while it runs).
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[knitting::task]
    /// async fn pause(ms: u64) { knitting::sleep(Duration::from_millis(ms)).await }
    ///
    /// let pool = knitting::Pool::builder().threads(1).async_concurrency(4).build()?;
    /// let calls: Vec<_> = (0..8).map(|_| pool.call(pause, 5)).collect();
    /// for call in calls { call.wait()?; } // two rounds of four
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn async_concurrency(mut self, calls: usize) -> Self {
        self.async_concurrency = calls.max(1);
        self
    }

    /// How many items a stream holds that its reader has not taken yet,
    /// before its task's [`send`](crate::Sender::send) waits (rounded up
    /// to a power of two; the default is 64): a slow reader slows the task
    /// down, and memory stays bounded. Carries over to
    /// [`processes`](Self::processes).
    ///
    /// ```
    /// #[knitting::task]
    /// fn count(n: u64, out: knitting::Sender<u64>) { for i in 0..n { let _ = out.send(i); } }
    ///
    /// let pool = knitting::Pool::builder().threads(1).stream_bound(8).build()?;
    /// let stream = pool.stream(count, 100);
    /// assert_eq!(stream.bound(), 8);
    /// assert_eq!(stream.map(Result::unwrap).sum::<u64>(), 4950);
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn stream_bound(mut self, items: usize) -> Self {
        self.stream_bound = items.clamp(2, 1 << 20).next_power_of_two();
        self
    }

    /// Starts the workers.
    ///
    /// # Errors
    ///
    /// - [`ErrorKind::DuplicateTask`](crate::ErrorKind::DuplicateTask) if two
    ///   tasks of the program share an id;
    /// - [`ErrorKind::Build`](crate::ErrorKind::Build) if the OS refuses a
    ///   worker thread, or the bootstrap's data cannot be encoded;
    /// - [`ErrorKind::Startup`](crate::ErrorKind::Startup) if the bootstrap
    ///   is not in this program, or fails or panics in a worker (the error
    ///   names it and carries its message).
    ///
    /// ```
    /// let pool = knitting::Pool::builder().threads(1).build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn build(self) -> Result<Pool, Error> {
        let threads = self
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, NonZeroUsize::get));
        let debug = self.debug | Diagnostics::from_env();
        let cfg = thread::Config {
            threads,
            queue_capacity: self.queue_capacity,
            spin_budget: self.spin_budget,
            thread_name: self.thread_name,
            hard_timeout: self.hard_timeout,
            boot: Boot::into_setting(self.boot)?,
            work_stealing: self.work_stealing,
            diagnostics: debug,
            async_concurrency: self.async_concurrency,
        };
        let inline = self.inline_threshold;
        let balance = self.balance;
        let latency = self.latency;
        let bound = self.stream_bound;
        Pool::from_engine(|| {
            thread::Runtime::start(cfg).map(|rt| {
                Engine::threads(rt, balance)
                    .with_stream_bound(bound)
                    .with_inline_threshold(inline)
                    .with_latency(latency)
                    .with_diagnostics(debug)
            })
        })
    }
}
