//! The worker process: recognises itself at start-up, maps the lane the
//! host made, and runs requests until the host says stop.
//!
//! The worker trusts the host (it made the mapping and started this
//! process), but still checks what it reads so that a host bug ends in a
//! clear message rather than undefined behaviour.

use std::{collections::HashMap, hash::BuildHasherDefault, sync::atomic::Ordering, time::Duration};

mod asyncs;
mod outbox;
mod stream;

use self::{
    asyncs::{AsyncCalls, Kept, Outcome},
    outbox::{sleep, Outbox, SlotReply},
    stream::StreamArea,
};
use super::{
    bell,
    channel::{Consumer, Request, Requests},
    courier::Inbox,
    handover::{self, Handover},
    shm::{self, Dir, Mapping},
};
use crate::{
    payload::{self, shared::region::serving, Reply as _},
    role::RuntimeKind,
    task::bootstrap::{self, BootContext},
    transport::wake::spin::Backoff,
    Error, ErrorKind,
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
        async_concurrency,
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
    // The mapping lives as long as this process: the async calls' futures
    // borrow their signals from it for good.
    let forever: &'static Mapping = Box::leak(Box::new(std::sync::Arc::clone(&map)));
    Ok(WorkerLane {
        req: Consumer::new(),
        out: Outbox::new(map.layout().arena, max_payload),
        asyncs: AsyncCalls::new(forever, async_concurrency),
        streams: Box::leak(Box::new(StreamArea::new(forever, max_payload))),
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
    /// The async calls in flight, and the responses waiting for them.
    asyncs: AsyncCalls,
    /// Where streaming tasks' items go (for the life of the process).
    streams: &'static StreamArea,
}

impl WorkerLane {
    /// Serves requests until the host says stop; returns the exit code.
    fn run(mut self) -> i32 {
        let mut busy = None;
        loop {
            // BUSY
            if self.out.owes_ring() && !request_published(&self.map, self.req.tail()) {
                self.out.ring_host(&self.map);
            }
            if busy.is_none()
                && (request_published(&self.map, self.req.tail()) || !self.asyncs.is_empty())
            {
                busy = Some(self.busy().begin());
            }
            let took = self.take_one();
            self.asyncs.poll();
            self.flush();
            if took || self.asyncs.has_work() {
                continue;
            }
            // IDLE (async calls may wait, but none has work to do)
            if self.asyncs.is_empty() {
                if let Some(since) = busy.take() {
                    self.busy().end(since);
                }
            }
            if self.idle_wait() {
                // SHUTDOWN
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

    /// Takes the next request if there is one (and the executor has room):
    /// runs a sync one, starts an async one.
    fn take_one(&mut self) -> bool {
        if self.asyncs.is_full() {
            return false;
        }
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

        let entry = self.table.get(&task).copied();
        // Behind a response that waits, this one waits too: kept here.
        let behind = !self.asyncs.is_empty();
        let mut kept = Kept::default();
        let mut slot = SlotReply {
            map: &self.map,
            out: &mut self.out,
            seq,
            sent: false,
        };
        let reply: &mut dyn payload::Reply = if behind { &mut kept } else { &mut slot };
        let bytes = usize::try_from(offset)
            .ok()
            .zip(usize::try_from(len).ok())
            .and_then(|(offset, len)| self.map.request_bytes(offset, len));
        match (entry, bytes) {
            (Some(entry), Some(bytes)) if entry.shape == shape => {
                let inbox = self.inbox.take().unwrap_or_else(|| Box::new(Inbox::new(None)));
                let asyncs = &mut self.asyncs;
                self.inbox = match entry.start {
                    Some(start) => serving(inbox, || asyncs.start(seq, start, bytes)).1,
                    None => {
                        let signal = asyncs.signal(seq);
                        let streams = self.streams;
                        serving(inbox, || {
                            payload::stream::serving(streams, seq, || {
                                (entry.run)(bytes, signal, reply);
                            });
                        })
                        .1
                    }
                };
                if entry.start.is_some() {
                    return true;
                }
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
        if behind {
            self.asyncs.keep(seq, kept);
        } else if !slot.sent {
            slot.error(&Error::of(
                ErrorKind::Protocol,
                "the task entry sent no reply",
            ));
        }
        true
    }

    /// Sends the responses that waited and may go out now, in order.
    fn flush(&mut self) {
        let (map, out, inbox) = (&self.map, &mut self.out, &mut self.inbox);
        self.asyncs.flush(|seq, outcome| {
            let mut reply = SlotReply {
                map,
                out: &mut *out,
                seq,
                sent: false,
            };
            let source = inbox.take().unwrap_or_else(|| Box::new(Inbox::new(None)));
            *inbox = serving(source, || match outcome {
                Outcome::Finished(Ok(send)) => send(&mut reply),
                Outcome::Finished(Err(err)) => {
                    reply.error(&crate::exec::reactor::explain(err));
                }
                Outcome::Kept(kept) => kept.send(&mut reply),
                // The host ended the call; it reads nothing of this.
                Outcome::Ended => reply.error(&Error::cancelled()),
            })
            .1;
            if !reply.sent {
                reply.error(&Error::of(
                    ErrorKind::Protocol,
                    "the task entry sent no reply",
                ));
            }
        });
    }

    /// Spins, then sleeps until a request comes, a future is woken, a call
    /// ends on the host, or the host says stop. True when it is time to
    /// exit: stopped, and nothing is left to answer.
    fn idle_wait(&mut self) -> bool {
        let control = self.map.control();
        // A full executor takes no request: only its futures' work counts.
        let full = self.asyncs.is_full();
        let mut backoff = Backoff::new(self.spin);
        while !backoff.is_completed() {
            if (!full && request_published(&self.map, self.req.tail())) || self.asyncs.has_work() {
                return false;
            }
            backoff.snooze();
        }
        let tail = self.req.tail();
        let asyncs = &self.asyncs;
        asyncs.park(|| {
            sleep(&self.map, |map| {
                // STOP comes with an unconditional ring, so a plain load
                // sees it either here or after the wake-up it causes; so
                // do a future's wake-up and a call's end (`asyncs.rs`).
                // The RMW read orders this check after a publication that
                // rang (the bell protocol); the slot, not the counter's
                // value, says whether the request is there.
                bell::read_counter(&*map.control().req_head);
                (!full && request_published(map, tail))
                    || asyncs.has_work()
                    || (asyncs.is_empty()
                        && map.control().host_ctl.load(Ordering::Acquire) == shm::STOP)
            });
        });
        // Acquire: pairs with the host's store of STOP, made after its last
        // request.
        control.host_ctl.load(Ordering::Acquire) == shm::STOP
            && !request_published(&self.map, self.req.tail())
            && self.asyncs.is_empty()
    }
}

/// True when request `seq` is published: its slot holds it (`seq + 1`).
/// The host's `req_head` only rings the bell; a task that overwrote it
/// cannot hide a request or show a stale one.
fn request_published(map: &Mapping, seq: u64) -> bool {
    Consumer::is_published(&Requests(map), seq)
}

impl std::fmt::Debug for WorkerLane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerLane")
            .field("req", &self.req)
            .field("out", &self.out)
            .finish_non_exhaustive()
    }
}
