//! Call plain Rust functions on a pool of worker threads, or of worker
//! processes, as if they were local.
//!
//! Write a function once, mark it `#[knitting::task]`, and call it on a
//! [`Pool`]. The call is type-checked at compile time, its arguments are
//! moved to a worker through a lock-free queue, and the handle you get back
//! is both a [`Future`](std::future::Future) (for any executor) and a
//! blocking waiter. Around that boundary the crate gives you what is usually
//! hand-rolled: errors that keep their source chain, panics that arrive as
//! errors with their location, cancellation, and a clean shutdown in which
//! no call is left pending.
//!
//! # Hello, pool
//!
//! ```
//! #[knitting::task]
//! fn square(value: i64) -> i64 {
//!     value * value
//! }
//!
//! #[knitting::task]
//! fn greet(name: String) -> String {
//!     format!("hello {name}")
//! }
//!
//! fn main() -> Result<(), knitting::Error> {
//!     let pool = knitting::Pool::builder().threads(2).build()?;
//!
//!     // Blocking:
//!     let four = pool.call(square, 2).wait()?;
//!
//!     // Or awaited, in any executor:
//!     let message = pollster::block_on(pool.call(greet, "knitting".into()))?;
//!
//!     assert_eq!((four, message.as_str()), (4, "hello knitting"));
//!     Ok(())
//! } // dropping the pool shuts it down
//! ```
//!
//! # Tasks
//!
//! [`#[task]`](macro@task) goes on a free, non-generic function. Its
//! parameters become the call's arguments: one parameter is passed as is,
//! several as a tuple, none as `()`. It may return anything `Send +
//! 'static`, or a `Result<T, E>` whose `Err` becomes an [`Error`] of kind
//! [`ErrorKind::Task`] carrying `E`'s message and whole `source()` chain.
//! The function stays callable locally under its own name.
//!
//! A task can also be an `async fn` ([many calls per
//! worker](macro@task#async-tasks)), or send items as it runs
//! ([streaming tasks](macro@task#streaming-tasks)).
//!
//! Every task registers itself at link time: [`tasks`] lists them, each
//! with a stable [`TaskId`] derived from its path and name.
//!
//! # Calls
//!
//! [`Pool::call`] returns a [`Call`]. It never blocks; the call runs whether
//! or not you wait. `.await` the call, [`wait`](Call::wait) for it, bound the
//! wait with [`wait_timeout`](Call::wait_timeout), or look with
//! [`try_wait`](Call::try_wait). Dropping a `Call` cancels it;
//! [`detach`](Call::detach) lets it run without a handle:
//!
//! ```
//! # #[knitting::task] fn work(v: u32) -> u32 { v }
//! # let pool = knitting::Pool::builder().threads(1).build().unwrap();
//! pool.call(work, 1).detach();            // runs in the background
//! let two = pool.call(work, 2).wait();    // runs; we wait for its value
//! let _ = pool.call(work, 3);             // dropped at once: cancelled
//! # assert_eq!(two.unwrap(), 2);
//! ```
//!
//! On a thread pool, [`Pool::run`] runs any closure
//! (`FnOnce() -> T + Send + 'static`) and gives the same `Call`:
//! `pool.run(move || work(x))` is the one-line move from `spawn_blocking`
//! or `rayon::spawn` ([`Pool::run_with_signal`] lends it its [`Signal`]).
//! Process pools refuse closures at compile time ([`RunsClosures`]).
//!
//! A task may call its own pool and wait (nested calls): a worker thread
//! that waits for a call no worker has started yet runs it itself, so a
//! tree of calls cannot deadlock, on one thread or many; see "Waiting
//! inside a task" under [`Call::wait`].
//!
//! # Errors
//!
//! Every call ends with its value or an [`Error`]: the task returned an
//! error ([`is_task_error`](Error::is_task_error)), panicked
//! ([`is_panic`](Error::is_panic), with [`message`](Error::message) and
//! [`location`](Error::location)), the pool was shut down
//! ([`is_closed`](Error::is_closed)), or the call was cancelled
//! ([`is_cancelled`](Error::is_cancelled)). A worker survives the panics of
//! its tasks and goes on serving.
//!
//! # Cancellation, deadlines and time limits
//!
//! A task that takes a `&`[`Signal`] can see when its caller gives up:
//! [`Call::abort`] raises the signal and lets the task decide what to return;
//! [`Call::cancel`] (and dropping the handle) ends the call at once with a
//! `Cancelled` error and raises the signal too, so the task is told to stop
//! as well. On process workers the signal is a word in the shared mapping.
//!
//! A deadline (`#[task(timeout = "200ms", default = ...)]`, or
//! [`Call::timeout`] per call) is counted from the call on one monotonic
//! clock shared by the host and every worker ([`Signal::now`]); when it
//! passes the call ends with the default value (or a timeout error) and the
//! signal is raised. A task that never looks at its signal runs on; its
//! late result is dropped: a result that arrives after the deadline never
//! ends the call `Ok`, whichever thread notices first. A call that ends
//! early frees its deadline's timer entry with it.
//!
//! A hard time limit (`#[task(hard_timeout = "1s")]`,
//! [`PoolBuilder::hard_timeout`]) is for tasks that do not cooperate: the
//! call fails with [`ErrorKind::HardTimeout`]; a process worker running a
//! sync task is killed and replaced (an async task's future is dropped);
//! a thread cannot be killed, so its lane gets a fresh thread
//! and the runaway one is left to finish on its own.
//!
//! # Shutdown
//!
//! A [`Pool`] is a cheap handle: clone it to share the pool (into threads,
//! tasks, a web framework's state). Dropping the last handle starts a
//! shutdown without blocking; queued calls still run. [`Pool::shutdown`]
//! waits for them; [`Pool::shutdown_timeout`] waits at most a given time
//! and fails the rest. Calls made after a shutdown began fail at once.
//!
//! # Process workers
//!
//! [`PoolBuilder::processes`] builds a [`ProcessPool`] (`Pool<Processes>`)
//! instead (Linux): the same calls, run in child processes, so that a task
//! that crashes, aborts, exits or corrupts memory costs one worker and
//! never the host. The code that makes calls is the same for both; to pick
//! the runtime when the program runs, turn either pool `into()` a
//! `Pool<`[`AnyRuntime`]`>`.
//!
//! ```
//! #[knitting::task]
//! fn parse(text: String) -> Result<u64, std::num::ParseIntError> {
//!     text.trim().parse()
//! }
//!
//! fn main() -> Result<(), knitting::Error> {
//!     knitting::init(); // a worker process starts here and never returns
//!     let pool = knitting::Pool::builder().processes(2).build()?;
//!     assert_eq!(pool.call(parse, " 42 ".into()).wait()?, 42);
//!     Ok(())
//! }
//! ```
//!
//! - **Workers** are this program started again (or another one, see
//!   [`ImportedTask`]); [`init`] first thing in `main` makes a worker
//!   process serve calls instead of running `main` (test files use
//!   [`init_before_main!`]). Workers die with the host.
//! - **Transport**: each worker shares one mapping with the host (a memfd
//!   on the worker's fd 0, or a named POSIX object with
//!   [`named_shared_memory`](ProcessPoolBuilder::named_shared_memory)):
//!   request and response rings, a payload arena each way, and shared
//!   futex words for wake-ups. Arguments and results are encoded with
//!   postcard straight into the arena, so they must be serde types; that is
//!   checked where the call is made.
//! - **Payloads**: bytes and numbers cross as raw bytes, one copy each way:
//!   `Vec<u8>` and `Box<[u8]>` parameters and results, and the crate's
//!   [`Bytes`] and [`Buffer<T>`](Buffer) (recycled memory) anywhere in a
//!   value. A task that takes a slice (`&[u8]`, `&[f64]`) or a value by
//!   reference (`&Envelope<H>`, see [`Envelope`]) reads its buffers where
//!   they lie in the shared mapping, with no copy out.
//! - **Crashes**: calls in flight on a dead worker fail with
//!   [`ErrorKind::WorkerDied`] naming the worker, its pid and the exit code
//!   or signal; a replacement starts at once.
//! - **Untrusted memory**: everything a worker writes is checked before the
//!   host uses it; a worker that breaks the protocol is killed and
//!   replaced, and its calls fail with [`ErrorKind::Protocol`].
//! - **Limits**: an argument or result over
//!   [`max_payload_bytes`](ProcessPoolBuilder::max_payload_bytes) fails
//!   that call with [`ErrorKind::TooLarge`] before anything is sent.
//! - **Sandboxes**: [`command_prefix`](ProcessPoolBuilder::command_prefix)
//!   runs workers behind `bwrap`, `systemd-run` or a container runner.
//!
//! # Where code runs
//!
//! [`is_main`] is true in host code and false inside a worker thread or a
//! worker process. It answers for the current thread: a thread that a task
//! spawns on a thread worker is a host thread (true); every thread of a
//! worker process is a worker (false).

