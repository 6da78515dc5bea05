//! A count of live workers that a shutdown can wait on, with a deadline.

use std::{
    sync::{Condvar, Mutex, MutexGuard},
    time::Instant,
};

/// Counts down as workers (threads, or process lanes) exit.
#[derive(Debug)]
pub(crate) struct Countdown {
    live: Mutex<usize>,
    zero: Condvar,
}

impl Countdown {
    pub(crate) fn new(live: usize) -> Self {
        Self {
            live: Mutex::new(live),
            zero: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, usize> {
        // A panic while holding this lock cannot leave the count half
        // updated: keep going with the value.
        self.live.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sets the count (when fewer workers started than planned).
    pub(crate) fn set(&self, live: usize) {
        *self.lock() = live;
        if live == 0 {
            self.zero.notify_all();
        }
    }

    /// One worker exited.
    pub(crate) fn count_down(&self) {
        let mut live = self.lock();
        *live -= 1;
        if *live == 0 {
            self.zero.notify_all();
        }
    }

    /// Waits until the count is zero; false if `deadline` passed first.
    pub(crate) fn wait(&self, deadline: Option<Instant>) -> bool {
        let mut live = self.lock();
        while *live > 0 {
            live = match deadline {
                None => self.zero.wait(live).unwrap_or_else(|e| e.into_inner()),
                Some(deadline) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return false;
                    }
                    self.zero
                        .wait_timeout(live, deadline - now)
                        .unwrap_or_else(|e| e.into_inner())
                        .0
                }
            };
        }
        true
    }
}
