//! Async calls: the future a worker's executor runs for a call of an
//! `async fn` task, and the same future run to its end on the caller's
//! thread (the inline lane).
//!
//! The future owns a reference to the cell and, inside it, the task's
//! future, which borrows the cell's signal. On every poll it first looks
//! at the cell's state: a call that is no longer `RUNNING` was ended by
//! someone else (its deadline, a cancel, a dropped handle, a hard time
//! limit, a shutdown that stopped waiting), and the task's future is
//! dropped there and then, so its destructors run and the executor's slot
//! is free. Every one of those ends raises the signal after the claim,
//! which wakes the waker registered here (`Header::abort_waker`), so the
//! drop comes at once, not when the task would next have woken.

use std::{
    future::Future,
    pin::Pin,
    task::{Context, Poll},
};

use super::*;
use crate::{exec, task::TaskFuture};

/// Starts the call as a future ([`VTable::start_async`]).
///
/// # Safety
///
/// `ptr` is the header of a `Cell<T>` and the caller hands over one of its
/// references (the future releases it when dropped).
pub(super) unsafe fn start<'a, T: Task>(
    ptr: NonNull<Header>,
    finished: &'a dyn Fn(),
) -> Option<LocalFuture<'a>> {
    let job = JobRef(ptr);
    // SAFETY: `job` holds a reference to a `Cell<T>` (vtable of `T`).
    let cell = unsafe { Cell::<T>::from_header(ptr) };
    if cell.past_deadline() {
        // Its deadline passed while it was queued: not worth running.
        finished();
        cell.end_early(true, || cell.timed_out());
        return None;
    }
    let Some(args) = cell.start() else {
        finished();
        return None;
    };
    let signal: *const Signal = &cell.header.signal;
    // SAFETY: the signal lives in the cell, which `job` keeps alive while
    // the future below exists, and the task's future is dropped before
    // `job` (`Running`'s field order and drop): the borrow ends in time.
    let signal: &'static Signal = unsafe { &*signal };
    let name = cell.task.info().name();
    let task = panics::catch(|| Ok(T::run_async(args, signal)));
    Some(Box::pin(Running::<T> {
        task: Some(task),
        job,
        finished,
        name,
    }))
}

/// Runs the call here to its end ([`VTable::run`] of an async task): the
/// same future, on this thread (the waiter's, for the inline lane).
///
/// # Safety
///
/// As for [`start`].
pub(super) unsafe fn run_here<T: Task>(ptr: NonNull<Header>, finished: &dyn Fn()) {
    // SAFETY: as for this function.
    if let Some(future) = unsafe { start::<T>(ptr, finished) } {
        exec::block::block_on(future);
    }
}

/// The future of one async call.
struct Running<'a, T: Task> {
    /// The task's future (or the panic that starting it raised). Declared
    /// before `job`: dropped first, while the signal it borrows lives.
    task: Option<Result<TaskFuture<'static, T::Output>, Error>>,
    job: JobRef,
    finished: &'a dyn Fn(),
    name: &'static str,
}

impl<T: Task> Running<'_, T> {
    fn cell(&self) -> &Cell<T> {
        // SAFETY: `job` holds a reference to a `Cell<T>`.
        unsafe { Cell::<T>::from_header(self.job.0) }
    }

    /// Completes the call with `result` (the task's future is gone).
    fn complete(&self, result: Result<T::Output, Error>) {
        let result = result.map_err(|e| e.with_task(self.name));
        // Before the result is published, as for a sync call.
        (self.finished)();
        let cell = self.cell();
        match cell.claim_completion(false) {
            Some(_) => cell.publish(cell.unless_late(result)),
            None => drop_quietly(result),
        }
    }

    /// Drops the task's future, its destructors' panics contained.
    fn drop_task(&mut self) {
        if let Some(task) = self.task.take() {
            drop_quietly(task);
        }
    }
}

impl<T: Task> Future for Running<'_, T> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // `Running` is `Unpin`: it holds the task's future boxed.
        let this = self.get_mut();
        let header = &this.cell().header;
        // Registered before the look at the state: an end that comes after
        // the look raises the signal after its claim, and wakes us.
        header.abort_waker.register(cx.waker());
        // Acquire: pairs with the claim of whoever ended the call.
        if header.state.load(Ordering::Acquire) != RUNNING {
            // Ended elsewhere: drop the task's future now.
            this.drop_task();
            (this.finished)();
            return Poll::Ready(());
        }
        let result = match this.task.as_mut() {
            None => return Poll::Ready(()),
            Some(Err(_)) => match this.task.take() {
                Some(Err(err)) => Err(err),
                _ => unreachable!("just matched"),
            },
            Some(Ok(future)) => match exec::poll_task(future.as_mut(), cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(result) => result,
            },
        };
        this.drop_task();
        this.complete(result);
        Poll::Ready(())
    }
}

impl<T: Task> Drop for Running<'_, T> {
    fn drop(&mut self) {
        if self.task.is_some() {
            // Dropped before the task ended (the worker stopped): the
            // future goes first, then the call ends if nobody ended it.
            self.drop_task();
            let cell = self.cell();
            if cell.claim_completion(false).is_some() {
                cell.publish(Err(Error::closed().with_task(self.name)));
            }
        }
    }
}
