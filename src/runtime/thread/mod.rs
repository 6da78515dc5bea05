//! The thread runtime: worker threads of this process, one per lane.
//!
//! - [`lane`]: a lane's queue (a lock-free ring of one-pointer jobs), its
//!   wake word, the worker loop (with work stealing between lanes) and the
//!   rule for retiring a thread;
//! - this module: starting the workers, handing them calls, hard time
//!   limits (a thread cannot be killed: its lane gets a fresh thread) and
//!   shutdown.

mod asyncs;
pub(crate) mod lane;

use std::{
    sync::{mpsc, Arc, Mutex},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use self::lane::{run_worker, Crew, Exit, Lane, SlotId, SpinPolicy};
use crate::{
    call::cell::{CallKey, CallRef, JobRef},
    role::RuntimeKind,
    runtime::Lanes,
    sync::{countdown::Countdown, AtomicBool, Ordering},
    task::bootstrap::{self, Boot, BootContext, BootInfo},
    transport::wake::Notified,
    Crash, CrashKind, Error, LaneStats,
};

/// What a thread runtime is built from (the thread half of
/// [`PoolBuilder`](crate::PoolBuilder)).
#[derive(Debug)]
pub(crate) struct Config {
    pub(crate) threads: usize,
    pub(crate) queue_capacity: usize,
    pub(crate) spin_budget: Duration,
    pub(crate) thread_name: String,
    pub(crate) hard_timeout: Option<Duration>,
    pub(crate) boot: Option<Boot>,
    /// Idle workers take queued calls of busy lanes.
    pub(crate) work_stealing: bool,
    /// Which diagnostics the pool emits.
    pub(crate) diagnostics: crate::Diagnostics,
    /// Async calls each worker runs at once, at most.
    pub(crate) async_concurrency: usize,
}

/// Where a worker thread started by `build` reports its bootstrap.
type Started = mpsc::Sender<(usize, Result<(), String>)>;

/// A running thread runtime.
pub(crate) struct Runtime {
    shared: Arc<Shared>,
}

struct Shared {
    lanes: Box<[Lane]>,
    /// Set once, when shutdown begins.
    closed: AtomicBool,
    /// Set once, when a shutdown stops waiting and fails what is left.
    abandoned: AtomicBool,
    /// One per lane: a retired thread hands its count to its replacement.
    live_workers: Countdown,
    spin: SpinPolicy,
    /// Idle workers take queued calls of other lanes (see [`lane`]).
    steal: bool,
    thread_name: String,
    hard_timeout: Option<Duration>,
    /// The bootstrap each worker thread runs before it takes calls.
    boot: Option<(&'static BootInfo, Boot)>,
    /// Worker threads by lane and slot; a shutdown joins the current ones
    /// (a retired thread may still be running its task).
    threads: Mutex<Vec<(usize, SlotId, JoinHandle<()>)>>,
    /// Per lane: when a hard time limit last retired its thread.
    crashes: Box<[Mutex<Option<Crash>>]>,
    diagnostics: crate::Diagnostics,
    async_concurrency: usize,
}

/// The bell of a worker's executor: notifies its lane's wake word.
struct LaneBell {
    shared: Arc<Shared>,
    index: usize,
}

impl crate::exec::Bell for LaneBell {
    fn ring(&self) {
        // A worker that exited has no future left to wake.
        let _ = self.shared.lanes[self.index].wake.notify();
    }
}

impl Runtime {
    pub(crate) fn start(cfg: Config) -> Result<Self, Error> {
        crate::task::panics::install_hook();
        let threads = cfg.threads;
        let boot = match cfg.boot {
            None => None,
            Some(boot) => Some((
                bootstrap::find(boot.id(), &format!("`{}`", boot.name))
                    .map_err(|e| Error::of(crate::ErrorKind::Startup, e))?,
                boot,
            )),
        };
        let shared = Arc::new(Shared {
            lanes: (0..threads)
                .map(|_| Lane::new(cfg.queue_capacity))
                .collect(),
            closed: AtomicBool::new(false),
            abandoned: AtomicBool::new(false),
            live_workers: Countdown::new(threads),
            spin: SpinPolicy {
                budget: cfg.spin_budget,
            },
            steal: cfg.work_stealing && threads > 1,
            thread_name: cfg.thread_name,
            hard_timeout: cfg.hard_timeout,
            boot,
            threads: Mutex::new(Vec::with_capacity(threads)),
            crashes: (0..threads).map(|_| Mutex::new(None)).collect(),
            diagnostics: cfg.diagnostics,
            async_concurrency: cfg.async_concurrency,
        });
        let (tx, started) = mpsc::channel();
        for index in 0..threads {
            if let Err(err) = Shared::spawn_worker(&shared, index, Some(tx.clone())) {
                // Wind down the workers already started before failing.
                shared.live_workers.set(index);
                shared.close();
                return Err(Error::build(format!(
                    "could not start worker thread {index}: {err}"
                )));
            }
        }
        drop(tx);
        let runtime = Self { shared };
        if runtime.shared.boot.is_some() {
            runtime.await_bootstraps(started)?;
        }
        Ok(runtime)
    }

    /// Waits until every worker thread ran the bootstrap; on a failure,
    /// shuts the others down, joins them, and returns the failure of the
    /// lowest worker index.
    fn await_bootstraps(
        &self,
        started: mpsc::Receiver<(usize, Result<(), String>)>,
    ) -> Result<(), Error> {
        let mut first: Option<(usize, String)> = None;
        for _ in 0..self.shared.lanes.len() {
            let (index, outcome) = started.recv().unwrap_or((
                usize::MAX,
                Err("a worker thread ended before its bootstrap".into()),
            ));
            if let Err(message) = outcome {
                if first.as_ref().is_none_or(|(i, _)| index < *i) {
                    first = Some((index, message));
                }
            }
        }
        let Some((index, message)) = first else {
            return Ok(());
        };
        self.close();
        self.join();
        let name = self
            .shared
            .boot
            .as_ref()
            .map_or("?", |(info, _)| info.name());
        Err(bootstrap::failed(
            name,
            &format!("worker thread {index}"),
            &message,
        ))
    }

    /// Queues `job` (whose handle holds `call`) on lane `index`; returns
    /// the pool's id, the call's home for the nested-call rule.
    #[inline]
    pub(crate) fn submit(&self, index: usize, call: &CallRef, job: JobRef) -> usize {
        let shared = &*self.shared;
        let lane = &shared.lanes[index];
        lane.push(job);
        if lane.wake.notify() == Notified::Exited {
            // Shutdown raced with this call and the lane's worker is gone:
            // fail the call unless the worker claimed it on its way out.
            call.fail_queued(Error::closed());
        }
        shared.id()
    }

    /// The pool's id (a call's home for the nested-call rule).
    pub(crate) fn id(&self) -> usize {
        self.shared.id()
    }

    /// Whether the pool cuts calls off at a hard time limit (which a call
    /// run on its caller's thread could not have).
    pub(crate) fn has_hard_timeout(&self) -> bool {
        self.shared.hard_timeout.is_some()
    }

    /// Calls queued or running on every lane (a racy snapshot).
    pub(crate) fn in_flight(&self) -> usize {
        self.shared.lanes.iter().map(|lane| lane.in_flight()).sum()
    }

    pub(crate) fn lane_stats(&self) -> Vec<LaneStats> {
        self.shared
            .lanes
            .iter()
            .zip(self.shared.crashes.iter())
            .map(|(lane, crash)| LaneStats {
                sandbox: None,
                last_crash: *crash.lock().unwrap_or_else(|e| e.into_inner()),
                queued: lane.queued(),
                in_flight: lane.in_flight(),
                completed: lane.completed(),
                pid: None,
                restarts: lane.retired(),
                stolen: lane.stolen(),
                busy: lane.busy(),
            })
            .collect()
    }

    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: pairs with `close`; callers use it as the fast path of
        // the closed check (the lane's wake word decides the race).
        self.shared.closed.load(Ordering::Acquire)
    }

    pub(crate) fn close(&self) {
        self.shared.close();
    }

    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        self.shared.live_workers.wait(deadline)
    }

    pub(crate) fn join(&self) {
        let handles = std::mem::take(
            &mut *self
                .shared
                .threads
                .lock()
                .unwrap_or_else(|e| e.into_inner()),
        );
        for (lane, slot, handle) in handles {
            // A retired thread may still run its task: it is left alone
            // (detached), as documented for hard time limits.
            if self.shared.lanes[lane].is_current(slot) {
                // A worker thread never unwinds (runtime code aborts
                // instead), so a join error carries nothing worth reporting.
                let _ = handle.join();
            }
        }
    }

    /// Fails every call still queued or running; a thread stuck in a task
    /// is left to finish on its own (no thread can be killed safely).
    pub(crate) fn abandon(&self) -> usize {
        // SeqCst: see `Lane::run`.
        self.shared.abandoned.store(true, Ordering::SeqCst);
        self.shared
            .lanes
            .iter()
            .map(|lane| {
                let failed = lane.fail_all(Error::closed);
                // A worker with async calls in flight drops them now.
                let _ = lane.wake.notify();
                failed
            })
            .sum()
    }
}