#![cfg_attr(docsrs, feature(doc_cfg))]
// The layers above the process runtime (the call cell's encode and
// complete steps, the payload codec, the wire form of errors) compile on
// every platform, so that they need no platform gates of their own; off
// Linux there is no process runtime to call them.
#![cfg_attr(not(target_os = "linux"), allow(dead_code))]

// Layers, lowest first; each imports only from those above it in this
// list (see ARCHITECTURE.md; `tests/architecture.rs` checks it).
mod sys;
mod sync;
mod time;
mod error;
mod signal;
mod role;
mod diag;
mod transport;
mod payload;
mod task;
mod exec;
mod call;
mod runtime;
mod dispatch;
mod pool;

pub use crate::payload::shared::{SharedAtomic, SharedBuffer};
/// The fuzz targets' entry points (`fuzz/`): not part of the API.
#[cfg(all(feature = "fuzzing", target_os = "linux", not(knitting_loom)))]
#[doc(hidden)]
pub use crate::runtime::process::fuzz as __fuzz;
#[doc(hidden)]
pub use crate::runtime::process::shared_memory_objects_of;
pub use crate::{
    call::{
        sleep::{sleep, Sleep},
        stream::Stream,
        Call,
    },
    diag::Diagnostics,
    dispatch::balance::{Balance, Balancer, LaneLoad, LaneLoads},
    error::{Error, ErrorKind, RemoteError},
    payload::{stream::Sender, Buffer, Bytes, Envelope},
    pool::encoded,
    pool::ProcessPoolBuilder,
    pool::{builder::PoolBuilder, Crash, CrashKind, LaneStats, Pool, PoolStats, ProcessPool},
    role::is_main,
    runtime::{
        limits::ResourceLimits,
        permissions::{Enforcement, Permissions},
        AnyRuntime, Processes, Runs, RunsClosures, Runtime, RuntimeKind, Threads,
    },
    signal::{Signal, UntilAborted},
    task::{
        bootstrap::{BootContext, BootInfo, Bootstrap},
        imported::ImportedTask,
        tasks, ProcessTask, StreamTask, Task, TaskId, TaskInfo,
    },
};

