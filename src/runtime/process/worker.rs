//! The worker process: recognises itself at start-up, maps the lane the
//! host made, and runs requests until the host says stop.
//!
//! The worker trusts the host (it made the mapping and started this
//! process), but still checks what it reads so that a host bug ends in a
//! clear message rather than undefined behaviour.

use std::{
    collections::HashMap,
    hash::BuildHasherDefault,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use super::{
    arena::{Ring, Span},
    bell,
    channel::{Consumer, Producer, Request, Requests, Response, Responses},
    courier::Inbox,
    futex,
    handover::{self, Handover},
    shm::{self, Dir, Mapping},
};
use crate::{
    payload::{self, codec, Encode, Reply as _, Window},
    role::RuntimeKind,
    task::bootstrap::{self, BootContext},
    transport::wake::spin::Backoff,
    Error, ErrorKind, Signal,
};

/// Exit code of a worker that could not start (its reason is on stderr).
pub(crate) const EXIT_STARTUP: i32 = 97;

/// Enters the worker loop if this process was started as a process worker;
/// returns at once otherwise. See [`crate::init`].
///
/// A process started as a worker (its first argument is the hand-over
/// marker) never returns from here: it serves calls, or exits with
/// [`EXIT_STARTUP`] and a message when its hand-over is incomplete.
pub(crate) fn enter_if_worker() {
    let args = handover::own_args();
    let Some(handover) = Handover::from_args(&args) else {
        return;
    };
    crate::role::mark_process_worker();
    let code = match handover.and_then(start) {
        Ok(lane) => lane.run(),
        Err(message) => {
            eprintln!(
                "knitting worker (pid {}): {message}; this process was started as a knitting \
                 worker and does not run main",
                std::process::id()
            );
            EXIT_STARTUP
        }
    };
    std::process::exit(code)
}

fn start(handover: Handover) -> Result<WorkerLane, String> {
    let Handover {
        locator,
        lane,
        spin,
        heartbeat,
        lifeline,
        host_pid,
        limits,
        workers,
        boot,
        sandbox,
        diagnostics,
        ..
    } = handover;
    if let Some(fd) = lifeline {
        watch_lifeline(fd)?;
    }
    // Die with the host. The spawning side set this too, but a command
    // prefix (bwrap, systemd-run) stands between: here the parent is the
    // prefix, which dies with the host itself.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL));
    if let Some(host) = host_pid {
        // Without a prefix (the only case the host passes its pid) the
        // parent is the host; another parent means the host died before
        // the death signal was armed, and this worker was re-parented.
        let parent = rustix::process::getppid().map(|p| p.as_raw_nonzero().get());
        if parent != Some(host) {
            return Err("the host exited before this worker started".to_owned());
        }
    }
    tune_allocator();
    let (fd, socket) = shm::open_worker_fd(&locator)?;
    let (map, max_payload) = Mapping::open(fd)?;
    let map = std::sync::Arc::new(map);

    let mut table = HashMap::default();
    for info in crate::task::tasks() {
        if let Some(entry) = info.worker_entry() {
            table.insert(info.id().as_u64(), entry);
        }
    }
    crate::task::panics::install_hook();
    if let Some((id, len)) = boot {
        let ctx = BootContext::new(lane, workers, RuntimeKind::Processes);
        run_bootstrap(&map, id, len, &ctx);
    }
    // After the bootstrap, which may install a subscriber of its own.
    if let (false, Some(socket)) = (diagnostics.is_empty(), &socket) {
        super::forward::install(socket);
    }
    beat(std::sync::Arc::clone(&map), heartbeat)?;
    // Last, so that they bound the tasks and not the set-up above.
    super::lockdown::set_limits(limits)?;
    let enforced = match &sandbox {
        Some(sandbox) => super::lockdown::lock_down(sandbox)?.to_word(),
        None => 0,
    };
    let control = map.control();
    // Relaxed: published by the Release store of READY below.
    control.sandbox.store(enforced, Ordering::Relaxed);
    // Release: the host's Acquire load of READY sees a worker that is set up.
    control.worker_state.store(shm::READY, Ordering::Release);
    bell::ring(&control.host_bell);
    Ok(WorkerLane {
        req: Consumer::new(),
        out: Outbox {
            chan: Producer::new(),
            ring: Ring::new(map.layout().arena),
            owed_since: None,
            last_publish: Instant::now(),
            max_payload,
        },
        map,
        table,
        spin,
        inbox: Some(Box::new(Inbox::new(socket))),
    })
}

/// Runs the pool's bootstrap (id `id`, its data the first `len` bytes of
/// the request arena) before the worker says it is ready. On a failure the
/// message goes to the host (see [`shm::FAILED`]) and the worker exits.
fn run_bootstrap(map: &Mapping, id: u64, len: usize, ctx: &BootContext) {
    let outcome = match map.request_bytes(0, len) {
        None => Err("its data does not fit in the arena".to_owned()),
        Some(data) => {
            bootstrap::find(id, "of that name").and_then(|info| bootstrap::run(info, data, ctx))
        }
    };
    let Err(message) = outcome else {
        return;
    };
    let bytes = message.as_bytes();
    let bytes = &bytes[..bytes.len().min(map.layout().arena.saturating_sub(8))];
    if let Some(mut window) = map.window(Dir::Response, 0, 8 + bytes.len()) {
        window.write(0, &(bytes.len() as u64).to_le_bytes());
        window.write(8, bytes);
    }
    let control = map.control();
    // SYNC POINT: Release: the host's Acquire load of FAILED sees the
    // message written above.
    control.worker_state.store(shm::FAILED, Ordering::Release);
    bell::ring(&control.host_bell);
    // The host reports the message (naming the bootstrap and this worker):
    // nothing to add on stderr.
    std::process::exit(EXIT_STARTUP)
}

/// Shows the host that this worker process runs: a thread of its own bumps
/// the heartbeat word every `every`, whatever the tasks do. A process that
/// is stopped (`SIGSTOP`), frozen or not scheduled stops beating, and the
/// host replaces it (see `liveness_timeout`).
fn beat(map: std::sync::Arc<Mapping>, every: Duration) -> Result<(), String> {
    std::thread::Builder::new()
        .name("knitting-heartbeat".into())
        .stack_size(64 << 10)
        .spawn(move || loop {
            // Relaxed: a sign of life, not a publication of data.
            map.control().heartbeat.fetch_add(1, Ordering::Relaxed);
            std::thread::sleep(every);
        })
        .map(drop)
        .map_err(|e| format!("could not start the heartbeat thread: {e}"))
}

/// Hashes task ids by themselves: they are FNV-1a hashes already, and the
/// lookup is on every request.
#[derive(Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used for `u64` keys; fold anything else in.
        for &b in bytes {
            self.0 = (self.0 << 8) ^ u64::from(b) ^ (self.0 >> 56);
        }
    }

    fn write_u64(&mut self, id: u64) {
        self.0 = id;
    }
}

