//! `Call<T>`: the handle of one call in flight.

pub(crate) mod cell;
pub(crate) mod route;
pub(crate) mod timer;

use std::{
    fmt,
    future::Future,
    marker::PhantomData,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Wake, Waker},
    time::{Duration, Instant},
};

use self::{cell::CallRef, route::Route};
use crate::{transport::wake::spin::Backoff, Error};

/// The handle of one call: a [`Future`] and a blocking waiter in one.
///
/// [`Pool::call`](crate::Pool::call) returns it at once; the call runs on a
/// worker whether or not anybody waits. Get the result in any of these ways:
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
            _output: PhantomData,
        }
    }

    pub(crate) fn failed(error: Error) -> Self {
        Self {
            repr: Repr::Failed(error),
            home: 0,
            route: None,
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

    #[track_caller]
    fn wait_until(&mut self, deadline: Option<Instant>) -> Option<Result<T, Error>> {
        // SPIN: a worker that is awake answers a small call in well under a
        // microsecond; catching that without a sleep is most of the latency.
        if let Some(result) = self.poll_result() {
            return Some(result);
        }
        // HELP: a worker thread of the call's own pool that waits for a call
        // no worker has started runs it here, instead of waiting for a
        // worker that may be this one (a nested call on a full pool).
        if let Repr::Pending(call) = &self.repr {
            if self.home != 0 && crate::role::current_pool() == self.home && call.run_here() {
                return self.poll_result();
            }
        }
        let mut backoff = Backoff::new(WAIT_SPIN_BUDGET);
        let route = self.route.clone();
        let mut spun = None;
        // One step: a pause (not before the first look), then a look. A
        // route takes responses between steps, so right after a look that
        // found nothing, before the pause.
        let mut first = true;
        let mut step = || {
            if !std::mem::take(&mut first) {
                backoff.snooze();
            }
            if let Some(result) = self.poll_result() {
                spun = Some(Some(result));
                return false;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                spun = Some(None);
                return false;
            }
            !backoff.is_completed()
        };
        match &route {
            Some(route) => route.spin(&mut step),
            None => while step() {},
        }
        if let Some(outcome) = spun {
            return outcome;
        }
        // PARK: register a waker that unparks this thread, then sleep until
        // the worker publishes the result or the deadline passes.
        let Repr::Pending(call) = &self.repr else {
            return self.poll_result();
        };
        let waker = Waker::from(Arc::new(ThreadWaker(std::thread::current())));
        call.register(&waker);
        // A waker (user code) running on a process lane's reactor thread
        // that waits for a call on that same lane must not sleep: the
        // reactor that would wake it is this thread. It takes the responses
        // itself instead, with short naps.
        let own_thread = self.route.clone().filter(|route| route.is_own_thread());
        loop {
            if let Some(result) = self.poll_result() {
                return Some(result);
            }
            if let Some(route) = &own_thread {
                route.poll();
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return None;
                }
                std::thread::sleep(Duration::from_micros(50));
                continue;
            }
            match deadline {
                None => std::thread::park(),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return None;
                    }
                    std::thread::park_timeout(deadline - now);
                }
            }
        }
    }
}

/// How long a blocking wait spins (then yields) before it parks: short
/// enough to cost little CPU when the call is slow, long enough to catch a
/// fast round trip without the microseconds of a wake-up.
const WAIT_SPIN_BUDGET: Duration = Duration::from_micros(50);

struct ThreadWaker(std::thread::Thread);

impl Wake for ThreadWaker {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

impl<T: Send + 'static> Future for Call<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(route) = &this.route {
            route.poll();
        }
        if let Some(result) = this.poll_result() {
            return Poll::Ready(result);
        }
        // A task that blocks on this future on a worker of the call's pool
        // (`block_on` inside a task): the nested-call rule of `wait`.
        let ran_here = match &this.repr {
            Repr::Pending(call) => {
                this.home != 0 && crate::role::current_pool() == this.home && call.run_here()
            }
            _ => false,
        };
        if ran_here {
            if let Some(result) = this.poll_result() {
                return Poll::Ready(result);
            }
        }
        if let Repr::Pending(call) = &this.repr {
            call.register(cx.waker());
        }
        // Check again: the call may have ended between the first look and
        // the registration, and then nobody would wake us.
        match this.poll_result() {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
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
