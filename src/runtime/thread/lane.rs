//! Thread lanes: a lane queue, its wake word, and the worker loop that
//! drains it (and, with work stealing, the other lanes' queues).
//!
//! # Work stealing
//!
//! A worker whose own queue is empty pops the oldest queued call of another
//! lane (its neighbour first, to spread the thieves) that would otherwise
//! wait: one behind a running call or behind another queued call, or on a
//! lane whose worker sleeps. A lone call on a lane whose worker is awake
//! and idle stays for that worker, so a trickle of calls does not turn into
//! a race between idle workers. A stolen call runs exactly as its own: in its own slot, under its own hard time limit, counted as
//! completed (and stolen) on its own lane. Only calls not yet started move:
//! a running call stays where it runs.
//!
//! Stealing changes no protocol. The ring is a multi-consumer queue and the
//! backlog sits behind a mutex, so a stolen call is taken exactly once; the
//! call cell decides, as before, between the worker that runs a call and a
//! cancel, a shutdown or a nested waiter that ends it first. No call ever
//! depends on a thief: its own lane's worker drains its queue as without
//! stealing, so a missed chance to steal costs time, never a call. That is
//! why a push to a busy lane does not wake a parked peer: a worker parks only
//! after its last look (after the announcement) found its own queue empty
//! and nothing worth stealing elsewhere, and a parked worker's lane is idle, so the pool's lane choice
//! (first idle lane) sends the next call to it rather than behind a busy one.

use std::{
    collections::VecDeque,
    ptr::{self, NonNull},
    sync::Mutex,
    time::Duration,
};

pub(crate) use super::asyncs::AsyncSetup;
use super::asyncs::{AsyncCalls, Started};
use crate::{
    call::cell::{CallKey, Header, JobRef},
    exec::ReadyFlag,
    sync::{AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, Ordering},
    task::panics::AbortIfPanic,
    transport::{
        ring::{CachePadded, Ring},
        wake::{spin::Backoff, WakeWord},
    },
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
    /// Every slot a worker thread of this lane ever had (one, unless hard
    /// time limits retired threads); boxed so that their addresses stay put
    /// while the lane lives.
    #[allow(
        clippy::vec_box,
        reason = "boxed for stable addresses: the current-slot pointer and each worker thread refer to a slot"
    )]
    slots: Mutex<Vec<Box<Slot>>>,
}

#[derive(Debug)]
struct WorkerSide {
    /// The slot of the lane's current worker thread.
    slot: AtomicPtr<Slot>,
    /// Calls this lane's workers finished.
    completed: AtomicUsize,
    /// Threads retired by a hard time limit.
    retired: AtomicUsize,
    /// Calls this lane's workers took from another lane's queue.
    stolen: AtomicUsize,
    /// Async calls in flight on the lane's worker.
    async_running: AtomicUsize,
}

/// One worker thread's view of the call it runs.
#[derive(Debug)]
pub(crate) struct Slot {
    /// The call the thread runs right now: a raw reference owned by whoever
    /// swaps it out (the thread when done, a shutdown that gives up, or the
    /// hard time limit, which leaves the [`retired`] mark behind).
    running: AtomicPtr<Header>,
    /// The async calls the thread started that are not over.
    pub(crate) started: Started,
    /// Nanoseconds of the thread's finished busy periods (written by the
    /// thread only).
    busy_total: AtomicU64,
    /// When the thread's open busy period began, on the shared clock;
    /// 0 while it is idle.
    busy_since: AtomicU64,
    /// When the slot was made, on the shared clock.
    born: u64,
}

impl Slot {
    fn busy_words(&self) -> crate::time::Busy<'_, AtomicU64> {
        crate::time::Busy {
            total: &self.busy_total,
            since: &self.busy_since,
        }
    }
}

/// Names one worker thread's slot in its lane (from [`Lane::new_slot`]):
/// its own type, so that it is not mixed up with a lane's index or a
/// pool's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct SlotId(usize);

