//! Workers: the loops that run calls, and what they know about themselves.

pub(crate) mod panics;
pub(crate) mod thread;

use std::cell::Cell;

thread_local! {
    static IS_WORKER: Cell<bool> = const { Cell::new(false) };
}

/// Marks the current thread as a worker, for [`is_main`].
pub(crate) fn mark_worker_thread() {
    IS_WORKER.with(|w| w.set(true));
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
    !IS_WORKER.with(Cell::get)
}
