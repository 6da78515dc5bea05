//! The runtimes a pool runs its calls on, and the one place that tells
//! them apart.
//!
//! - [`thread`]: worker threads of this process; arguments move, nothing
//!   is encoded.
//! - `process`: worker processes, each sharing one mapping with the host;
//!   arguments and results are encoded (Linux; elsewhere building a
//!   process pool fails with a clear error).
//!
//! Both offer the same operations (start, submit to a lane, stats, close,
//! wait, join, abandon); `dispatch::Engine` picks between them. The
//! runtime markers ([`Threads`], [`Processes`], [`AnyRuntime`]) only pick,
//! at compile time, which tasks a pool accepts ([`Runs`]); they hold no
//! state.

pub(crate) mod limits;
pub(crate) mod permissions;
pub(crate) mod process;
pub(crate) mod thread;

use std::fmt;

use crate::{call::cell::RemoteOps, ProcessTask, Task};

/// The runtime of a pool that runs its calls on worker threads: the
/// default of [`Pool`](crate::Pool). Any [`Task`] runs on it; arguments
/// move to the worker without being encoded.
#[derive(Clone, Copy, Debug)]
pub struct Threads;

/// The runtime of a pool that runs its calls in worker processes
/// ([`Pool<Processes>`](crate::Pool), built by
/// [`PoolBuilder::processes`](crate::PoolBuilder::processes)). Tasks whose
/// arguments and output are serde types ([`ProcessTask`]) run on it.
#[derive(Clone, Copy, Debug)]
pub struct Processes;

/// The runtime of a pool whose runtime was chosen when the program ran:
/// threads or processes, whichever pool was turned into it with `into()`.
/// It accepts the tasks both runtimes accept ([`ProcessTask`]), so code
/// that makes calls is written once, and no closures
/// ([`RunsClosures`]: a process pool cannot run them).
///
/// ```
/// use knitting::{AnyRuntime, Pool};
///
/// #[knitting::task]
/// fn double(v: u32) -> u32 { v * 2 }
///
/// fn start(isolated: bool) -> Result<Pool<AnyRuntime>, knitting::Error> {
///     let builder = Pool::builder();
///     Ok(if isolated {
///         builder.processes(2).build()?.into()
///     } else {
///         builder.threads(2).build()?.into()
///     })
/// }
///
/// fn main() -> Result<(), knitting::Error> {
///     knitting::init();
///     for isolated in [false, true] {
///         let pool = start(isolated)?;
///         assert_eq!(pool.call(double, 21).wait()?, 42);
///     }
///     Ok(())
/// }
/// ```
#[derive(Clone, Copy, Debug)]
pub struct AnyRuntime;

pub(crate) mod sealed {
    /// Only this crate's runtimes are runtimes.
    pub trait Sealed {}

    /// How a task of type `T` travels on the runtime: what a process lane
    /// needs to encode it (`None` for a runtime that never encodes).
    pub trait Travel<T> {
        fn remote(task: &T) -> Option<super::Remote>;
    }
}

impl sealed::Sealed for Threads {}
impl sealed::Sealed for Processes {}
impl sealed::Sealed for AnyRuntime {}

/// A runtime marker: [`Threads`], [`Processes`] or [`AnyRuntime`]. Sealed.
pub trait Runtime: sealed::Sealed + Copy + fmt::Debug + Send + Sync + 'static {}

impl Runtime for Threads {}
impl Runtime for Processes {}
impl Runtime for AnyRuntime {}

/// The tasks a pool of runtime `Self` accepts: every [`Task`] on
/// [`Threads`], every [`ProcessTask`] on [`Processes`] and [`AnyRuntime`].
///
/// Code generic over the runtime states what it calls:
///
/// ```
/// use knitting::{Pool, Runs};
///
/// #[knitting::task]
/// fn len(text: String) -> usize { text.len() }
///
/// fn measure<R: Runs<len>>(pool: &Pool<R>) -> usize {
///     pool.call(len, "knitting".to_string()).wait().unwrap()
/// }
/// # knitting::init();
/// assert_eq!(measure(&Pool::builder().threads(1).build().unwrap()), 8);
/// # #[cfg(target_os = "linux")]
/// assert_eq!(measure(&Pool::builder().processes(1).build().unwrap()), 8);
/// ```
#[diagnostic::on_unimplemented(
    message = "task `{T}` cannot run on a pool of runtime `{Self}`",
    label = "this task does not run on this pool's runtime",
    note = "a process pool (`Processes`, and `AnyRuntime` which may be one) runs tasks whose arguments and output are owned serde types; see `knitting::ProcessTask`"
)]
pub trait Runs<T: Task>: Runtime + sealed::Travel<T> {}