/// Left in a slot by the hard time limit: the thread is retired and must
/// exit once its call returns. Never the address of a real cell (a real
/// cell is an allocation; this is the dangling, aligned placeholder).
fn retired() -> *mut Header {
    NonNull::<Header>::dangling().as_ptr()
}

/// How a worker thread left its loop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Exit {
    /// The pool shut down and the lane is drained.
    Done,
    /// A hard time limit gave the lane to a fresh thread.
    Retired,
}

impl Lane {
    pub(crate) fn new(capacity: usize) -> Self {
        Self {
            ring: Ring::with_capacity(capacity),
            backlog: Mutex::new(VecDeque::new()),
            backlog_len: AtomicUsize::new(0),
            wake: CachePadded(WakeWord::new()),
            worker: CachePadded(WorkerSide {
                slot: AtomicPtr::new(ptr::null_mut()),
                completed: AtomicUsize::new(0),
                retired: AtomicUsize::new(0),
                stolen: AtomicUsize::new(0),
                async_running: AtomicUsize::new(0),
            }),
            slots: Mutex::new(Vec::new()),
        }
    }

    /// Makes the slot of a new worker thread, makes it the lane's current
    /// one, and returns its number.
    pub(crate) fn new_slot(&self) -> SlotId {
        let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots.push(Box::new(Slot {
            running: AtomicPtr::new(ptr::null_mut()),
            started: Started::default(),
            busy_total: AtomicU64::new(0),
            busy_since: AtomicU64::new(0),
            born: crate::time::now_nanos(),
        }));
        let slot: *const Slot = &**slots.last().expect("just pushed");
        // Release: the slot's initial state is visible to readers of it.
        self.worker.slot.store(slot.cast_mut(), Ordering::Release);
        SlotId(slots.len() - 1)
    }

    /// The current worker thread's slot.
    fn slot(&self) -> Option<&Slot> {
        // Acquire: pairs with `new_slot`.
        let slot = self.worker.slot.load(Ordering::Acquire);
        // SAFETY: every slot is boxed in `self.slots`, which only grows and
        // lives as long as the lane.
        unsafe { slot.as_ref() }
    }

    /// Slot number `slot`, from [`new_slot`](Self::new_slot).
    pub(crate) fn slot_at(&self, slot: SlotId) -> &Slot {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        let slot: *const Slot = &*slots[slot.0];
        // SAFETY: slots are boxed and never removed while the lane lives, so
        // the box outlives the lock guard and `&self`'s borrow.
        unsafe { &*slot }
    }

    /// True if slot number `slot` is the lane's current one.
    pub(crate) fn is_current(&self, slot: SlotId) -> bool {
        // Relaxed: only decides which threads a shutdown joins, after the
        // pool has stopped handing out work.
        std::ptr::eq(self.worker.slot.load(Ordering::Relaxed), self.slot_at(slot))
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
        self.is_empty() && !self.is_running()
    }

    /// A call runs on the lane's current thread (a racy snapshot).
    fn is_running(&self) -> bool {
        // Relaxed: a hint for picking lanes and for statistics.
        self.slot()
            .is_some_and(|s| !s.running.load(Ordering::Relaxed).is_null())
            || self.worker.async_running.load(Ordering::Relaxed) != 0
    }

    /// Queued calls here that another worker should take (a racy
    /// snapshot): some wait behind a running call, or behind one another,
    /// or the lane's own worker sleeps. One call queued on a lane whose
    /// worker is awake and idle is that worker's: it takes it at once, and
    /// a thief racing it would only move the call to another core.
    fn worth_stealing(&self) -> bool {
        match self.queued() {
            0 => false,
            1 => self.is_running() || self.wake.is_sleeping(),
            _ => true,
        }
    }

