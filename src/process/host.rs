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
//! Everything the worker writes is checked before use: the response
//! counter must lie between what the host consumed and what it sent; a
//! response slot must name the expected request, a known status, and a
//! payload range inside the response arena and under the payload limit.
//! Payload bytes are copied into host memory before they are decoded. A
//! worker that fails any check is killed; its calls fail with a
//! [`Protocol`](crate::ErrorKind::Protocol) error and a new worker takes
//! the lane. Host-side positions (where the next request goes, what is
//! free) are computed from host state only, never read back.

use std::{
    collections::VecDeque,
    ffi::OsString,
    os::unix::process::{CommandExt, ExitStatusExt},
    path::PathBuf,
    process::{Child, Command, ExitStatus, Stdio},
    sync::{
        atomic::{AtomicBool, AtomicU32, AtomicUsize, Ordering},
        mpsc, Arc, Mutex, MutexGuard,
    },
    task::Waker,
    time::{Duration, Instant},
};

use super::{
    arena::{Ring, Span},
    bell,
    check::{Answer, Expect, Violation},
    futex,
    handover::Handover,
    shm::{self, Dir, Layout, Locator, Mapping, TaskKey},
};
use crate::{
    call::cell::{CallKey, Encoded, JobRef, RemoteOps},
    countdown::Countdown,
    error::WireError,
    Error, ErrorKind,
};

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

/// A call that has not been sent yet.
enum Queued {
    Fresh {
        job: JobRef,
        ops: &'static RemoteOps,
        task: TaskKey,
    },
    /// Encoded already (it did not fit when it was tried), waiting for room.
    Spilled {
        job: JobRef,
        ops: &'static RemoteOps,
        task: TaskKey,
        bytes: Vec<u8>,
    },
}

impl Queued {
    fn job(&self) -> &JobRef {
        match self {
            Queued::Fresh { job, .. } | Queued::Spilled { job, .. } => job,
        }
    }
}

/// A call sent to the worker, waiting for its response.
struct InFlight {
    job: JobRef,
    ops: &'static RemoteOps,
    task: TaskKey,
    /// Its hard time limit, counted from when it reaches the front.
    hard: Option<Duration>,
}

/// One worker process and the host's side of its mapping.
struct Gen {
    shm: Arc<Mapping>,
    child: Child,
    pid: u32,
    /// Requests published (the host's own copy of `req_head`).
    req_head: u64,
    /// Responses consumed (the host's own copy of `resp_tail`).
    resp_tail: u64,
    /// Where the arguments of the calls in flight are, and where the next
    /// go: the host's own record, never read back from the mapping.
    req_ring: Ring,
    inflight: VecDeque<InFlight>,
    /// Since when the front call in flight is the one the worker runs (it
    /// serves requests in order): its hard time limit counts from here,
    /// from host-side facts only.
    front_since: Instant,
    /// The heartbeat word as last seen, and since when it has not moved
    /// while calls were in flight.
    beat: u64,
    beat_since: Instant,
    /// The worker broke the protocol and was killed; nothing more is read.
    broken: bool,
    /// Scratch for the response slots of one take.
    answers: Vec<Answer>,
}

impl Gen {
    fn slots(&self) -> u64 {
        self.shm.layout().slots as u64
    }

    /// Sends `q` now if the ring and the arena have room; hands it back
    /// otherwise.
    fn try_send(&mut self, q: Queued, cfg: &Config) -> Option<Queued> {
        let (max_payload, pool_hard) = (cfg.max_payload, cfg.hard_timeout);
        if self.broken || self.req_head - self.resp_tail >= self.slots() {
            return Some(q);
        }
        match q {
            Queued::Fresh { job, ops, task } => {
                let room = self.req_ring.room();
                let mut window = self
                    .shm
                    .window(Dir::Request, room.offset, room.len.min(max_payload))
                    .expect("request room lies inside the arena");
                match job.encode(ops, &mut window, max_payload) {
                    Encoded::Cancelled | Encoded::Failed => None,
                    Encoded::Written(n) => {
                        let span = self.req_ring.commit(room, n);
                        self.publish(job, ops, task, span, pool_hard);
                        None
                    }
                    Encoded::Spilled(bytes) => self.try_send(
                        Queued::Spilled {
                            job,
                            ops,
                            task,
                            bytes,
                        },
                        cfg,
                    ),
                }
            }
            Queued::Spilled {
                job,
                ops,
                task,
                bytes,
            } => {
                let Some(room) = self.req_ring.reserve(bytes.len()) else {
                    return Some(Queued::Spilled {
                        job,
                        ops,
                        task,
                        bytes,
                    });
                };
                let mut window = self
                    .shm
                    .window(Dir::Request, room.offset, bytes.len())
                    .expect("request room lies inside the arena");
                window.write(0, &bytes);
                let span = self.req_ring.commit(room, bytes.len());
                self.publish(job, ops, task, span, pool_hard);
                None
            }
        }
    }

