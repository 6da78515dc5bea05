//! One monotonic clock for the host and its workers.
//!
//! Deadlines are stamped by the host and read by workers, possibly in other
//! processes, so both sides must read the same clock: on Linux that is
//! `CLOCK_MONOTONIC`, which every process of the machine shares (it counts
//! from boot). Elsewhere only threads exist and a process-wide epoch does.

use std::time::{Duration, Instant};

/// Nanoseconds on the shared monotonic clock (see [`crate::sys::monotonic_nanos`]).
pub(crate) fn now_nanos() -> u64 {
    crate::sys::monotonic_nanos()
}

/// `Instant` `at` on the shared clock (saturating at now for the past).
pub(crate) fn nanos_at(at: Instant) -> u64 {
    let now = Instant::now();
    now_nanos().saturating_add(at.saturating_duration_since(now).as_nanos() as u64)
}

/// The shared clock's now, plus `after`.
pub(crate) fn nanos_after(after: Duration) -> u64 {
    now_nanos().saturating_add(after.as_nanos().min(u128::from(u64::MAX)) as u64)
}

/// A word a worker keeps its busy time in: one of the crate's atomics (a
/// thread lane's slot) or one of the shared mapping (a process worker's
/// control block). Relaxed throughout: the words are statistics only.
pub(crate) trait BusyWord {
    fn read(&self) -> u64;
    fn write(&self, value: u64);
}

impl BusyWord for std::sync::atomic::AtomicU64 {
    fn read(&self) -> u64 {
        self.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn write(&self, value: u64) {
        self.store(value, std::sync::atomic::Ordering::Relaxed);
    }
}

#[cfg(knitting_loom)]
impl BusyWord for crate::sync::AtomicU64 {
    fn read(&self) -> u64 {
        self.load(crate::sync::Ordering::Relaxed)
    }
    fn write(&self, value: u64) {
        self.store(value, crate::sync::Ordering::Relaxed);
    }
}

/// A worker's busy time: `total`, the nanoseconds of its finished busy
/// periods, and `since`, when the open one began on this clock (0: idle).
/// Only the worker writes them.
pub(crate) struct Busy<'a, W> {
    pub(crate) total: &'a W,
    pub(crate) since: &'a W,
}

impl<W: BusyWord> Busy<'_, W> {
    /// The worker found work: a busy period begins. Returns its start.
    pub(crate) fn begin(&self) -> u64 {
        let now = now_nanos().max(1);
        self.since.write(now);
        now
    }

    /// The worker ran out of work: the period begun at `started` ends.
    pub(crate) fn end(&self, started: u64) {
        let spent = now_nanos().saturating_sub(started);
        self.total.write(self.total.read().saturating_add(spent));
        self.since.write(0);
    }

    /// The busy time so far of a worker born at `born` (a racy snapshot;
    /// see [`busy_time`]).
    pub(crate) fn read(&self, born: u64) -> Duration {
        busy_time(self.total.read(), self.since.read(), born, now_nanos())
    }
}

/// A worker's busy time from its two words (see [`Busy`]); `born` is when
/// the worker started.
///
/// The words are a racy snapshot, and a worker process may have written
/// anything into them, so the reading is clamped: an open period that
/// began before the worker or after `now` counts nothing, and no reading
/// exceeds the worker's lifetime. No arithmetic here can overflow.
pub(crate) fn busy_time(total: u64, since: u64, born: u64, now: u64) -> Duration {
    let lived = now.saturating_sub(born);
    let open = if since >= born && since <= now {
        now - since
    } else {
        0
    };
    Duration::from_nanos(total.saturating_add(open).min(lived))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn busy_time_adds_the_open_period_and_stays_within_the_lifetime() {
        // Idle, with 30 ns of finished periods.
        assert_eq!(busy_time(30, 0, 100, 200), Duration::from_nanos(30));
        // Busy since 150: 50 ns more.
        assert_eq!(busy_time(30, 150, 100, 200), Duration::from_nanos(80));
        // Words no honest worker writes count no more than its lifetime.
        assert_eq!(
            busy_time(u64::MAX, 150, 100, 200),
            Duration::from_nanos(100)
        );
        assert_eq!(busy_time(0, 50, 100, 200), Duration::ZERO);
        assert_eq!(busy_time(0, 250, 100, 200), Duration::ZERO);
        assert_eq!(busy_time(0, u64::MAX, 0, u64::MAX), Duration::ZERO);
        // A clock read before the worker's birth: nothing lived yet.
        assert_eq!(busy_time(10, 0, 300, 200), Duration::ZERO);
    }
}