    /// Calls queued or running on this lane right now (a racy snapshot).
    pub(crate) fn in_flight(&self) -> usize {
        // Relaxed: as in `is_running`.
        let running = self
            .slot()
            .is_some_and(|s| !s.running.load(Ordering::Relaxed).is_null());
        self.ring.len()
            + self.backlog_len.load(Ordering::Relaxed)
            + usize::from(running)
            + self.worker.async_running.load(Ordering::Relaxed)
    }

    /// The lane's worker started an async call.
    pub(super) fn async_started(&self) {
        // Relaxed: statistics and lane choice only.
        self.worker.async_running.fetch_add(1, Ordering::Relaxed);
    }

    /// An async call of the lane's worker ended (its future is gone).
    pub(super) fn async_ended(&self) {
        // Relaxed: as in `async_started`.
        self.worker.async_running.fetch_sub(1, Ordering::Relaxed);
    }

    /// Counts a call finished on this lane.
    fn count_completed(&self) {
        // Relaxed: statistics only (published by the call's own Release).
        self.worker.completed.fetch_add(1, Ordering::Relaxed);
    }

    /// Calls queued on this lane, not running yet (a racy snapshot).
    pub(crate) fn queued(&self) -> usize {
        self.ring.len() + self.backlog_len.load(Ordering::Relaxed)
    }

    pub(crate) fn completed(&self) -> usize {
        self.worker.completed.load(Ordering::Relaxed)
    }

    /// Threads of this lane retired by a hard time limit.
    pub(crate) fn retired(&self) -> usize {
        self.worker.retired.load(Ordering::Relaxed)
    }

    /// Time this lane's worker threads spent running calls (a racy
    /// snapshot: from the moment a thread finds work to the moment its
    /// queues run dry, the hand-over between back-to-back calls included).
    pub(crate) fn busy(&self) -> Duration {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .map(|slot| slot.busy_words().read(slot.born))
            .sum()
    }

    /// Calls this lane's workers took from other lanes.
    pub(crate) fn stolen(&self) -> usize {
        self.worker.stolen.load(Ordering::Relaxed)
    }

    /// Runs one call, keeping a reference in the slot so that a shutdown
    /// that gives up on the worker, or a hard time limit, can still fail
    /// it. False when the hard time limit retired this thread meanwhile.
    fn run(
        &self,
        slot: &Slot,
        job: JobRef,
        abandoned: &AtomicBool,
        on_start: &OnStart<'_>,
    ) -> bool {
        // SeqCst, with the SeqCst load below and the two SeqCst operations of
        // `Pool::shutdown_timeout` (store `abandoned`, then swap `running` in
        // `fail_all`): either shutdown finds this call in `running`, or this
        // worker sees `abandoned` and fails the call itself. Without it, a
        // call popped just before `fail_all` would slip through both.
        let mine = job.clone_ref().into_raw();
        slot.running.store(mine, Ordering::SeqCst);
        if abandoned.load(Ordering::SeqCst) {
            job.fail(Error::closed());
        }
        // A call that its waiter runs itself (or that ended) is not started
        // here: no hard limit to arm for it. A waiter that claims it right
        // after this look leaves an armed limit, cancelled below.
        let limit = if job.is_queued() {
            on_start(&job)
        } else {
            None
        };
        // Counted before the result is published: a caller that sees its
        // call done sees it in `stats()` too (the publish is a Release that
        // the caller's Acquire pairs with). Relaxed: statistics only.
        job.run_then(&|| self.count_completed());
        if let Some(key) = limit {
            crate::call::timer::cancel(key);
        }
        // AcqRel: Acquire keeps the reference count edge if someone took the
        // reference meanwhile; the CAS (not a swap) leaves a `retired()` mark in
        // place for us to see.
        match slot.running.compare_exchange(
            mine,
            ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(ptr) => {
                // SAFETY: `ptr` came from `into_raw` above and the CAS made
                // us its only owner again.
                drop(unsafe { JobRef::from_raw(NonNull::new(ptr).expect("non-null")) });
                true
            }
            // A shutdown that gave up took it: this thread still serves.
            Err(now) if now.is_null() => true,
            // The hard time limit took it and gave the lane a new thread.
            Err(_) => false,
        }
    }