    fn publish(
        &mut self,
        job: JobRef,
        ops: &'static RemoteOps,
        task: TaskKey,
        span: Span,
        pool_hard: Option<Duration>,
    ) {
        let seq = self.req_head;
        let index = (seq % self.slots()) as usize;
        let slot = &self.shm.req_slots()[index];
        // Relaxed: published by the Release store of `seq` below.
        slot.task.store(task.id, Ordering::Relaxed);
        slot.shape.store(task.shape, Ordering::Relaxed);
        slot.offset.store(span.offset as u64, Ordering::Relaxed);
        slot.len.store(span.len as u64, Ordering::Relaxed);
        // Relaxed: published with the slot; a call aborted before it was
        // sent starts aborted.
        self.shm.aborts()[index].store(u32::from(job.is_aborted()), Ordering::Relaxed);
        // SYNC POINT: the slot's fields and the argument bytes, for the
        // worker's Acquire load of the slot's number (`seq + 1`: a slot that
        // never held a request reads 0).
        slot.seq.store(seq + 1, Ordering::Release);
        if self.inflight.is_empty() {
            let now = Instant::now();
            self.front_since = now;
            self.beat_since = now;
        }
        let hard = job.hard_timeout().or(pool_hard);
        self.inflight.push_back(InFlight {
            job,
            ops,
            task,
            hard,
        });
        self.req_head += 1;
        let control = self.shm.control();
        // SYNC POINT: the slot and the bytes before it are published by
        // this RMW, which is also the ringer's half of the bell protocol.
        bell::publish(&*control.req_head, self.req_head);
        bell::ring_if_sleeping(&control.worker_bell);
        if hard.is_some() {
            // The reactor watches the hard limit; it may be asleep on the
            // long timeout of an idle lane.
            bell::ring_if_sleeping(&control.host_bell);
        }
    }

