//! Where the current thread runs: host code, a worker thread of some
//! pool, or a worker process. Read by [`is_main`] and by the nested-call
//! rule of [`Call::wait`](crate::Call::wait); set by the runtimes.

use std::{
    cell::Cell,
    sync::atomic::{AtomicBool, Ordering},
};

static IS_PROCESS_WORKER: AtomicBool = AtomicBool::new(false);

/// Marks this whole process as a process worker.
pub(crate) fn mark_process_worker() {
    // Relaxed: set once at start-up, before any task runs.
    IS_PROCESS_WORKER.store(true, Ordering::Relaxed);
}

/// True inside a process worker.
pub(crate) fn is_process_worker() -> bool {
    // Relaxed: see `mark_process_worker`.
    IS_PROCESS_WORKER.load(Ordering::Relaxed)
}

thread_local! {
    /// The pool (its address) whose worker this thread is; 0 for none.
    static WORKER_OF: Cell<usize> = const { Cell::new(0) };
}

/// Marks the current thread as a worker of thread pool `pool` (a non-zero
/// address that names the pool while it lives), for [`is_main`] and for
/// the nested-call rule of [`Call::wait`](crate::Call::wait).
pub(crate) fn mark_worker_thread(pool: usize) {
    WORKER_OF.with(|w| w.set(pool));
}

/// The thread pool whose worker the current thread is, 0 for none.
pub(crate) fn current_pool() -> usize {
    WORKER_OF.with(Cell::get)
}

/// True in host code, false inside a worker.
///
/// Use it to keep set-up code (building pools, reading configuration) out of
/// task code paths that might reach it from a worker.
///
/// Precisely, it answers for the current thread:
///
/// - **false** on the worker threads of every thread [`Pool`](crate::Pool)
///   (also while such a thread runs a nested call it waits for, see
///   [`Call::wait`](crate::Call::wait)), and on *every* thread of a worker
///   process (the whole process is a worker);
/// - **true** on every other thread of the host, including a thread that a
///   task spawns from a thread worker: that thread is not a worker of any
///   pool (the crate cannot see `std::thread::spawn`). A task whose
///   spawned threads need to know should tell them.
///
/// (The JavaScript original's `isMain` is false in any worker thread; a
/// Rust host has many threads of its own, so here the question is "is this
/// a knitting worker", not "is this the main thread".)
///
/// ```
/// #[knitting::task]
/// fn on_worker() -> bool { knitting::is_main() }
///
/// #[knitting::task]
/// fn in_a_thread_it_spawns() -> bool {
///     std::thread::spawn(knitting::is_main).join().unwrap()
/// }
///
/// # fn main() -> Result<(), knitting::Error> {
/// assert!(knitting::is_main());
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// assert!(!pool.call(on_worker, ()).wait()?);
/// assert!(pool.call(in_a_thread_it_spawns, ()).wait()?);
/// # Ok(()) }
/// ```
pub fn is_main() -> bool {
    !is_process_worker() && current_pool() == 0
}

/// Which runtime a pool runs on (see [`Pool::runtime`](crate::Pool::runtime)), or which
/// kind of worker runs a bootstrap (see [`BootContext::runtime`](crate::BootContext::runtime)).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RuntimeKind {
    /// Worker threads.
    Threads,
    /// Worker processes.
    Processes,
}