    /// The hard time limit of the call with `key` passed: if the thread of
    /// `slot` still runs it, take it (leaving the `retired()` mark) and return
    /// it, so the caller can fail it and start a new thread for the lane.
    pub(crate) fn retire(&self, slot: SlotId, key: CallKey) -> Option<JobRef> {
        let slot = self.slot_at(slot);
        // Relaxed: only to pick the value to compare against; the CAS below
        // is what takes ownership.
        let current = slot.running.load(Ordering::Relaxed);
        if CallKey::of(current) != key || current == retired() {
            return None;
        }
        // AcqRel: Acquire for the reference we take over; Release so the
        // thread that finds the mark sees it whole.
        slot.running
            .compare_exchange(current, retired(), Ordering::AcqRel, Ordering::Relaxed)
            .ok()
            .map(|ptr| {
                // Relaxed: statistics only.
                self.worker.retired.fetch_add(1, Ordering::Relaxed);
                // SAFETY: the slot held a reference made by `into_raw` in
                // `run`, and the CAS moved its ownership to us.
                unsafe { JobRef::from_raw(NonNull::new(ptr).expect("non-null")) }
            })
    }

    /// Fails every call of this lane, queued or running (its async calls
    /// in flight too), with `error`, and raises the signal of those that
    /// run; returns how many it failed. Used by a shutdown that stops
    /// waiting, and for a lane that lost its worker.
    pub(crate) fn fail_all(&self, error: impl Fn() -> Error) -> usize {
        let mut failed = 0;
        // SeqCst: see `run`.
        let running = self.slot().map_or(ptr::null_mut(), |s| {
            s.running.swap(ptr::null_mut(), Ordering::SeqCst)
        });
        if let Some(ptr) = NonNull::new(running).filter(|p| p.as_ptr() != retired()) {
            // SAFETY: the pointer came from `into_raw` in `run`; the swap
            // made us its only owner.
            let job = unsafe { JobRef::from_raw(ptr) };
            failed += usize::from(job.fail(error()));
            // Fail first, then tell the task, as a hard limit does.
            job.raise();
        }
        // The worker may be stuck in a long sync task: its async calls end
        // here, not when it next looks at them.
        failed += self.slot().map_or(0, |s| s.started.fail_all(&error));
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

/// The lanes a worker serves: its own, and the others it steals from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Crew<'a> {
    /// Every lane of the pool.
    pub(crate) lanes: &'a [Lane],
    /// The worker's own lane in `lanes`.
    pub(crate) index: usize,
    /// Whether the worker takes queued calls of the other lanes.
    pub(crate) steal: bool,
}

impl Crew<'_> {
    fn own(&self) -> &Lane {
        &self.lanes[self.index]
    }

    /// The other lanes, the neighbour first (none without stealing).
    fn others(&self) -> impl Iterator<Item = &Lane> {
        let n = if self.steal { self.lanes.len() } else { 1 };
        (1..n).map(move |k| &self.lanes[(self.index + k) % n])
    }

    /// The oldest queued call of another lane worth stealing, if any.
    fn steal(&self) -> Option<JobRef> {
        let job = self
            .others()
            .filter(|lane| lane.worth_stealing())
            .find_map(Lane::pop)?;
        // Relaxed: statistics only.
        self.own().worker.stolen.fetch_add(1, Ordering::Relaxed);
        Some(job)
    }

    /// Work for this worker: a call queued on its lane or, with stealing, on
    /// another (a racy snapshot; a miss is caught by the next look).
    fn has_work(&self) -> bool {
        !self.own().is_empty() || self.others().any(Lane::worth_stealing)
    }
}

/// Runs as each call starts on a lane (the hard time limit hooks in);
/// returns the timer entry to cancel when the call returns.
pub(crate) type OnStart<'a> = dyn Fn(&JobRef) -> Option<crate::call::timer::Key> + 'a;

