//! The runtimes a pool runs its calls on, and the one place that tells
//! them apart.
//!
//! - [`thread`]: worker threads of this process; arguments move, nothing
//!   is encoded.
//! - `process`: worker processes, each sharing one mapping with the host;
//!   arguments and results are encoded (Linux; elsewhere building a
//!   process pool fails with a clear error).
//!
//! [`Engine`] is the pool's runtime: one private enum, one `match` per
//! operation, so the public [`Pool`](crate::Pool) writes its call path,
//! shutdown and stats once. The runtime markers ([`Threads`],
//! [`Processes`], [`AnyRuntime`]) only pick, at compile time, which tasks
//! a pool accepts ([`Runs`]); they hold no state.

pub(crate) mod process;
pub(crate) mod thread;

use std::{fmt, sync::Arc, time::Instant};

use crate::{
    call::{
        cell::{CallRef, JobRef, RemoteOps},
        route::Route,
    },
    LaneStats, ProcessTask, Task,
};

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
/// that makes calls is written once.
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

/// Which runtime a pool runs on (see [`Pool::runtime`](crate::Pool::runtime)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeKind {
    /// Worker threads.
    Threads,
    /// Worker processes.
    Processes,
}

/// A pool's runtime.
pub(crate) enum Engine {
    Threads(thread::Runtime),
    Processes(process::Runtime),
}

impl Engine {
    pub(crate) fn kind(&self) -> RuntimeKind {
        match self {
            Engine::Threads(_) => RuntimeKind::Threads,
            Engine::Processes(_) => RuntimeKind::Processes,
        }
    }

    /// Hands a new call to a lane. Returns the call's home pool (for the
    /// nested-call rule, 0 for none) and its route, if its handle has a
    /// part to play.
    #[inline]
    pub(crate) fn submit(
        &self,
        call: &CallRef,
        job: JobRef,
        remote: Option<Remote>,
    ) -> (usize, Option<Arc<dyn Route>>) {
        match self {
            Engine::Threads(rt) => (rt.submit(call, job), None),
            Engine::Processes(rt) => {
                let remote = remote.expect("a process pool only accepts tasks that can travel");
                (0, Some(rt.submit(job, remote)))
            }
        }
    }

    pub(crate) fn workers(&self) -> usize {
        match self {
            Engine::Threads(rt) => rt.workers(),
            Engine::Processes(rt) => rt.workers(),
        }
    }

    pub(crate) fn lane_stats(&self) -> Vec<LaneStats> {
        match self {
            Engine::Threads(rt) => rt.lane_stats(),
            Engine::Processes(rt) => rt.lane_stats(),
        }
    }

    pub(crate) fn is_closed(&self) -> bool {
        match self {
            Engine::Threads(rt) => rt.is_closed(),
            Engine::Processes(rt) => rt.is_closed(),
        }
    }

    /// Begins a shutdown: new calls fail, workers finish what they hold.
    pub(crate) fn close(&self) {
        match self {
            Engine::Threads(rt) => rt.close(),
            Engine::Processes(rt) => rt.close(),
        }
    }

    /// Waits until every worker is done (or `deadline` passes: false).
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        match self {
            Engine::Threads(rt) => rt.wait(deadline),
            Engine::Processes(rt) => rt.wait(deadline),
        }
    }

    /// Joins the runtime's threads, once every worker is done.
    pub(crate) fn join(&self) {
        match self {
            Engine::Threads(rt) => rt.join(),
            Engine::Processes(rt) => rt.join(),
        }
    }

    /// Stops waiting: fails every call left (killing worker processes
    /// that hold them). Returns how many calls it failed.
    pub(crate) fn abandon(&self) -> usize {
        match self {
            Engine::Threads(rt) => rt.abandon(),
            Engine::Processes(rt) => rt.abandon(),
        }
    }
}
