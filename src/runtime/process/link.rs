//! The host's side of one worker's mapping: sending calls into the
//! request ring and arena, and taking responses out of the response ring
//! and arena, with every worker-written word read once and checked
//! (`check.rs`) before use. The rings themselves are `channel.rs`.

use std::{
    collections::VecDeque,
    process::Child,
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    task::Waker,
    time::{Duration, Instant},
};

use super::{
    arena::{Ring, Span},
    bell,
    channel::{Consumer, Producer, Request, Requests, Responses, Storage as _},
    check::{Answer, Violation},
    courier::Courier,
    host::Config,
    shm::{self, Dir, Mapping, TaskKey},
    stream::StreamReader,
};
use crate::{
    call::cell::{Encoded, JobRef, RemoteOps},
    error::wire::WireError,
    payload::{
        shared::region::{self as shared, Region},
        stream::{self, Sink},
        Response,
    },
    Error, ErrorKind,
};

/// A call that has not been sent yet.
pub(crate) enum Queued {
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
        /// The shared buffers the arguments name.
        shared: Vec<Arc<Region>>,
        /// The channel of the stream they carry, if any.
        stream: Option<Arc<dyn Sink>>,
    },
}

impl Queued {
    pub(crate) fn job(&self) -> &JobRef {
        match self {
            Queued::Fresh { job, .. } | Queued::Spilled { job, .. } => job,
        }
    }
}

/// A call sent to the worker, waiting for its response.
pub(crate) struct InFlight {
    pub(crate) job: JobRef,
    pub(crate) ops: &'static RemoteOps,
    pub(crate) task: TaskKey,
    /// Its hard time limit, counted from when it reaches the front.
    pub(crate) hard: Option<Duration>,
    /// The shared buffers its arguments named: the only ones its result
    /// may name.
    pub(crate) shared: Vec<Arc<Region>>,
    /// An async call that its hard time limit ended here: the worker was
    /// told to drop its future, and is killed only if it does not answer
    /// within the limit again.
    pub(crate) cut: bool,
    /// A streaming call: where its items go.
    pub(crate) stream: Option<Arc<dyn Sink>>,
    /// It delivered an item: it ran, so it is never sent again.
    pub(crate) delivered: bool,
    /// When the host first saw that the worker took it (the worker's
    /// count of requests taken, or the call at the front): its hard time
    /// limit counts from here, and it is never sent again.
    pub(crate) taken: Option<Instant>,
}

/// One worker process and the host's side of its mapping.
pub(crate) struct Gen {
    pub(crate) shm: Arc<Mapping>,
    pub(crate) child: Child,
    pub(crate) pid: u32,
    /// The request ring's producer: requests published.
    req: Producer,
    /// The response ring's consumer: responses consumed.
    resp: Consumer,
    /// Where the arguments of the calls in flight are, and where the next
    /// go: the host's own record, never read back from the mapping.
    pub(crate) req_ring: Ring,
    pub(crate) inflight: VecDeque<InFlight>,
    /// Since when the front call in flight is the one the worker runs (it
    /// serves requests in order): its hard time limit counts from here,
    /// from host-side facts only.
    pub(crate) front_since: Instant,
    /// The heartbeat word as last seen, and since when it has not moved
    /// while calls were in flight.
    pub(crate) beat: u64,
    pub(crate) beat_since: Instant,
    /// The worker's taken-requests word as last seen, and since when it
    /// has not moved while the worker held calls it had not taken.
    taken_seen: u64,
    taken_since: Instant,
    /// The worker broke the protocol and was killed; nothing more is read.
    pub(crate) broken: bool,
    /// Scratch for the response slots of one take.
    pub(crate) answers: Vec<Answer>,
    /// Where shared buffers' descriptors go to this worker; `None` when
    /// they cannot reach it (named mode).
    pub(crate) courier: Option<Courier>,
    /// What the worker said it enforces when it started.
    pub(crate) sandbox: Option<crate::runtime::permissions::Enforcement>,
    /// When this side was made (before the worker started), on the shared
    /// clock: the worker's busy time cannot exceed its life since.
    born: u64,
    /// The reader of the worker's stream area.
    pub(crate) stream: StreamReader,
}