/// Exit code of a worker whose host died.
const EXIT_HOST_GONE: i32 = 98;

/// Exits this worker as soon as the host dies: a thread blocks reading the
/// lifeline pipe, whose only writer is the host, and sees end-of-file when
/// the host is gone (even while a task runs, and whatever wrapper stands
/// between the two).
fn watch_lifeline(fd: i32) -> Result<(), String> {
    use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd};
    // SAFETY: checking a descriptor number, without taking ownership: if
    // it is not open, fstat fails and nothing else happens.
    let probe = unsafe { BorrowedFd::borrow_raw(fd) };
    match rustix::fs::fstat(probe) {
        Ok(stat)
            if rustix::fs::FileType::from_raw_mode(stat.st_mode) == rustix::fs::FileType::Fifo => {}
        // A wrapper that did not keep the descriptor (a container that
        // replaces them): the parent-death signal must do.
        _ => return Ok(()),
    }
    // SAFETY: the host put its lifeline's read end on this descriptor
    // number for us (pre_exec dup2), it is open and a pipe (checked above),
    // and nothing else in this process owns it.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    std::thread::Builder::new()
        .name("knitting-lifeline".into())
        .spawn(move || {
            let mut buf = [0u8; 1];
            // The host never writes: this returns on end-of-file (the host
            // died) or an error, and either way the worker has no host.
            loop {
                match rustix::io::read(&fd, &mut buf) {
                    Err(rustix::io::Errno::INTR) => continue,
                    _ => std::process::exit(EXIT_HOST_GONE),
                }
            }
        })
        .map(drop)
        .map_err(|e| format!("could not start the lifeline thread: {e}"))
}

