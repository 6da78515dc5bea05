//! Calls kept back for their waiter: the inline lane's half in the call
//! handle.
//!
//! A thread pool keeps an inline call (`#[task(inline)]`, or a call made
//! while the pool is past its inline threshold) in its handle instead of
//! queueing it. A blocking wait runs it on the waiting thread; anything
//! that must not block (polling the future, `try_wait`, `is_finished`,
//! `detach`) sends it to a worker after all; dropping the handle cancels
//! it like any call.

use std::sync::{Mutex, Weak};

use super::cell::{CallRef, JobRef};
use crate::Error;

/// The pool side of a kept call: where it goes when it is not run here.
pub(crate) trait Keeper: Send + Sync {
    /// Queues `job` (of `call`) on a worker lane, as if it had been
    /// queued when it was made.
    fn send(&self, call: &CallRef, job: JobRef);

    /// Whether the pool still takes calls.
    fn is_open(&self) -> bool;

    /// Counts a call run on its caller's thread.
    fn ran_inline(&self);
}

/// A call's queue reference, held by its handle until the call runs here
/// or goes to a worker.
pub(crate) struct Kept {
    job: Mutex<Option<JobRef>>,
    pool: Weak<dyn Keeper>,
}

impl Kept {
    pub(crate) fn new(job: JobRef, pool: Weak<dyn Keeper>) -> Self {
        Self {
            job: Mutex::new(Some(job)),
            pool,
        }
    }

    fn take(&self) -> Option<JobRef> {
        self.job.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Runs the call on this thread (if it is still kept and its pool
    /// still open; a closed pool fails it).
    pub(crate) fn run_here(&self) {
        let Some(job) = self.take() else {
            return;
        };
        match self.pool.upgrade() {
            Some(pool) if pool.is_open() => {
                // A call that already ended (cancelled, timed out) is not
                // run: `run` finds it started and only lets go.
                let queued = job.is_queued();
                job.run();
                if queued {
                    pool.ran_inline();
                }
            }
            _ => {
                job.fail(Error::closed());
            }
        }
    }

    /// Sends the call to a worker (if it is still kept).
    pub(crate) fn send(&self, call: &CallRef) {
        let Some(job) = self.take() else {
            return;
        };
        match self.pool.upgrade() {
            Some(pool) => pool.send(call, job),
            None => {
                job.fail(Error::closed());
            }
        }
    }

    /// Lets the call go without running it (its handle is dropped; the
    /// handle ended the call first).
    pub(crate) fn release(&self) {
        drop(self.take());
    }
}
