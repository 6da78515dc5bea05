//! The async calls of a process worker: their executor (made at the first
//! async call, with the pool's `async_concurrency`), the order their
//! outcomes leave in, and dropping the future of a call that ended on the
//! host.
//!
//! The worker takes requests in order and starts each async one's future
//! on the executor, then goes on taking requests while fewer than the
//! limit are in flight. Responses leave in request order (the host takes
//! them so, see `channel/`): an outcome that is ready while an earlier
//! call still runs waits here, a value kept as its encoder (encoded when
//! its turn comes, straight into the response arena), a sync call's
//! outcome behind an async one as its bytes.
//!
//! # Ending a call
//!
//! The host writes [`shm::ABORT_ENDED`] in a call's abort word when the
//! call ended on its side (a deadline, a cancel, a dropped handle, a hard
//! time limit, a shutdown that stops waiting), then rings the worker. The
//! worker looks at the abort words of its calls whenever it wakes, and
//! drops the future of every call that ended: the task's destructors run
//! at its await point and the executor's slot is free at once.

use std::{
    cell::{Cell, RefCell},
    collections::VecDeque,
    rc::Rc,
    sync::atomic::{AtomicU32, Ordering},
};

use super::super::{bell, shm, shm::Mapping};
use crate::{
    exec::{Bell, Executor, LocalFuture},
    payload::{Encode, Reply, Window},
    task::entry::{Finished, StartFn, Started},
    Error, ErrorKind, Signal,
};

/// What a call's response will say, once it is known.
pub(super) enum Outcome<'m> {
    /// An async call's end: its value's encoder, or its error.
    Finished(Finished<'m>),
    /// A sync call's outcome, kept (it ran while an earlier call was out).
    Kept(Kept),
    /// The call ended on the host; its future was dropped.
    Ended,
}

/// One call whose response is not sent yet, in request order.
struct Waiting<'m> {
    seq: u64,
    abort: &'m AtomicU32,
    /// Its abort word was seen raised (its future was woken for it).
    raised: Rc<Cell<bool>>,
    outcome: Rc<RefCell<Option<Outcome<'m>>>>,
}

/// What the executor keeps beside each future: where its outcome goes.
struct Slot<'m> {
    abort: &'m AtomicU32,
    raised: Rc<Cell<bool>>,
    outcome: Rc<RefCell<Option<Outcome<'m>>>>,
}

/// The executor's bell: the worker's doorbell, rung whatever the worker
/// does (a waker runs on any thread, with no counter to pair with).
struct WorkerBell(&'static Mapping);

impl Bell for WorkerBell {
    fn ring(&self) {
        bell::ring(&self.0.control().worker_bell);
    }
}

/// The async calls of one worker, and the responses that wait for them.
pub(super) struct AsyncCalls {
    map: &'static Mapping,
    limit: usize,
    exec: Option<Executor<'static, Slot<'static>>>,
    waiting: VecDeque<Waiting<'static>>,
}

impl std::fmt::Debug for AsyncCalls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncCalls")
            .field("limit", &self.limit)
            .field("waiting", &self.waiting.len())
            .finish_non_exhaustive()
    }
}

impl AsyncCalls {
    /// The async calls of a worker of `map` (which lives as long as the
    /// process), at most `limit` at once.
    pub(super) fn new(map: &'static Mapping, limit: usize) -> Self {
        Self {
            map,
            limit: limit.max(1),
            exec: None,
            waiting: VecDeque::new(),
        }
    }

    /// As many async calls in flight as the limit allows: take no request.
    #[inline]
    pub(super) fn is_full(&self) -> bool {
        self.exec.as_ref().is_some_and(Executor::is_full)
    }