/// Keeps freed memory in the worker for the next call.
///
/// A worker runs the same tasks over and over; with glibc's defaults a
/// task that allocates a few MiB (decoded arguments, its result) gets fresh
/// pages from the kernel on every call and gives them back on every free,
/// and the page faults cost several times the work (measured: a 1 MiB round
/// copy took 4x longer). Raising the mmap and trim thresholds makes such
/// buffers come back from the heap. Only the worker process is tuned, never
/// the host; with another global allocator this has no effect.
fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: `mallopt` only sets glibc malloc parameters; it is called at
    // start-up, before any task runs, while the worker is single-threaded.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
    }
}

struct WorkerLane {
    map: std::sync::Arc<Mapping>,
    table: HashMap<u64, crate::task::WorkerEntry, BuildHasherDefault<IdHasher>>,
    spin: Duration,
    /// The request ring's consumer: requests taken so far.
    req: Consumer,
    out: Outbox,
    /// The shared buffers the host sent (taken while a call runs).
    inbox: Option<Box<dyn payload::shared::region::Source>>,
}

/// The worker's side of the response ring.
#[derive(Debug)]
struct Outbox {
    max_payload: usize,
    /// The response ring's producer: responses published, and consumed as
    /// far as this side knows (the last `resp_tail` that made sense).
    chan: Producer,
    /// Where the published, unconsumed responses are, and where the next
    /// one goes.
    ring: Ring,
    /// Since when published responses wait for a ring (see `RING_DELAY`).
    owed_since: Option<Instant>,
    /// When the last response was published.
    last_publish: Instant,
}

/// How long the response of a short call may wait for its ring while the
/// worker goes straight on to the next request: a burst of short calls then
/// costs the host one wake-up (whose thread would land on the worker's
/// core), not one per response. A worker about to sleep rings first; a
/// response published this long after the previous one (a call that ran
/// this long, or the first after a pause) rings at once, and so does one
/// published when a ring has been owed this long. The worst case, a short
/// call followed by a long one, waits for the reactor's poll (5 ms while
/// calls are in flight) if its caller is not spinning on it. One clock read
/// per response.
const RING_DELAY: Duration = Duration::from_micros(50);

impl WorkerLane {
    /// Serves requests until the host says stop; returns the exit code.
    fn run(mut self) -> i32 {
        let mut busy = None;
        loop {
            if self.out.owed_since.is_some() && !request_published(&self.map, self.req.tail()) {
                self.out.ring_host(&self.map);
            }
            if busy.is_none() && request_published(&self.map, self.req.tail()) {
                busy = Some(self.busy().begin());
            }
            if self.take_one() {
                continue;
            }
            if let Some(since) = busy.take() {
                self.busy().end(since);
            }
            if self.idle_wait() {
                return 0;
            }
        }
    }

