//! The park/wake word of a lane: how an idle worker goes to sleep without
//! missing work, how a producer wakes it only when it really sleeps, and
//! how a producer learns that the worker is gone.
//!
//! The protocol, its states and a proof sketch are in `README.md` beside
//! this file.

pub(crate) mod spin;

use std::sync::Mutex;

use crate::sync::{thread, AtomicU32, Ordering};

/// The worker announced it is about to park (or is parked).
const SLEEPING: u32 = 1 << 0;
/// A producer added work since the worker's last announcement.
const NOTIFIED: u32 = 1 << 1;
/// The worker decided to exit (pool closed, queue empty).
const EXITED: u32 = 1 << 2;

/// What a producer learns from [`WakeWord::notify`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Notified {
    /// The worker is alive and will see the work.
    Alive,
    /// The worker has exited: the work may never be seen.
    Exited,
}

/// The wake word of one lane.
///
/// # Bit map
///
/// | bit        | set by                          | cleared by | gives |
/// |------------|---------------------------------|------------|-------|
/// | `SLEEPING` | worker, before its last look    | worker     | producers must unpark the worker |
/// | `NOTIFIED` | every producer, after its push  | worker (each announcement) | the worker will not park |
/// | `EXITED`   | worker, before its last look    | worker (only if it found work) | producers fail their own call |
///
/// Every access is a read-modify-write with `AcqRel`: the word is one
/// release sequence, so whoever reads it synchronizes with every producer
/// and worker step before it, and no plain load can see a stale value.
/// Wake-ups are counted by the `NOTIFIED` bit, never inferred from `park`
/// returning: spurious returns are harmless.
#[derive(Debug)]
pub(crate) struct WakeWord {
    state: AtomicU32,
    /// The thread that sleeps on this word: the lane's worker, replaced
    /// when a hard time limit gives the lane a fresh thread.
    sleeper: Mutex<Option<thread::Thread>>,
}

impl WakeWord {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU32::new(0),
            sleeper: Mutex::new(None),
        }
    }

    /// Records the calling thread as the one that [`sleep`](Self::sleep)s on
    /// this word. Called by each worker thread of the lane before it first
    /// sleeps (a later one replaces a retired one).
    pub(crate) fn register_sleeper(&self) {
        *self.sleeper.lock().unwrap_or_else(|e| e.into_inner()) = Some(thread::current());
    }

    /// Producer side: call after making work visible (a push, a shutdown
    /// flag). One RMW unless the worker sleeps.
    #[inline]
    pub(crate) fn notify(&self) -> Notified {
        // SYNC POINT: AcqRel. Release: the worker's next RMW on this word
        // reads this value (or a later one of the same release sequence) and
        // so sees the work published before it. Acquire: a producer that
        // sees EXITED also sees everything the worker did before leaving.
        let prev = self.state.fetch_or(NOTIFIED, Ordering::AcqRel);
        if prev & EXITED != 0 {
            return Notified::Exited;
        }
        if prev == SLEEPING {
            // The first producer since the announcement pays for the unpark.
            self.unpark_cold();
        }
        Notified::Alive
    }

    #[cold]
    fn unpark_cold(&self) {
        // A lock on the cold path only (the worker sleeps).
        if let Some(sleeper) = &*self.sleeper.lock().unwrap_or_else(|e| e.into_inner()) {
            sleeper.unpark();
        }
    }

    /// The worker has announced that it parks (a racy hint, for a thief
    /// deciding whether the lane's own worker will be quick to take its
    /// queued call; never part of the protocol).
    pub(crate) fn is_sleeping(&self) -> bool {
        // Relaxed: a hint only; the protocol's accesses are the RMWs.
        self.state.load(Ordering::Relaxed) & SLEEPING != 0
    }

    /// Worker side: parks until notified, unless `has_work` (checked after
    /// the announcement) finds something to do. Returns once the worker
    /// should look at its queue again.
    #[cold]
    pub(crate) fn sleep(&self, has_work: impl Fn() -> bool) {
        // SYNC POINT: AcqRel; reading the word synchronizes with every
        // producer's notify before this point, so `has_work` sees their work.
        self.state.swap(SLEEPING, Ordering::AcqRel);
        if has_work() {
            self.wake_up();
            return;
        }
        // SYNC POINT: Acquire pairs with the producer's fetch_or.
        while self.state.load(Ordering::Acquire) & NOTIFIED == 0 {
            thread::park();
        }
        self.wake_up();
    }

    /// Worker side: announces that the worker exits unless `has_work`
    /// (checked after the announcement) finds something. True if the worker
    /// may exit; every later [`notify`](Self::notify) returns
    /// [`Notified::Exited`].
    pub(crate) fn retire(&self, has_work: impl Fn() -> bool) -> bool {
        // SYNC POINT: AcqRel, as in `sleep`.
        self.state.swap(EXITED, Ordering::AcqRel);
        if has_work() {
            self.wake_up();
            return false;
        }
        true
    }

    fn wake_up(&self) {
        // An RMW, not a store: a store would end the release sequence of the
        // producers' fetch_or and a later announcement could then miss work
        // pushed before it.
        self.state.swap(0, Ordering::AcqRel);
    }
}
