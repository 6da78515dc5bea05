//! The reactor a worker's executor runs its futures in: none by default, a
//! current-thread tokio runtime per worker with the `tokio` feature; and
//! the error a task gets when it needs a reactor that is not there.

#[cfg(feature = "tokio")]
use std::{future::poll_fn, task::Poll, time::Duration};

use crate::{Error, ErrorKind};

/// The reactor of one worker's executor.
pub(crate) struct Reactor {
    #[cfg(feature = "tokio")]
    runtime: tokio::runtime::Runtime,
}

impl std::fmt::Debug for Reactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reactor")
            .field("tokio", &cfg!(feature = "tokio"))
            .finish()
    }
}

/// With the `tokio` feature and futures in flight, how long a worker
/// sleeps inside the reactor before it looks for new calls (its futures'
/// wake-ups end the sleep at once; new calls ring a bell the reactor does
/// not hear).
#[cfg(feature = "tokio")]
const TICK: Duration = Duration::from_millis(1);

impl Reactor {
    pub(crate) fn new() -> Result<Self, Error> {
        Ok(Self {
            #[cfg(feature = "tokio")]
            runtime: tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| {
                    Error::of(
                        ErrorKind::Startup,
                        format!("a worker could not start its tokio runtime: {e}"),
                    )
                })?,
        })
    }

    /// Runs `f` (a poll, a drop) inside the reactor.
    #[inline]
    pub(crate) fn enter<R>(&self, f: impl FnOnce() -> R) -> R {
        #[cfg(feature = "tokio")]
        let _entered = self.runtime.enter();
        f()
    }

    /// Sleeps until a future of `ready` is woken: with tokio, inside the
    /// runtime (which turns its timers and I/O meanwhile) for at most
    /// [`TICK`]; without, through `park`.
    #[cfg_attr(not(feature = "tokio"), allow(clippy::unused_self))]
    pub(crate) fn park(&self, ready: &super::Ready, park: impl FnOnce()) {
        #[cfg(feature = "tokio")]
        {
            let _ = park;
            // The timeout is made inside the runtime: tokio's timers need
            // its context.
            self.runtime.block_on(async {
                let woken = poll_fn(|cx| {
                    ready.idle.register(cx.waker());
                    // Acquire: as in `Executor::has_ready`.
                    if ready.any.load(crate::sync::Ordering::Acquire) {
                        Poll::Ready(())
                    } else {
                        Poll::Pending
                    }
                });
                let _ = tokio::time::timeout(TICK, woken).await;
            });
        }
        #[cfg(not(feature = "tokio"))]
        {
            let _ = ready;
            park();
        }
    }
}

/// A task's panic, explained if it is tokio's "no reactor" panic: an
/// [`Unsupported`](ErrorKind::Unsupported) error that names the `tokio`
/// feature (without it no worker runs a tokio reactor).
pub(crate) fn explain(err: Error) -> Error {
    let message = err.message();
    let no_reactor = message.contains("no reactor running")
        || message.contains("must be called from the context of a Tokio");
    if err.kind() != ErrorKind::Panic || !no_reactor {
        return err;
    }
    let features = if cfg!(feature = "tokio") {
        "(the worker's tokio runtime was not entered: a future polled on \
         another thread?)"
    } else {
        "turn on the `tokio` feature of knitting, whose workers each run a \
         current-thread tokio runtime, or await `knitting::sleep` instead of \
         tokio's timers"
    };
    Error::of(
        ErrorKind::Unsupported,
        format!("the task needs a tokio reactor, which this worker does not run: {features} (tokio said: {message})"),
    )
}