impl Gen {
    /// The time the worker reports it spent running calls, clamped to its
    /// lifetime (see [`crate::time::busy_time`]): worker-written words, so
    /// they decide nothing but this figure.
    pub(crate) fn busy(&self) -> std::time::Duration {
        let control = self.shm.control();
        let words = crate::time::Busy {
            total: &*control.busy_total,
            since: &*control.busy_since,
        };
        words.read(self.born)
    }

    /// The host's side of a fresh mapping `shm`, shared with worker `pid`.
    pub(crate) fn new(
        shm: Arc<Mapping>,
        child: Child,
        pid: u32,
        arena: usize,
        stream_bound: usize,
    ) -> Self {
        let now = Instant::now();
        Self {
            stream: StreamReader::new(&shm, stream_bound),
            shm,
            child,
            pid,
            req: Producer::new(),
            resp: Consumer::new(),
            req_ring: Ring::new(arena),
            inflight: VecDeque::new(),
            front_since: now,
            beat: 0,
            beat_since: now,
            taken_seen: 0,
            taken_since: now,
            broken: false,
            answers: Vec::new(),
            courier: None,
            sandbox: None,
            born: crate::time::now_nanos(),
        }
    }

    pub(crate) fn slots(&self) -> u64 {
        self.shm.layout().slots as u64
    }

    /// Responses consumed so far (the host's own count): the call in
    /// flight at position `i` is request `resp_tail() + i`.
    pub(crate) fn resp_tail(&self) -> u64 {
        self.resp.tail()
    }

    /// Writes the consumed count again if a task overwrote it (the worker
    /// ignores one that makes no sense, and would wait for room). True when
    /// it did: the worker must be rung.
    pub(crate) fn repair_consumed(&self) -> bool {
        self.resp.repair(&Responses(&self.shm))
    }

