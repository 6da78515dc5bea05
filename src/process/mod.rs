//! Process workers: the same calls, run in child processes that share one
//! mapping each with the host.
//!
//! - `shm`: the mapping's layout and the raw byte access (the unsafe part);
//! - `wire`: postcard encoding straight into the arenas;
//! - `bell`: the doorbell protocol (who sleeps, who rings), shared with
//!   the loom models;
//! - `futex`: shared (cross-process) futex waits and wakes;
//! - `arena`: where the next payload goes in a circular arena, and the
//!   check that a peer's unread payloads do not overlap;
//! - `check`: the host's checks of worker-written words (pure functions);
//! - `handover`: what a worker is told on its command line;
//! - `link`: the host's side of one worker's mapping (send, take);
//! - `host`: a process lane: its reactor, the rule for a worker that goes,
//!   the liveness rule;
//! - `spawn`: starting, watching and stopping worker processes;
//! - `worker`: the worker process's loop;
//! - `names`: named shared-memory objects and their clean-up.

pub(crate) mod arena;
pub(crate) mod bell;
pub(crate) mod channel;
pub(crate) mod check;
pub(crate) mod futex;
pub(crate) mod handover;
pub(crate) mod host;
pub(crate) mod link;
pub(crate) mod names;
pub(crate) mod shm;
pub(crate) mod spawn;
pub(crate) mod wire;
pub(crate) mod worker;

