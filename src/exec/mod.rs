//! Async tasks on a worker: the small executor each worker runs its async
//! calls on, written once for both runtimes.
//!
//! A worker that takes an async call starts its future here and goes on
//! taking calls, up to a limit (`async_concurrency`): a call that awaits a
//! timer or I/O holds a slot of the executor, not the worker. The
//! executor knows nothing of calls: each future comes with a context `C`
//! (what the runtime needs to finish or fail the call), and the runtime
//! says what to do with the context of a future that finished or that it
//! dropped.
//!
//! # Waking
//!
//! Each future has its own waker. Waking it queues the future's number on
//! the executor's ready list and rings the worker's [`Bell`] (a thread
//! lane's wake word, a process worker's doorbell), so a worker that sleeps
//! for new calls wakes for its futures too. A future is polled only after
//! a wake-up (the first poll is one), at most once per wake-up.
//!
//! # What runs where
//!
//! Without the `tokio` feature the executor has no reactor: futures that
//! need none run (the crate's own [`sleep`](crate::sleep), channels, other
//! calls' handles, anything woken by another thread). With the feature,
//! each worker also runs a current-thread tokio runtime; futures are
//! polled inside it, so tokio's timers and I/O work (see [`reactor`]).

pub(crate) mod block;
pub(crate) mod reactor;

use std::{
    future::Future,
    pin::Pin,
    sync::{Arc, Mutex},
    task::{Context, Poll, Wake, Waker},
};

use crate::sync::{AtomicBool, Ordering};

/// How many async calls a worker runs at once unless the pool says
/// otherwise (`async_concurrency`).
pub(crate) const DEFAULT_CONCURRENCY: usize = 256;

/// A future an executor runs, borrowing from its worker for `'a`.
pub(crate) type LocalFuture<'a> = Pin<Box<dyn Future<Output = ()> + 'a>>;

/// How an executor tells its worker that a future was woken.
pub(crate) trait Bell: Send + Sync + 'static {
    /// Wakes the worker if it sleeps (cheap if it does not).
    fn ring(&self);
}

/// The futures woken since the worker last looked.
pub(crate) struct Ready {
    woken: Mutex<Vec<usize>>,
    /// A future was woken and not polled yet: the worker's cheap look.
    any: AtomicBool,
    bell: Box<dyn Bell>,
    /// A worker that sleeps inside the reactor (`tokio` feature) waits on
    /// this besides its bell.
    idle: atomic_waker::AtomicWaker,
}

/// The waker of one future of an executor.
struct TaskWaker {
    id: usize,
    /// Queued on the ready list, not polled yet: a second wake-up before
    /// the poll queues nothing.
    queued: AtomicBool,
    ready: Arc<Ready>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // AcqRel: one of two racing wake-ups queues the future, and the
        // worker's clearing of the flag (before its poll) is seen here.
        if self.queued.swap(true, Ordering::AcqRel) {
            return;
        }
        self.ready
            .woken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.id);
        // Release: a worker that sees the flag finds the number in the list
        // (the list's lock orders the rest).
        self.ready.any.store(true, Ordering::Release);
        self.ready.bell.ring();
        self.ready.idle.wake();
    }
}

struct Entry<'a, C> {
    /// Declared before `ctx`: the future is dropped first, while what its
    /// context keeps alive still is.
    future: LocalFuture<'a>,
    waker: Arc<TaskWaker>,
    ctx: C,
}

/// The async calls one worker has in flight.
pub(crate) struct Executor<'a, C> {
    entries: Vec<Option<Entry<'a, C>>>,
    free: Vec<usize>,
    live: usize,
    limit: usize,
    ready: Arc<Ready>,
    /// The ready list taken out for one round of polls (kept to reuse its
    /// memory).
    batch: Vec<usize>,
    reactor: reactor::Reactor,
}

