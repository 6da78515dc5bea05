//! The system-call layer: what the crate asks of the operating system
//! outside the process runtime, and the one place besides it where the
//! platform decides (`cfg(target_os)`).

/// Nanoseconds on the shared monotonic clock.
///
/// Through the C library (its vDSO call), as `std::time::Instant` does:
/// rustix's own vDSO lookup reads the auxiliary vector in a way valgrind's
/// emulated one does not survive, and the process transport runs under
/// valgrind in CI.
#[cfg(target_os = "linux")]
pub(crate) fn monotonic_nanos() -> u64 {
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
pub(crate) fn monotonic_nanos() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos() as u64
}

pub(crate) mod shared;