use std::{
    ffi::OsString,
    fmt,
    path::PathBuf,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        mpsc, Arc, Mutex,
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use self::host::{Config, Lane, Shared};
use crate::{
    call::cell::{CallRef, RemoteOps},
    Call, Error, ErrorKind, LaneStats, PoolStats, ProcessTask,
};

static IS_PROCESS_WORKER: AtomicBool = AtomicBool::new(false);

pub(crate) fn mark_process_worker() {
    // Relaxed: set once at start-up, before any task runs.
    IS_PROCESS_WORKER.store(true, Ordering::Relaxed);
}

/// True inside a process worker.
pub(crate) fn is_process_worker() -> bool {
    // Relaxed: see `mark_process_worker`.
    IS_PROCESS_WORKER.load(Ordering::Relaxed)
}

/// Configures and builds a [`ProcessPool`]; made by
/// [`PoolBuilder::processes`](crate::PoolBuilder::processes).
///
/// ```
/// use std::time::Duration;
///
/// knitting::init(); // first thing in main: a worker process starts here
/// let pool = knitting::Pool::builder()
///     .processes(2)
///     .max_payload_bytes(1 << 20)
///     .start_timeout(Duration::from_secs(5))
///     .build()?;
/// # Ok::<(), knitting::Error>(())
/// ```
#[derive(Clone, Debug)]
#[must_use = "a builder does nothing until `.build()` is called"]
pub struct ProcessPoolBuilder {
    processes: usize,
    exe: Option<PathBuf>,
    prefix: Vec<OsString>,
    named: bool,
    slots: usize,
    arena: usize,
    max_payload: Option<usize>,
    spin: Duration,
    start_timeout: Duration,
    hard_timeout: Option<Duration>,
    liveness: Duration,
}

/// The default of [`ProcessPoolBuilder::liveness_timeout`].
const DEFAULT_LIVENESS: Duration = Duration::from_secs(5);

/// How often a worker shows it is alive, for a liveness timeout: five
/// beats per timeout, between 1 ms and 1 s apart.
fn heartbeat_for(liveness: Duration) -> Duration {
    (liveness / 5).clamp(Duration::from_millis(1), Duration::from_secs(1))
}

impl ProcessPoolBuilder {
    pub(crate) fn new(processes: usize, spin: Duration, hard_timeout: Option<Duration>) -> Self {
        Self {
            processes,
            exe: None,
            prefix: Vec::new(),
            named: false,
            slots: 128,
            arena: 64 << 20,
            max_payload: None,
            spin,
            start_timeout: Duration::from_secs(10),
            hard_timeout,
            liveness: DEFAULT_LIVENESS,
        }
    }

    /// The program each worker runs.
    ///
    /// The default is this program ([`std::env::current_exe`]), which must
    /// call [`knitting::init`](crate::init) first thing in `main`. Another
    /// program works too, as long as it calls `knitting::init()` and
    /// defines the tasks the host calls (see [`ImportedTask`](crate::ImportedTask)).
    ///
    /// ```
    /// let me = std::env::current_exe().unwrap(); // the default, spelled out
    /// knitting::init();
    /// let pool = knitting::Pool::builder()
    ///     .processes(1)
    ///     .worker_executable(me)
    ///     .build()?;
    /// assert_eq!(pool.processes(), 1);
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn worker_executable(mut self, path: impl Into<PathBuf>) -> Self {
        self.exe = Some(path.into());
        self
    }

    /// Runs each worker behind a command, such as
    /// `["bwrap", "--unshare-all", ...]` or `["systemd-run", "--user", ...]`:
    /// the worker's command line becomes `prefix... <worker executable>`.
    ///
    /// Everything a worker is told travels on its command line (after the
    /// worker executable), so a prefix that drops the environment
    /// (`env -i`, `systemd-run`, `docker run`) is fine; a process started as
    /// a worker never runs `main`, even when a wrapper dropped part of what
    /// it needs (it exits with a message on stderr, and the start fails).
    /// The prefix must keep file descriptor 0 (bwrap and `env` do) unless
    /// [`named_shared_memory`](Self::named_shared_memory) is on, and must let
    /// the worker executable be seen: `bwrap --tmpfs /tmp` hides a program
    /// built under `/tmp`, so bind its directory back
    /// (`--ro-bind <dir> <dir>` after the `--tmpfs`). A worker that cannot
    /// start fails [`build`](Self::build) with a
    /// [`Startup`](crate::ErrorKind::Startup) error naming the command.
    ///
    /// Workers behind a prefix still die with the host: each inherits the
    /// read end of a pipe only the host writes to (as file descriptor 3),
    /// and exits when it sees end-of-file. A prefix that closes inherited
    /// descriptors leaves only the parent-death signal, which reaches the
    /// wrapper, not the worker (bwrap's `--die-with-parent` passes it on).
    ///
    /// ```
    /// #[knitting::task]
    /// fn home() -> Option<String> { std::env::var("HOME").ok() }
    ///
    /// fn main() -> Result<(), knitting::Error> {
    ///     knitting::init();
    ///     // `env` keeps fd 0, so it works as a prefix: here it clears HOME.
    ///     let pool = knitting::Pool::builder()
    ///         .processes(1)
    ///         .command_prefix(["env", "-u", "HOME"])
    ///         .build()?;
    ///     assert_eq!(pool.call(home, ()).wait()?, None);
    ///     Ok(())
    /// }
    /// ```
    ///
    /// A complete bubblewrap sandbox is in `examples/sandbox_bwrap.rs`.
    pub fn command_prefix<I, S>(mut self, prefix: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        self.prefix = prefix.into_iter().map(Into::into).collect();
        self
    }

    /// Hands each worker its mapping by name (a POSIX shared memory object
    /// under `/dev/shm`) instead of as its file descriptor 0, for wrappers
    /// and containers that replace stdin.
    ///
    /// The name is removed as soon as the worker has opened the object, so
    /// nothing is left behind after a normal run or a crash; objects of a
    /// host that was killed while a worker started are removed by the next
    /// named pool. The worker needs to see the host's `/dev/shm`
    /// (`bwrap --dev-bind /dev /dev`, `docker --ipc=host`). Default: off.
    ///
    /// ```
    /// knitting::init();
    /// let pool = knitting::Pool::builder()
    ///     .processes(1)
    ///     .named_shared_memory(true)
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn named_shared_memory(mut self, named: bool) -> Self {
        self.named = named;
        self
    }

    /// The size of each worker's request arena and of its response arena.
    /// Memory is touched only as it is used. Default: 64 MiB.
    ///
    /// # Panics
    ///
    /// If `bytes` is under 4096 or over 2^40.
    ///
    /// ```
    /// knitting::init();
    /// let pool = knitting::Pool::builder()
    ///     .processes(1)
    ///     .arena_bytes(1 << 20) // 1 MiB each way per worker
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    #[track_caller]
    pub fn arena_bytes(mut self, bytes: usize) -> Self {
        assert!(
            (4096..=1 << 40).contains(&bytes),
            "arena_bytes must be between 4096 and 2^40, got {bytes}"
        );
        self.arena = bytes;
        self
    }

    /// The largest encoded argument or result of one call. A call over the
    /// limit fails with a [`TooLarge`](crate::ErrorKind::TooLarge) error
    /// that names the limit and the size, before anything is sent; the
    /// worker goes on. Default: an eighth of [`arena_bytes`](Self::arena_bytes)
    /// (8 MiB).
    ///
    /// # Panics
    ///
    /// If `bytes` is 0 or larger than the arena.
    ///
    /// ```
    /// #[knitting::task]
    /// fn len(bytes: Vec<u8>) -> usize { bytes.len() }
    ///
    /// fn main() -> Result<(), knitting::Error> {
    ///     knitting::init();
    ///     let pool = knitting::Pool::builder()
    ///         .processes(1)
    ///         .max_payload_bytes(1024)
    ///         .build()?;
    ///     assert_eq!(pool.call(len, vec![0; 100]).wait()?, 100);
    ///     let err = pool.call(len, vec![0; 4096]).wait().unwrap_err();
    ///     assert_eq!(err.kind(), knitting::ErrorKind::TooLarge);
    ///     Ok(())
    /// }
    /// ```
    #[track_caller]
    pub fn max_payload_bytes(mut self, bytes: usize) -> Self {
        assert!(bytes > 0, "max_payload_bytes must be positive");
        self.max_payload = Some(bytes);
        self
    }

    /// How many calls each worker holds in its ring; more wait in the
    /// host. Default: 128.
    ///
    /// # Panics
    ///
    /// If `slots` is 0 or over 65536.
    ///
    /// ```
    /// knitting::init();
    /// let pool = knitting::Pool::builder()
    ///     .processes(1)
    ///     .ring_slots(16)
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    #[track_caller]
    pub fn ring_slots(mut self, slots: usize) -> Self {
        assert!(
            (1..=1 << 16).contains(&slots),
            "ring_slots must be between 1 and 65536, got {slots}"
        );
        self.slots = slots;
        self
    }

    /// How long an idle worker (and a waiting caller) spins before it
    /// sleeps on its futex. Default: 50 µs.
    ///
    /// ```
    /// use std::time::Duration;
    /// knitting::init();
    /// let pool = knitting::Pool::builder()
    ///     .processes(1)
    ///     .spin_budget(Duration::ZERO) // sleep at once: no CPU while idle
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn spin_budget(mut self, budget: Duration) -> Self {
        self.spin = budget;
        self
    }

    /// How long a worker may take to start before it is killed and the
    /// start counts as failed. Default: 10 s.
    ///
    /// ```
    /// use std::time::Duration;
    /// knitting::init();
    /// let pool = knitting::Pool::builder()
    ///     .processes(1)
    ///     .start_timeout(Duration::from_secs(30)) // a slow sandbox
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn start_timeout(mut self, timeout: Duration) -> Self {
        self.start_timeout = timeout;
        self
    }

    /// A hard time limit for every call (a task's own
    /// `#[task(hard_timeout = ..)]` wins), counted from when the worker
    /// starts the call. A call that runs past it fails with a
    /// [`HardTimeout`](crate::ErrorKind::HardTimeout) error, its worker
    /// process is killed and replaced, and the calls queued behind it run on
    /// the replacement; other lanes are untouched. Default: none.
    ///
    /// ```
    /// use std::time::Duration;
    /// knitting::init();
    /// let pool = knitting::Pool::builder()
    ///     .processes(2)
    ///     .hard_timeout(Duration::from_secs(30))
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn hard_timeout(mut self, limit: Duration) -> Self {
        self.hard_timeout = Some(limit);
        self
    }

    /// How long a worker that holds calls may show no sign of life before
    /// it is killed and replaced. Default: 5 s.
    ///
    /// Each worker process has a thread of its own that marks a word in
    /// the shared mapping a few times per timeout, whatever its tasks do;
    /// a worker stopped by a signal (`SIGSTOP`), frozen by its cgroup, or
    /// otherwise not scheduled stops marking it. When that word has not
    /// moved for this long while the worker has calls, the worker is
    /// killed: the call at the front of its queue (which may have started)
    /// fails with a [`WorkerDied`](crate::ErrorKind::WorkerDied) error, and
    /// the calls behind it run on the replacement. A task that runs long,
    /// or is stuck in a loop or a deadlock, does not stop the beat: that is
    /// what [`hard_timeout`](Self::hard_timeout) is for. An idle worker is
    /// never judged.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// knitting::init();
    /// let pool = knitting::Pool::builder()
    ///     .processes(2)
    ///     .liveness_timeout(Duration::from_secs(1))
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    ///
    /// # Panics
    ///
    /// If `timeout` is under 10 ms.
    #[track_caller]
    pub fn liveness_timeout(mut self, timeout: Duration) -> Self {
        assert!(
            timeout >= Duration::from_millis(10),
            "liveness_timeout must be at least 10 ms, got {timeout:?}"
        );
        self.liveness = timeout;
        self
    }

    /// Starts the worker processes and waits until each is ready.
    ///
    /// # Errors
    ///
    /// - [`Startup`](crate::ErrorKind::Startup) if a worker cannot be
    ///   spawned, exits before it is ready, or is not ready in time; or if
    ///   this process is itself a process worker (workers do not start
    ///   pools of their own);
    /// - [`DuplicateTask`](crate::ErrorKind::DuplicateTask) if two tasks
    ///   share an id;
    /// - [`Build`](crate::ErrorKind::Build) if the shared memory cannot be
    ///   made.
    ///
    /// ```
    /// knitting::init();
    /// match knitting::Pool::builder().processes(2).build() {
    ///     Ok(pool) => assert_eq!(pool.processes(), 2),
    ///     Err(err) => eprintln!("no process workers: {err}"),
    /// }
    /// ```
    pub fn build(self) -> Result<ProcessPool, Error> {
        ProcessPool::start(self)
    }
}

/// A pool of worker processes that runs [tasks](macro@crate::task).
///
/// The same calls as [`Pool`](crate::Pool), in child processes: a task
/// that crashes, aborts or exits costs one worker, never the host. Each
/// worker shares one mapping with the host (request and response rings and
/// a payload arena each way); arguments and results are encoded with
/// postcard straight into it, so tasks' arguments must be `Serialize` and
/// their outputs `Deserialize` (checked at compile time).
///
/// Workers run this program again (or the one set with
/// [`worker_executable`](ProcessPoolBuilder::worker_executable)), which
/// must call [`knitting::init`](crate::init) first thing in `main`
/// (in test files: [`init_before_main!`](crate::init_before_main)).
///
/// ```
/// #[knitting::task]
/// fn shout(text: String) -> String { text.to_uppercase() }
///
/// fn main() -> Result<(), knitting::Error> {
///     knitting::init();
///     let pool = knitting::Pool::builder().processes(2).build()?;
///     assert_eq!(pool.call(shout, "hi".into()).wait()?, "HI");
///     Ok(())
/// }
/// ```
///
/// # Bytes
///
/// A `Vec<u8>` argument or result is encoded by serde as a sequence, one
/// byte at a time: for 1 MiB that is about 50 times slower than a byte
/// string (6.65 ms against 126 µs per round trip in a release build, 85 ms
/// in a debug build). Spell bytes as [`serde_bytes::ByteBuf`], or mark a
/// `Vec<u8>` field `#[serde(with = "serde_bytes")]`:
///
/// [`serde_bytes::ByteBuf`]: https://docs.rs/serde_bytes/latest/serde_bytes/struct.ByteBuf.html
///
/// ```
/// use serde_bytes::ByteBuf;
///
/// #[derive(serde::Serialize, serde::Deserialize)]
/// struct Image {
///     width: u32,
///     #[serde(with = "serde_bytes")]
///     pixels: Vec<u8>,
/// }
///
/// #[knitting::task]
/// fn invert(bytes: ByteBuf) -> ByteBuf {
///     ByteBuf::from(bytes.iter().map(|b| !b).collect::<Vec<u8>>())
/// }
///
/// #[knitting::task]
/// fn rows(image: Image) -> usize {
///     image.pixels.len() / image.width as usize
/// }
///
/// fn main() -> Result<(), knitting::Error> {
///     knitting::init();
///     let pool = knitting::Pool::builder().processes(1).build()?;
///     let inverted = pool.call(invert, ByteBuf::from(vec![0u8; 1 << 20])).wait()?;
///     assert!(inverted.iter().all(|&b| b == 0xff));
///     let image = Image { width: 4, pixels: vec![0; 32] };
///     assert_eq!(pool.call(rows, image).wait()?, 8);
///     Ok(())
/// }
/// ```
///
/// # When a worker dies
///
/// The call it was running fails with a
/// [`WorkerDied`](crate::ErrorKind::WorkerDied) error that names the
/// worker, its pid and the exit code or signal; the calls behind it (which
/// it cannot have started: see [`WorkerDied`](crate::ErrorKind::WorkerDied)
/// for the rule) run on a replacement worker, started at once (the host
/// watches each worker's pidfd). A worker that stops answering (stopped by
/// a signal, frozen) is killed and replaced the same way after
/// [`liveness_timeout`](ProcessPoolBuilder::liveness_timeout). A worker that keeps dying
/// while it starts is given up after a few attempts, and calls on its lane
/// fail with a [`Startup`](crate::ErrorKind::Startup) error. Workers die
/// with the host (parent-death signal), so none outlives it.
///
/// # Shutting down
///
/// As for [`Pool`](crate::Pool#shutting-down): dropping starts a shutdown
/// without waiting, [`shutdown`](Self::shutdown) waits,
/// [`shutdown_timeout`](Self::shutdown_timeout) kills workers that are
/// still busy when time runs out.
pub struct ProcessPool {
    shared: Arc<Shared>,
    lanes: Box<[Arc<Lane>]>,
    reactors: Mutex<Vec<JoinHandle<()>>>,
    next_lane: AtomicUsize,
}

impl ProcessPool {
    fn start(builder: ProcessPoolBuilder) -> Result<Self, Error> {
        if is_process_worker() || handover::started_as_worker() {
            return Err(Error::of(
                ErrorKind::Startup,
                "this process is a knitting process worker: it cannot start process pools of its \
                 own (if it should be a worker, call knitting::init() first thing in main)",
            ));
        }
        crate::task::check_unique_ids()?;
        let exe = match builder.exe {
            Some(exe) => exe,
            None => std::env::current_exe().map_err(|e| {
                Error::of(
                    ErrorKind::Startup,
                    format!("cannot find this program's path: {e}"),
                )
            })?,
        };
        let max_payload = builder.max_payload.unwrap_or(builder.arena / 8);
        if max_payload > builder.arena {
            return Err(Error::build(format!(
                "max_payload_bytes ({max_payload}) is larger than arena_bytes ({})",
                builder.arena
            )));
        }
        let layout = shm::Layout::new(builder.slots, builder.arena)
            .ok_or_else(|| Error::build("ring_slots or arena_bytes out of range"))?;
        if builder.named {
            names::sweep_stale();
        }
        let n = builder.processes;
        let shared = Arc::new(Shared::new(
            Config {
                exe,
                prefix: builder.prefix,
                named: builder.named,
                layout,
                max_payload,
                spin: builder.spin,
                start_timeout: builder.start_timeout,
                start_attempts: 3,
                hard_timeout: builder.hard_timeout,
                heartbeat: heartbeat_for(builder.liveness),
                liveness: builder.liveness,
            },
            n,
        ));
        let lanes: Box<[Arc<Lane>]> = (0..n)
            .map(|i| Arc::new(Lane::new(i, Arc::clone(&shared))))
            .collect();
        let mut reactors = Vec::with_capacity(n);
        let mut waits = Vec::with_capacity(n);
        for lane in lanes.iter() {
            let (tx, rx) = mpsc::channel();
            let lane = Arc::clone(lane);
            let spawned = std::thread::Builder::new()
                .name(format!("knitting-lane-{}", lane.index))
                .spawn(move || {
                    // A panic here is a bug in the crate: close the lane
                    // with an error rather than leave its calls waiting.
                    let reactor = Arc::clone(&lane);
                    let run = std::panic::AssertUnwindSafe(move || reactor.run(tx));
                    if std::panic::catch_unwind(run).is_err() {
                        lane.reactor_panicked();
                    }
                });
            match spawned {
                Ok(handle) => {
                    reactors.push(handle);
                    waits.push(rx);
                }
                Err(e) => {
                    let pool = Self::assemble(shared, lanes, reactors);
                    pool.abandon_now();
                    return Err(Error::build(format!("could not start a lane thread: {e}")));
                }
            }
        }
        let mut first_error = None;
        for rx in waits {
            let outcome = rx.recv().unwrap_or_else(|_| {
                Err(Error::of(
                    ErrorKind::Startup,
                    "a lane thread ended while starting its worker",
                ))
            });
            if let Err(err) = outcome {
                first_error.get_or_insert(err);
            }
        }
        let pool = Self::assemble(shared, lanes, reactors);
        match first_error {
            None => Ok(pool),
            Some(err) => {
                pool.abandon_now();
                Err(err)
            }
        }
    }

    fn assemble(
        shared: Arc<Shared>,
        lanes: Box<[Arc<Lane>]>,
        reactors: Vec<JoinHandle<()>>,
    ) -> Self {
        Self {
            shared,
            lanes,
            reactors: Mutex::new(reactors),
            next_lane: AtomicUsize::new(0),
        }
    }

    /// Calls `task` with `args` on a worker process and returns the call's
    /// handle.
    ///
    /// The arguments are encoded (postcard) into the worker's request arena
    /// right here; when its ring or arena is full, the call waits in the
    /// host and is sent as soon as there is room. An argument over
    /// [`max_payload_bytes`](ProcessPoolBuilder::max_payload_bytes) fails
    /// the call with a [`TooLarge`](crate::ErrorKind::TooLarge) error.
    ///
    /// Never blocks on the worker: see [`Call`] for how to get the result.
    ///
    /// ```
    /// #[knitting::task]
    /// fn add(a: i64, b: i64) -> i64 { a + b }
    ///
    /// fn main() -> Result<(), knitting::Error> {
    ///     knitting::init();
    ///     let pool = knitting::Pool::builder().processes(2).build()?;
    ///     let calls: Vec<_> = (0..10).map(|i| pool.call(add, (i, 1))).collect();
    ///     let sums = calls.into_iter().map(|c| c.wait()).collect::<Result<Vec<_>, _>>()?;
    ///     assert_eq!(sums, (1..=10).collect::<Vec<_>>());
    ///     // Or awaited, in any executor:
    ///     assert_eq!(pollster::block_on(pool.call(add, (2, 2)))?, 4);
    ///     Ok(())
    /// }
    /// ```
    pub fn call<T: ProcessTask>(&self, task: T, args: T::Args) -> Call<T::Output> {
        // Acquire: pairs with `close`; the lane re-checks under its lock.
        if self.shared.closed.load(Ordering::Acquire) {
            return Call::failed(Error::closed().with_task(task.info().name()));
        }
        let key = shm::TaskKey {
            id: task.info().id().as_u64(),
            shape: crate::task::shape::of::<T>(),
        };
        let timeout = task.info().timeout();
        let (call, job) = CallRef::new(task, args);
        let lane = self.pick_lane();
        lane.submit(job, RemoteOps::of::<T>(), key);
        let call = Call::remote(call, Arc::clone(lane));
        match timeout {
            Some(timeout) => call.timeout(timeout),
            None => call,
        }
    }

    fn pick_lane(&self) -> &Arc<Lane> {
        // Relaxed: only spreads calls.
        let ticket = || self.next_lane.fetch_add(1, Ordering::Relaxed);
        crate::pool::pick_lane(&self.lanes, ticket, |l| !l.is_done(), |l| l.is_idle())
    }

    /// The number of worker processes.
    ///
    /// ```
    /// knitting::init();
    /// let pool = knitting::Pool::builder().processes(3).build()?;
    /// assert_eq!(pool.processes(), 3);
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn processes(&self) -> usize {
        self.lanes.len()
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
    ///     let pool = knitting::Pool::builder().processes(1).build()?;
    ///     let served_by = pool.call(pid, ()).wait()?;
    ///     assert_eq!(pool.worker_pids(), [Some(served_by)]);
    ///     assert_ne!(served_by, std::process::id());
    ///     Ok(())
    /// }
    /// ```
    pub fn worker_pids(&self) -> Vec<Option<u32>> {
        self.lanes
            .iter()
            .map(|l| Some(l.pid.load(Ordering::Relaxed)).filter(|&p| p != 0))
            .collect()
    }

    /// A snapshot of per-lane counters, with each worker's pid and how many
    /// times it was replaced.
    ///
    /// ```
    /// #[knitting::task]
    /// fn noop() {}
    ///
    /// fn main() -> Result<(), knitting::Error> {
    ///     knitting::init();
    ///     let pool = knitting::Pool::builder().processes(2).build()?;
    ///     for _ in 0..4 {
    ///         pool.call(noop, ()).wait()?;
    ///     }
    ///     let stats = pool.stats();
    ///     assert_eq!(stats.lanes.len(), 2);
    ///     assert_eq!(stats.lanes.iter().map(|l| l.completed).sum::<usize>(), 4);
    ///     assert!(stats.lanes.iter().all(|l| l.pid.is_some() && l.restarts == 0));
    ///     Ok(())
    /// }
    /// ```
    pub fn stats(&self) -> PoolStats {
        PoolStats {
            lanes: self
                .lanes
                .iter()
                .map(|l| LaneStats {
                    in_flight: l.in_flight(),
                    completed: l.completed.load(Ordering::Relaxed),
                    pid: Some(l.pid.load(Ordering::Relaxed)).filter(|&p| p != 0),
                    restarts: l.restarts.load(Ordering::Relaxed),
                })
                .collect(),
            closed: self.is_closed(),
        }
    }

    /// True once a shutdown began.
    ///
    /// ```
    /// knitting::init();
    /// let pool = knitting::Pool::builder().processes(1).build()?;
    /// assert!(!pool.is_closed());
    /// pool.shutdown();
    /// assert!(pool.is_closed());
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn is_closed(&self) -> bool {
        self.shared.closed.load(Ordering::Relaxed)
    }

    fn close(&self) {
        // Release: pairs with the reactors' Acquire loads.
        self.shared.closed.store(true, Ordering::Release);
        for lane in self.lanes.iter() {
            lane.nudge();
        }
    }

    /// Shuts the pool down and waits: calls already made run to their end,
    /// new calls fail with a [`Closed`](crate::ErrorKind::Closed) error, and
    /// every worker process exits and is reaped.
    ///
    /// ```
    /// #[knitting::task]
    /// fn noop() {}
    ///
    /// fn main() -> Result<(), knitting::Error> {
    ///     knitting::init();
    ///     let pool = knitting::Pool::builder().processes(1).build()?;
    ///     let queued = pool.call(noop, ());
    ///     pool.shutdown(); // the queued call still runs
    ///     queued.wait()?;
    ///     let late = pool.call(noop, ()).wait().unwrap_err();
    ///     assert!(late.is_closed());
    ///     Ok(())
    /// }
    /// ```
    pub fn shutdown(&self) {
        self.close();
        self.shared.live.wait(None);
        self.join_reactors();
    }

    /// Shuts the pool down, waits at most `timeout` for calls in flight,
    /// then kills the workers still busy and fails what is left with a
    /// [`Closed`](crate::ErrorKind::Closed) error.
    ///
    /// # Errors
    ///
    /// A [`Timeout`](crate::ErrorKind::Timeout) error saying how many calls
    /// were failed, when time ran out.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[knitting::task]
    /// fn sleep_ms(ms: u64) { std::thread::sleep(Duration::from_millis(ms)) }
    ///
    /// fn main() -> Result<(), knitting::Error> {
    ///     knitting::init();
    ///     let pool = knitting::Pool::builder().processes(1).build()?;
    ///     let slow = pool.call(sleep_ms, 10_000);
    ///     let err = pool.shutdown_timeout(Duration::from_millis(100)).unwrap_err();
    ///     assert_eq!(err.kind(), knitting::ErrorKind::Timeout);
    ///     assert!(slow.wait().unwrap_err().is_closed()); // its worker was killed
    ///     Ok(())
    /// }
    /// ```
    pub fn shutdown_timeout(&self, timeout: Duration) -> Result<(), Error> {
        self.close();
        let deadline = Instant::now().checked_add(timeout);
        if self.shared.live.wait(deadline) {
            self.join_reactors();
            return Ok(());
        }
        self.abandon_now();
        Err(Error::shutdown_timeout(
            timeout,
            self.shared.abandoned_calls.load(Ordering::Relaxed),
        ))
    }

    /// Kills every worker and fails every call left; waits for the lanes.
    fn abandon_now(&self) {
        self.shared.closed.store(true, Ordering::Release);
        // Release: pairs with the reactors' Acquire loads.
        self.shared.abandoned.store(true, Ordering::Release);
        for lane in self.lanes.iter() {
            lane.nudge();
        }
        self.shared.live.wait(None);
        self.join_reactors();
    }

    fn join_reactors(&self) {
        let handles = std::mem::take(&mut *self.reactors.lock().unwrap_or_else(|e| e.into_inner()));
        for handle in handles {
            let _ = handle.join();
        }
    }
}

impl Drop for ProcessPool {
    /// Starts a shutdown and returns without waiting.
    fn drop(&mut self) {
        self.close();
    }
}

impl fmt::Debug for ProcessPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ProcessPool")
            .field("processes", &self.processes())
            .field("worker_pids", &self.worker_pids())
            .field("closed", &self.is_closed())
            .finish_non_exhaustive()
    }
}

/// The names of this process's POSIX shared memory objects that exist now
/// (named mode), for leak checks in tests.
#[doc(hidden)]
pub fn shared_memory_objects_of(pid: u32) -> Vec<String> {
    names::of_pid(pid)
}