impl<C> std::fmt::Debug for Executor<'_, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor")
            .field("live", &self.live)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl<'a, C> Executor<'a, C> {
    /// An executor that runs at most `limit` futures at once (at least
    /// one) and rings `bell` when one is woken.
    pub(crate) fn new(limit: usize, bell: Box<dyn Bell>) -> Result<Self, crate::Error> {
        Ok(Self {
            entries: Vec::new(),
            free: Vec::new(),
            live: 0,
            limit: limit.max(1),
            ready: Arc::new(Ready {
                woken: Mutex::new(Vec::new()),
                any: AtomicBool::new(false),
                bell,
                idle: atomic_waker::AtomicWaker::new(),
            }),
            batch: Vec::new(),
            reactor: reactor::Reactor::new()?,
        })
    }

    /// No future in flight.
    pub(crate) fn is_empty(&self) -> bool {
        self.live == 0
    }

    /// As many futures in flight as the limit allows.
    pub(crate) fn is_full(&self) -> bool {
        self.live >= self.limit
    }

    /// A future was woken since the last [`poll_ready`](Self::poll_ready).
    #[inline]
    pub(crate) fn has_ready(&self) -> bool {
        // Acquire: pairs with the waker's Release store.
        self.ready.any.load(Ordering::Acquire)
    }

    /// The cheap look at the ready list, for a worker's sleep condition
    /// (usable while the executor is borrowed elsewhere).
    pub(crate) fn ready_flag(&self) -> ReadyFlag {
        ReadyFlag(Arc::clone(&self.ready))
    }

    /// Starts `future` with its context and polls it once; `done` gets the
    /// context back if it finished in that poll.
    pub(crate) fn spawn(&mut self, future: LocalFuture<'a>, ctx: C, done: &mut dyn FnMut(C)) {
        let id = self.free.pop().unwrap_or_else(|| {
            self.entries.push(None);
            self.entries.len() - 1
        });
        let waker = Arc::new(TaskWaker {
            id,
            queued: AtomicBool::new(false),
            ready: Arc::clone(&self.ready),
        });
        self.entries[id] = Some(Entry { future, waker, ctx });
        self.live += 1;
        self.poll_one(id, done);
    }

    /// Polls every future woken since the last look; `done` gets the
    /// context of each one that finished. Returns how many it polled.
    pub(crate) fn poll_ready(&mut self, done: &mut dyn FnMut(C)) -> usize {
        if !self.has_ready() {
            return 0;
        }
        // Acquire, and an RMW rather than a store: the flag must be
        // cleared before the list is taken (a plain store could land after
        // the take and erase the flag of a wake-up whose number the take
        // missed); a wake-up after this sets it again and is seen next time.
        self.ready.any.swap(false, Ordering::Acquire);
        let mut batch = std::mem::take(&mut self.batch);
        std::mem::swap(
            &mut batch,
            &mut *self.ready.woken.lock().unwrap_or_else(|e| e.into_inner()),
        );
        let polled = batch.len();
        for &id in &batch {
            self.poll_one(id, done);
        }
        batch.clear();
        self.batch = batch;
        polled
    }

    fn poll_one(&mut self, id: usize, done: &mut dyn FnMut(C)) {
        let Some(Some(entry)) = self.entries.get_mut(id) else {
            // A late wake-up of a future that finished: nothing to poll.
            return;
        };
        // AcqRel, and an RMW rather than a store: cleared before the poll
        // reads what its wakers publish (a plain store could be seen after
        // the poll's reads, and a wake-up in between would find the flag
        // still set and queue nothing). Either a waker's swap comes after
        // this one and queues the future again, or this one reads the
        // waker's and the poll sees what it published.
        entry.waker.queued.swap(false, Ordering::AcqRel);
        let waker = Waker::from(Arc::clone(&entry.waker));
        let mut cx = Context::from_waker(&waker);
        let future = entry.future.as_mut();
        if let Poll::Ready(()) = self.reactor.enter(|| future.poll(&mut cx)) {
            self.finish(id, done);
        }
    }

    fn finish(&mut self, id: usize, done: &mut dyn FnMut(C)) {
        if let Some(entry) = self.entries[id].take() {
            self.live -= 1;
            self.free.push(id);
            let Entry { future, ctx, .. } = entry;
            self.reactor.enter(|| drop(future));
            done(ctx);
        }
    }

    /// Drops every future whose context `keep` refuses, then hands its
    /// context to `dropped`. Returns how many it dropped.
    pub(crate) fn retain(
        &mut self,
        mut keep: impl FnMut(&C) -> bool,
        dropped: &mut dyn FnMut(C),
    ) -> usize {
        let mut n = 0;
        for id in 0..self.entries.len() {
            if self.entries[id].as_ref().is_some_and(|e| !keep(&e.ctx)) {
                self.finish(id, dropped);
                n += 1;
            }
        }
        n
    }

    /// Wakes every future whose context `pick` chooses (it is polled on
    /// the next [`poll_ready`](Self::poll_ready)).
    pub(crate) fn wake_where(&self, mut pick: impl FnMut(&C) -> bool) {
        for entry in self.entries.iter().flatten() {
            if pick(&entry.ctx) {
                entry.waker.wake_by_ref();
            }
        }
    }

    /// Runs `park` (which sleeps until the worker's bell rings) the way the
    /// executor's reactor needs: inside the tokio runtime with the `tokio`
    /// feature, so that its timers and I/O make progress while the worker
    /// sleeps.
    pub(crate) fn park(&self, park: impl FnOnce()) {
        if self.is_empty() {
            park();
        } else {
            self.reactor.park(&self.ready, park);
        }
    }
}

