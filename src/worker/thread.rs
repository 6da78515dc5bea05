//! Thread lanes: a lane queue, its wake word, and the worker loop that
//! drains it.

use std::{
    collections::VecDeque,
    ptr::{self, NonNull},
    sync::Mutex,
    time::Duration,
};

use crate::{
    call::cell::{Header, JobRef},
    sync::{AtomicBool, AtomicPtr, AtomicUsize, Ordering},
    transport::{
        ring::{CachePadded, Ring},
        wake::{spin::Backoff, WakeWord},
    },
    worker::panics::AbortIfPanic,
    Error,
};

/// One execution target: a queue of calls and the worker thread serving it.
#[derive(Debug)]
pub(crate) struct Lane {
    ring: Ring<JobRef>,
    /// Calls that did not fit in the ring. While it is non-empty, new calls
    /// go here too, so the lane stays first-in first-out.
    backlog: Mutex<VecDeque<JobRef>>,
    backlog_len: AtomicUsize,
    /// Written by producers and the worker: its own cache line.
    pub(crate) wake: CachePadded<WakeWord>,
    /// Written by the worker only: its own cache line, so that producers
    /// do not pull it away on every call.
    worker: CachePadded<WorkerSide>,
}

#[derive(Debug)]
struct WorkerSide {
    /// The call the worker runs right now: a raw reference owned by whoever
    /// swaps it out (the worker when done, or shutdown when it gives up).
    running: AtomicPtr<Header>,
    /// Calls this lane's worker finished.
    completed: AtomicUsize,
}

impl Lane {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            ring: Ring::with_capacity(capacity),
            backlog: Mutex::new(VecDeque::new()),
            backlog_len: AtomicUsize::new(0),
            wake: CachePadded(WakeWord::new()),
            worker: CachePadded(WorkerSide {
                running: AtomicPtr::new(ptr::null_mut()),
                completed: AtomicUsize::new(0),
            }),
        }
    }

    /// Queues a call. Never blocks on the worker; the caller must
    /// [`notify`](WakeWord::notify) afterwards.
    #[inline]
    pub(crate) fn push(&self, job: JobRef) {
        // Relaxed: a stale zero only lets this call overtake a backlog that
        // began at the same instant, which concurrent callers cannot observe.
        if self.backlog_len.load(Ordering::Relaxed) == 0 {
            match self.ring.push(job) {
                Ok(()) => return,
                Err(back) => return self.push_backlog(back),
            }
        }
        self.push_backlog(job);
    }

    #[cold]
    fn push_backlog(&self, job: JobRef) {
        let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
        backlog.push_back(job);
        // Release: pairs with the Acquire in `pop`; the length is only a
        // hint, the deque itself is guarded by the mutex.
        self.backlog_len.store(backlog.len(), Ordering::Release);
    }

    #[inline]
    pub(crate) fn pop(&self) -> Option<JobRef> {
        if let Some(job) = self.ring.pop() {
            return Some(job);
        }
        // Acquire: pairs with `push_backlog`'s Release.
        if self.backlog_len.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.pop_backlog()
    }

    #[cold]
    fn pop_backlog(&self) -> Option<JobRef> {
        let mut backlog = self.backlog.lock().unwrap_or_else(|e| e.into_inner());
        let job = backlog.pop_front();
        self.backlog_len.store(backlog.len(), Ordering::Release);
        job
    }

    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.ring.is_empty() && self.backlog_len.load(Ordering::Acquire) == 0
    }

    /// No call queued or running (a racy snapshot).
    #[inline]
    pub(crate) fn is_idle(&self) -> bool {
        self.is_empty() && self.worker.running.load(Ordering::Relaxed).is_null()
    }

    /// Calls queued or running on this lane right now (a racy snapshot).
    pub(crate) fn in_flight(&self) -> usize {
        let running = !self.worker.running.load(Ordering::Relaxed).is_null();
        self.ring.len() + self.backlog_len.load(Ordering::Relaxed) + usize::from(running)
    }

    pub(crate) fn completed(&self) -> usize {
        self.worker.completed.load(Ordering::Relaxed)
    }

    /// Runs one call, keeping a reference in `running` so that a shutdown
    /// that gives up on the worker can still fail it.
    fn run(&self, job: JobRef, abandoned: &AtomicBool) {
        // SeqCst, with the SeqCst load below and the two SeqCst operations of
        // `Pool::shutdown_timeout` (store `abandoned`, then swap `running` in
        // `fail_all`): either shutdown finds this call in `running`, or this
        // worker sees `abandoned` and fails the call itself. Without it, a
        // call popped just before `fail_all` would slip through both.
        self.worker
            .running
            .store(job.clone_ref().into_raw(), Ordering::SeqCst);
        if abandoned.load(Ordering::SeqCst) {
            job.fail(Error::closed());
        }
        job.run();
        // Acquire: pairs with the store above (same thread) and keeps the
        // reference count edge if shutdown stole it meanwhile.
        let still_ours = self.worker.running.swap(ptr::null_mut(), Ordering::Acquire);
        if let Some(ptr) = NonNull::new(still_ours) {
            // SAFETY: `ptr` came from `into_raw` above and the swap made us
            // its only owner.
            drop(unsafe { JobRef::from_raw(ptr) });
        }
        // Relaxed: statistics only.
        self.worker.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// Fails every call of this lane, queued or running, with `error`;
    /// returns how many it failed. Used by a shutdown that stops waiting.
    pub(crate) fn fail_all(&self, error: impl Fn() -> Error) -> usize {
        let mut failed = 0;
        // SeqCst: see `run`.
        let running = self.worker.running.swap(ptr::null_mut(), Ordering::SeqCst);
        if let Some(ptr) = NonNull::new(running) {
            // SAFETY: the pointer came from `into_raw` in `run`; the swap
            // made us its only owner.
            let job = unsafe { JobRef::from_raw(ptr) };
            failed += usize::from(job.fail(error()));
        }
        while let Some(job) = self.pop() {
            failed += usize::from(job.fail(error()));
        }
        failed
    }
}