/// Turns a plain function into a task that a [`Pool`] can run.
///
/// ```
/// #[knitting::task]
/// fn add(a: i64, b: i64) -> i64 {
///     a + b
/// }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// assert_eq!(pool.call(add, (2, 3)).wait()?, 5);
/// assert_eq!(add(2, 3), 5); // still callable locally
/// # Ok(()) }
/// ```
///
/// The function must be a free function, not generic, sync or `async`
/// ([below](#async-tasks)); its arguments and output `Send + 'static`.
///
/// # Options
///
/// - `name = "..."`: the task's name, and so its [`TaskId`]. It defaults to
///   `module::path::function`. Set it to keep the id stable when the code
///   moves, or to tell apart two tasks that would otherwise collide; two
///   tasks with the same name make [`PoolBuilder::build`] fail with
///   [`ErrorKind::DuplicateTask`].
///
/// - `threads_only`: the task never runs on a [`ProcessPool`], even if its
///   types are serde types (its registry entry has no process entry).
/// - `timeout = "200ms"`: every call's deadline, counted from the call
///   (time spent queued included). When it passes the call ends with the
///   `default` value, or the `error`, or else an [`ErrorKind::Timeout`]
///   error, and the task's [`Signal`] is raised. Units: `ns`, `us`, `ms`,
///   `s`, `m`. [`Call::timeout`] and [`Call::deadline`] replace it per call.
/// - `default = <value>`: what a timed-out call gives (converted with
///   `Into` to the output type).
/// - `error = <error>`: the error a timed-out call fails with (any
///   `std::error::Error` or `Display` value), of kind [`ErrorKind::Timeout`].
/// - `hard_timeout = "1s"`: a call that runs longer is cut off with an
///   [`ErrorKind::HardTimeout`] error (see [`PoolBuilder::hard_timeout`]).
/// - `inline`: on a thread pool the call runs on the caller's thread when
///   the caller waits for it, with no hand-off to a worker: for tasks
///   shorter than a wake-up (see [the inline lane](Call#the-inline-lane)).
///   Process pools always run it in a worker.
///
/// ```
/// use std::time::Duration;
///
/// #[knitting::task(timeout = "1s", default = "timed out")]
/// fn maybe_slow(ms: u64) -> String {
///     std::thread::sleep(Duration::from_millis(ms));
///     "done".into()
/// }
///
/// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
/// assert_eq!(pool.call(maybe_slow, 1).wait().unwrap(), "done");
/// assert_eq!(pool.call(maybe_slow, 10_000).wait().unwrap(), "timed out");
/// ```
///
/// # Process workers
///
/// A [`ProcessPool`] can call a task whose arguments and output are owned
/// serde types, `Serialize` and `DeserializeOwned` both (a [`ProcessTask`]);
/// anything else does not compile there, with an error at the call that
/// says what to change. Tasks with other types still compile and run on
/// thread pools: arguments or outputs that borrow (`&'static str`, a type
/// with a lifetime other than `'static`) never cross processes.
///
/// ```
/// #[knitting::task]
/// fn label(id: u32) -> &'static str { if id == 0 { "zero" } else { "other" } }
/// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
/// assert_eq!(pool.call(label, 0).wait().unwrap(), "zero"); // threads: fine
/// ```
///
/// # Parameters taken by reference
///
/// A task that only reads a parameter can take it by reference; the call
/// carries the value. A slice of plain numbers, `&[T]`, is passed as a
/// [`Buffer<T>`](Buffer) (`&[u8]` as [`Bytes`]); any other `&T` as the `T`.
/// On a thread pool the task borrows the value the call moved to it. In a
/// process worker, the buffers in it ([`Bytes`], [`Buffer`], an
/// [`Envelope`]'s body) are read where they lie in the shared mapping: no
/// copy out of it, and the borrow checker keeps them from outliving the
/// call.
///
/// ```
/// use knitting::{Buffer, Bytes};
///
/// #[knitting::task]
/// fn checksum(data: &[u8]) -> u32 {
///     data.iter().map(|&b| u32::from(b)).sum()
/// }
///
/// #[knitting::task]
/// fn mean(values: &[f64]) -> f64 {
///     values.iter().sum::<f64>() / values.len().max(1) as f64
/// }
///
/// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
/// assert_eq!(pool.call(checksum, Bytes::from_slice(&[1, 2, 3])).wait().unwrap(), 6);
/// assert_eq!(pool.call(mean, Buffer::from(vec![1.0, 3.0])).wait().unwrap(), 2.0);
/// assert_eq!(checksum(&[4, 5]), 9); // a plain local call takes the slice
/// ```
///
/// A slice whose bytes are not aligned for `T` in the mapping is copied
/// first (never an unaligned reference). `&str`, `&mut T` and references
/// with a lifetime written out are not call arguments.
///
/// # The signal parameter
///
/// A parameter of type `&knitting::Signal` is not a call argument: the
/// worker passes the call's [`Signal`].
///
/// ```
/// #[knitting::task]
/// fn until_stopped(limit: u64, signal: &knitting::Signal) -> u64 {
///     (0..limit).take_while(|_| !signal.aborted()).count() as u64
/// }
/// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
/// assert_eq!(pool.call(until_stopped, 10).wait().unwrap(), 10);
/// ```
///
/// # Async tasks
///
/// An `async fn` is a task too. Each worker, thread or process, runs many
/// of its calls at once (up to [`PoolBuilder::async_concurrency`], 256 by
/// default), so a call that awaits a timer or I/O does not hold a worker.
/// What a task may await:
///
/// without the `tokio` feature, futures that need no reactor ([`sleep`],
/// channels, other calls' handles; a task that needs tokio's timers or I/O
/// fails with an [`Unsupported`](ErrorKind::Unsupported) error naming the
/// feature); with it, each worker also runs a current-thread tokio runtime.
///
/// A deadline, [`Call::cancel`], dropping the handle, a hard time limit and
/// a shutdown that stops waiting drop the task's future at its next await
/// point: its destructors run and the worker's slot is free at once.
/// [`Call::abort`] only raises the [`Signal`], which a task may await with
/// [`Signal::until_aborted`] to stop on its own terms. An async task cannot
/// be called locally as a function. A process worker holds at most
/// [`ring_slots`](ProcessPoolBuilder::ring_slots) calls and answers them
/// in the order it took them (a call done behind a longer one waits for
/// it); one that does not answer within a hard limit again after its
/// call's future was dropped (a task that blocks) is killed and replaced.
///
/// ```
/// use std::time::Duration;
///
/// #[knitting::task]
/// async fn late_double(value: u32) -> u32 {
///     knitting::sleep(Duration::from_millis(5)).await;
///     value * 2
/// }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// assert_eq!(pool.call(late_double, 21).wait()?, 42);
/// # Ok(()) }
/// ```
///
/// # Streaming tasks
///
/// A task that takes a [`Sender<T>`](Sender) parameter (`Sender` as
/// imported from this crate, or `knitting::Sender`) sends items as it runs;
/// [`Pool::stream`] makes the sender and returns a [`Stream`] of the items,
/// an [`Iterator`] and a `futures_core::Stream`, then the task's return
/// value from [`Stream::finish`]. The stream is bounded
/// ([`PoolBuilder::stream_bound`]): a slow reader holds the task up in
/// `send`. On process pools the items cross in the worker's shared
/// mapping, serde-encoded. A streaming task is a plain `fn`.
///
/// ```
/// #[knitting::task]
/// fn evens(below: u64, out: knitting::Sender<u64>) -> u64 {
///     let mut sent = 0;
///     for n in (0..below).step_by(2) {
///         if out.send(n).is_err() { break } // the reader is gone
///         sent += 1;
///     }
///     sent
/// }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// let mut stream = pool.stream(evens, 7);
/// assert_eq!(stream.by_ref().collect::<Result<Vec<_>, _>>()?, [0, 2, 4, 6]);
/// assert_eq!(stream.finish()?, 4);
/// # Ok(()) }
/// ```
///
/// # Errors from tasks
///
/// A return type written `Result<T, E>` (any path ending in `Result`) makes
/// the call yield `T`; `Err(e)` becomes an [`Error`] of kind
/// [`ErrorKind::Task`]. `E` may be any `std::error::Error` (its whole source
/// chain is kept), a `Box<dyn Error + Send + Sync>`, or anything that
/// implements `Display`, such as `String`.
///
/// ```
/// #[knitting::task]
/// fn check(v: i32) -> Result<i32, String> {
///     if v >= 0 { Ok(v) } else { Err(format!("{v} is negative")) }
/// }
/// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
/// let err = pool.call(check, -1).wait().unwrap_err();
/// assert_eq!(err.message(), "-1 is negative");
/// ```
///
/// A task's arguments must be `Send`:
///
/// ```compile_fail
/// #[knitting::task]
/// fn shared(v: std::rc::Rc<i32>) -> i32 { *v }
/// ```
pub use knitting_macros::task;