    /// Takes every response the worker published. Returns how many.
    ///
    /// The worker's counter and slots are read once each, into host
    /// memory; then the whole set of unread responses is checked (each for
    /// the call it names, a known status, a payload in the arena and under
    /// the limit, and all of them disjoint: `arena::check_unread`) before
    /// any of them completes a call.
    fn drain(
        &mut self,
        scratch: &mut Vec<u8>,
        max_payload: usize,
        wakers: &mut Vec<Waker>,
    ) -> Result<usize, Violation> {
        if self.broken {
            return Ok(0);
        }
        let layout = *self.shm.layout();
        let control = self.shm.control();
        let expect = Expect {
            consumed: self.resp_tail,
            sent: self.req_head,
            max_payload,
            arena: layout.arena,
        };
        // SYNC POINT: Acquire pairs with the worker's `bell::publish` of
        // `resp_head` (slots and payload bytes before it).
        // A counter outside what was sent is a broken worker. The slots
        // say what is ready: every slot up to the counter must hold its
        // response (the worker fills a slot before it counts it), and the
        // ones after it that do are ready too (a counter that a task set
        // back hides nothing).
        let counted = expect.ready(control.resp_head.load(Ordering::Acquire))?;
        self.answers.clear();
        for (i, seq) in (self.resp_tail..self.req_head).enumerate() {
            let slot = &self.shm.resp_slots()[(seq % layout.slots as u64) as usize];
            // Acquire: pairs with the worker's Release store of the slot's
            // number, made after its other fields and the payload.
            let holds = slot.seq.load(Ordering::Acquire);
            if holds != seq + 1 {
                if i < counted {
                    return Err(Violation {
                        why: format!(
                            "response slot for call {seq} names call {}",
                            holds.wrapping_sub(1)
                        ),
                        answered: counted,
                    });
                }
                break;
            }
            // Relaxed: ordered by the Acquire load above.
            self.answers.push(Answer {
                seq,
                status: slot.status.load(Ordering::Relaxed),
                offset: slot.offset.load(Ordering::Relaxed),
                len: slot.len.load(Ordering::Relaxed),
            });
        }
        let taken = self.answers.len();
        if taken == 0 {
            return Ok(0);
        }
        expect.answers(&self.answers)?;
        let violation = |why: String| Violation {
            why,
            answered: taken,
        };
        for i in 0..taken {
            let Answer {
                seq,
                status,
                offset,
                len,
            } = self.answers[i];
            // In the arena: `check_unread` proved `offset + len <= arena`.
            self.shm
                .copy_out(Dir::Response, offset as usize, len as usize, scratch)
                .ok_or_else(|| violation("response range check failed".to_owned()))?;
            let outcome = if status == u64::from(shm::STATUS_OK) {
                Ok(&scratch[..])
            } else {
                Err(super::wire::decode::<WireError>(scratch)
                    .map(Error::from_wire)
                    .map_err(|e| Violation {
                        why: format!("response {seq} holds an undecodable error: {e}"),
                        answered: taken - i,
                    })?)
            };
            let call = self
                .inflight
                .pop_front()
                .expect("every consumed response has a call in flight");
            wakers.extend(call.job.complete(call.ops, outcome));
            self.req_ring.pop();
            self.resp_tail += 1;
            self.front_since = Instant::now();
        }
        // SYNC POINT: Release (in the RMW): the worker reuses the payloads
        // of consumed responses only after this; also the ringer's half of
        // the bell protocol, for a worker that sleeps waiting for room.
        bell::publish(&*control.resp_tail, self.resp_tail);
        bell::ring_if_sleeping(&control.worker_bell);
        Ok(taken)
    }

    /// True when the next response's slot holds it.
    fn response_ready(&self) -> bool {
        let seq = self.resp_tail;
        let slot = &self.shm.resp_slots()[(seq % self.slots()) as usize];
        // Acquire: as in `drain`.
        seq < self.req_head && slot.seq.load(Ordering::Acquire) == seq + 1
    }

    /// The heartbeat rule: true when the worker holds calls and its
    /// heartbeat has not moved for `limit`.
    fn unresponsive(&mut self, limit: Duration, now: Instant) -> bool {
        // Relaxed: a sign of life, compared with its last value only.
        let beat = self.shm.control().heartbeat.load(Ordering::Relaxed);
        if beat != self.beat || self.inflight.is_empty() {
            self.beat = beat;
            self.beat_since = now;
            return false;
        }
        now.saturating_duration_since(self.beat_since) >= limit
    }

    /// Fails every call in flight with the error `make` builds.
    fn fail_inflight(&mut self, make: impl Fn() -> Error) -> usize {
        let n = self.inflight.len();
        for call in self.inflight.drain(..) {
            call.job.fail(make());
        }
        n
    }
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
    /// Workers taken away and not reaped yet (the reactor reaps them).
    zombies: Vec<Child>,
}

/// How a worker went.
enum Gone {
    /// It exited or was killed from outside.
    Exited(ExitStatus),
    /// It broke the protocol.
    Broken(Violation),
    /// Its front call ran past its hard time limit.
    HardLimit { limit: Duration, runaway: CallKey },
    /// It showed no sign of life for this long while it had calls.
    Unresponsive(Duration),
}