/// See [`Executor::ready_flag`].
#[derive(Clone)]
pub(crate) struct ReadyFlag(Arc<Ready>);

impl ReadyFlag {
    /// A future was woken and not polled yet.
    #[inline]
    pub(crate) fn is_set(&self) -> bool {
        // Acquire: as in `Executor::has_ready`.
        self.0.any.load(Ordering::Acquire)
    }
}

impl std::fmt::Debug for ReadyFlag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("ReadyFlag").field(&self.is_set()).finish()
    }
}

/// Polls a task's future with its panics caught: a panic becomes the
/// call's error (one that names the missing reactor, see
/// [`reactor::explain`]).
pub(crate) fn poll_task<T>(
    future: Pin<&mut (dyn Future<Output = Result<T, crate::Error>> + '_)>,
    cx: &mut Context<'_>,
) -> Poll<Result<T, crate::Error>> {
    let mut outcome = Poll::Pending;
    let result = crate::task::panics::catch(|| {
        outcome = future.poll(cx);
        Ok(())
    });
    match result {
        Ok(()) => outcome,
        Err(err) => Poll::Ready(Err(reactor::explain(err))),
    }
}

#[cfg(all(test, knitting_loom))]
mod loom_tests {
    use std::{
        future::poll_fn,
        sync::{Arc, Mutex},
        task::{Poll, Waker},
    };

    use super::{Bell, Executor};
    use crate::sync::{thread, AtomicBool, Ordering};

    struct Silent;

    impl Bell for Silent {
        fn ring(&self) {}
    }

    /// A future waiting for a flag that another thread sets and then wakes
    /// it, while a third thread wakes it early (before the flag is set, or
    /// during a poll): whatever the interleaving, once all are done the
    /// future has finished or its wake-up is pending (never lost).
    #[test]
    fn loom_exec_a_wake_up_is_never_lost() {
        ::loom::model(|| {
            let flag = Arc::new(AtomicBool::new(false));
            let waker: Arc<Mutex<Option<Waker>>> = Arc::new(Mutex::new(None));
            let mut exec = Executor::new(1, Box::new(Silent)).expect("no reactor needed");
            let finished = std::cell::Cell::new(false);
            let (f, w) = (Arc::clone(&flag), Arc::clone(&waker));
            let future = poll_fn(move |cx| {
                // Acquire: pairs with the setter's Release.
                if f.load(Ordering::Acquire) {
                    return Poll::Ready(());
                }
                *w.lock().unwrap() = Some(cx.waker().clone());
                Poll::Pending
            });
            exec.spawn(Box::pin(future), (), &mut |()| finished.set(true));
            let registered = || waker.lock().unwrap().clone().expect("registered");
            let early = registered();
            let late = registered();
            let early = thread::spawn(move || early.wake());
            let setter = thread::spawn(move || {
                // Release: what the future reads once woken.
                flag.store(true, Ordering::Release);
                late.wake();
            });
            exec.poll_ready(&mut |()| finished.set(true));
            early.join().unwrap();
            setter.join().unwrap();
            exec.poll_ready(&mut |()| finished.set(true));
            assert!(
                finished.get(),
                "the future was woken and not polled to its end"
            );
        });
    }
}
