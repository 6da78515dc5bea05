//! The handle of a remote call: a blocking waiter and a future of any
//! executor, as a local [`knitting::Call`] is.

use std::{
    future::Future,
    pin::Pin,
    sync::{
        atomic::{AtomicU32, Ordering},
        Condvar, Mutex,
    },
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use std::sync::Arc;

use knitting::{Error, ErrorKind};
use tokio::sync::mpsc;

/// What a handle asks of its call's driver.
#[derive(Debug)]
pub(crate) enum Control {
    Abort,
    Cancel,
    Deadline(Instant),
}

/// Where a call's outcome lands, shared by the handle and the driver.
pub(crate) struct Slot<T> {
    state: Mutex<State<T>>,
    ready: Condvar,
    /// Attempts sent so far.
    attempts: AtomicU32,
    /// Attempts that may still be sent after a lost one.
    retries: AtomicU32,
}

struct State<T> {
    outcome: Option<Result<T, Error>>,
    /// True once the outcome arrived (it may since have been taken).
    ended: bool,
    waker: Option<Waker>,
}

impl<T> Slot<T> {
    pub(crate) fn new() -> Self {
        Self {
            state: Mutex::new(State {
                outcome: None,
                ended: false,
                waker: None,
            }),
            ready: Condvar::new(),
            attempts: AtomicU32::new(0),
            retries: AtomicU32::new(0),
        }
    }

    /// Ends the call with `outcome`, unless it already ended.
    pub(crate) fn finish(&self, outcome: Result<T, Error>) {
        let waker = {
            let mut state = self.state.lock().unwrap();
            if state.ended {
                return;
            }
            state.ended = true;
            state.outcome = Some(outcome);
            state.waker.take()
        };
        self.ready.notify_all();
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    pub(crate) fn attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn attempts(&self) -> u32 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// Takes one retry, if any is left.
    pub(crate) fn take_retry(&self) -> bool {
        self.retries
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
            .is_ok()
    }
}

/// The handle of a call made with [`RemotePool::call`](crate::RemotePool::call).
///
/// Like a local [`Call`](knitting::Call), it is a blocking waiter
/// ([`wait`](Self::wait), [`wait_timeout`](Self::wait_timeout)) and a
/// [`Future`] that any executor can poll; [`abort`](Self::abort) raises the
/// task's [`Signal`](knitting::Signal) on the node, and
/// [`cancel`](Self::cancel), [`timeout`](Self::timeout) and dropping the
/// handle end the call there too.
#[must_use = "a call runs on a node whether or not it is awaited; dropping the handle cancels it"]
pub struct RemoteCall<T> {
    slot: Arc<Slot<T>>,
    control: mpsc::UnboundedSender<Control>,
    /// True once the outcome was taken.
    taken: bool,
}

impl<T> RemoteCall<T> {
    pub(crate) fn new(slot: Arc<Slot<T>>, control: mpsc::UnboundedSender<Control>) -> Self {
        Self {
            slot,
            control,
            taken: false,
        }
    }

    fn take(&mut self, state: &mut State<T>) -> Option<Result<T, Error>> {
        let outcome = state.outcome.take();
        self.taken |= outcome.is_some();
        outcome
    }

    /// Blocks until the call ends; its value or error.
    pub fn wait(mut self) -> Result<T, Error> {
        let slot = Arc::clone(&self.slot);
        let mut state = slot.state.lock().unwrap();
        loop {
            if let Some(outcome) = self.take(&mut state) {
                return outcome;
            }
            if state.ended {
                return Err(taken());
            }
            state = slot.ready.wait(state).unwrap();
        }
    }

    /// Blocks until the call ends or `timeout` passes (`None`; the call
    /// goes on).
    pub fn wait_timeout(&mut self, timeout: Duration) -> Option<Result<T, Error>> {
        let until = Instant::now() + timeout;
        let slot = Arc::clone(&self.slot);
        let mut state = slot.state.lock().unwrap();
        loop {
            if let Some(outcome) = self.take(&mut state) {
                return Some(outcome);
            }
            if state.ended {
                return Some(Err(taken()));
            }
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            state = slot.ready.wait_timeout(state, left).unwrap().0;
        }
    }

    /// The outcome if the call has ended, without blocking.
    pub fn try_wait(&mut self) -> Option<Result<T, Error>> {
        let slot = Arc::clone(&self.slot);
        let mut state = slot.state.lock().unwrap();
        let outcome = self.take(&mut state);
        match outcome {
            None if state.ended => Some(Err(taken())),
            outcome => outcome,
        }
    }

    /// True once the call has ended.
    pub fn is_finished(&self) -> bool {
        self.slot.state.lock().unwrap().ended
    }

    /// Raises the task's [`Signal`](knitting::Signal) on the node (the
    /// task decides what to do; an `async fn` task that awaits it ends
    /// there). The call goes on until the task returns.
    pub fn abort(&self) {
        let _ = self.control.send(Control::Abort);
    }

    /// Gives the call a deadline `timeout` from now: when it passes, the
    /// handle ends with the task's timeout outcome (a
    /// [`Timeout`](ErrorKind::Timeout) error, or the `default` of
    /// `#[task(timeout = ..)]`), and the node ends the call too.
    pub fn timeout(self, timeout: Duration) -> Self {
        self.deadline(Instant::now() + timeout)
    }

    /// As [`timeout`](Self::timeout), at the instant `deadline`.
    pub fn deadline(self, deadline: Instant) -> Self {
        let _ = self.control.send(Control::Deadline(deadline));
        self
    }

    /// Marks the call safe to run more than once: if the node running it
    /// goes silent mid-call, it is sent again, at most `retries` more times
    /// (to whichever node takes it). Without this, a call is sent once, and
    /// a lost node fails it with [`WorkerDied`](ErrorKind::WorkerDied).
    /// [`attempts`](Self::attempts) tells how many were sent.
    pub fn retries(self, retries: u32) -> Self {
        self.slot.retries.store(retries, Ordering::Relaxed);
        self
    }

    /// How many times the call was sent so far (more than one only after
    /// [`retries`](Self::retries)).
    pub fn attempts(&self) -> u32 {
        self.slot.attempts()
    }

    /// Ends the call now, with a [`Cancelled`](ErrorKind::Cancelled) error
    /// unless it had already ended (then its outcome); the node is told,
    /// and ends the call on its side.
    pub fn cancel(mut self) -> Result<T, Error> {
        let _ = self.control.send(Control::Cancel);
        self.slot.finish(Err(Error::new(
            ErrorKind::Cancelled,
            "the call was cancelled",
        )));
        let slot = Arc::clone(&self.slot);
        let mut state = slot.state.lock().unwrap();
        self.take(&mut state).unwrap_or_else(|| Err(taken()))
    }
}

fn taken() -> Error {
    Error::new(ErrorKind::Cancelled, "the call's outcome was already taken")
}

impl<T> Drop for RemoteCall<T> {
    fn drop(&mut self) {
        if !self.taken {
            // The node is told; its answer has nobody to go to.
            let _ = self.control.send(Control::Cancel);
        }
    }
}

impl<T> Unpin for RemoteCall<T> {}

impl<T> Future for RemoteCall<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let slot = Arc::clone(&this.slot);
        let mut state = slot.state.lock().unwrap();
        if let Some(outcome) = this.take(&mut state) {
            return Poll::Ready(outcome);
        }
        if state.ended {
            return Poll::Ready(Err(taken()));
        }
        match &state.waker {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl<T> std::fmt::Debug for RemoteCall<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemoteCall")
            .field("finished", &self.is_finished())
            .field("attempts", &self.attempts())
            .finish_non_exhaustive()
    }
}
