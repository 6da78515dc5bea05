//! Workers: the loops that run calls, and what they know about themselves.

pub(crate) mod panics;
pub(crate) mod thread;

use std::cell::Cell;

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
/// ```
/// #[knitting::task]
/// fn on_worker() -> bool { knitting::is_main() }
///
/// # fn main() -> Result<(), knitting::Error> {
/// assert!(knitting::is_main());
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// assert!(!pool.call(on_worker, ()).wait()?);
/// # Ok(()) }
/// ```
pub fn is_main() -> bool {
    #[cfg(target_os = "linux")]
    if crate::process::is_process_worker() {
        return false;
    }
    current_pool() == 0
}