impl Gone {
    /// The error for a call that may have started on the worker.
    fn error(&self, index: usize, pid: u32, job: &JobRef) -> Error {
        match self {
            Gone::Exited(status) => Error::of(
                ErrorKind::WorkerDied,
                format!(
                    "worker {index} (pid {pid}) {} while running this call",
                    describe_exit(*status)
                ),
            ),
            Gone::Broken(v) => Error::of(
                ErrorKind::Protocol,
                format!(
                    "worker {index} (pid {pid}) broke the shared-memory protocol: {}; \
                     it was killed and is being replaced",
                    v.why
                ),
            ),
            Gone::HardLimit { limit, runaway } if job.key() == *runaway => Error::hard_timeout(
                *limit,
                &format!("its worker process {index} (pid {pid}) was killed and is being replaced"),
            ),
            Gone::HardLimit { limit, .. } => Error::of(
                ErrorKind::WorkerDied,
                format!(
                    "worker {index} (pid {pid}) was killed because the call before this one ran \
                     past its hard time limit ({limit:?}), while this call was running or next"
                ),
            ),
            Gone::Unresponsive(limit) => Error::of(
                ErrorKind::WorkerDied,
                format!(
                    "worker {index} (pid {pid}) showed no sign of life for {limit:?} (stopped \
                     by a signal, or frozen) and was killed while running this call"
                ),
            ),
        }
    }
}

