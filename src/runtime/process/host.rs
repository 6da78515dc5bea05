//! The host side of a process lane: sending calls, taking responses,
//! watching the worker, and replacing it when it dies or misbehaves.
//!
//! # Who completes calls
//!
//! Each lane has one *reactor* thread. It starts the worker (so that the
//! worker's parent-death signal is tied to a thread that lives as long as
//! the lane), takes responses when nobody else does, notices a dead worker
//! and starts its replacement. Callers that block in [`Call::wait`]
//! (crate::Call::wait) take responses themselves while they spin: the
//! answer then reaches the waiting thread without a second thread hop. A
//! spinning caller counts itself in the mapping's `spinners` word, and the
//! worker rings the reactor only when no caller spins and the reactor
//! sleeps, so a busy lane makes no system calls at all. One reactor per
//! lane (rather than per pool) keeps a slow decode or a dying worker on one
//! lane from delaying the others, at the cost of one mostly-sleeping thread
//! per worker process.
//!
//! # Trust
//!
//! Everything the worker writes is read once and checked before use
//! (`link.rs`, `check.rs`): the response counter must lie between what the
//! host consumed and what it sent; a response slot must name the expected
//! request, a known status, and a payload range inside the response arena
//! and under the payload limit; all unread payloads must be disjoint.
//! Payload bytes are copied into host memory before they are decoded. A
//! worker that fails any check is killed and a new worker takes the lane
//! (see [`WorkerDied`](crate::ErrorKind::WorkerDied) for which calls fail
//! and which run again). Host-side positions (where the next request goes,
//! what is free) are computed from host state only, never read back.
//!
//! # Liveness
//!
//! A worker holding calls whose heartbeat word (bumped by a thread of the
//! worker's own) has not moved for `liveness_timeout` is killed and
//! replaced under the same rule: a stopped or frozen worker cannot hold
//! calls without deadlines forever.

use std::{
    collections::VecDeque,
    ffi::OsString,
    path::PathBuf,
    process::{Child, ExitStatus},
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering},
        mpsc, Arc, Mutex, MutexGuard,
    },
    task::Waker,
    time::{Duration, Instant},
};

use super::{
    bell,
    check::Violation,
    futex,
    link::{replay, Gen, InFlight, Queued},
    shm::{Layout, Mapping, TaskKey},
    spawn::{describe_exit, reap_soon, start_worker, stop_worker},
};
use crate::{
    call::{
        cell::{CallKey, JobRef, RemoteOps},
        route::Route,
    },
    sync::countdown::Countdown,
    Error, ErrorKind,
};

mod gone;
mod reactor;
mod route;

use self::gone::Gone;

thread_local! {
    /// On a reactor thread: the address of its lane (0 elsewhere).
    static REACTOR_OF: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
}

/// Pool-wide settings of a process pool.
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) exe: PathBuf,
    pub(crate) prefix: Vec<OsString>,
    pub(crate) named: bool,
    pub(crate) layout: Layout,
    pub(crate) max_payload: usize,
    pub(crate) spin: Duration,
    pub(crate) start_timeout: Duration,
    pub(crate) start_attempts: u32,
    /// The pool's hard time limit per call (a task's own wins).
    pub(crate) hard_timeout: Option<Duration>,
    /// How often a worker shows it is alive.
    pub(crate) heartbeat: Duration,
    /// How long a worker holding calls may show no sign of life.
    pub(crate) liveness: Duration,
    /// The resource limits of each worker.
    pub(crate) limits: super::handover::Limits,
    /// How many workers the pool has.
    pub(crate) workers: usize,
    /// The bootstrap each worker runs before it takes calls.
    pub(crate) boot: Option<crate::task::bootstrap::Boot>,
    /// What each worker's tasks may do.
    pub(crate) permissions: crate::runtime::permissions::Permissions,
    /// Which diagnostics the pool emits (and the workers forward).
    pub(crate) diagnostics: crate::Diagnostics,
    /// Async calls each worker runs at once, at most.
    pub(crate) async_concurrency: usize,
    /// Stream items a worker may send ahead of its readers.
    pub(crate) stream_bound: usize,
}

