//! `Signal`: what a running task can ask about its own call.

use std::{
    fmt,
    future::Future,
    pin::Pin,
    task::{Context, Poll},
    time::Duration,
};

use crate::sync::{AtomicU32, Ordering};

/// The abort flag of one call, as seen by the task running it.
///
/// A task asks for it by taking a `&knitting::Signal` parameter; the
/// parameter is not part of the call's arguments. The task polls
/// [`aborted`](Self::aborted) at points where stopping early is safe; the
/// caller raises the flag with [`Call::abort`](crate::Call::abort) or by
/// dropping the call handle.
///
/// ```
/// #[knitting::task]
/// fn count_until_stopped(limit: u64, signal: &knitting::Signal) -> u64 {
///     let mut n = 0;
///     while n < limit && !signal.aborted() {
///         n += 1;
///     }
///     n
/// }
///
/// # fn main() -> Result<(), knitting::Error> {
/// let pool = knitting::Pool::builder().threads(1).build()?;
/// let call = pool.call(count_until_stopped, u64::MAX);
/// call.abort();
/// assert!(call.wait()? < u64::MAX);
/// # Ok(()) }
/// ```
#[repr(transparent)]
pub struct Signal {
    /// 0 = running, 1 = abort requested. A `u32` so that the same word can
    /// live in shared memory and be waited on with a futex.
    word: AtomicU32,
}

impl Signal {
    pub(crate) fn new() -> Self {
        Self {
            word: AtomicU32::new(0),
        }
    }

    /// True once the caller asked this call to stop.
    ///
    /// Cheap (one relaxed load): poll it in loops.
    ///
    /// ```
    /// #[knitting::task]
    /// fn was_aborted(signal: &knitting::Signal) -> bool { signal.aborted() }
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// assert!(!pool.call(was_aborted, ()).wait().unwrap());
    /// ```
    #[inline]
    pub fn aborted(&self) -> bool {
        // Relaxed: the flag carries no data; a task that sees it late only
        // runs a little longer.
        self.word.load(Ordering::Relaxed) != 0
    }

    /// A future that is ready once the caller asked this call to stop: for
    /// an `async fn` task that wants to stop on its own terms (clean up,
    /// return a partial result) rather than be dropped.
    ///
    /// An async task's future is re-polled whenever its signal is raised,
    /// so awaiting this costs nothing while the call runs. Note what raises
    /// it: [`Call::abort`](crate::Call::abort) alone leaves the call running
    /// and the task decides; a deadline, [`Call::cancel`](crate::Call::cancel),
    /// a dropped handle, a hard time limit or a pool that stops waiting end
    /// the call first, and then the task's future is dropped at its next
    /// await point whatever it awaits.
    ///
    /// ```
    /// #[knitting::task]
    /// async fn wait_for_stop(signal: &knitting::Signal) -> &'static str {
    ///     signal.until_aborted().await;
    ///     "stopped on request"
    /// }
    ///
    /// # fn main() -> Result<(), knitting::Error> {
    /// let pool = knitting::Pool::builder().threads(1).build()?;
    /// let call = pool.call(wait_for_stop, ());
    /// call.abort();
    /// assert_eq!(call.wait()?, "stopped on request");
    /// # Ok(()) }
    /// ```
    pub fn until_aborted(&self) -> UntilAborted<'_> {
        UntilAborted { signal: self }
    }

    /// Monotonic time on the clock that the host and every worker (thread
    /// or process) share (`CLOCK_MONOTONIC` on Linux: time since boot); the
    /// host stamps call deadlines on the same clock.
    ///
    /// ```
    /// #[knitting::task]
    /// fn elapsed(signal: &knitting::Signal) -> std::time::Duration {
    ///     let start = signal.now();
    ///     signal.now() - start
    /// }
    /// # let pool = knitting::Pool::builder().threads(1).build().unwrap();
    /// assert!(pool.call(elapsed, ()).wait().unwrap() < std::time::Duration::from_secs(5));
    /// ```
    pub fn now(&self) -> Duration {
        Duration::from_nanos(crate::time::now_nanos())
    }

    /// A signal that reads a word of a process lane's shared mapping (the
    /// request's abort word), for the task running that request.
    #[cfg(all(target_os = "linux", not(knitting_loom)))]
    pub(crate) fn from_word(word: &std::sync::atomic::AtomicU32) -> &Signal {
        // SAFETY: `Signal` is `repr(transparent)` over an `AtomicU32`
        // (`crate::sync::AtomicU32` is std's outside loom builds), so the
        // two have the same layout and validity; the lifetime is kept.
        unsafe { &*(word as *const std::sync::atomic::AtomicU32).cast::<Signal>() }
    }

    pub(crate) fn raise(&self) {
        // Relaxed: see `aborted`.
        self.word.store(1, Ordering::Relaxed);
    }
}

/// The future of [`Signal::until_aborted`]: ready once the signal is
/// raised.
#[derive(Debug)]
#[must_use = "a future does nothing unless awaited"]
pub struct UntilAborted<'a> {
    signal: &'a Signal,
}

impl Future for UntilAborted<'_> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
        // No waker to keep: the worker re-polls a task whose signal is
        // raised (a thread cell wakes it, a process worker looks at its
        // calls' abort words whenever it wakes).
        if self.signal.aborted() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    }
}

impl fmt::Debug for Signal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signal")
            .field("aborted", &self.aborted())
            .finish()
    }
}