    /// The control block's busy words (a task may skew its own lane's).
    fn busy(&self) -> crate::time::Busy<'_, std::sync::atomic::AtomicU64> {
        let control = self.map.control();
        crate::time::Busy {
            total: &control.busy_total,
            since: &control.busy_since,
        }
    }

    /// Runs the next request if there is one.
    fn take_one(&mut self) -> bool {
        let requests = Requests(&self.map);
        // SYNC POINT (in `next`): Acquire pairs with the host's Release
        // store of the slot's `seq`, made after the other fields and the
        // argument bytes. The slot, not `req_head`, says a request is there.
        let Some((seq, request)) = self.req.next(&requests) else {
            return false;
        };
        let Request {
            task,
            shape,
            offset,
            len,
        } = request;
        // For diagnostics only: the host frees nothing on it.
        self.req.announce(&requests);

        #[cfg(not(knitting_loom))]
        let signal = {
            let index = (seq % self.map.layout().slots as u64) as usize;
            Signal::from_word(&self.map.aborts()[index])
        };
        // Loom builds never run a worker; they only need this to compile.
        #[cfg(knitting_loom)]
        let signal = &Signal::new();
        let entry = self.table.get(&task).copied();
        let mut reply = SlotReply {
            map: &self.map,
            out: &mut self.out,
            seq,
            sent: false,
        };
        let bytes = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(offset, len)| self.map.request_bytes(offset, len));
        match (entry, bytes) {
            (Some(entry), Some(bytes)) if entry.shape == shape => {
                let inbox = self.inbox.take().unwrap_or_else(|| Box::new(Inbox::new(None)));
                let run = || (entry.run)(bytes, signal, &mut reply);
                self.inbox = payload::shared::region::serving(inbox, run).1;
            }
            (Some(entry), Some(_)) => reply.error(&entry.mismatch(shape)),
            (None, _) => reply.error(&Error::of(
                ErrorKind::UnknownTask,
                format!(
                    "the worker has no task with id {task:016x} whose arguments and result are serde types"
                ),
            )),
            (_, None) => reply.error(&Error::of(
                ErrorKind::Protocol,
                format!("request {seq} points outside the request arena ({offset}+{len})"),
            )),
        }
        if !reply.sent {
            reply.error(&Error::of(
                ErrorKind::Protocol,
                "the task entry sent no reply",
            ));
        }
        true
    }

    /// Spins, then sleeps until a request comes or the host says stop.
    /// True when it is time to exit.
    fn idle_wait(&mut self) -> bool {
        let control = self.map.control();
        let mut backoff = Backoff::new(self.spin);
        while !backoff.is_completed() {
            if request_published(&self.map, self.req.tail()) {
                return false;
            }
            backoff.snooze();
        }
        let tail = self.req.tail();
        sleep(&self.map, |map| {
            // STOP comes with an unconditional ring, so a plain load sees
            // it either here or after the wake-up it causes.
            // The RMW read orders this check after a publication that rang
            // (the bell protocol); the slot, not the counter's value, says
            // whether the request is there.
            bell::read_counter(&*map.control().req_head);
            request_published(map, tail)
                || map.control().host_ctl.load(Ordering::Acquire) == shm::STOP
        });
        // Acquire: pairs with the host's store of STOP, made after its last
        // request.
        control.host_ctl.load(Ordering::Acquire) == shm::STOP
            && !request_published(&self.map, self.req.tail())
    }
}

/// True when request `seq` is published: its slot holds it (`seq + 1`).
/// The host's `req_head` only rings the bell; a task that overwrote it
/// cannot hide a request or show a stale one.
fn request_published(map: &Mapping, seq: u64) -> bool {
    Consumer::is_published(&Requests(map), seq)
}

impl Outbox {
    /// Frees the payloads of the responses the host consumed since the last
    /// look. A `resp_tail` that makes no sense (backwards, or past what was
    /// published: a task wrote over it) frees nothing; the host rewrites it
    /// on its next take.
    fn sync_consumed(&mut self, map: &Mapping) {
        // SYNC POINT (in `sync_consumed`): Acquire; the host read the
        // payloads before it published this.
        for _ in 0..self.chan.sync_consumed(&Responses(map)) {
            self.ring.pop();
        }
    }

    /// Encodes `value` into the response arena and publishes it.
    fn send(
        &mut self,
        map: &Mapping,
        seq: u64,
        status: u32,
        encode: Encode<'_>,
    ) -> Result<(), Error> {
        loop {
            self.sync_consumed(map);
            let room = self.ring.room();
            let len = room.len.min(self.max_payload);
            let mut window = map
                .window(Dir::Response, room.offset, len)
                .expect("response room lies inside the arena");
            let n = encode(&mut window).map_err(|e| {
                Error::of(
                    ErrorKind::Codec,
                    format!("the worker could not encode the result: {e}"),
                )
            })?;
            if n <= len {
                let span = self.ring.commit(room, n);
                self.publish(map, seq, status, span);
                return Ok(());
            }
            if n > self.max_payload {
                return Err(Error::too_large("result", n, self.max_payload));
            }
            if let Some(room) = self.ring.reserve(n) {
                // Room elsewhere (the other end of the ring): encode there.
                let mut window = map
                    .window(Dir::Response, room.offset, n)
                    .expect("response room lies inside the arena");
                if encode(&mut window).is_ok_and(|m| m == n) {
                    let span = self.ring.commit(room, n);
                    self.publish(map, seq, status, span);
                    return Ok(());
                }
                continue;
            }
            // It fits once the host consumes enough: wait for that, then
            // encode again.
            let (ring, chan) = (&self.ring, &self.chan);
            sleep(map, |map| {
                // The sleeper's RMW read of the bell protocol.
                let Some(tail) = chan.poll_consumed(&Responses(map)) else {
                    return false;
                };
                let mut ring = ring.clone();
                for _ in chan.consumed()..tail {
                    ring.pop();
                }
                ring.reserve(n).is_some()
            });
        }
    }

