//! The park/wake word of a lane: how an idle worker goes to sleep without
//! missing work, and how a producer wakes it only when it really sleeps.
//!
//! The protocol, its states and a proof sketch are in `README.md` beside
//! this file.

use std::sync::OnceLock;

use crate::sync::{fence, thread, AtomicU32, Ordering};

/// The worker is running or spinning; producers need not do anything.
const AWAKE: u32 = 0;
/// The worker announced it is about to park. A producer that sees this
/// must flip it to [`NOTIFIED`] and unpark the worker.
const SLEEPING: u32 = 1;
/// A producer flipped `SLEEPING` and owes (or has made) the unpark call.
const NOTIFIED: u32 = 2;

/// The wake word of one lane.
///
/// # State table
///
/// | state      | set by                  | means                                         |
/// |------------|-------------------------|-----------------------------------------------|
/// | `AWAKE`    | worker                  | worker will look at its queue again by itself |
/// | `SLEEPING` | worker, before parking  | worker may be parked; producers must wake it  |
/// | `NOTIFIED` | the one producer whose swap saw `SLEEPING` | an unpark is on its way |
///
/// Only the worker moves the word back to `AWAKE`, so wake-ups are counted
/// by state, never inferred from `park` returning: spurious returns are
/// harmless.
#[derive(Debug)]
pub(crate) struct WakeWord {
    state: AtomicU32,
    sleeper: OnceLock<thread::Thread>,
}

impl WakeWord {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicU32::new(AWAKE),
            sleeper: OnceLock::new(),
        }
    }

    /// Records the calling thread as the one that [`sleep`](Self::sleep)s on
    /// this word. Called once, by the worker, before it first sleeps.
    pub(crate) fn register_sleeper(&self) {
        let _ = self.sleeper.set(thread::current());
    }

    /// Producer side: call after making work visible (a push, a shutdown
    /// flag). Costs a fence and a load unless the worker sleeps.
    #[inline]
    pub(crate) fn notify(&self) {
        // SeqCst fence, not just Release: this is a store-buffer (Dekker)
        // pattern. The producer stores work then loads the state; the worker
        // stores the state then loads the queue. Only a full fence on both
        // sides forbids both loads from seeing the old value.
        fence(Ordering::SeqCst);
        if self.state.load(Ordering::Relaxed) == SLEEPING {
            self.notify_cold();
        }
    }

    #[cold]
    fn notify_cold(&self) {
        // Only one producer wins the flip and pays for the unpark.
        // AcqRel: the winner's unpark must follow the worker's announcement.
        if self.state.swap(NOTIFIED, Ordering::AcqRel) == SLEEPING {
            if let Some(sleeper) = self.sleeper.get() {
                sleeper.unpark();
            }
        }
    }

    /// Worker side: parks until notified, unless `has_work` (checked after
    /// the announcement) finds something to do. Returns once the worker
    /// should look at its queue again.
    #[cold]
    pub(crate) fn sleep(&self, has_work: impl Fn() -> bool) {
        self.state.store(SLEEPING, Ordering::Relaxed);
        // SeqCst: the other half of the Dekker pattern in `notify`.
        fence(Ordering::SeqCst);
        if has_work() {
            // Withdraw the announcement. A producer may have flipped it to
            // NOTIFIED already; its unpark then leaves a token that makes a
            // later `park` return at once, which the loop below tolerates.
            self.state.store(AWAKE, Ordering::Relaxed);
            return;
        }
        // SYNC POINT: Acquire pairs with the producer's AcqRel swap: once
        // we see NOTIFIED, the work it published before notifying is visible.
        while self.state.load(Ordering::Acquire) == SLEEPING {
            thread::park();
        }
        self.state.store(AWAKE, Ordering::Relaxed);
    }
}
