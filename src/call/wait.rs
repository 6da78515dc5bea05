//! Waiting for a call: spin, then park (the blocking waits), and the
//! [`Future`] impl.

use std::{
    future::Future,
    pin::Pin,
    sync::Arc,
    task::{Context, Poll, Waker},
    time::{Duration, Instant},
};

use super::{Call, Repr};
use crate::{sync::ThreadWaker, transport::wake::spin::Backoff, Error};

impl<T: Send + 'static> Call<T> {
    #[track_caller]
    pub(super) fn wait_until(&mut self, deadline: Option<Instant>) -> Option<Result<T, Error>> {
        // SPIN: a worker that is awake answers a small call in well under a
        // microsecond; catching that without a sleep is most of the latency.
        if let Some(result) = self.poll_result() {
            return Some(result);
        }
        // INLINE: a kept call runs here, on the waiting thread.
        if let Some(kept) = &self.kept {
            kept.run_here();
            if let Some(result) = self.poll_result() {
                return Some(result);
            }
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

impl<T: Send + 'static> Future for Call<T> {
    type Output = Result<T, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // A task that blocks on this future on a worker of the call's pool
        // (`block_on` inside a task): the nested-call rule of `wait`.
        self.get_mut().poll_for(cx, true)
    }
}

impl<T: Send + 'static> Call<T> {
    /// The `Future` poll; `may_run_here`: a worker thread of the call's
    /// own pool runs a call no worker started (see [`Call::wait`]).
    fn poll_for(&mut self, cx: &mut Context<'_>, may_run_here: bool) -> Poll<Result<T, Error>> {
        // An awaited call must not run on the executor's thread.
        self.send_kept();
        if let Some(route) = &self.route {
            route.poll();
        }
        if let Some(result) = self.poll_result() {
            return Poll::Ready(result);
        }
        let ran_here = match &self.repr {
            Repr::Pending(call) => {
                may_run_here
                    && self.home != 0
                    && crate::role::current_pool() == self.home
                    && call.run_here()
            }
            _ => false,
        };
        if ran_here {
            if let Some(result) = self.poll_result() {
                return Poll::Ready(result);
            }
        }
        self.on_end(cx.waker());
        // Check again: the call may have ended between the first look and
        // the registration, and then nobody would wake us.
        match self.poll_result() {
            Some(result) => Poll::Ready(result),
            None => Poll::Pending,
        }
    }

    /// Wakes `waker` when the call ends, in place of any waker registered
    /// before (a call that already ended wakes nobody: look after this).
    pub(crate) fn on_end(&self, waker: &Waker) {
        if let Repr::Pending(call) = &self.repr {
            call.register(waker);
        }
    }

    /// The call's outcome if it ended, without waiting, registering a
    /// waker or ever running it here: for a stream's reader, whose task
    /// may wait for that very reader.
    pub(crate) fn end_if_over(&mut self) -> Option<Result<T, Error>> {
        if let Some(route) = &self.route {
            route.poll();
        }
        self.poll_result()
    }

    /// Sends a call kept for its waiter to a worker now.
    pub(crate) fn dispatch(&self) {
        self.send_kept();
    }

    /// The lane's route, if the handle has a part to play (process lanes).
    pub(crate) fn route(&self) -> Option<&Arc<dyn super::route::Route>> {
        self.route.as_ref()
    }
}