/// Turns a function into a worker bootstrap: setup that each worker of a
/// pool runs once, before any task, with data from the host.
///
/// The function takes an owned serde value (the data; or no data
/// parameter) and/or a [`&BootContext`](BootContext) (which worker, how
/// many, which runtime), and returns `()` or `Result<(), E>` (`E` converts
/// as a task's error does). A pool runs it when its builder says so
/// ([`PoolBuilder::bootstrap`], [`ProcessPoolBuilder::bootstrap`]); the data
/// is encoded once and decoded in every worker. Its name is its module
/// path and function name, or `#[bootstrap(name = "...")]`: a worker
/// program built elsewhere ([`ImportedTask`]) finds its own bootstrap of
/// that name ([`ProcessPoolBuilder::bootstrap_named`]).
///
/// What applies where:
///
/// - **Process pools**: each worker process runs it after it has mapped its
///   lane and before it takes calls, and a replacement worker runs it
///   again. Everything it changes is the worker's own: environment
///   variables it removes, files it opens, resource limits it sets, caches
///   it warms. It counts toward the pool's start timeout.
/// - **Thread pools**: each worker thread runs it once at start (and a
///   thread that replaces one past its hard time limit, too). Only
///   per-thread state (`thread_local!`) is the worker's own: the
///   environment, files and limits belong to the whole host process.
///
/// A bootstrap that fails or panics fails [`build`](PoolBuilder::build)
/// with a [`Startup`](ErrorKind::Startup) error that names the bootstrap
/// and carries its message; for a replacement worker, that error is the
/// lane's start-up error.
///
/// ```
/// use std::cell::Cell;
///
/// thread_local! { static LIMIT: Cell<u64> = const { Cell::new(0) }; }
///
/// #[knitting::bootstrap]
/// fn setup(limit: u64, ctx: &knitting::BootContext) -> Result<(), String> {
///     if limit == 0 {
///         return Err(format!("worker {}: no limit", ctx.worker()));
///     }
///     LIMIT.with(|l| l.set(limit));
///     Ok(())
/// }
///
/// #[knitting::task]
/// fn current_limit() -> u64 { LIMIT.with(Cell::get) }
///
/// let pool = knitting::Pool::builder().threads(2).bootstrap(setup, 7).build()?;
/// assert_eq!(pool.call(current_limit, ()).wait()?, 7);
///
/// let err = knitting::Pool::builder().threads(2).bootstrap(setup, 0).build().unwrap_err();
/// assert_eq!(err.kind(), knitting::ErrorKind::Startup);
/// assert!(err.message().contains("no limit"), "{err}");
/// # Ok::<(), knitting::Error>(())
/// ```
pub use knitting_macros::bootstrap;