impl<T: Task> sealed::Travel<T> for Threads {
    #[inline]
    fn remote(_: &T) -> Option<Remote> {
        None
    }
}
impl<T: Task> Runs<T> for Threads {}

impl<T: ProcessTask> sealed::Travel<T> for Processes {
    #[inline]
    fn remote(task: &T) -> Option<Remote> {
        Some(Remote::of(task))
    }
}
impl<T: ProcessTask> Runs<T> for Processes {}

impl<T: ProcessTask> sealed::Travel<T> for AnyRuntime {
    #[inline]
    fn remote(task: &T) -> Option<Remote> {
        Some(Remote::of(task))
    }
}
impl<T: ProcessTask> Runs<T> for AnyRuntime {}

/// The runtimes whose pools run closures ([`Pool::run`](crate::Pool::run),
/// [`Pool::run_with_signal`](crate::Pool::run_with_signal)): [`Threads`]
/// only.
///
/// A closure is code and captured values in this process's memory: a
/// worker thread can run it, a worker process cannot receive it. So `run`
/// on a `Pool<Processes>` does not compile, and neither does it on a
/// `Pool<AnyRuntime>`, which may be a process pool and accepts only what
/// both runtimes run (as [`Runs`] does for tasks). For work that must run
/// in a process, make it a [`#[task]`](macro@crate::task) with serde
/// arguments and [`call`](crate::Pool::call) it.
///
/// ```
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// let text = String::from("knitting");
/// assert_eq!(pool.run(move || text.len()).wait()?, 8);
/// # Ok(()) }
/// ```
///
/// ```compile_fail
/// knitting::init();
/// let pool = knitting::Pool::builder().processes(1).build().unwrap();
/// let _ = pool.run(|| 1 + 1); // closures run on thread pools only
/// ```
#[diagnostic::on_unimplemented(
    message = "closures run on thread pools only, and this pool's runtime is `{Self}`",
    label = "closures need a `Pool<Threads>`",
    note = "a closure's code and captures live in this process's memory: a worker thread can run it, a worker process cannot receive it",
    note = "for a process pool, make the closure's body a `#[knitting::task]` function with serde arguments and call it with `pool.call(task, args)`; a `Pool<AnyRuntime>` may be a process pool, so keep the `Pool<Threads>` it was made from for closures"
)]
pub trait RunsClosures: Runtime {}

impl RunsClosures for Threads {}

/// What lane choice (`dispatch`) needs to know of a runtime's lanes.
pub(crate) trait Lanes {
    /// How many lanes there are (at least one).
    fn count(&self) -> usize;
    /// True when lane `index` holds no call (a racy hint).
    fn is_idle(&self, index: usize) -> bool;
    /// False for a lane that cannot take calls now (it gave up).
    fn is_usable(&self, index: usize) -> bool;
    /// Calls queued or running on lane `index` (a racy hint).
    fn in_flight(&self, index: usize) -> usize;
}

/// What a process lane needs to send a call of one task type: the cell's
/// encode and complete steps, the task's id and its type fingerprint.
#[derive(Clone, Copy, Debug)]
pub struct Remote {
    pub(crate) ops: &'static RemoteOps,
    pub(crate) id: u64,
    pub(crate) shape: u64,
}

impl Remote {
    fn of<T: ProcessTask>(task: &T) -> Self {
        Self {
            ops: RemoteOps::of::<T>(),
            id: task.info().id().as_u64(),
            shape: crate::task::shape::of::<T>(),
        }
    }
}

pub use crate::role::RuntimeKind;
