//! Backoff for busy-waiting: a few rounds of CPU pause hints, then yields.
//!
//! Pausing is cheapest when the thread that will answer runs on another
//! core. When there are more busy threads than cores (a caller and two
//! workers on a 2-core machine), a paused thread holds a core the other
//! side needs, so after a short burst the wait yields instead: the same
//! loop then costs little when the answer is far and lets the answering
//! thread run when it shares the core.

use std::time::{Duration, Instant};

/// Pause rounds before yielding: 1 + 2 + ... + 32 = 63 pause hints, a
/// microsecond or two.
const PAUSE_ROUNDS: u32 = 6;

/// A spin-then-yield waiter with a time budget.
#[derive(Debug)]
pub(crate) struct Backoff {
    round: u32,
    start: Option<Instant>,
    budget: Duration,
}

impl Backoff {
    pub(crate) fn new(budget: Duration) -> Self {
        Self {
            round: 0,
            start: None,
            budget,
        }
    }

    /// Waits a little; longer each round, yielding after the pause rounds.
    #[inline]
    pub(crate) fn snooze(&mut self) {
        if self.round < PAUSE_ROUNDS {
            for _ in 0..1u32 << self.round {
                crate::sync::spin_loop();
            }
        } else {
            std::thread::yield_now();
        }
        self.round += 1;
    }

    /// True once the budget is spent: time to block instead.
    #[inline]
    pub(crate) fn is_completed(&mut self) -> bool {
        if self.round < PAUSE_ROUNDS {
            return false;
        }
        let start = *self.start.get_or_insert_with(Instant::now);
        start.elapsed() >= self.budget
    }
}
