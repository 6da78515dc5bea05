//! Process pools: [`ProcessPoolBuilder`], their options, and the
//! [`ProcessPool`] name.

mod setup;
mod shapes;

use std::{ffi::OsString, path::PathBuf, time::Duration};

use super::Pool;
use crate::{
    dispatch::{balance::Strategy, Engine},
    runtime::{
        process::{self, Options},
        Processes,
    },
    task::bootstrap::Boot,
    Error,
};

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
    opts: Options,
    boot: Option<Result<Boot, String>>,
    latency: bool,
    pub(super) balance: Strategy,
}

/// The default of [`ProcessPoolBuilder::liveness_timeout`].
const DEFAULT_LIVENESS: Duration = Duration::from_secs(5);

impl ProcessPoolBuilder {
    pub(crate) fn new(
        processes: usize,
        spin: Duration,
        hard_timeout: Option<Duration>,
        boot: Option<Result<Boot, String>>,
        balance: Strategy,
    ) -> Self {
        Self {
            boot,
            latency: false,
            balance,
            opts: Options {
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
                limits: crate::ResourceLimits::new(),
                boot: None,
                permissions: crate::Permissions::default(),
                diagnostics: crate::Diagnostics::NONE,
                async_concurrency: crate::exec::DEFAULT_CONCURRENCY,
                stream_bound: crate::dispatch::DEFAULT_STREAM_BOUND,
            },
        }
    }

    /// Which diagnostics the pool emits as `tracing` events (see
    /// [`Diagnostics`](crate::Diagnostics)); the `KNITTING_DEBUG`
    /// environment variable adds more. The workers forward their events
    /// (the crate's and the tasks' own) to the host, where they appear with
    /// target `knitting::worker` and the worker's lane and pid; in
    /// [named mode](Self::named_shared_memory) they cannot.
    ///
    /// The default value is none.
    ///
    /// ```
    /// knitting::init();
    /// let pool = knitting::Pool::builder()
    ///     .processes(1)
    ///     .debug(knitting::Diagnostics::CRASH)
    ///     .build()?;
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn debug(mut self, diagnostics: crate::Diagnostics) -> Self {
        self.opts.diagnostics = diagnostics;
        self
    }

    /// Records every call's latency in a histogram, in
    /// [`PoolStats::latency`](crate::PoolStats::latency) (see
    /// [`PoolBuilder::latency_histogram`](crate::PoolBuilder::latency_histogram)).
    /// The default value is `false`.
    ///
    /// ```
    /// knitting::init();
    /// let pool = knitting::Pool::builder().processes(1).latency_histogram(true).build()?;
    /// assert!(pool.stats().latency.is_some());
    /// # Ok::<(), knitting::Error>(())
    /// ```
    pub fn latency_histogram(mut self, on: bool) -> Self {
        self.latency = on;
        self
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
        self.opts.exe = Some(path.into());
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
    /// fn greeting() -> Option<String> { std::env::var("GREETING").ok() }
    ///
    /// fn main() -> Result<(), knitting::Error> {
    ///     knitting::init();
    ///     // `env` keeps fd 0, so it works as a prefix: here it sets a
    ///     // variable the host does not have.
    ///     let pool = knitting::Pool::builder()
    ///         .processes(1)
    ///         .command_prefix(["env", "GREETING=hello"])
    ///         .build()?;
    ///     assert_eq!(pool.call(greeting, ()).wait()?.as_deref(), Some("hello"));
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
        self.opts.prefix = prefix.into_iter().map(Into::into).collect();
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
    /// A worker without fd 0 has no socket for descriptors either, so a
    /// call whose arguments hold a [`SharedBuffer`](crate::SharedBuffer)
    /// fails with [`Unsupported`](crate::ErrorKind::Unsupported) on such a
    /// pool, before it is sent.
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
        self.opts.named = named;
        self
    }