impl Lanes for Runtime {
    fn count(&self) -> usize {
        self.shared.lanes.len()
    }

    #[inline]
    fn is_idle(&self, index: usize) -> bool {
        self.shared.lanes[index].is_idle()
    }

    /// A thread lane always takes calls (a lane whose thread could not be
    /// replaced fails them itself).
    fn is_usable(&self, _: usize) -> bool {
        true
    }

    #[inline]
    fn in_flight(&self, index: usize) -> usize {
        self.shared.lanes[index].in_flight()
    }
}

impl Shared {
    /// Starts a worker thread for lane `index`, with a fresh slot. It runs
    /// the bootstrap first and reports the outcome on `started` (at build
    /// time); a replacement thread (no `started`) whose bootstrap fails
    /// fails its lane's calls with that error.
    fn spawn_worker(
        shared: &Arc<Self>,
        index: usize,
        started: Option<Started>,
    ) -> std::io::Result<()> {
        let slot = shared.lanes[index].new_slot();
        let worker_shared = Arc::clone(shared);
        let handle = std::thread::Builder::new()
            .name(format!("{}-{index}", shared.thread_name))
            .spawn(move || {
                let shared = worker_shared;
                let began = std::time::Instant::now();
                if !shared.run_bootstrap(index, started) {
                    return;
                }
                // The worker's span: task events nest in it.
                let _span = crate::diag::worker_span(shared.diagnostics, index);
                crate::diag::worker_ready(shared.diagnostics, index, None, began.elapsed());
                let on_start = |job: &JobRef| shared.arm_hard_limit(index, slot, job);
                let bell = || -> Box<dyn crate::exec::Bell> {
                    Box::new(LaneBell {
                        shared: Arc::clone(&shared),
                        index,
                    })
                };
                let asyncs = lane::AsyncSetup {
                    limit: shared.async_concurrency,
                    bell: &bell,
                    on_start: &|job: &JobRef| shared.arm_async_limit(job),
                };
                let crew = Crew {
                    lanes: &shared.lanes,
                    index,
                    steal: shared.steal,
                };
                let exit = run_worker(
                    crew,
                    slot,
                    shared.id(),
                    &shared.closed,
                    &shared.abandoned,
                    shared.spin,
                    &on_start,
                    &asyncs,
                );
                // A retired thread's count went to its replacement.
                if exit == Exit::Done {
                    crate::diag::worker_stopped(shared.diagnostics, index, None);
                    shared.live_workers.count_down();
                }
            })?;
        shared
            .threads
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((index, slot, handle));
        Ok(())
    }