/// How an idle worker spins before it parks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct SpinPolicy {
    pub(crate) budget: Duration,
}

/// The worker loop of one thread lane.
pub(crate) fn run_worker(
    lane: &Lane,
    closed: &AtomicBool,
    abandoned: &AtomicBool,
    spin: SpinPolicy,
) {
    // Runtime code must not unwind: task panics are caught inside `run`, so
    // a panic reaching this guard is a bug in the crate, and aborting beats
    // leaving callers waiting on a lane nobody serves.
    let guard = AbortIfPanic;
    lane.wake.register_sleeper();
    super::mark_worker_thread();
    loop {
        // BUSY: run everything queued.
        while let Some(job) = lane.pop() {
            lane.run(job, abandoned);
        }
        // IDLE: spin on loads for the budget, then announce and park.
        if spin_until_work(lane, spin) {
            continue;
        }
        // SHUTDOWN: exit once the pool is closed and this lane is drained.
        // SYNC POINT: Acquire pairs with the Release store that closes the
        // pool.
        if closed.load(Ordering::Acquire) {
            // Announce the exit, then look once more: a caller whose notify
            // came first is visible now; one whose notify comes later sees
            // the announcement and fails its own call.
            if lane.wake.retire(|| !lane.is_empty()) {
                break;
            }
            continue;
        }
        lane.wake
            .sleep(|| !lane.is_empty() || closed.load(Ordering::Acquire));
    }
    std::mem::forget(guard);
}

/// Spins with loads only; true as soon as the lane has work.
fn spin_until_work(lane: &Lane, spin: SpinPolicy) -> bool {
    let mut backoff = Backoff::new(spin.budget);
    loop {
        if !lane.is_empty() {
            return true;
        }
        if backoff.is_completed() {
            return false;
        }
        backoff.snooze();
    }
}
