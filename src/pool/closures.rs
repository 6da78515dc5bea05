//! Closures on thread pools: [`Pool::run`] and [`Pool::run_with_signal`].
//!
//! A closure call takes the path of a task call (`Pool::start`): the
//! closure is the call's arguments (see `task::closure`), so the balancer,
//! the inline lane, work stealing, deadlines, cancellation and shutdown
//! are the ones every task call gets.

use std::panic::Location;

use super::Pool;
use crate::{
    runtime::{RunsClosures, Runtime},
    task::closure::{Closure, Plain, Signalled},
    Call, Signal,
};

impl<R: Runtime> Pool<R> {
    /// Runs the closure `f` on a worker thread and returns the call's
    /// handle: the same [`Call`] a [task](macro@crate::task) call gives.
    ///
    /// This is the one-line way in from `spawn_blocking` or `rayon::spawn`:
    /// any `FnOnce() -> T + Send + 'static` runs, with no `#[task]` to
    /// write. The closure is moved to the worker in the call itself (no
    /// box, no channel), and the call goes the way every call does: to the
    /// lane the pool's [balancer](crate::Balancer) picks, stolen by an idle
    /// worker if it waits behind a slow one, run by its waiter past the
    /// [`inline_threshold`](crate::PoolBuilder::inline_threshold).
    ///
    /// ```
    /// fn checksum(data: &[u8]) -> u32 {
    ///     data.iter().map(|&b| u32::from(b)).sum()
    /// }
    ///
    /// # fn main() -> Result<(), knitting::Error> {
    /// let pool = knitting::Pool::builder().threads(2).build()?;
    /// let data = vec![1u8, 2, 3];
    /// // Was: tokio::task::spawn_blocking(move || checksum(&data)).await?
    /// let sum = pool.run(move || checksum(&data)).wait()?; // or .await
    /// assert_eq!(sum, 6);
    /// # Ok(()) }
    /// ```
    ///
    /// # What the call guarantees
    ///
    /// All that a task call does (see [`Call`]):
    ///
    /// - a deadline per call: [`timeout`](Call::timeout) or
    ///   [`deadline`](Call::deadline), counted from the call, queue time
    ///   included; when it passes the call fails with a
    ///   [`Timeout`](crate::ErrorKind::Timeout) error, and a closure still
    ///   queued then never runs (a closure has no `default`: for a value
    ///   on timeout, write a `#[task(timeout = .., default = ..)]`);
    /// - [`cancel`](Call::cancel), and dropping the handle, end the call at
    ///   once with a [`Cancelled`](crate::ErrorKind::Cancelled) error; a
    ///   closure that has not started never runs, and what it captured is
    ///   dropped;
    /// - a panic in the closure fails the call with a
    ///   [`Panic`](crate::ErrorKind::Panic) error (message and location),
    ///   and the worker goes on; [`Error::task`](crate::Error::task) names
    ///   the closure by its type (`my_app::main::{{closure}}`);
    /// - the pool's [`hard_timeout`](crate::PoolBuilder::hard_timeout)
    ///   holds for closures too;
    /// - on [shutdown](Pool#shutting-down), queued closures still run;
    ///   [`shutdown_timeout`](Pool::shutdown_timeout) fails those left
    ///   with a [`Closed`](crate::ErrorKind::Closed) error; a closure run
    ///   after the shutdown began fails at once;
    /// - a closure may call its own pool and wait, as a task may: a worker
    ///   that waits for a call no worker has started runs it itself (see
    ///   "Waiting inside a task" under [`Call::wait`]).
    ///
    /// One difference from `spawn_blocking` to keep in mind: dropping its
    /// `JoinHandle` lets the work run on, dropping a `Call` cancels it. For
    /// fire-and-forget work, [`detach`](Call::detach) the call:
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// pool.run(|| eprintln!("runs in the background")).detach();
    ///
    /// let slow = pool.run(|| std::thread::sleep(Duration::from_millis(500)));
    /// let err = slow.timeout(Duration::from_millis(10)).wait().unwrap_err();
    /// assert!(err.is_timeout());
    /// ```
    ///
    /// # Only on thread pools
    ///
    /// A closure's code and captures live in this process's memory, so a
    /// worker process cannot receive one: `run` on a
    /// [`Pool<Processes>`](crate::ProcessPool), or on a
    /// `Pool<AnyRuntime>` (which may be one), does not compile, and the
    /// compiler says why (see [`RunsClosures`]). There, write the work as
    /// a `#[task]` and [`call`](Pool::call) it:
    ///
    /// ```compile_fail
    /// knitting::init();
    /// let pool = knitting::Pool::builder().processes(2).build().unwrap();
    /// let _ = pool.run(|| 6 * 7); // error: closures run on thread pools only
    /// ```
    #[track_caller]
    #[inline]
    pub fn run<F, T>(&self, f: F) -> Call<T>
    where
        R: RunsClosures,
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        self.start(Closure::<F, Plain>::new(Location::caller()), f, None)
    }

    /// Runs the closure `f` on a worker thread, lending it the call's
    /// [`Signal`], so that it can stop early; as [`run`](Self::run)
    /// otherwise.
    ///
    /// The signal is raised by [`abort`](Call::abort) (the call then ends
    /// with what the closure returns), by [`cancel`](Call::cancel) and by
    /// dropping the handle (the call has ended already; the closure is
    /// told so that it stops wasting its worker), by a passed deadline and
    /// by a hard time limit. A closure that never looks runs to its end,
    /// and its result is dropped.
    ///
    /// ```
    /// # fn main() -> Result<(), knitting::Error> {
    /// let pool = knitting::Pool::builder().threads(1).build()?;
    /// let limit = 1_000_000_000_u64;
    /// let call = pool.run_with_signal(move |signal| {
    ///     let mut n = 0;
    ///     while n < limit && !signal.aborted() {
    ///         n += 1;
    ///     }
    ///     n
    /// });
    /// call.abort();
    /// assert!(call.wait()? < limit);
    /// # Ok(()) }
    /// ```
    ///
    /// # Why a second method
    ///
    /// `run` takes exactly what `spawn_blocking` and `rayon::spawn` take,
    /// `FnOnce() -> T`, so that moving to it is a rename. A closure that
    /// wants its signal asks for it as a parameter, the way a task takes a
    /// last `&Signal` parameter: the borrow lasts as long as the call, it
    /// cannot be kept past it, and the closure's type says that it listens.
    /// The other ways read worse: a `&Signal` for every `run` closure
    /// would make each migrated one `move |_| ...`, and a thread-local
    /// "current signal" would be found by no type and mean another call's
    /// signal inside a nested call.
    #[track_caller]
    #[inline]
    pub fn run_with_signal<F, T>(&self, f: F) -> Call<T>
    where
        R: RunsClosures,
        F: FnOnce(&Signal) -> T + Send + 'static,
        T: Send + 'static,
    {
        self.start(Closure::<F, Signalled>::new(Location::caller()), f, None)
    }
}