    /// Runs the pool's bootstrap (if any) on this worker thread of lane
    /// `index`. False if it failed: the thread must not take calls.
    fn run_bootstrap(&self, index: usize, started: Option<Started>) -> bool {
        let outcome = match &self.boot {
            None => Ok(()),
            Some((info, boot)) => {
                crate::role::mark_worker_thread(self.id());
                let ctx = BootContext::new(index, self.lanes.len(), RuntimeKind::Threads);
                bootstrap::run(info, &boot.data, &ctx)
            }
        };
        let ok = outcome.is_ok();
        match (outcome, started) {
            (outcome, Some(started)) => {
                if !ok {
                    // This lane's worker is gone before it began.
                    self.live_workers.count_down();
                }
                let _ = started.send((index, outcome));
            }
            (Ok(()), None) => {}
            (Err(message), None) => {
                let name = self.boot.as_ref().map_or("?", |(info, _)| info.name());
                let worker = format!("worker thread {index}");
                self.lose_lane(index, &|| bootstrap::failed(name, &worker, &message));
            }
        }
        ok
    }

    /// Lane `index` has no worker thread and gets none: fails what waits
    /// there, marks the lane so that later calls fail at once (as closed),
    /// and counts its worker as gone so that shutdown does not wait for it.
    fn lose_lane(&self, index: usize, error: &dyn Fn() -> Error) {
        let lane = &self.lanes[index];
        loop {
            lane.fail_all(error);
            if lane.wake.retire(|| !lane.is_empty()) {
                break;
            }
        }
        self.live_workers.count_down();
    }

