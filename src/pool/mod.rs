//! [`Pool`]: where calls are made, for every runtime, and how a pool
//! shuts down.
//!
//! One type, with the runtime as a parameter: `Pool<Threads>` (the
//! default, spelled `Pool`), `Pool<Processes>` ([`ProcessPool`]) and
//! `Pool<AnyRuntime>` (chosen when the program runs). The parameter only
//! decides, at compile time, which tasks [`call`](Pool::call) accepts
//! ([`Runs`]): a process pool must be able to encode a task's arguments,
//! and a thread pool must not make every task pay for that. Everything
//! else (the call path, deadlines, stats, shutdown) is written once here
//! over the private `Engine` (in `dispatch`), whose one `match` per operation is the
//! only place that tells the runtimes apart.

mod balancing;
pub(crate) mod builder;
mod closures;
pub mod encoded;
mod processes;
mod stats;
mod streams;

use std::{
    fmt,
    marker::PhantomData,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

pub use self::{
    processes::{ProcessPool, ProcessPoolBuilder},
    stats::{Crash, CrashKind, LaneStats, PoolStats},
};
use crate::{
    call::{
        cell::{CallRef, JobRef},
        kept::Keeper,
    },
    dispatch::Engine,
    runtime::{sealed::Travel, AnyRuntime, Processes, Remote, Runs, Runtime, RuntimeKind, Threads},
    Call, Error, PoolBuilder, Task,
};

/// A pool of workers that runs [tasks](macro@crate::task): worker threads
/// (`Pool`, that is `Pool<Threads>`) or worker processes
/// ([`Pool<Processes>`](ProcessPool)).
///
/// Build one with [`Pool::builder`], make calls with [`Pool::call`].
/// A `Pool` is a handle: [`Clone`] it to share the pool between threads,
/// async tasks or a web framework's state (no `Arc` needed); the pool
/// shuts down when its last handle is dropped, or on an explicit
/// [`shutdown`](Self::shutdown).
///
/// ```
/// #[knitting::task]
/// fn square(v: i64) -> i64 { v * v }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(2).build()?;
/// assert_eq!(pool.call(square, 7).wait()?, 49);
///
/// let handle = pool.clone(); // the same pool
/// std::thread::spawn(move || handle.call(square, 8).wait()).join().unwrap()?;
/// assert_eq!(pool.stats().lanes.iter().map(|l| l.completed).sum::<usize>(), 2);
/// # Ok(()) }
/// ```
///
/// # Choosing the runtime
///
/// The code that makes calls is the same for every runtime. Pick one at
/// compile time with the builder (`.threads(n)` or `.processes(n)`), be
/// generic over it (`R: Runs<my_task>`, see [`Runs`]), or pick it when the
/// program runs with `Pool<AnyRuntime>` (see [`AnyRuntime`]).
///
/// # Shutting down
///
/// - Dropping the last handle starts a shutdown and returns at once: calls
///   already made still run to their end (their handles resolve), new ones
///   cannot be made, and the workers exit when their queues are empty.
/// - [`shutdown`](Self::shutdown) does the same and waits for the workers.
/// - [`shutdown_timeout`](Self::shutdown_timeout) waits at most a given time,
///   then fails every call still queued or running with a
///   [`Closed`](crate::ErrorKind::Closed) error.
///
/// After a shutdown began, [`call`](Self::call) returns a handle that fails at
/// once with a `Closed` error.
pub struct Pool<R: Runtime = Threads> {
    handle: Arc<Handle>,
    _runtime: PhantomData<fn() -> R>,
}

/// What the handles of one pool share; the pool shuts down when the last
/// one goes.
struct Handle {
    engine: Engine,
}

impl Keeper for Handle {
    fn send(&self, call: &CallRef, job: JobRef) {
        // Only thread pools keep calls, and their calls need no remote.
        self.engine.submit(call, job, None);
    }

    fn is_open(&self) -> bool {
        !self.engine.is_closed()
    }

    fn ran_inline(&self) {
        self.engine.ran_inline();
    }
}

impl Drop for Handle {
    /// Starts a shutdown and returns without waiting; see
    /// [Shutting down](Pool#shutting-down).
    fn drop(&mut self) {
        self.engine.close();
    }
}

impl<R: Runtime> Clone for Pool<R> {
    /// Another handle of the same pool.
    fn clone(&self) -> Self {
        Self {
            handle: Arc::clone(&self.handle),
            _runtime: PhantomData,
        }
    }
}

impl Pool<Threads> {
    /// A builder to configure a pool.
    ///
    /// ```
    /// let pool = knitting::Pool::builder().threads(4).build().unwrap();
    /// assert_eq!(pool.threads(), 4);
    /// ```
    pub fn builder() -> PoolBuilder {
        PoolBuilder::new()
    }

    /// The number of worker threads.
    ///
    /// ```
    /// let pool = knitting::Pool::builder().threads(3).build().unwrap();
    /// assert_eq!(pool.threads(), 3);
    /// ```
    pub fn threads(&self) -> usize {
        self.workers()
    }
}

impl Pool<Processes> {
    /// The number of worker processes.
    ///
    /// ```
    /// knitting::init();
    /// # #[cfg(target_os = "linux")] {
    /// let pool = knitting::Pool::builder().processes(3).build()?;
    /// assert_eq!(pool.processes(), 3);
    /// # }
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn processes(&self) -> usize {
        self.workers()
    }

    /// The pids of the worker processes running now, in lane order (`None`
    /// for a lane whose worker is being replaced or has stopped).
    ///
    /// ```
    /// #[knitting::task]
    /// fn pid() -> u32 { std::process::id() }
    ///
    /// fn main() -> Result<(), knitting::Error> {
    ///     knitting::init();
    /// # #[cfg(target_os = "linux")] {
    ///     let pool = knitting::Pool::builder().processes(1).build()?;
    ///     let served_by = pool.call(pid, ()).wait()?;
    ///     assert_eq!(pool.worker_pids(), [Some(served_by)]);
    ///     assert_ne!(served_by, std::process::id());
    /// # }
    ///     Ok(())
    /// }
    /// ```
    pub fn worker_pids(&self) -> Vec<Option<u32>> {
        self.stats().lanes.iter().map(|lane| lane.pid).collect()
    }
}

impl<R: Runtime> Pool<R> {
    /// Wraps a runtime that `start` builds, after the checks every pool
    /// makes.
    pub(crate) fn from_engine(
        start: impl FnOnce() -> Result<Engine, Error>,
    ) -> Result<Self, Error> {
        crate::task::check_unique_ids()?;
        Ok(Self {
            handle: Arc::new(Handle { engine: start()? }),
            _runtime: PhantomData,
        })
    }

    /// Calls `task` with `args` on a worker and returns the call's handle.
    ///
    /// `args` is the task's parameter, a tuple of its parameters when it has
    /// several, or `()` when it has none; the compiler checks it against the
    /// task's signature, and that the pool's runtime runs the task
    /// ([`Runs`]). On a thread pool the arguments are *moved* to the worker:
    /// nothing is serialized or copied. On a process pool they are encoded
    /// (postcard) into the worker's request arena right here; when its ring
    /// or arena is full, the call waits in the host and is sent as soon as
    /// there is room, and an argument over
    /// [`max_payload_bytes`](crate::ProcessPoolBuilder::max_payload_bytes)
    /// fails the call with a [`TooLarge`](crate::ErrorKind::TooLarge) error.
    ///
    /// Never blocks: the call is queued on the lane the pool's
    /// [balancer](crate::Balancer) picks (by default the first idle lane,
    /// or, when every lane is busy, the one with the fewest calls) and
    /// runs whether or not the handle is awaited. See [`Call`] for how to get the
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
    /// // Or awaited, in any executor:
    /// assert_eq!(pollster::block_on(pool.call(greet, ("you".into(), false)))?, "hello you");
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
    pub fn call<T: Task>(&self, task: T, args: T::Args) -> Call<T::Output>
    where
        R: Runs<T>,
    {
        self.start(task, args, <R as Travel<T>>::remote(&task))
    }

    /// Makes a call of `task` with `args`: the one call path of tasks and
    /// closures. `remote` is what a process lane needs to send it (`None`
    /// on a thread pool).
    #[inline]
    fn start<T: Task>(&self, task: T, args: T::Args, remote: Option<Remote>) -> Call<T::Output> {
        let engine = &self.handle.engine;
        // A fast path: the runtime's own check after the hand-off decides a
        // race with a shutdown.
        if engine.is_closed() {
            return Call::failed(Error::closed().with_task(task.info().name()));
        }
        let since = engine.latency().map(|_| Instant::now());
        let info = task.info();
        let timeout = info.timeout();
        let inline = info.is_inline() && info.hard_timeout().is_none();
        let (call, job) = CallRef::new(task, args);
        let mut call = match engine.keep(inline) {
            Some(home) => {
                crate::diag::call_kept(engine.diagnostics(), info.name());
                let pool: Weak<dyn Keeper> = Arc::downgrade(&self.handle) as Weak<Handle>;
                Call::kept(call, home, job, pool)
            }
            None => {
                let (home, route) = engine.submit(&call, job, remote);
                Call::pending(call, home, route)
            }
        };
        if let (Some(latency), Some(since)) = (engine.latency(), since) {
            call = call.recorded(latency, since);
        }
        match timeout {
            Some(timeout) => call.timeout(timeout),
            None => call,
        }
    }

    /// Which runtime the pool runs on (for a `Pool<AnyRuntime>`, the one
    /// it was made from).
    ///
    /// ```
    /// use knitting::{AnyRuntime, Pool, RuntimeKind};
    ///
    /// let pool: Pool<AnyRuntime> = Pool::builder().threads(1).build().unwrap().into();
    /// assert_eq!(pool.runtime(), RuntimeKind::Threads);
    /// ```
    pub fn runtime(&self) -> RuntimeKind {
        self.handle.engine.kind()
    }

    /// The number of workers (threads or processes), one per lane.
    ///
    /// ```
    /// let pool = knitting::Pool::builder().threads(3).build().unwrap();
    /// assert_eq!(pool.workers(), 3);
    /// ```
    pub fn workers(&self) -> usize {
        self.handle.engine.workers()
    }

    /// A snapshot of per-lane counters (for a process pool, with each
    /// worker's pid and how many times it was replaced).
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
            lanes: self.handle.engine.lane_stats(),
            closed: self.is_closed(),
            inlined: self.handle.engine.inlined(),
            latency: self.handle.engine.latency().map(|l| l.snapshot()),
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
        self.handle.engine.is_closed()
    }

    /// Shuts the pool down and waits: calls already made run to their end,
    /// new calls fail with a [`Closed`](crate::ErrorKind::Closed) error, and
    /// the workers exit (threads are joined, processes reaped).
    ///
    /// Calling it again (or after [`shutdown_timeout`](Self::shutdown_timeout))
    /// waits again and returns. Do not call it from a task running on the
    /// same thread pool: the worker would wait for itself.
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
        let engine = &self.handle.engine;
        engine.close();
        engine.wait(None);
        engine.join();
    }

    /// Shuts the pool down, waits at most `timeout` for calls in flight,
    /// then fails what is left with a [`Closed`](crate::ErrorKind::Closed)
    /// error.
    ///
    /// Returns `Ok(())` when every call finished in time, or an error of
    /// kind [`Timeout`](crate::ErrorKind::Timeout) that says how many calls
    /// were failed. Worker processes still busy are killed. A worker
    /// thread stuck in a long task cannot be stopped (no thread can be
    /// killed safely): it is left to finish on its own and its result is
    /// discarded.
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
        let engine = &self.handle.engine;
        engine.close();
        let deadline = Instant::now().checked_add(timeout);
        if engine.wait(deadline) {
            engine.join();
            return Ok(());
        }
        Err(Error::shutdown_timeout(timeout, engine.abandon()))
    }
}

impl From<Pool<Threads>> for Pool<AnyRuntime> {
    /// The same pool, as one whose runtime is chosen at run time.
    fn from(pool: Pool<Threads>) -> Self {
        Self {
            handle: pool.handle,
            _runtime: PhantomData,
        }
    }
}

impl From<Pool<Processes>> for Pool<AnyRuntime> {
    /// The same pool, as one whose runtime is chosen at run time.
    fn from(pool: Pool<Processes>) -> Self {
        Self {
            handle: pool.handle,
            _runtime: PhantomData,
        }
    }
}

impl<R: Runtime> fmt::Debug for Pool<R> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("runtime", &self.runtime())
            .field("workers", &self.workers())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}