/// The entry point of process workers: call it first thing in `main`.
///
/// In the host it returns at once and does nothing. In a process that a
/// [`ProcessPool`] started as a worker (its first argument is
/// `--knitting-worker`, followed by what the host hands over; wrappers that
/// drop the environment pass it on), it never returns: it maps the lane the
/// host made, serves calls, and exits when the host shuts the pool down.
/// Code before it runs in every worker too, so put nothing before it.
///
/// ```
/// #[knitting::task]
/// fn double(value: u32) -> u32 {
///     value * 2
/// }
///
/// fn main() -> Result<(), knitting::Error> {
///     knitting::init(); // a worker process serves calls here, never returns
///     let pool = knitting::Pool::builder().processes(1).build()?;
///     assert_eq!(pool.call(double, 21).wait()?, 42);
///     Ok(())
/// }
/// ```
///
/// Test binaries have no `main` of their own: use
/// [`init_before_main!`] once in each test file that builds process pools.
///
/// # With an async runtime
///
/// `#[tokio::main] async fn main` starts the runtime, with its threads,
/// before the first line of `main` runs, so every worker process would
/// start (and keep) a runtime it never uses. Call `init` from a plain
/// `main` and start the runtime after it, for instance by calling an
/// `async fn` marked `#[tokio::main]`:
///
/// ```
/// # #[knitting::task]
/// # fn double(value: u32) -> u32 { value * 2 }
/// fn main() -> Result<(), knitting::Error> {
///     knitting::init(); // before any runtime exists
///     serve()
/// }
///
/// #[tokio::main]
/// async fn serve() -> Result<(), knitting::Error> {
///     let pool = knitting::Pool::builder().processes(1).build()?;
///     assert_eq!(pool.call(double, 21).await?, 42);
///     Ok(())
/// }
/// ```
///
/// (or build it by hand: `tokio::runtime::Runtime::new()?.block_on(..)`
/// after `init()`). `examples/axum_service.rs` serves HTTP this way.
pub fn init() {
    runtime::process::enter_if_worker();
}

/// Runs [`init`] before `main`, from the program's initialisers: for test
/// binaries (whose `main` the test harness writes) and for programs that
/// cannot edit `main`. Use it once per binary, at the top level of a file.
///
/// ```
/// knitting::init_before_main!();
/// # fn main() {}
/// ```
///
/// On Linux it places a function pointer in the ELF `.init_array` section,
/// which the loader runs before `main`; elsewhere it does nothing.
#[macro_export]
macro_rules! init_before_main {
    () => {
        #[cfg(target_os = "linux")]
        const _: () = {
            #[used]
            #[link_section = ".init_array"]
            static __KNITTING_INIT_BEFORE_MAIN: extern "C" fn() = {
                extern "C" fn __knitting_init_before_main() {
                    $crate::init();
                }
                __knitting_init_before_main
            };
        };
    };
}

/// What the expansion of `#[task]` refers to. Not a public API.
#[doc(hidden)]
pub use crate::call::expansion as __private;
