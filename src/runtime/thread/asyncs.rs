//! The async calls of one thread lane's worker: its executor (made at the
//! first async call), the hard time limit of each call, and what a
//! shutdown that stops waiting does to them.
//!
//! A worker takes async calls as it takes any other, from its queue or
//! another lane's; it starts each one's future here and goes on taking
//! calls while fewer than the pool's `async_concurrency` are in flight.
//! The futures' wakers notify the lane's wake word, the one a producer
//! notifies, so a worker asleep for new calls wakes for its futures too.

use std::sync::Mutex;

use super::lane::Lane;
use crate::{
    call::{cell::JobRef, timer},
    exec::{Bell, Executor, ReadyFlag},
    Error,
};

/// How a lane's worker runs async calls.
pub(crate) struct AsyncSetup<'a> {
    /// Async calls in flight at once, at most.
    pub(crate) limit: usize,
    /// The bell for the executor's wakers (notifies the lane's wake word).
    pub(crate) bell: &'a dyn Fn() -> Box<dyn Bell>,
    /// Arms the hard time limit of an async call as it starts; returns the
    /// timer entry to cancel when it ends.
    pub(crate) on_start: &'a dyn Fn(&JobRef) -> Option<timer::Key>,
}

impl std::fmt::Debug for AsyncSetup<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSetup")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

/// What the executor keeps beside each call's future.
struct InFlight {
    /// Where the call sits in its thread's [`Started`] list.
    at: usize,
    /// The timer entry of its hard time limit.
    limit: Option<timer::Key>,
}

/// The async calls one worker thread started and that are not over, for
/// the other threads: the futures live in the thread's executor, which
/// only that thread can touch, but a shutdown that stops waiting, or a
/// hard time limit that retires the thread, must end these calls even
/// while the thread is stuck in a long sync task.
#[derive(Debug, Default)]
pub(crate) struct Started {
    calls: Mutex<Slab>,
}

#[derive(Debug, Default)]
struct Slab {
    calls: Vec<Option<JobRef>>,
    free: Vec<usize>,
}

impl Started {
    fn insert(&self, job: JobRef) -> usize {
        let mut slab = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        match slab.free.pop() {
            Some(at) => {
                slab.calls[at] = Some(job);
                at
            }
            None => {
                slab.calls.push(Some(job));
                slab.calls.len() - 1
            }
        }
    }

    fn remove(&self, at: usize) -> Option<JobRef> {
        let mut slab = self.calls.lock().unwrap_or_else(|e| e.into_inner());
        let job = slab.calls.get_mut(at).and_then(Option::take);
        if job.is_some() {
            slab.free.push(at);
        }
        job
    }

    /// Fails every call listed with `error` and raises its signal (its
    /// future is dropped at the thread's next look); how many it failed.
    pub(crate) fn fail_all(&self, error: &dyn Fn() -> Error) -> usize {
        // References of their own, so that no lock is held while a failed
        // call wakes its caller (user code).
        let jobs: Vec<JobRef> = {
            let slab = self.calls.lock().unwrap_or_else(|e| e.into_inner());
            slab.calls.iter().flatten().map(JobRef::clone_ref).collect()
        };
        jobs.iter()
            .map(|job| {
                let failed = job.fail(error());
                job.raise();
                usize::from(failed)
            })
            .sum()
    }
}

/// A worker's async calls in flight.
pub(crate) struct AsyncCalls<'a> {
    lane: &'a Lane,
    started: &'a Started,
    setup: &'a AsyncSetup<'a>,
    finished: &'a dyn Fn(),
    exec: Option<Executor<'a, InFlight>>,
}

impl<'a> AsyncCalls<'a> {
    /// `started`: the list of the worker thread's slot; `finished` runs as
    /// each call ends, before its result is published.
    pub(crate) fn new(
        lane: &'a Lane,
        started: &'a Started,
        setup: &'a AsyncSetup<'a>,
        finished: &'a dyn Fn(),
    ) -> Self {
        Self {
            lane,
            started,
            setup,
            finished,
            exec: None,
        }
    }

    /// As many calls in flight as the limit allows: take no more.
    #[inline]
    pub(crate) fn is_full(&self) -> bool {
        self.exec.as_ref().is_some_and(Executor::is_full)
    }

    /// No async call in flight.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.exec.as_ref().is_none_or(Executor::is_empty)
    }

    /// The executor's ready flag, for the worker's sleep condition.
    pub(crate) fn ready_flag(&self) -> Option<ReadyFlag> {
        self.exec.as_ref().map(Executor::ready_flag)
    }

    /// Starts async call `job`.
    pub(crate) fn start(&mut self, job: JobRef) {
        if self.exec.is_none() {
            match Executor::new(self.setup.limit, (self.setup.bell)()) {
                Ok(exec) => self.exec = Some(exec),
                Err(err) => {
                    job.fail(err);
                    return;
                }
            }
        }
        let exec = self.exec.as_mut().expect("made above");
        let limit = if job.is_queued() {
            (self.setup.on_start)(&job)
        } else {
            None
        };
        let kept = job.clone_ref();
        let Some(future) = job.start_async(self.finished) else {
            if let Some(key) = limit {
                timer::cancel(key);
            }
            return;
        };
        self.lane.async_started();
        let at = self.started.insert(kept);
        let (lane, started) = (self.lane, self.started);
        exec.spawn(future, InFlight { at, limit }, &mut |call| {
            end(lane, started, call)
        });
    }

    /// Polls the futures woken since the last look; how many it polled.
    #[inline]
    pub(crate) fn poll(&mut self) -> usize {
        let Some(exec) = self.exec.as_mut() else {
            return 0;
        };
        let (lane, started) = (self.lane, self.started);
        exec.poll_ready(&mut |call| end(lane, started, call))
    }

    /// A shutdown stopped waiting: drop every future (each call still
    /// running fails as closed, see the cell's async future).
    pub(crate) fn abandon(&mut self) {
        if let Some(exec) = self.exec.as_mut() {
            let (lane, started) = (self.lane, self.started);
            exec.retain(|_| false, &mut |call| end(lane, started, call));
        }
    }

    /// Sleeps through `park` (see [`Executor::park`]).
    pub(crate) fn park(&self, park: impl FnOnce()) {
        match &self.exec {
            Some(exec) => exec.park(park),
            None => park(),
        }
    }
}

/// A call's future is gone (finished or dropped).
fn end(lane: &Lane, started: &Started, call: InFlight) {
    if let Some(key) = call.limit {
        timer::cancel(key);
    }
    drop(started.remove(call.at));
    lane.async_ended();
}

/// The hard time limit of async call `job` passed: end it with the hard
/// limit's error and raise its signal, which drops its future at once. The
/// thread stays: an async task gives its worker back at every await.
pub(crate) fn cut_off(job: &JobRef, limit: std::time::Duration) {
    job.fail(Error::hard_timeout(
        limit,
        "the call's future was dropped at its await point",
    ));
    job.raise();
}