    fn publish(&mut self, map: &Mapping, seq: u64, status: u32, span: Span) {
        let response = Response {
            status: u64::from(status),
            offset: span.offset as u64,
            len: span.len as u64,
        };
        // SYNC POINT (in `publish`): the slot's fields and the payload
        // before them, by the Release store of `seq + 1` in the slot of
        // request `seq`; then the counter, by the bell protocol's RMW.
        self.chan.publish(&Responses(map), seq, &response);
        // A call that took a while may have a waiter that stopped
        // spinning: ring now. A short one is likely part of a burst.
        let now = Instant::now();
        let gap = now.saturating_duration_since(self.last_publish);
        self.last_publish = now;
        let owed_long = self
            .owed_since
            .is_some_and(|since| now.saturating_duration_since(since) >= RING_DELAY);
        if gap >= RING_DELAY || owed_long {
            self.ring_host(map);
        } else if self.owed_since.is_none() {
            self.owed_since = Some(now);
        }
    }

    /// Rings the host for the responses published since the last ring,
    /// unless a host thread is spinning on them or the reactor is awake.
    fn ring_host(&mut self, map: &Mapping) {
        self.owed_since = None;
        let host = &map.control().host_bell;
        // A host thread spinning on responses takes them itself.
        if !bell::someone_spins(&host.spinners) {
            bell::ring_if_sleeping(host);
        }
    }
}

/// Sleeps on the worker bell until `ready` holds (checked after the
/// sleeping flag is up, so a ring cannot be missed).
fn sleep(map: &Mapping, ready: impl Fn(&Mapping) -> bool) {
    let worker_bell = &map.control().worker_bell;
    loop {
        let Some(seen) = bell::arm(&worker_bell.word, &worker_bell.sleeping, || ready(map)) else {
            return;
        };
        // The timeout only bounds the damage of a lost wake-up.
        futex::wait(&worker_bell.word, seen, Some(Duration::from_secs(1)));
        bell::disarm(&worker_bell.sleeping);
        if ready(map) {
            return;
        }
    }
}

/// The reply to request `seq`: where a task entry sends its outcome (the
/// response ring, through the outbox).
#[derive(Debug)]
struct SlotReply<'a> {
    map: &'a Mapping,
    out: &'a mut Outbox,
    seq: u64,
    sent: bool,
}

impl std::fmt::Debug for WorkerLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerLane")
            .field("req", &self.req)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}

impl payload::Reply for SlotReply<'_> {
    fn value(&mut self, encode: Encode<'_>) {
        self.sent = true;
        if let Err(err) = self.out.send(self.map, self.seq, shm::STATUS_OK, encode) {
            self.sent = false;
            self.error(&err);
        }
    }

    fn error(&mut self, err: &Error) {
        self.sent = true;
        // Why a shared buffer did not decode, if that was it.
        let explained = payload::shared::region::explained(err);
        let wire = explained.as_ref().unwrap_or(err).to_wire();
        let encode = |w: &mut Window<'_>| codec::encode_into(&wire, w);
        if self
            .out
            .send(self.map, self.seq, shm::STATUS_ERR, &encode)
            .is_ok()
        {
            return;
        }
        // Too big (a huge panic message?) or not encodable: send the kind
        // and a short message instead; that always fits.
        let short = Error::of(
            err.kind(),
            format!(
                "{} (the full error did not fit in max_payload_bytes)",
                err.message().chars().take(200).collect::<String>()
            ),
        );
        let short = short.to_wire();
        let encode = |w: &mut Window<'_>| codec::encode_into(&short, w);
        let _: Result<(), Error> = self.out.send(self.map, self.seq, shm::STATUS_ERR, &encode);
    }
}