/// State shared by the pool and its lanes.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: Config,
    pub(crate) closed: AtomicBool,
    pub(crate) abandoned: AtomicBool,
    /// Calls failed because a shutdown stopped waiting.
    pub(crate) abandoned_calls: AtomicUsize,
    /// Reactors still running.
    pub(crate) live: Countdown,
}

impl Shared {
    pub(crate) fn new(cfg: Config, lanes: usize) -> Self {
        Self {
            cfg,
            closed: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            abandoned_calls: AtomicUsize::new(0),
            live: Countdown::new(lanes),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

struct State {
    gen: Option<Gen>,
    backlog: VecDeque<Queued>,
    /// Set when the lane gave up for good (its workers kept dying at
    /// start-up) or stopped at shutdown: new calls fail with this.
    done: Option<Error>,
    scratch: Vec<u8>,
    /// Wakers of calls completed under the lock, woken after it is let go
    /// (a waker may run code that wants this lane).
    wakers: Vec<Waker>,
    /// Workers taken away and not reaped yet (the reactor reaps them in
    /// `serve_once`).
    zombies: Vec<Child>,
}

/// One process lane: a worker process, its mapping, and its reactor.
pub(crate) struct Lane {
    pub(crate) index: usize,
    shared: Arc<Shared>,
    state: Mutex<State>,
    /// Calls submitted and not yet ended (for picking an idle lane).
    pending: AtomicUsize,
    pub(crate) completed: AtomicUsize,
    pub(crate) restarts: AtomicUsize,
    /// The current worker's pid, 0 while none runs.
    pub(crate) pid: AtomicU32,
    /// What the current worker enforces, as an `Enforcement` word.
    pub(crate) sandbox: AtomicU32,
    /// How and when the lane's worker last went.
    last_crash: Mutex<Option<crate::Crash>>,
    /// Nanoseconds of busy time of the lane's workers that are gone.
    busy_gone: AtomicU64,
    /// Mirrors `State::done.is_some()`, read without the lock.
    done: AtomicBool,
}

impl std::fmt::Debug for Lane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("index", &self.index)
            .field("pid", &self.pid.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

impl Lane {
    pub(crate) fn new(index: usize, shared: Arc<Shared>) -> Self {
        Self {
            index,
            shared,
            state: Mutex::new(State {
                gen: None,
                backlog: VecDeque::new(),
                done: None,
                scratch: Vec::new(),
                wakers: Vec::new(),
                zombies: Vec::new(),
            }),
            pending: AtomicUsize::new(0),
            completed: AtomicUsize::new(0),
            restarts: AtomicUsize::new(0),
            pid: AtomicU32::new(0),
            sandbox: AtomicU32::new(0),
            last_crash: Mutex::new(None),
            busy_gone: AtomicU64::new(0),
            done: AtomicBool::new(false),
        }
    }

    /// The pid of the worker running now, `None` while none runs.
    pub(crate) fn current_pid(&self) -> Option<u32> {
        // Relaxed: a diagnostic snapshot.
        Some(self.pid.load(Ordering::Relaxed)).filter(|&p| p != 0)
    }

    /// What the current (or last) worker enforces.
    pub(crate) fn sandbox(&self) -> Option<crate::runtime::permissions::Enforcement> {
        // Relaxed: a diagnostic snapshot.
        crate::runtime::permissions::Enforcement::from_word(self.sandbox.load(Ordering::Relaxed))
    }

    /// How and when the lane's worker last went.
    pub(crate) fn last_crash(&self) -> Option<crate::Crash> {
        *self.last_crash.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Time the lane's workers spent running calls, the current one's
    /// report included (see [`Gen::busy`]).
    pub(crate) fn busy(&self) -> std::time::Duration {
        let st = lock(&self.state);
        // Relaxed: statistics only.
        let gone = Duration::from_nanos(self.busy_gone.load(Ordering::Relaxed));
        gone + st.gen.as_ref().map_or(Duration::ZERO, Gen::busy)
    }

    /// Takes the current worker away (it died, is being killed, or stops),
    /// keeping its busy time for the lane.
    fn take_gen(&self, st: &mut State) -> Option<Gen> {
        let gen = st.gen.take()?;
        let nanos = u64::try_from(gen.busy().as_nanos()).unwrap_or(u64::MAX);
        // Relaxed: statistics only.
        self.busy_gone.fetch_add(nanos, Ordering::Relaxed);
        Some(gen)
    }

    /// Calls waiting for the worker: in the host's backlog, or sent and
    /// behind the one it runs (a snapshot, under the lane's lock).
    pub(crate) fn queued(&self) -> usize {
        let st = lock(&self.state);
        let sent = st.gen.as_ref().map_or(0, |g| g.inflight.len());
        st.backlog.len() + sent.saturating_sub(1)
    }

    pub(crate) fn in_flight(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    pub(crate) fn is_idle(&self) -> bool {
        self.pending.load(Ordering::Relaxed) == 0
    }

    pub(crate) fn is_done(&self) -> bool {
        // Relaxed: a hint for picking a lane; `submit` checks under the lock.
        self.done.load(Ordering::Relaxed)
    }

    /// Sends a call, or queues it when the ring or the arena is full (or
    /// the worker is being replaced).
    pub(crate) fn submit(&self, job: JobRef, ops: &'static RemoteOps, task: TaskKey) {
        let mut st = lock(&self.state);
        if let Some(err) = &st.done {
            job.fail(clone_error(err));
            return;
        }
        self.pending.fetch_add(1, Ordering::Relaxed);
        let q = Queued::Fresh { job, ops, task };
        let State { gen, backlog, .. } = &mut *st;
        let left = match gen {
            Some(gen) if backlog.is_empty() => gen.try_send(q, &self.shared.cfg),
            _ => Some(q),
        };
        if let Some(q) = left {
            backlog.push_back(q);
        }
        drop(st);
        // A call that ended at once (cancelled, too large) is no longer
        // pending; the count is fixed up on the next drain.
    }

    /// Takes responses and sends queued calls, if nobody else is at it.
    pub(crate) fn poll(&self) {
        if let Ok(st) = self.state.try_lock() {
            self.progress_and_wake(st);
        }
    }

    /// Takes responses and sends what fits, then lets go of the lock and
    /// wakes the callers whose calls completed.
    fn progress_and_wake(&self, mut st: MutexGuard<'_, State>) {
        self.progress(&mut st);
        let wakers = std::mem::take(&mut st.wakers);
        drop(st);
        for waker in wakers {
            waker.wake();
        }
    }

    /// Takes responses and sends what fits from the backlog.
    fn progress(&self, st: &mut State) -> usize {
        let max = self.shared.cfg.max_payload;
        let State {
            gen,
            backlog,
            scratch,
            wakers,
            ..
        } = st;
        let Some(g) = gen.as_mut() else {
            return 0;
        };
        let taken = match g.drain(scratch, max, wakers, &self.completed) {
            Ok(n) => n,
            Err(violation) => {
                self.worker_gone(st, Gone::Broken(violation));
                return 0;
            }
        };
        let gen = g;
        if taken > 0 {
            self.pending.fetch_sub(taken, Ordering::Relaxed);
        }
        while let Some(q) = backlog.pop_front() {
            if let Some(q) = gen.try_send(q, &self.shared.cfg) {
                backlog.push_front(q);
                break;
            }
        }
        self.recount(gen, backlog);
        taken
    }

    /// Sets the pending count from what is really queued and in flight
    /// (calls can end without a response: cancelled before sending, too
    /// large to send).
    fn recount(&self, gen: &Gen, backlog: &VecDeque<Queued>) {
        self.pending
            .store(gen.inflight.len() + backlog.len(), Ordering::Relaxed);
    }

    /// Takes a worker away for good, however it went (see
    /// [`ErrorKind::WorkerDied`](crate::ErrorKind::WorkerDied) for the
    /// rule): kills it unless it is dead already, takes the responses it
    /// published before it went, fails the calls that may have started,
    /// and puts the calls behind them (which it cannot have started: it
    /// serves its ring in order, one at a time) back at the head of the
    /// backlog for the replacement. Everything here is decided from host
    /// state; the only worker-written words read are the responses, under
    /// the usual checks.
    fn worker_gone(&self, st: &mut State, mut gone: Gone) {
        let max = self.shared.cfg.max_payload;
        let Some(mut gen) = self.take_gen(st) else {
            return;
        };
        if !matches!(gone, Gone::Exited(_)) {
            let _ = gen.child.kill();
        }
        // Before any call fails: `worker_pids` never shows a worker whose
        // calls have already failed.
        self.pid.store(0, Ordering::Relaxed);
        if !gen.broken && !matches!(gone, Gone::Broken(_)) {
            if let Err(violation) = gen.drain(&mut st.scratch, max, &mut st.wakers, &self.completed)
            {
                gone = Gone::Broken(violation);
            }
        }
        gen.broken = true;
        // Its last words first: events it sent before it went.
        self.forward_events(&gen);
        *self.last_crash.lock().unwrap_or_else(|e| e.into_inner()) =
            Some(crate::Crash::now(gone.kind()));
        crate::diag::worker_crashed(
            self.shared.cfg.diagnostics,
            self.index,
            Some(gen.pid),
            &gone.describe(),
            gen.inflight.len(),
        );
        let started = match &gone {
            Gone::Broken(v) => v.answered + 1,
            _ => 1,
        }
        .min(gen.inflight.len());
        for call in gen.inflight.drain(..started) {
            call.job
                .fail(gone.error(self.index, gen.pid, &call.job, &self.shared.cfg.limits));
            if matches!(gone, Gone::HardLimit { .. }) {
                call.job.raise();
            }
        }
        let behind: Vec<InFlight> = gen.inflight.drain(..).collect();
        for call in behind.into_iter().rev() {
            // A call that delivered stream items ran: its reader has them,
            // and must not get them twice. One the worker took may have run.
            if call.delivered || call.taken.is_some() {
                call.job
                    .fail(gone.error(self.index, gen.pid, &call.job, &self.shared.cfg.limits));
            } else if let Some(q) = replay(call) {
                st.backlog.push_front(q);
            }
        }
        self.restarts.fetch_add(1, Ordering::Relaxed);
        self.pending.store(st.backlog.len(), Ordering::Relaxed);
        // Wake the reactor, which may sleep on this worker's bell: it
        // starts the replacement.
        bell::ring(&gen.shm.control().host_bell);
        reap_soon(&mut gen.child);
        st.zombies.push(gen.child);
    }

    /// A caller starts spinning on a response of this lane.
    fn spin_begin(&self) -> Option<Arc<Mapping>> {
        let st = lock(&self.state);
        let shm = st.gen.as_ref().map(|g| Arc::clone(&g.shm))?;
        bell::enter_spin(&shm.control().host_bell.spinners);
        Some(shm)
    }

    /// The caller stops spinning: take one last look, under the lock, so a
    /// response the worker published without ringing (it saw us spinning)
    /// is not left for a reactor that sleeps.
    fn spin_end(&self, shm: Option<Arc<Mapping>>) {
        if let Some(shm) = shm {
            bell::leave_spin(&shm.control().host_bell.spinners);
            // The last look: the drain's Acquire load of `resp_head`.
            self.progress_and_wake(lock(&self.state));
        }
    }

    /// Tells the worker that `call` was aborted, if it is on the worker:
    /// raises the abort word of its slot, to [`shm::ABORT_ENDED`] if the
    /// call ended here (the worker then drops an async call's future), and
    /// rings the worker. (A call still queued in the host carries the flag
    /// in its cell and starts aborted when it is sent.)
    fn abort_key(&self, key: CallKey) {
        let st = lock(&self.state);
        let Some(gen) = &st.gen else { return };
        if let Some(position) = gen.inflight.iter().position(|f| f.job.key() == key) {
            let ended = gen.inflight[position].job.has_ended();
            gen.raise(position, ended);
        }
    }

    /// Wakes the reactor (shutdown began, or stopped waiting).
    pub(crate) fn nudge(&self) {
        let st = lock(&self.state);
        if let Some(gen) = &st.gen {
            bell::ring(&gen.shm.control().host_bell);
        }
    }

    /// At shutdown with no worker running: stop for good when nothing is
    /// queued. True when stopped.
    fn stop_if_idle(&self) -> bool {
        let mut st = lock(&self.state);
        if st.backlog.is_empty() {
            st.done = Some(Error::closed());
            self.done.store(true, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    /// Closes the lane for good: kills and reaps its worker, fails every
    /// call in flight or queued with `error()`, and fails later calls with
    /// it too. Returns how many calls it failed.
    fn close_lane(&self, error: &dyn Fn() -> Error) -> usize {
        let mut st = lock(&self.state);
        let mut failed = 0;
        if let Some(mut gen) = self.take_gen(&mut st) {
            let _ = gen.child.kill();
            self.pid.store(0, Ordering::Relaxed);
            let _ = gen.child.wait();
            failed += gen.fail_inflight(error);
        }
        for mut child in st.zombies.drain(..) {
            let _ = child.kill();
            let _ = child.wait();
        }
        for q in st.backlog.drain(..) {
            failed += usize::from(q.job().fail(error()));
        }
        st.done = Some(error());
        self.done.store(true, Ordering::Relaxed);
        self.pending.store(0, Ordering::Relaxed);
        self.pid.store(0, Ordering::Relaxed);
        failed
    }

    /// Shutdown stopped waiting: kill the worker and fail what is left.
    /// The worker's async calls end first and it is told to drop their
    /// futures, so that their destructors run; it gets [`ABANDON_GRACE`]
    /// to do so before the kill.
    fn abandon(&self) {
        let last = {
            let st = lock(&self.state);
            st.gen.as_ref().and_then(|gen| {
                let mut last = None;
                for (i, call) in gen.inflight.iter().enumerate() {
                    if call.job.is_async() {
                        // Ended here first: the worker's answer is not its
                        // outcome.
                        call.job.fail(Error::closed());
                        gen.raise(i, true);
                        last = Some((Arc::clone(&gen.shm), gen.resp_tail() + i as u64));
                    }
                }
                last
            })
        };
        if let Some((shm, seq)) = last {
            // The worker answers in order: once the last one is answered,
            // every future before it is gone.
            let until = Instant::now() + ABANDON_GRACE;
            let responses = super::channel::Responses(&shm);
            while Instant::now() < until && !super::channel::Consumer::is_published(&responses, seq)
            {
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        let failed = self.close_lane(&Error::closed);
        self.shared
            .abandoned_calls
            .fetch_add(failed, Ordering::Relaxed);
    }

    /// The lane cannot get a worker: fail its queue and later calls.
    fn give_up(&self, err: Error) {
        self.close_lane(&|| clone_error(&err));
    }

    /// The reactor thread panicked (a bug in the crate): close the lane
    /// with an error, and count it as stopped so that shutdown does not
    /// wait for it.
    pub(crate) fn reactor_panicked(&self) {
        self.close_lane(&|| {
            Error::of(
                ErrorKind::Closed,
                format!(
                    "lane {} stopped: its reactor thread panicked (a bug in knitting)",
                    self.index
                ),
            )
        });
        self.shared.live.count_down();
    }
}

/// How long a shutdown that stopped waiting gives a worker to drop the
/// futures of its async calls before it is killed.
const ABANDON_GRACE: Duration = Duration::from_millis(200);

/// Errors are not `Clone` (their sources are boxed); a lane-wide failure
/// is handed to each call as a fresh error with the same kind and message.
fn clone_error(err: &Error) -> Error {
    Error::of(err.kind(), err.message().to_owned())
}