    /// No response waits here: the next one may go out at once.
    #[inline]
    pub(super) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// The signal of request `seq`: its abort word.
    pub(super) fn signal(&self, seq: u64) -> &'static Signal {
        let index = (seq % self.map.layout().slots as u64) as usize;
        #[cfg(not(knitting_loom))]
        return Signal::from_word(&self.map.aborts()[index]);
        // Loom builds never run a worker; they only need this to compile.
        #[cfg(knitting_loom)]
        {
            let _ = index;
            Box::leak(Box::new(Signal::new()))
        }
    }

    fn abort_word(&self, seq: u64) -> &'static AtomicU32 {
        let map = self.map;
        &map.aborts()[(seq % map.layout().slots as u64) as usize]
    }

    /// Starts async request `seq` (its arguments `input`, decoded now).
    pub(super) fn start(&mut self, seq: u64, start: StartFn, input: &[u8]) {
        let outcome = Rc::new(RefCell::new(None));
        let abort = self.abort_word(seq);
        let raised = Rc::new(Cell::new(false));
        self.waiting.push_back(Waiting {
            seq,
            abort,
            raised: Rc::clone(&raised),
            outcome: Rc::clone(&outcome),
        });
        if self.exec.is_none() {
            let bell = Box::new(WorkerBell(self.map));
            match Executor::new(self.limit, bell) {
                Ok(exec) => self.exec = Some(exec),
                Err(err) => {
                    *outcome.borrow_mut() = Some(Outcome::Finished(Err(err)));
                    return;
                }
            }
        }
        let started = start(input, self.signal(seq));
        let future: LocalFuture<'static> = Box::pin(Watch {
            started,
            abort,
            outcome: Rc::clone(&outcome),
        });
        let exec = self.exec.as_mut().expect("made above");
        let slot = Slot {
            abort,
            raised,
            outcome,
        };
        exec.spawn(future, slot, &mut drop);
    }

    /// Keeps the outcome of sync request `seq`, which ran while an earlier
    /// response waits.
    pub(super) fn keep(&mut self, seq: u64, kept: Kept) {
        self.waiting.push_back(Waiting {
            seq,
            abort: self.abort_word(seq),
            raised: Rc::new(Cell::new(true)),
            outcome: Rc::new(RefCell::new(Some(Outcome::Kept(kept)))),
        });
    }

    /// Polls the futures woken since the last look, and drops those whose
    /// call ended on the host. True if any future ended.
    pub(super) fn poll(&mut self) -> bool {
        let Some(exec) = self.exec.as_mut() else {
            return false;
        };
        let mut ended = false;
        // A raised signal wakes its future once: a task may await it
        // (`Signal::until_aborted`).
        if self.waiting.iter().any(newly_raised) {
            exec.wake_where(|slot| is_raised(slot.abort) && !slot.raised.replace(true));
        }
        exec.poll_ready(&mut |_| ended = true);
        if self.waiting.iter().any(|w| is_ended(w.abort)) {
            let dropped = exec.retain(|slot| !is_ended(slot.abort), &mut |slot| {
                slot.outcome.borrow_mut().get_or_insert(Outcome::Ended);
            });
            ended |= dropped > 0;
        }
        ended
    }

    /// A future was woken, or a call ended on the host: [`poll`](Self::poll)
    /// has work (the worker's sleep condition).
    pub(super) fn has_work(&self) -> bool {
        self.exec.as_ref().is_some_and(Executor::has_ready)
            || self
                .waiting
                .iter()
                .any(|w| newly_raised(w) || (is_ended(w.abort) && w.outcome.borrow().is_none()))
    }

    /// Hands `send` the outcomes that may go out now: the ready ones at the
    /// front, in request order.
    pub(super) fn flush(&mut self, mut send: impl FnMut(u64, Outcome<'static>)) {
        while let Some(front) = self.waiting.front() {
            let Some(outcome) = front.outcome.borrow_mut().take() else {
                return;
            };
            let seq = front.seq;
            self.waiting.pop_front();
            send(seq, outcome);
        }
    }

    /// Sleeps through `park` (see [`Executor::park`]).
    pub(super) fn park(&self, park: impl FnOnce()) {
        match &self.exec {
            Some(exec) => exec.park(park),
            None => park(),
        }
    }
}

/// True when the host ended the call of this abort word.
#[inline]
fn is_ended(abort: &AtomicU32) -> bool {
    // Relaxed: a flag without data (the host wrote it before its ring).
    abort.load(Ordering::Relaxed) == shm::ABORT_ENDED
}

/// True when the call's signal is raised (or the call ended).
#[inline]
fn is_raised(abort: &AtomicU32) -> bool {
    // Relaxed: as in `is_ended`.
    abort.load(Ordering::Relaxed) != 0
}

/// A call whose signal was raised since the worker last looked.
fn newly_raised(w: &Waiting<'_>) -> bool {
    !w.raised.get() && is_raised(w.abort)
}

/// The executor's future of one call: the task's, which it drops as soon
/// as the call ended on the host.
struct Watch<'m> {
    started: Started<'m>,
    abort: &'m AtomicU32,
    outcome: Rc<RefCell<Option<Outcome<'m>>>>,
}

impl std::future::Future for Watch<'_> {
    type Output = ();

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<()> {
        use std::task::Poll;
        if is_ended(self.abort) {
            // The executor drops this future (and the task's) right after.
            self.outcome.borrow_mut().get_or_insert(Outcome::Ended);
            return Poll::Ready(());
        }
        match self.started.as_mut().poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(finished) => {
                *self.outcome.borrow_mut() = Some(Outcome::Finished(finished));
                Poll::Ready(())
            }
        }
    }
}

/// A sync call's outcome, encoded into memory of its own to wait for its
/// turn (a [`Reply`] sink).
#[derive(Debug, Default)]
pub(super) struct Kept {
    outcome: Option<Result<Vec<u8>, Error>>,
}

impl Reply for Kept {
    fn value(&mut self, encode: Encode<'_>) {
        // The encoder reports the size it needs even where it does not fit.
        let mut bytes = Vec::new();
        let encoded = encode(&mut Window::of(&mut bytes)).and_then(|n| {
            bytes.resize(n, 0);
            encode(&mut Window::of(&mut bytes))
        });
        self.outcome = Some(match encoded {
            Ok(n) if n == bytes.len() => Ok(bytes),
            Ok(_) => Err(Error::of(
                ErrorKind::Codec,
                "the worker could not encode the result: its size changed",
            )),
            Err(e) => Err(Error::of(
                ErrorKind::Codec,
                format!("the worker could not encode the result: {e}"),
            )),
        });
    }

    fn error(&mut self, err: &Error) {
        // Explained now, inside the call's scope (as `SlotReply` does).
        let explained = crate::payload::shared::region::explained(err);
        let wire = explained.as_ref().unwrap_or(err).to_wire();
        self.outcome = Some(Err(Error::from_wire(wire)));
    }
}

impl Kept {
    /// Sends the kept outcome to `reply`.
    pub(super) fn send(self, reply: &mut dyn Reply) {
        match self.outcome {
            Some(Ok(bytes)) => reply.value(&|w: &mut Window<'_>| {
                if w.len() >= bytes.len() {
                    w.write(0, &bytes);
                }
                Ok(bytes.len())
            }),
            Some(Err(err)) => reply.error(&err),
            None => reply.error(&Error::of(
                ErrorKind::Protocol,
                "the task entry sent no reply",
            )),
        }
    }
}
