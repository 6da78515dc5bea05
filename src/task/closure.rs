//! Closures as tasks: what [`Pool::run`](crate::Pool::run) and
//! [`Pool::run_with_signal`](crate::Pool::run_with_signal) send.
//!
//! A closure call is a task call whose arguments are the closure itself:
//! [`Closure<F>`] is a [`Task`] with `Args = F`, so the closure travels in
//! the call cell like any task's arguments (moved to the worker, never
//! boxed or encoded), and the cell, the lanes, the deadline timer and the
//! handle treat it exactly as they treat a `#[task]` call. Such a task is
//! never registered (it has no id a process worker could look up), and
//! only thread pools accept it.

use std::{marker::PhantomData, panic::Location};

use super::{Task, TaskInfo};
use crate::{Error, Signal};

/// A closure run as a task; `How` says whether it takes the call's signal
/// ([`Plain`] or [`Signalled`]).
pub(crate) struct Closure<F, How> {
    /// The closure's type name and the place of the `run` call: what the
    /// call's errors and diagnostics name it by.
    info: TaskInfo,
    _closure: PhantomData<fn() -> (F, How)>,
}

/// A closure that takes nothing: `FnOnce() -> T`.
pub(crate) enum Plain {}

/// A closure that takes its call's signal: `FnOnce(&Signal) -> T`.
pub(crate) enum Signalled {}

impl<F, How> Closure<F, How> {
    /// The task of closures of type `F`, run from `caller`.
    pub(crate) fn new(caller: &'static Location<'static>) -> Self {
        Self {
            info: TaskInfo::closure(std::any::type_name::<F>(), caller.file(), caller.line()),
            _closure: PhantomData,
        }
    }
}

// By hand: derived impls would ask `F: Copy`, which the closure needs not
// be (the task value holds no `F`).
impl<F, How> Clone for Closure<F, How> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<F, How> Copy for Closure<F, How> {}

/// What a closure of each kind does with the call's signal.
pub(crate) trait Body<How>: Send + 'static {
    /// What the closure returns.
    type Output: Send + 'static;
    /// Runs the closure.
    fn call(self, signal: &Signal) -> Self::Output;
}

impl<F, T> Body<Plain> for F
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = T;

    #[inline]
    fn call(self, _: &Signal) -> T {
        self()
    }
}

impl<F, T> Body<Signalled> for F
where
    F: FnOnce(&Signal) -> T + Send + 'static,
    T: Send + 'static,
{
    type Output = T;

    #[inline]
    fn call(self, signal: &Signal) -> T {
        self(signal)
    }
}

impl<F: Body<How>, How: 'static> Task for Closure<F, How> {
    type Args = F;
    type Output = F::Output;

    fn info(&self) -> &TaskInfo {
        &self.info
    }

    #[inline]
    fn run(closure: F, signal: &Signal) -> Result<F::Output, Error> {
        Ok(closure.call(signal))
    }
}
