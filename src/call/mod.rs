//! `Call<T>`: the handle of one call in flight.

pub(crate) mod cell;
#[doc(hidden)]
pub mod expansion;
pub(crate) mod kept;
pub(crate) mod latency;
pub(crate) mod route;
pub(crate) mod sleep;
pub(crate) mod stream;
pub(crate) mod timer;
mod wait;

use std::{
    fmt,
    marker::PhantomData,
    sync::{Arc, Weak},
    time::{Duration, Instant},
};

use self::{
    cell::{CallRef, JobRef},
    kept::{Keeper, Kept},
    route::Route,
};
use crate::Error;

/// The handle of one call: a [`Future`](std::future::Future) and a blocking waiter in one.
///
/// [`Pool::call`](crate::Pool::call) returns it at once (and so do
/// [`Pool::run`](crate::Pool::run) and
/// [`Pool::run_with_signal`](crate::Pool::run_with_signal), for a
/// closure); the call runs on a worker whether or not anybody waits. Get the result in any of these ways:
///
/// - `.await` it, in any executor (the crate depends on none);
/// - [`wait`](Self::wait) for it, blocking the current thread;
/// - [`wait_timeout`](Self::wait_timeout) / [`wait_deadline`](Self::wait_deadline)
///   to block for a bounded time, or [`try_wait`](Self::try_wait) to look.
///
/// Every call ends: with the task's value, or with an [`Error`] saying why
/// not (the task panicked or returned an error, the pool shut down, the
/// call was cancelled).
///
/// ```
/// #[knitting::task]
/// fn square(v: i64) -> i64 { v * v }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(2).build()?;
/// let a = pool.call(square, 3);
/// let b = pool.call(square, 4);
/// assert_eq!(a.wait()? + b.wait()?, 25);
/// # Ok(()) }
/// ```
///
/// # Dropping a `Call`
///
/// Dropping the handle **cancels** the call, as [`cancel`](Self::cancel)
/// does: a call still queued is never run, and a running call has its
/// [`Signal`](crate::Signal) raised (on a process worker: its abort word in
/// the shared mapping) so a task that polls it can stop early; its result
/// is discarded. To let a call run to the end without keeping the handle,
/// use [`detach`](Self::detach).
///
/// `let _ = pool.call(..)` drops the handle at once, and so cancels the
/// call (the compiler's `must_use` warning says so):
///
/// ```
/// # #[knitting::task] fn log_line(line: String) { eprintln!("{line}") }
/// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
/// pool.call(log_line, "runs in the background".into()).detach(); // runs
/// let line = pool.call(log_line, "waited for".into()).wait(); // runs, and we wait
/// # line.unwrap();
/// let _ = pool.call(log_line, "may never run".into()); // cancelled at once
/// ```
///
/// # Ending a call early
///
/// | | the call ends | the task is told (`signal.aborted()`) |
/// |---|---|---|
/// | [`abort`](Self::abort) | with what the task returns | yes |
/// | [`cancel`](Self::cancel), drop | at once, `Cancelled` | yes |
/// | deadline ([`timeout`](Self::timeout), `#[task(timeout)]`) | at the deadline, `default` or `Timeout` | yes |
/// | hard limit (`hard_timeout`) | at the limit, `HardTimeout`; process worker killed, thread lane replaced | yes |
///
/// # The inline lane
///
/// A thread pool runs some calls on the thread that waits for them, with
/// no hand-off to a worker at all: every call of a `#[task(inline)]` task,
/// and every call made while the pool has
/// [`inline_threshold`](crate::PoolBuilder::inline_threshold) calls in
/// flight. Such a call is kept in its handle, and then:
///
/// - [`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout) and
///   [`wait_deadline`](Self::wait_deadline) run it right there, on the
///   waiting thread (then return when it returns, even past their bound);
///   it keeps its deadline, its [`Signal`](crate::Signal) and its panic
///   handling, and counts in [`PoolStats::inlined`](crate::PoolStats::inlined);
/// - **`.await` never runs it on the executor's thread**: the first poll
///   sends it to a worker, like any call, so other tasks of the executor
///   go on while it runs (an async caller gains nothing from `inline`, and
///   loses nothing either);
/// - [`try_wait`](Self::try_wait), [`is_finished`](Self::is_finished) and
///   [`detach`](Self::detach), which must not block, send it to a worker
///   too;
/// - dropping the handle or [`cancel`](Self::cancel) cancels it: it never
///   runs.
///
/// Process pools never run a call inline (their tasks belong in a worker
/// process), nor does a thread pool with a hard time limit, nor a task
/// with one of its own: a caller's thread cannot be cut off.
///
/// ```
/// #[knitting::task(inline)]
/// fn add(a: u64, b: u64) -> u64 { a + b }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// assert_eq!(pool.call(add, (2, 3)).wait()?, 5); // ran on this thread
/// assert_eq!(pool.stats().inlined, 1);
/// # Ok(()) }
/// ```
///
/// # Cancel safety
///
/// Polling the future and dropping it before it completes cancels the call
/// as above (for example the losing branch of a `select!`). A call whose
/// handle is dropped after it completed loses nothing but its result.
#[must_use = "call `.detach()` to let the call run in the background, or `.await`/`.wait()` it for its value; dropping the handle (also `let _ = ...`) cancels the call"]
pub struct Call<T> {
    repr: Repr,
    /// The thread pool the call was made on (its address), 0 for none: a
    /// worker thread of that pool that waits for the call runs it itself
    /// if no worker has started it.
    home: usize,
    /// The lane the call went to, when its handle has a part to play (see
    /// [`Route`]).
    route: Option<Arc<dyn Route>>,
    /// An inline call, kept here until it runs on its waiter's thread or
    /// goes to a worker (see [the inline lane](#the-inline-lane)).
    kept: Option<Kept>,
    /// Where the call's latency goes when it ends (a pool that records).
    latency: Option<Box<latency::Recording>>,
    _output: PhantomData<fn() -> T>,
}

