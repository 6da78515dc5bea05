//! One monotonic clock for the host and its workers.
//!
//! Deadlines are stamped by the host and read by workers, possibly in other
//! processes, so both sides must read the same clock: on Linux that is
//! `CLOCK_MONOTONIC`, which every process of the machine shares (it counts
//! from boot). Elsewhere only threads exist and a process-wide epoch does.

use std::time::{Duration, Instant};

/// Nanoseconds on the shared monotonic clock.
///
/// Through the C library (its vDSO call), as `std::time::Instant` does:
/// rustix's own vDSO lookup reads the auxiliary vector in a way valgrind's
/// emulated one does not survive, and the process transport runs under
/// valgrind in CI.
#[cfg(target_os = "linux")]
pub(crate) fn now_nanos() -> u64 {
    let mut t = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `t` is a valid, writable timespec; CLOCK_MONOTONIC always
    // exists on Linux, so the call cannot fail (and leaves `t` zero if it
    // somehow did).
    unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut t) };
    (t.tv_sec as u64)
        .saturating_mul(1_000_000_000)
        .saturating_add(t.tv_nsec as u64)
}

/// Nanoseconds since the first use in this process.
#[cfg(not(target_os = "linux"))]
pub(crate) fn now_nanos() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
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