    /// As a call starts on lane `index` (thread of `slot`): if it has a hard
    /// time limit, ask the timer to retire the thread when it passes.
    /// Returns the timer entry, for the lane to cancel when the call
    /// returns.
    fn arm_hard_limit(
        self: &Arc<Self>,
        index: usize,
        slot: SlotId,
        job: &JobRef,
    ) -> Option<crate::call::timer::Key> {
        let limit = job.hard_timeout().or(self.hard_timeout)?;
        let shared = Arc::clone(self);
        let call = job.key();
        Some(crate::call::timer::schedule(
            crate::time::nanos_after(limit),
            crate::call::timer::Action::HardLimit(Box::new(move || {
                shared.retire(index, slot, call, limit);
            })),
        ))
    }

    /// As an async call starts: if it has a hard time limit, ask the timer
    /// to end it when the limit passes (which drops its future; the thread
    /// stays). Returns the timer entry, cancelled when the call ends.
    fn arm_async_limit(&self, job: &JobRef) -> Option<crate::call::timer::Key> {
        let limit = job.hard_timeout().or(self.hard_timeout)?;
        let job = job.clone_ref();
        Some(crate::call::timer::schedule(
            crate::time::nanos_after(limit),
            crate::call::timer::Action::HardLimit(Box::new(move || {
                asyncs::cut_off(&job, limit);
            })),
        ))
    }

    /// Names this pool while it lives (its address; never 0), for the
    /// worker threads' nested-call rule.
    fn id(&self) -> usize {
        std::ptr::from_ref(self).addr()
    }

    /// The hard time limit of `call` on lane `index` passed: if the
    /// lane's thread of `slot` still runs it, fail the call, raise its
    /// signal, and give the lane a fresh thread. The runaway thread exits
    /// when its task returns.
    fn retire(self: &Arc<Self>, index: usize, slot: SlotId, call: CallKey, limit: Duration) {
        let lane = &self.lanes[index];
        let Some(job) = lane.retire(slot, call) else {
            return;
        };
        // Fail first, then tell the task: a task that stops at once must
        // not beat the hard limit's error.
        job.fail(Error::hard_timeout(
            limit,
            "a thread cannot be stopped: its lane got a fresh worker thread, and the \
             runaway one is left to finish on its own (its result is dropped)",
        ));
        job.raise();
        drop(job);
        // The runaway thread's async calls cannot go on either: their
        // futures live on that thread.
        let stranded = lane.slot_at(slot).started.fail_all(&|| {
            Error::of(
                crate::ErrorKind::WorkerDied,
                format!(
                    "worker thread {index} was retired because another call ran past its \
                     hard time limit ({limit:?}) while this async call was in flight there"
                ),
            )
        });
        *self.crashes[index]
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = Some(Crash::now(CrashKind::HardTimeout));
        crate::diag::worker_crashed(
            self.diagnostics,
            index,
            None,
            &format!("was retired: its call ran past its hard time limit ({limit:?})"),
            1 + stranded,
        );
        crate::diag::worker_replacing(self.diagnostics, index, self.lanes[index].retired());
        if let Err(err) = Shared::spawn_worker(self, index, None) {
            self.lose_lane(index, &|| {
                Error::build(format!("could not replace worker thread {index}: {err}"))
            });
        }
    }

    fn close(&self) {
        // SYNC POINT: Release pairs with the workers' Acquire load in
        // `run_worker`.
        self.closed.store(true, Ordering::Release);
        for lane in self.lanes.iter() {
            // A worker that already exited needs no wake-up.
            let _ = lane.wake.notify();
        }
    }
}