enum Repr {
    /// In flight; the handle holds one reference to the call cell.
    Pending(CallRef),
    /// Ended before it was sent (for example: the pool is shut down).
    Failed(Error),
    /// The result was handed out.
    Spent,
}

impl<T: Send + 'static> Call<T> {
    /// A call in flight: made on the thread pool named `home` (0 for none,
    /// see [`Call::wait`]), sent to a lane reached through `route` (if its
    /// handle has a part to play).
    pub(crate) fn pending(call: CallRef, home: usize, route: Option<Arc<dyn Route>>) -> Self {
        Self {
            repr: Repr::Pending(call),
            home,
            route,
            kept: None,
            latency: None,
            _output: PhantomData,
        }
    }

    /// An inline call made on the thread pool named `home`: kept in the
    /// handle (see [`Kept`]) until it runs here or goes to `pool`.
    pub(crate) fn kept(call: CallRef, home: usize, job: JobRef, pool: Weak<dyn Keeper>) -> Self {
        Self {
            repr: Repr::Pending(call),
            home,
            route: None,
            kept: Some(Kept::new(job, pool)),
            latency: None,
            _output: PhantomData,
        }
    }

    /// Records the call's latency, counted from `since`, into `latency`
    /// when its handle takes the outcome.
    pub(crate) fn recorded(mut self, latency: &Arc<latency::Latency>, since: Instant) -> Self {
        if matches!(self.repr, Repr::Pending(_)) {
            self.latency = Some(latency::Recording::start(latency, since));
        }
        self
    }

    /// Sends a kept call to a worker: its handle is about to be polled or
    /// looked at, which must not run it here.
    fn send_kept(&self) {
        if let (Some(kept), Repr::Pending(call)) = (&self.kept, &self.repr) {
            kept.send(call);
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        Self {
            repr: Repr::Failed(error),
            home: 0,
            route: None,
            kept: None,
            latency: None,
            _output: PhantomData,
        }
    }

    /// Blocks the current thread until the call ends.
    ///
    /// Spins briefly first, so a fast call answers without a sleep.
    ///
    /// # Waiting inside a task (nested calls)
    ///
    /// A task may call its own pool and wait. When the waiting thread is a
    /// worker of the pool the call was made on and no worker has started
    /// the call yet, the waiter runs it itself, right there (the claim a
    /// worker makes, so the call runs exactly once). A call that already
    /// runs on another worker is waited for as usual. So a tree of nested
    /// calls finishes on any number of threads, one included: every call
    /// waited for either runs on a thread that makes progress or is run by
    /// its waiter. The same holds for [`wait_timeout`](Self::wait_timeout)
    /// and [`wait_deadline`](Self::wait_deadline), which then return when
    /// the call returns, even if that is past their bound.
    ///
    /// A call run by its waiter keeps its deadline, its signal and its
    /// panic handling, but not a hard time limit of its own: it runs inside
    /// the waiting task, whose hard limit covers it. (A thread cannot be
    /// cut off under a task that is still running on it.) Polling the
    /// call as a future on such a thread (`block_on` inside a task) follows
    /// the same rule. Waits on process calls, or on another pool's calls,
    /// never run them inline.
    ///
    /// ```
    /// use std::sync::OnceLock;
    /// static POOL: OnceLock<knitting::Pool> = OnceLock::new();
    ///
    /// #[knitting::task]
    /// fn fib(n: u64) -> u64 {
    ///     if n < 2 { return n; }
    ///     let pool = POOL.get().unwrap();
    ///     let (a, b) = (pool.call(fib, n - 1), pool.call(fib, n - 2));
    ///     a.wait().unwrap() + b.wait().unwrap()
    /// }
    ///
    /// // One worker thread, and still no deadlock.
    /// let pool = POOL.get_or_init(|| knitting::Pool::builder().threads(1).build().unwrap());
    /// assert_eq!(pool.call(fib, 10).wait().unwrap(), 55);
    /// ```
    ///
    /// ```
    /// # #[knitting::task] fn square(v: i64) -> i64 { v * v }
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// assert_eq!(pool.call(square, 5).wait().unwrap(), 25);
    /// ```
    pub fn wait(mut self) -> Result<T, Error> {
        match self.wait_until(None) {
            Some(result) => result,
            None => unreachable!("an unbounded wait always ends with a result"),
        }
    }

    /// Blocks for at most `timeout`; `None` if the call has not ended by
    /// then. The call goes on and the handle can be waited on again.
    ///
    /// # Panics
    ///
    /// If the result was already taken.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[knitting::task]
    /// fn slow() { std::thread::sleep(Duration::from_millis(200)) }
    ///
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// let mut call = pool.call(slow, ());
    /// assert!(call.wait_timeout(Duration::from_millis(1)).is_none());
    /// assert!(call.wait_timeout(Duration::from_secs(30)).unwrap().is_ok());
    /// ```
    #[track_caller]
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Result<T, Error>> {
        // An overflowing deadline means "forever".
        self.wait_until(Instant::now().checked_add(timeout))
    }

    /// Blocks until `deadline` at the latest; `None` if the call has not
    /// ended by then.
    ///
    /// # Panics
    ///
    /// If the result was already taken.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// # #[knitting::task] fn square(v: i64) -> i64 { v * v }
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// let mut call = pool.call(square, 3);
    /// let deadline = Instant::now() + Duration::from_secs(30);
    /// assert_eq!(call.wait_deadline(deadline).unwrap().unwrap(), 9);
    /// ```
    #[track_caller]
    pub fn wait_deadline(&mut self, deadline: Instant) -> Option<Result<T, Error>> {
        self.wait_until(Some(deadline))
    }

    /// The result if the call has ended, without blocking.
    ///
    /// # Panics
    ///
    /// If the result was already taken.
    ///
    /// ```
    /// # #[knitting::task] fn square(v: i64) -> i64 { v * v }
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// let mut call = pool.call(square, 3);
    /// let result = loop {
    ///     if let Some(result) = call.try_wait() { break result; }
    ///     std::thread::yield_now();
    /// };
    /// assert_eq!(result.unwrap(), 9);
    /// ```
    #[track_caller]
    pub fn try_wait(&mut self) -> Option<Result<T, Error>> {
        self.send_kept();
        self.poll_result()
    }

    /// True once the call has ended (its result is ready to take).
    ///
    /// ```
    /// # #[knitting::task] fn square(v: i64) -> i64 { v * v }
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// let call = pool.call(square, 3);
    /// while !call.is_finished() { std::thread::yield_now(); }
    /// assert_eq!(call.wait().unwrap(), 9);
    /// ```
    pub fn is_finished(&self) -> bool {
        self.send_kept();
        match &self.repr {
            Repr::Pending(call) => call.is_done(),
            Repr::Failed(_) => true,
            Repr::Spent => false,
        }
    }

    /// Asks the task to stop: raises the call's [`Signal`](crate::Signal).
    ///
    /// Cooperative: a task that takes a `&Signal` sees
    /// [`aborted`](crate::Signal::aborted) turn true and decides what to
    /// return; a task that does not look runs to its end. The handle stays
    /// valid, and the call still ends with whatever the task returns.
    ///
    /// On a process worker the signal is the call's abort word in the
    /// shared mapping; a call aborted before it is sent starts aborted.
    /// There is no limit on how many calls may be aborted at once: every
    /// call carries its own flag.
    ///
    /// ```
    /// #[knitting::task]
    /// fn spin(signal: &knitting::Signal) -> &'static str {
    ///     while !signal.aborted() { std::hint::spin_loop(); }
    ///     "stopped"
    /// }
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// let call = pool.call(spin, ());
    /// call.abort();
    /// assert_eq!(call.wait().unwrap(), "stopped");
    /// ```
    pub fn abort(&self) {
        if let Repr::Pending(call) = &self.repr {
            self.raise(call);
        }
    }

    /// Gives the call a deadline `timeout` from now, replacing the task's
    /// own (`#[task(timeout = ..)]`): when it passes, the call ends with the
    /// task's `default` value (or `error`), or else a
    /// [`Timeout`](crate::ErrorKind::Timeout) error, and the task's
    /// [`Signal`](crate::Signal) is raised so that an abort-aware task can
    /// stop. A task that does not look at its signal runs on to its end;
    /// its late result is dropped.
    ///
    /// The deadline holds whoever gets there first: a result that arrives
    /// after it (even before the timer thread fired) ends the call with the
    /// timed-out outcome too, and a call still queued at its deadline is
    /// not run. A call that ends before its deadline frees the timer's
    /// entry at once, so even a far deadline costs no memory after the
    /// call.
    ///
    /// ```
    /// use std::time::Duration;
    ///
    /// #[knitting::task]
    /// fn nap(ms: u64) -> u64 { std::thread::sleep(Duration::from_millis(ms)); ms }
    ///
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// let err = pool.call(nap, 500).timeout(Duration::from_millis(20)).wait().unwrap_err();
    /// assert!(err.is_timeout());
    /// ```
    pub fn timeout(self, timeout: Duration) -> Self {
        self.deadline_at(crate::time::nanos_after(timeout))
    }

    /// Gives the call a deadline at `deadline`; see [`timeout`](Self::timeout).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    ///
    /// #[knitting::task(timeout = "20ms", default = "late")]
    /// fn wait_then(ms: u64) -> &'static str { std::thread::sleep(Duration::from_millis(ms)); "done" }
    ///
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// // The task's own 20 ms deadline would cut this call; the call's own
    /// // deadline replaces it.
    /// let call = pool.call(wait_then, 50).deadline(Instant::now() + Duration::from_secs(10));
    /// assert_eq!(call.wait().unwrap(), "done");
    /// ```
    pub fn deadline(self, deadline: Instant) -> Self {
        self.deadline_at(crate::time::nanos_at(deadline))
    }

    fn deadline_at(self, at: u64) -> Self {
        if let Repr::Pending(call) = &self.repr {
            let job = call.set_deadline(at);
            let key = crate::call::timer::schedule(
                at,
                crate::call::timer::Action::Deadline {
                    job,
                    at,
                    route: self.route.clone(),
                },
            );
            call.attach_timer(key);
        }
        self
    }

    /// Raises the call's signal, here and, for a process call, in the
    /// worker's abort word.
    fn raise(&self, call: &CallRef) {
        call.abort();
        if let Some(route) = &self.route {
            route.abort(call.key());
        }
    }

    /// Ends the call at once with an [`ErrorKind::Cancelled`](crate::ErrorKind::Cancelled)
    /// error (unless it already ended) and raises its signal, so the worker
    /// is told to stop too. Returns the call's outcome.
    ///
    /// ```
    /// #[knitting::task]
    /// fn forever(signal: &knitting::Signal) {
    ///     while !signal.aborted() { std::thread::yield_now(); }
    /// }
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// let err = pool.call(forever, ()).cancel().unwrap_err();
    /// assert!(err.is_cancelled());
    /// ```
    pub fn cancel(mut self) -> Result<T, Error> {
        if let Repr::Pending(call) = &self.repr {
            // End the call first, then tell the task: a task that stops at
            // once must not beat the cancellation with its own result.
            call.fail(Error::cancelled());
            self.raise(call);
        }
        // The result is there at once, or a worker is in the middle of
        // publishing its own: either way this wait is short.
        self.wait_until(None)
            .expect("an unbounded wait always ends with a result")
    }

    /// Lets the call run to its end without a handle; its result is dropped.
    ///
    /// ```
    /// #[knitting::task]
    /// fn log_line(line: String) { eprintln!("{line}") }
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// pool.call(log_line, "fire and forget".into()).detach();
    /// pool.shutdown(); // waits for the detached call too
    /// ```
    pub fn detach(mut self) {
        self.send_kept();
        self.repr = Repr::Spent;
    }

    #[track_caller]
    fn poll_result(&mut self) -> Option<Result<T, Error>> {
        match &self.repr {
            Repr::Pending(call) if call.is_done() => {
                // SAFETY: `is_done` saw DONE; the handle takes the result
                // once (it becomes `Spent` right after); the handle was made
                // for a task whose output is `T`.
                let result = unsafe { call.take::<T>() };
                self.repr = Repr::Spent;
                if let Some(recording) = self.latency.take() {
                    recording.finish();
                }
                Some(result)
            }
            Repr::Pending(_) => None,
            Repr::Failed(_) => match std::mem::replace(&mut self.repr, Repr::Spent) {
                Repr::Failed(err) => Some(Err(err)),
                _ => unreachable!(),
            },
            Repr::Spent => panic!("the result of this call was already taken"),
        }
    }
}

// `Call` is `Unpin`: it holds a pointer, not the state itself.
impl<T> Unpin for Call<T> {}

impl<T> Drop for Call<T> {
    fn drop(&mut self) {
        if let Repr::Pending(call) = &self.repr {
            // End the call first, then tell the task (see `cancel`).
            call.fail(Error::cancelled());
            call.abort();
            if let Some(route) = &self.route {
                route.abort(call.key());
            }
        }
        if let Some(kept) = &self.kept {
            kept.release();
        }
    }
}

impl<T> fmt::Debug for Call<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Call");
        match &self.repr {
            Repr::Pending(call) => d
                .field("task", &call.task_name())
                .field("finished", &call.is_done()),
            Repr::Failed(err) => d.field("failed", err),
            Repr::Spent => d.field("spent", &true),
        };
        d.finish()
    }
}