/// The worker loop of one thread lane, for the thread of `slot`, a worker
/// of the thread pool named `pool` (see [`super::mark_worker_thread`]).
#[allow(clippy::too_many_arguments, reason = "one call site, all distinct")]
pub(crate) fn run_worker(
    crew: Crew<'_>,
    slot: SlotId,
    pool: usize,
    closed: &AtomicBool,
    abandoned: &AtomicBool,
    spin: SpinPolicy,
    on_start: &OnStart<'_>,
    asyncs: &AsyncSetup<'_>,
) -> Exit {
    let lane = crew.own();
    let slot = lane.slot_at(slot);
    // Runtime code must not unwind: task panics are caught inside `run`, so
    // a panic reaching this guard is a bug in the crate, and aborting beats
    // leaving callers waiting on a lane nobody serves.
    let guard = AbortIfPanic;
    lane.wake.register_sleeper();
    crate::role::mark_worker_thread(pool);
    let finished = || lane.count_completed();
    let mut calls = AsyncCalls::new(lane, &slot.started, asyncs, &finished);
    loop {
        // BUSY: run everything queued here, then what waits on other lanes
        // (async calls: start them, while there is room for more).
        let mut since = None;
        while !calls.is_full() {
            let Some(job) = lane.pop().or_else(|| crew.steal()) else {
                break;
            };
            let started = *since.get_or_insert_with(|| slot.busy_words().begin());
            if job.is_async() {
                calls.start(job);
                continue;
            }
            if !lane.run(slot, job, abandoned, on_start) {
                slot.busy_words().end(started);
                std::mem::forget(guard);
                return Exit::Retired;
            }
            // Async calls woken meanwhile get their turn between calls.
            calls.poll();
        }
        if let Some(started) = since {
            slot.busy_words().end(started);
        }
        if !calls.is_empty() {
            // SeqCst: see `Lane::run`.
            if abandoned.load(Ordering::SeqCst) {
                calls.abandon();
            }
            if calls.poll() > 0 {
                continue;
            }
        }
        let (full, ready) = (calls.is_full(), calls.ready_flag());
        let woken = || ready.as_ref().is_some_and(ReadyFlag::is_set);
        // IDLE: spin on loads for the budget, then announce and park.
        if spin_until_work(|| (!full && crew.has_work()) || woken(), spin) {
            continue;
        }
        let busy = !calls.is_empty();
        // SHUTDOWN: exit once the pool is closed, this lane is drained
        // (the other lanes' workers drain theirs) and no async call of this
        // worker is in flight.
        // SYNC POINT: Acquire pairs with the Release store that closes the
        // pool.
        if !busy && closed.load(Ordering::Acquire) {
            // Announce the exit, then look once more: a caller whose notify
            // came first is visible now; one whose notify comes later sees
            // the announcement and fails its own call.
            if lane.wake.retire(|| !lane.is_empty()) {
                break;
            }
            continue;
        }
        // The last look, after the announcement, covers the other lanes
        // too: work to steal keeps this worker up. With async calls in
        // flight, their wake-ups end the sleep, and so does a shutdown that
        // stops waiting for them.
        calls.park(|| {
            lane.wake.sleep(|| {
                (!full && crew.has_work())
                    || woken()
                    || (!busy && closed.load(Ordering::Acquire))
                    || (busy && abandoned.load(Ordering::SeqCst))
            });
        });
    }
    std::mem::forget(guard);
    Exit::Done
}

/// Spins with loads only; true as soon as there is work to take.
fn spin_until_work(has_work: impl Fn() -> bool, spin: SpinPolicy) -> bool {
    let mut backoff = Backoff::new(spin.budget);
    loop {
        if has_work() {
            return true;
        }
        if backoff.is_completed() {
            return false;
        }
        backoff.snooze();
    }
}

#[cfg(all(test, not(knitting_loom)))]
mod tests;
