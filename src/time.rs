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