    /// Sends `q` now if the ring and the arena have room; hands it back
    /// otherwise.
    pub(crate) fn try_send(&mut self, q: Queued, cfg: &Config) -> Option<Queued> {
        let (max_payload, pool_hard) = (cfg.max_payload, cfg.hard_timeout);
        // Request slot `seq % slots` is free once response `seq - slots`
        // was consumed (the worker answers in order).
        if self.broken || self.req.head() - self.resp.tail() >= self.slots() {
            return Some(q);
        }
        match q {
            Queued::Fresh { job, ops, task } => {
                let room = self.req_ring.room();
                if room.len == 0 {
                    // The arena is full: encoding now would only spill the
                    // arguments into a buffer of their own, to be copied
                    // again later. Wait for room instead.
                    return Some(Queued::Fresh { job, ops, task });
                }
                let mut window = self
                    .shm
                    .window(Dir::Request, room.offset, room.len.min(max_payload))
                    .expect("request room lies inside the arena");
                let ((encoded, shared), stream) = stream::collecting(|| {
                    shared::collecting(|| job.encode(ops, &mut window, max_payload))
                });
                match encoded {
                    Encoded::Cancelled | Encoded::Failed => None,
                    Encoded::Written(n) => {
                        if let Err(err) = self.hand_over(&shared) {
                            job.fail(err);
                            return None;
                        }
                        let span = self.req_ring.commit(room, n);
                        self.publish(job, ops, task, span, pool_hard, (shared, stream));
                        None
                    }
                    Encoded::Spilled(bytes) => self.try_send(
                        Queued::Spilled {
                            job,
                            ops,
                            task,
                            bytes,
                            shared,
                            stream,
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
                shared,
                stream,
            } => {
                let Some(room) = self.req_ring.reserve(bytes.len()) else {
                    return Some(Queued::Spilled {
                        job,
                        ops,
                        task,
                        bytes,
                        shared,
                        stream,
                    });
                };
                if let Err(err) = self.hand_over(&shared) {
                    job.fail(err);
                    return None;
                }
                let mut window = self
                    .shm
                    .window(Dir::Request, room.offset, bytes.len())
                    .expect("request room lies inside the arena");
                window.write(0, &bytes);
                let span = self.req_ring.commit(room, bytes.len());
                self.publish(job, ops, task, span, pool_hard, (shared, stream));
                None
            }
        }
    }

    /// Sends the worker the descriptors of a call's shared buffers that it
    /// does not hold yet, before the call is published (see `courier.rs`).
    fn hand_over(&mut self, shared: &[Arc<Region>]) -> Result<(), Error> {
        if shared.is_empty() {
            return Ok(());
        }
        match &mut self.courier {
            Some(courier) => courier.send(shared),
            None => Err(Error::of(
                ErrorKind::Unsupported,
                "a SharedBuffer cannot reach a worker that maps its lane by name \
                 (named_shared_memory): there is no descriptor socket to send it on; \
                 use the default hand-over on fd 0",
            )),
        }
    }

    fn publish(
        &mut self,
        job: JobRef,
        ops: &'static RemoteOps,
        task: TaskKey,
        span: Span,
        pool_hard: Option<Duration>,
        (shared, stream): (Vec<Arc<Region>>, Option<Arc<dyn Sink>>),
    ) {
        let index = (self.req.head() % self.slots()) as usize;
        // Relaxed: published with the slot (written before it, see
        // `Producer::publish`); a call aborted before it was sent starts
        // aborted.
        self.shm.aborts()[index].store(u32::from(job.is_aborted()), Ordering::Relaxed);
        let request = Request {
            task: task.id,
            shape: task.shape,
            offset: span.offset as u64,
            len: span.len as u64,
        };
        // SYNC POINT (in `send`): the slot, the abort word and the argument
        // bytes, for the worker's Acquire load of the slot's number; the
        // counter by the bell protocol's RMW.
        self.req.send(&Requests(&self.shm), &request);
        if self.inflight.is_empty() {
            let now = Instant::now();
            self.front_since = now;
            self.beat_since = now;
            self.taken_since = now;
        }
        let hard = job.hard_timeout().or(pool_hard);
        self.inflight.push_back(InFlight {
            job,
            ops,
            task,
            hard,
            shared,
            cut: false,
            stream,
            delivered: false,
            taken: None,
        });
        let control = self.shm.control();
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
    pub(crate) fn drain(
        &mut self,
        scratch: &mut Vec<u8>,
        max_payload: usize,
        wakers: &mut Vec<Waker>,
        completed: &AtomicUsize,
    ) -> Result<usize, Violation> {
        if self.broken {
            return Ok(0);
        }
        let responses = Responses(&self.shm);
        let taken = self.resp.take_checked(
            &responses,
            self.req.head(),
            max_payload,
            self.shm.layout().arena,
            &mut self.answers,
        )?;
        // The items first, read after the responses: every item a call
        // sent before its response is seen, and reaches its reader before
        // the call ends.
        let first = self.resp.tail();
        self.stream
            .drain(
                &self.shm,
                &mut self.inflight,
                first,
                max_payload,
                scratch,
                wakers,
            )
            .map_err(|why| Violation {
                why,
                answered: taken,
            })?;
        if taken == 0 {
            return Ok(0);
        }
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
            let window = self
                .shm
                .window(Dir::Response, offset as usize, len as usize)
                .ok_or_else(|| violation("response range check failed".to_owned()))?;
            let outcome = if status == u64::from(shm::STATUS_OK) {
                Ok(Response::new(window, scratch))
            } else {
                let mut error = Response::new(window, scratch);
                Err(crate::payload::codec::decode::<WireError>(error.copied())
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
            // Counted before the call completes: a caller that sees its call
            // done sees it in `stats()` too. Relaxed: statistics only (the
            // completion's Release carries it to the caller).
            completed.fetch_add(1, Ordering::Relaxed);
            // The result may name only the shared buffers this call sent.
            let (waker, forged) =
                shared::replying(call.shared, || call.job.complete(call.ops, outcome));
            wakers.extend(waker);
            if let Some(stream) = call.stream {
                stream.end();
            }
            self.req_ring.pop();
            self.resp.advance();
            self.front_since = Instant::now();
            if forged {
                // Its call failed (a codec error naming the buffer); the
                // worker goes, and the calls behind fail or replay as for
                // any broken worker.
                return Err(Violation {
                    why: format!(
                        "response {seq} names a shared buffer the host did not send in that call"
                    ),
                    answered: taken - i - 1,
                });
            }
        }
        // SYNC POINT (in `publish`): the worker reuses the payloads of
        // consumed responses only after this RMW, which is also the
        // ringer's half of the bell protocol for a worker waiting for room.
        self.resp.publish(&responses);
        bell::ring_if_sleeping(&self.shm.control().worker_bell);
        Ok(taken)
    }

    /// True when the next response's slot holds it, or the worker wrote
    /// stream items the host has not read.
    pub(crate) fn response_ready(&self) -> bool {
        let seq = self.resp.tail();
        (seq < self.req.head() && Consumer::is_published(&Responses(&self.shm), seq))
            || self.stream.ready(&self.shm)
    }

    /// Notes when each call in flight was taken by the worker, from its
    /// count of requests taken: a worker-written word, read once and
    /// clamped to what was sent, which decides only when a call's hard
    /// limit starts and whether the call may be sent again. (A worker that
    /// lies about it can only fail its own calls, or escape a limit it
    /// could escape anyway by never starting them.) The front call counts
    /// as taken.
    pub(crate) fn note_taken(&mut self, now: Instant) {
        // Relaxed: a hint, compared with host-side counts only.
        let taken = Requests(&self.shm)
            .tail()
            .load(Ordering::Relaxed)
            .min(self.req.head());
        let first = self.resp.tail();
        let front_since = self.front_since;
        for (i, call) in self.inflight.iter_mut().enumerate() {
            if i > 0 && first + i as u64 >= taken {
                break;
            }
            call.taken
                .get_or_insert(if i == 0 { front_since.min(now) } else { now });
        }
    }

    /// The heartbeat rule: true when the worker holds calls and its
    /// heartbeat has not moved for `limit`.
    pub(crate) fn unresponsive(&mut self, limit: Duration, now: Instant) -> bool {
        // Relaxed: a sign of life, compared with its last value only.
        let beat = self.shm.control().heartbeat.load(Ordering::Relaxed);
        if beat != self.beat || self.inflight.is_empty() {
            self.beat = beat;
            self.beat_since = now;
            return false;
        }
        now.saturating_duration_since(self.beat_since) >= limit
    }

    /// The stall rule: true when the worker holds calls, has taken none
    /// of them (its taken-requests word has not reached the first call in
    /// flight), and that word has not moved for `limit`. Its serving loop
    /// is stuck (a task wrote over a request slot or its bell, say),
    /// whatever its heartbeat says. A worker busy with a long call took
    /// that call, so the rule leaves it alone.
    pub(crate) fn stalled(&mut self, limit: Duration, now: Instant) -> bool {
        // Relaxed: a sign of progress, compared with host-side counts only.
        let taken = Requests(&self.shm).tail().load(Ordering::Relaxed);
        if taken != self.taken_seen || self.inflight.is_empty() || taken > self.resp.tail() {
            self.taken_seen = taken;
            self.taken_since = now;
            return false;
        }
        now.saturating_duration_since(self.taken_since) >= limit
    }

    /// Raises the abort word of the call in flight at `position`: to
    /// [`shm::ABORT_ENDED`] when the call `ended` on this side, else to
    /// [`shm::ABORT_RAISED`]; then rings the worker, which looks at its
    /// calls' abort words when it wakes.
    pub(crate) fn raise(&self, position: usize, ended: bool) {
        let seq = self.resp_tail() + position as u64;
        let index = (seq % self.slots()) as usize;
        let word = if ended {
            shm::ABORT_ENDED
        } else {
            shm::ABORT_RAISED
        };
        // Relaxed: a flag without data; the ring below wakes a worker that
        // sleeps, and the worker reads the flag after its wake-up.
        self.shm.aborts()[index].store(word, Ordering::Relaxed);
        bell::ring(&self.shm.control().worker_bell);
    }

    /// Fails every call in flight with the error `make` builds.
    pub(crate) fn fail_inflight(&mut self, make: impl Fn() -> Error) -> usize {
        let n = self.inflight.len();
        for call in self.inflight.drain(..) {
            call.job.fail(make());
        }
        n
    }
}

/// A call the worker cannot have started, to be sent again: encoded anew
/// from the caller's own arguments, which stayed in host memory (the
/// worker could have rewritten the request arena). `None` when the call
/// ended meanwhile (cancelled, timed out).
pub(crate) fn replay(call: InFlight) -> Option<Queued> {
    call.job.unsend().then_some(Queued::Fresh {
        job: call.job,
        ops: call.ops,
        task: call.task,
    })
}