    /// The size of each worker's request arena and of its response arena.
    /// Memory is touched only as it is used. Default: 64 MiB.
    ///
    /// An arena holds the payloads of the calls in flight on its worker; a
    /// call that finds too little room waits for it (see
    /// [Memory](ProcessPool#memory) for the whole mapping and for sizing).
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
        self.opts.arena = bytes;
        self
    }

    /// The largest encoded argument or result of one call. A call over the
    /// limit fails with a [`TooLarge`](crate::ErrorKind::TooLarge) error
    /// that names the limit and the size, before anything is sent; the
    /// worker goes on. A call under it never fails for want of room: it
    /// waits until the arena has enough (see [Memory](ProcessPool#memory)).
    /// Default: an eighth of [`arena_bytes`](Self::arena_bytes) (8 MiB).
    ///
    /// A limit larger than [`arena_bytes`](Self::arena_bytes) makes
    /// [`build`](Self::build) fail with a [`Build`](crate::ErrorKind::Build)
    /// error.
    ///
    /// # Panics
    ///
    /// If `bytes` is 0.
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
        self.opts.max_payload = Some(bytes);
        self
    }

    /// How many calls each worker holds in its ring; more wait in the
    /// host. Default: 128. Each slot costs 132 bytes of the worker's
    /// mapping (see [Memory](ProcessPool#memory)).
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
        self.opts.slots = slots;
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
        self.opts.spin = budget;
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
        self.opts.start_timeout = timeout;
        self
    }

    /// A hard time limit for every call (a task's own
    /// `#[task(hard_timeout = ..)]` wins), counted from when the worker
    /// starts the call. A call that runs past it fails with a
    /// [`HardTimeout`](crate::ErrorKind::HardTimeout) error, its worker
    /// process is killed and replaced, and the calls queued behind it run on
    /// the replacement; other lanes are untouched. An `async fn` task's
    /// call has its future dropped instead (the worker is told through the
    /// call's abort word); only a worker that then does not answer within
    /// the limit again (a task that blocks its thread) is killed. The limit
    /// counts from when the call is the oldest its worker holds. Default:
    /// none.
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
        self.opts.hard_timeout = Some(limit);
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
    /// The same timeout applies to a worker whose beat goes on but which
    /// takes none of the calls sent to it (its serving loop is stuck: a
    /// task wrote over the shared mapping, say): it is killed the same way.
    /// A worker running a long call took that call, and is left alone.
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
        self.opts.liveness = timeout;
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
    pub fn build(mut self) -> Result<ProcessPool, Error> {
        self.opts.boot = Boot::into_setting(self.boot)?;
        self.opts.diagnostics = self.opts.diagnostics | crate::Diagnostics::from_env();
        let debug = self.opts.diagnostics;
        let latency = self.latency;
        let balance = self.balance;
        let bound = self.opts.stream_bound;
        Pool::from_engine(|| {
            process::Runtime::start(self.opts).map(|rt| {
                Engine::processes(rt, balance)
                    .with_stream_bound(bound)
                    .with_latency(latency)
                    .with_diagnostics(debug)
            })
        })
    }
}

/// A pool of worker processes that runs [tasks](macro@crate::task): a
/// [`Pool`] whose runtime is [`Processes`].
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
/// # Memory
///
/// Each worker has one mapping, shared with the host: a control block
/// (1 KiB), a request and a response slot of 64 bytes each per
/// [`ring_slots`](ProcessPoolBuilder::ring_slots), a 4-byte abort word per
/// slot, all of it rounded up to whole 4 KiB pages, then the request
/// arena and the response arena of
/// [`arena_bytes`](ProcessPoolBuilder::arena_bytes) each, each rounded up
/// to whole pages, and the stream area of [streaming
/// tasks](crate::Pool::stream), a quarter of that:
///
/// ```text
/// round_up(1024 + 132 * ring_slots, 4096) + 2 * round_up(arena_bytes, 4096)
///     + round_up(arena_bytes / 4, 4096)
/// ```
///
/// With the defaults (128 slots, 64 MiB arenas) that is 20 KiB + 144 MiB of
/// address space per worker, the same pages in the host and the worker.
/// The mapping is a memfd (or the POSIX object of
/// [`named_shared_memory`](ProcessPoolBuilder::named_shared_memory)), so a
/// page takes memory only once it is written; touched pages stay until the
/// mapping goes with its worker. Payloads go back to an arena's start as
/// soon as it has room for them (at least 64 KiB, or twice the size of
/// recent payloads), so under steady load the touched part of an arena
/// follows what is in flight rather than `arena_bytes`.
///
/// Sizing:
///
/// - [`max_payload_bytes`](ProcessPoolBuilder::max_payload_bytes) is the
///   largest encoded argument or result of one call (at most `arena_bytes`;
///   default: an eighth of it). A call whose arguments are over it fails
///   with a [`TooLarge`](crate::ErrorKind::TooLarge) error naming the size
///   and the limit when the host encodes them, before anything is sent:
///   right away when the lane has nothing queued before it, a free slot and
///   some free arena, else when its turn comes. A result over it fails its
///   call the same way on the worker, which goes on.
/// - A call under the limit never fails for want of room: it waits in the
///   host, in order, until the calls before it have freed enough of the
///   arena (and a result waits in its worker). A call that meets a full
///   arena waits unencoded; one that meets some room, but too little, waits
///   encoded into a buffer of its own, copied in once the room is there.
/// - So `arena_bytes` bounds the bytes of arguments (and of results) in
///   flight on one worker at once: for calls not to wait on each other,
///   make it larger than a typical payload times the calls in flight per
///   worker (at most `ring_slots`), with room to spare.
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
/// As for every [`Pool`](crate::Pool#shutting-down): dropping the last
/// handle starts a shutdown without waiting, [`shutdown`](Pool::shutdown)
/// waits, [`shutdown_timeout`](Pool::shutdown_timeout) kills workers that
/// are still busy when time runs out.
///
/// # Off Linux
///
/// Process workers need Linux (memfd, shared futexes, pidfd). Elsewhere the
/// same code compiles, and [`ProcessPoolBuilder::build`] fails with a
/// [`Startup`](crate::ErrorKind::Startup) error: a program can fall back to
/// threads at run time.
pub type ProcessPool = Pool<Processes>;