/// A call the worker cannot have started, to be sent again: encoded anew
/// from the caller's own arguments, which stayed in host memory (the
/// worker could have rewritten the request arena). `None` when the call
/// ended meanwhile (cancelled, timed out).
fn replay(call: InFlight) -> Option<Queued> {
    call.job.unsend().then_some(Queued::Fresh {
        job: call.job,
        ops: call.ops,
        task: call.task,
    })
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
            done: AtomicBool::new(false),
        }
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
        let taken = match g.drain(scratch, max, wakers) {
            Ok(n) => n,
            Err(violation) => {
                self.retire(st, Gone::Broken(violation));
                return 0;
            }
        };
        let gen = g;
        if taken > 0 {
            self.pending.fetch_sub(taken, Ordering::Relaxed);
            self.completed.fetch_add(taken, Ordering::Relaxed);
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
    fn retire(&self, st: &mut State, mut gone: Gone) {
        let max = self.shared.cfg.max_payload;
        let Some(mut gen) = st.gen.take() else {
            return;
        };
        if !matches!(gone, Gone::Exited(_)) {
            let _ = gen.child.kill();
        }
        // Before any call fails: `worker_pids` never shows a worker whose
        // calls have already failed.
        self.pid.store(0, Ordering::Relaxed);
        if !gen.broken && !matches!(gone, Gone::Broken(_)) {
            match gen.drain(&mut st.scratch, max, &mut st.wakers) {
                Ok(taken) => {
                    self.completed.fetch_add(taken, Ordering::Relaxed);
                }
                Err(violation) => gone = Gone::Broken(violation),
            }
        }
        gen.broken = true;
        let started = match &gone {
            Gone::Broken(v) => v.answered + 1,
            _ => 1,
        }
        .min(gen.inflight.len());
        for call in gen.inflight.drain(..started) {
            call.job.fail(gone.error(self.index, gen.pid, &call.job));
            if matches!(gone, Gone::HardLimit { .. }) {
                call.job.raise();
            }
        }
        let behind: Vec<InFlight> = gen.inflight.drain(..).collect();
        for call in behind.into_iter().rev() {
            if let Some(q) = replay(call) {
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
    pub(crate) fn spin_begin(&self) -> Option<Arc<Mapping>> {
        let st = lock(&self.state);
        let shm = st.gen.as_ref().map(|g| Arc::clone(&g.shm))?;
        bell::enter_spin(&shm.control().host_bell.spinners);
        Some(shm)
    }

    /// The caller stops spinning: take one last look, under the lock, so a
    /// response the worker published without ringing (it saw us spinning)
    /// is not left for a reactor that sleeps.
    pub(crate) fn spin_end(&self, shm: Option<Arc<Mapping>>) {
        if let Some(shm) = shm {
            bell::leave_spin(&shm.control().host_bell.spinners);
            // The last look: the drain's Acquire load of `resp_head`.
            self.progress_and_wake(lock(&self.state));
        }
    }

    /// True on this lane's reactor thread (where wakers of its calls run).
    pub(crate) fn is_current_thread_reactor(self: &Arc<Self>) -> bool {
        REACTOR_OF.with(|r| r.get() == Arc::as_ptr(self).addr())
    }

    /// Tells the worker that `call` was aborted, if it is on the worker:
    /// raises the abort word of its slot. (A call still queued in the host
    /// carries the flag in its cell and starts aborted when it is sent.)
    pub(crate) fn abort_key(&self, key: CallKey) {
        let st = lock(&self.state);
        let Some(gen) = &st.gen else { return };
        if let Some(position) = gen.inflight.iter().position(|f| f.job.key() == key) {
            let seq = gen.resp_tail + position as u64;
            let index = (seq % gen.slots()) as usize;
            // Relaxed: a flag without data; the task polls it.
            gen.shm.aborts()[index].store(1, Ordering::Relaxed);
        }
    }

    /// Wakes the reactor (shutdown began, or stopped waiting).
    pub(crate) fn nudge(&self) {
        let st = lock(&self.state);
        if let Some(gen) = &st.gen {
            bell::ring(&gen.shm.control().host_bell);
        }
    }

    /// The reactor thread: start the worker, serve, replace it when it
    /// dies, stop it at shutdown.
    pub(crate) fn run(self: Arc<Self>, started: mpsc::Sender<Result<(), Error>>) {
        REACTOR_OF.with(|r| r.set(Arc::as_ptr(&self).addr()));
        let mut started = Some(started);
        let mut failures = 0u32;
        loop {
            if self.shared.abandoned.load(Ordering::Acquire) {
                self.abandon();
                break;
            }
            let needs_worker = lock(&self.state).gen.is_none();
            if needs_worker {
                if self.shared.closed.load(Ordering::Acquire) && self.stop_if_idle() {
                    break;
                }
                match self.start_worker() {
                    Ok(gen) => {
                        failures = 0;
                        self.pid.store(gen.pid, Ordering::Relaxed);
                        let mut st = lock(&self.state);
                        st.gen = Some(gen);
                        self.progress_and_wake(st);
                        if let Some(tx) = started.take() {
                            let _ = tx.send(Ok(()));
                        }
                    }
                    Err(err) => {
                        failures += 1;
                        if let Some(tx) = started.take() {
                            // At build time one failed start fails the build.
                            self.give_up(clone_error(&err));
                            let _ = tx.send(Err(err));
                            break;
                        }
                        if failures >= self.shared.cfg.start_attempts {
                            let err = Error::of(
                                ErrorKind::Startup,
                                format!(
                                    "{} (gave up after {failures} attempts in a row)",
                                    err.message()
                                ),
                            );
                            self.give_up(err);
                            break;
                        }
                        std::thread::sleep(Duration::from_millis(20 << failures.min(5)));
                    }
                }
                continue;
            }
            self.reap_zombies();
            if let Some(sleep) = self.serve_once() {
                futex::wait(
                    &sleep.shm.control().host_bell.word,
                    sleep.seen,
                    Some(sleep.timeout),
                );
                bell::disarm(&sleep.shm.control().host_bell.sleeping);
            } else if lock(&self.state).done.is_some() {
                break;
            }
        }
        self.pid.store(0, Ordering::Relaxed);
        self.shared.live.count_down();
    }

    /// One round of the reactor with a live worker. Returns how to sleep,
    /// or `None` to loop again at once.
    fn serve_once(&self) -> Option<Sleep> {
        self.progress_and_wake(lock(&self.state));
        let mut st = lock(&self.state);
        // Only this thread takes the worker away; a guard, not a path.
        st.gen.as_ref()?;
        let gen = st.gen.as_mut().expect("serve_once runs with a worker");
        if let Ok(Some(status)) = gen.child.try_wait() {
            self.retire(&mut st, Gone::Exited(status));
            return None;
        }
        let now = Instant::now();
        let liveness = self.shared.cfg.liveness;
        if gen.unresponsive(liveness, now) {
            self.retire(&mut st, Gone::Unresponsive(liveness));
            return None;
        }
        // The call the worker runs: past its hard time limit?
        let mut wake_for_limit = None;
        if let Some((limit, key)) = gen
            .inflight
            .front()
            .and_then(|f| Some((f.hard?, f.job.key())))
        {
            let due = gen.front_since + limit;
            if now >= due {
                self.retire(
                    &mut st,
                    Gone::HardLimit {
                        limit,
                        runaway: key,
                    },
                );
                return None;
            }
            wake_for_limit = Some(due - now);
        }
        let gen = st.gen.as_mut().expect("checked above");
        if self.shared.closed.load(Ordering::Acquire)
            && gen.inflight.is_empty()
            && st.backlog.is_empty()
        {
            let gen = st.gen.take().expect("checked above");
            st.done = Some(Error::closed());
            self.done.store(true, Ordering::Relaxed);
            drop(st);
            stop_worker(gen);
            return None;
        }
        let gen = st.gen.as_ref().expect("checked above");
        let control = gen.shm.control();
        // A consumed count that a task overwrote is written again (the
        // worker ignores one that makes no sense, and would wait for room).
        // Relaxed: compared with the host's own copy only.
        if control.resp_tail.load(Ordering::Relaxed) != gen.resp_tail {
            bell::publish(&*control.resp_tail, gen.resp_tail);
            bell::ring(&control.worker_bell);
        }
        let seen = bell::arm(&control.host_bell.word, &control.host_bell.sleeping, || {
            // The RMW read orders this check after a publication that rang;
            // the slot says whether a response is there.
            bell::read_counter(&*control.resp_head);
            gen.response_ready()
        })?;
        Some(Sleep {
            shm: Arc::clone(&gen.shm),
            seen,
            // Death wakes the reactor at once (the exit watcher rings); the
            // timeouts bound hard limits, the liveness rule, and a ring the
            // worker owes (see `RING_DELAY` in worker.rs).
            timeout: if gen.inflight.is_empty() {
                Duration::from_millis(100)
            } else {
                Duration::from_millis(5)
            }
            .min(wake_for_limit.unwrap_or(Duration::MAX)),
        })
    }

    /// Reaps workers taken away earlier that have exited since.
    fn reap_zombies(&self) {
        let mut st = lock(&self.state);
        st.zombies
            .retain_mut(|child| matches!(child.try_wait(), Ok(None)));
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
        if let Some(mut gen) = st.gen.take() {
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
    fn abandon(&self) {
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

    /// Starts a worker process and waits until it is ready.
    fn start_worker(&self) -> Result<Gen, Error> {
        let cfg = &self.shared.cfg;
        let name = cfg.named.then(|| super::names::fresh(self.index));
        let shm = Mapping::create(cfg.layout, cfg.max_payload, name.as_deref())?;
        let unlink = || {
            if let Some(name) = &name {
                let _ = rustix::shm::unlink(name.as_str());
            }
        };
        let mut cmd = match cfg.prefix.split_first() {
            None => Command::new(&cfg.exe),
            Some((program, args)) => {
                let mut cmd = Command::new(program);
                cmd.args(args).arg(&cfg.exe);
                cmd
            }
        };
        let locator = match &name {
            Some(name) => Locator::Named(name.clone()),
            None => Locator::Stdin,
        };
        let host_pid = std::process::id();
        let handover = Handover {
            version: shm::VERSION,
            locator: locator.clone(),
            lane: self.index,
            spin: cfg.spin,
            heartbeat: cfg.heartbeat,
            lifeline: (!cfg.prefix.is_empty()).then_some(LIFELINE_FD),
            host_pid: cfg.prefix.is_empty().then_some(host_pid as i32),
        };
        // Everything on the command line, which every wrapper passes on
        // (see `handover.rs`).
        cmd.args(handover.to_args());
        match locator {
            Locator::Stdin => {
                let fd = shm.fd().try_clone().map_err(|e| {
                    unlink();
                    Error::of(
                        ErrorKind::Startup,
                        format!("could not hand the mapping to a worker: {e}"),
                    )
                })?;
                cmd.stdin(Stdio::from(fd));
            }
            Locator::Named(_) => {
                cmd.stdin(Stdio::null());
            }
        }
        if !cfg.prefix.is_empty() {
            // Behind a wrapper the worker is not our child: hand it the
            // lifeline and arm the parent-death signal on the wrapper.
            // Without one, the worker arms its own death signal and checks
            // that its parent is still us (its hand-over's host pid), so no hook runs
            // between fork and exec, and std can spawn with posix_spawn
            // (vfork) instead of copying this process's page tables with
            // fork: start-up is much faster for a big host.
            let lifeline = lifeline()?;
            // The closure allocates nothing and takes no lock.
            // SAFETY: it runs in the forked child before exec and only makes
            // async-signal-safe raw system calls (fcntl/dup2, prctl, getppid).
            unsafe {
                cmd.pre_exec(move || {
                    // The lifeline's read end on a fixed number, without
                    // close-on-exec (dup2 onto itself would keep the flag).
                    if lifeline == LIFELINE_FD {
                        if libc::fcntl(lifeline, libc::F_SETFD, 0) < 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    } else if libc::dup2(lifeline, LIFELINE_FD) < 0 {
                        return Err(std::io::Error::last_os_error());
                    }
                    rustix::process::set_parent_process_death_signal(Some(
                        rustix::process::Signal::KILL,
                    ))?;
                    // The host may have died before the signal was armed.
                    match rustix::process::getppid() {
                        Some(parent) if parent.as_raw_nonzero().get() as u32 == host_pid => Ok(()),
                        _ => Err(std::io::Error::other("the host exited")),
                    }
                });
            }
        }
        let mut child = cmd.spawn().map_err(|e| {
            unlink();
            Error::of(
                ErrorKind::Startup,
                format!(
                    "worker {} could not be started ({}): {e}",
                    self.index,
                    describe_command(cfg)
                ),
            )
        })?;
        let pid = child.id();
        let control = shm.control();
        let deadline = Instant::now() + cfg.start_timeout;
        loop {
            // Acquire: pairs with the worker's Release store of READY.
            if control.worker_state.load(Ordering::Acquire) == shm::READY {
                break;
            }
            if let Ok(Some(status)) = child.try_wait() {
                unlink();
                return Err(Error::of(
                    ErrorKind::Startup,
                    format!(
                        "worker {} (pid {pid}) {} before it was ready ({}){}",
                        self.index,
                        describe_exit(status),
                        describe_command(cfg),
                        startup_hint(status, !cfg.prefix.is_empty())
                    ),
                ));
            }
            if Instant::now() >= deadline || self.shared.abandoned.load(Ordering::Acquire) {
                let _ = child.kill();
                let _ = child.wait();
                unlink();
                return Err(Error::of(
                    ErrorKind::Startup,
                    format!(
                        "worker {} (pid {pid}) was not ready within {:?} and was killed ({}); \
                         does the program call knitting::init() first thing in main?",
                        self.index,
                        cfg.start_timeout,
                        describe_command(cfg)
                    ),
                ));
            }
            let seen = control.host_bell.word.load(Ordering::Acquire);
            if control.worker_state.load(Ordering::Acquire) != shm::READY {
                futex::wait(
                    &control.host_bell.word,
                    seen,
                    Some(Duration::from_millis(2)),
                );
            }
        }
        // The worker opened the object (and unlinked it itself); make sure
        // no name is left even if it could not.
        unlink();
        let shm = Arc::new(shm);
        watch_exit(pid, &shm);
        let now = Instant::now();
        Ok(Gen {
            shm,
            child,
            pid,
            req_head: 0,
            resp_tail: 0,
            req_ring: Ring::new(cfg.layout.arena),
            inflight: VecDeque::new(),
            front_since: now,
            beat: 0,
            beat_since: now,
            broken: false,
            answers: Vec::new(),
        })
    }
}

/// Rings the host bell of `shm` the moment process `pid` exits, so that the
/// reactor notices a dead worker at once rather than on its next poll: a
/// small thread waits on the process's pidfd (it ends when the process
/// does, however it ends). Without pidfds (Linux before 5.3) the reactor's
/// poll is all there is.
fn watch_exit(pid: u32, shm: &Arc<Mapping>) {
    use rustix::{
        event::{poll, PollFd, PollFlags},
        process::{pidfd_open, Pid, PidfdFlags},
    };
    let Some(pidfd) =
        Pid::from_raw(pid as i32).and_then(|p| pidfd_open(p, PidfdFlags::empty()).ok())
    else {
        return;
    };
    let shm = Arc::clone(shm);
    let _ = std::thread::Builder::new()
        .name("knitting-exit-watch".into())
        .stack_size(64 << 10)
        .spawn(move || {
            let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
            // Readable once the process has exited; EINTR just retries.
            while let Ok(0) | Err(rustix::io::Errno::INTR) = poll(&mut fds, None) {}
            bell::ring(&shm.control().host_bell);
        });
}

/// The file descriptor number on which a worker finds the lifeline.
const LIFELINE_FD: i32 = 3;

/// The read end of this process's lifeline: a pipe whose write end only
/// the host holds, so that every worker sees end-of-file the moment the host
/// dies, however it dies and whatever stands between them. The parent-death
/// signal covers a worker that is the host's direct child; behind a command
/// prefix (bwrap, systemd-run) the worker's parent is the wrapper, and the
/// lifeline is what tells it. Made once per process; both ends live until
/// the process exits.
fn lifeline() -> Result<i32, Error> {
    use std::os::fd::{AsRawFd, IntoRawFd};
    static LIFELINE: std::sync::OnceLock<Result<i32, String>> = std::sync::OnceLock::new();
    LIFELINE
        .get_or_init(|| {
            let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
                .map_err(|e| format!("could not make the workers' lifeline pipe: {e}"))?;
            let fd = read.as_raw_fd();
            // Kept open for the life of the process, on purpose.
            let _ = read.into_raw_fd();
            let _ = write.into_raw_fd();
            Ok(fd)
        })
        .clone()
        .map_err(|e| Error::of(ErrorKind::Startup, e))
}

struct Sleep {
    shm: Arc<Mapping>,
    seen: u32,
    timeout: Duration,
}

/// Gives a killed worker a few milliseconds to be reaped, so that the
/// reactor starts its replacement on its next round rather than after a
/// poll interval; never blocks longer (the reactor reaps it later if need
/// be).
fn reap_soon(child: &mut Child) {
    for _ in 0..50 {
        if let Ok(Some(_)) | Err(_) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_micros(100));
    }
}

/// Asks a worker to exit once its requests are done; kills it if it takes
/// too long.
fn stop_worker(mut gen: Gen) {
    let control = gen.shm.control();
    // Release suffices: the unconditional ring below bumps the bell word
    // after this store, and a worker that sees the bump (its Acquire load
    // in `bell::arm`, or a futex wake) then sees STOP; nothing else orders
    // against this word, so SeqCst would add nothing.
    control.host_ctl.store(shm::STOP, Ordering::Release);
    bell::ring(&control.worker_bell);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match gen.child.try_wait() {
            Ok(Some(_)) | Err(_) => return,
            Ok(None) if Instant::now() >= deadline => {
                let _ = gen.child.kill();
                let _ = gen.child.wait();
                return;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
        }
    }
}

/// "exited with code 3", "was killed by signal 11 (SIGSEGV)".
pub(crate) fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exited with code {code}");
    }
    match status.signal() {
        Some(signal) => {
            let name = match signal {
                1 => " (SIGHUP)",
                2 => " (SIGINT)",
                4 => " (SIGILL)",
                6 => " (SIGABRT)",
                7 => " (SIGBUS)",
                8 => " (SIGFPE)",
                9 => " (SIGKILL)",
                11 => " (SIGSEGV)",
                13 => " (SIGPIPE)",
                15 => " (SIGTERM)",
                31 => " (SIGSYS)",
                _ => "",
            };
            let core = if status.core_dumped() {
                ", core dumped"
            } else {
                ""
            };
            format!("was killed by signal {signal}{name}{core}")
        }
        None => format!("ended ({status})"),
    }
}

fn startup_hint(status: ExitStatus, prefixed: bool) -> &'static str {
    match status.code() {
        Some(super::worker::EXIT_STARTUP) => "; its reason is on stderr",
        Some(_) if prefixed => {
            "; can the command prefix run the worker executable (a sandbox that hides its \
             directory, a missing binary)? The prefix's message is on stderr"
        }
        Some(_) => {
            "; a worker runs the same program: does main call knitting::init() first \
             (or the test file use knitting::init_before_main!)?"
        }
        None => "",
    }
}

fn describe_command(cfg: &Config) -> String {
    let mut parts: Vec<String> = cfg
        .prefix
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    parts.push(cfg.exe.display().to_string());
    parts.join(" ")
}

/// Errors are not `Clone` (their sources are boxed); a lane-wide failure
/// is handed to each call as a fresh error with the same kind and message.
fn clone_error(err: &Error) -> Error {
    Error::of(err.kind(), err.message().to_owned())
}
